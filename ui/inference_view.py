"""The Inference page's glue: the model picker, loading the chosen predictor, classifying the
uploads once per change of input, and the grid of results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from resnet_explorer.common import UserError, weights_dir
from resnet_explorer.inference import FileResult, Predictor
from resnet_explorer.inference.charts import topk_figure
from resnet_explorer.models import ModelInfo, checkpoint_fingerprint, list_models
from ui import nav
from ui.inference_cache import imagenet_predictor, stored_predictor
from ui.state import MODEL_PICK_KEY, drop_stale_choice

IMAGENET = "imagenet (torchvision)"  # picker entry; stored model names cannot contain spaces
RESULTS_KEY = "inf_results"
COLUMNS = 3


def pick_model() -> tuple[Predictor | None, str]:
    """The model picker: the chosen model's predictor (None, with a message saying why, when
    it cannot be used) and the fingerprint of its file."""
    folder = weights_dir()  # per run: $RESNET_EXPLORER_HOME may differ between tests
    usable: dict[str, ModelInfo] = {m.name: m for m in list_models(folder) if m.card is not None}
    imagenet_key = checkpoint_fingerprint(weights_dir=folder)

    def label(choice: str) -> str:
        if choice == IMAGENET:
            state = "" if imagenet_key else " — weights not downloaded yet"
            return f"ImageNet ResNet34 (torchvision IMAGENET1K_V1, 1000 classes){state}"
        return f"{choice} — {usable[choice].summary}"

    drop_stale_choice(MODEL_PICK_KEY, [IMAGENET, *usable])
    choice = st.selectbox("Model", [IMAGENET, *usable], format_func=label, key=MODEL_PICK_KEY)
    if choice == IMAGENET and imagenet_key is None:
        st.info("The ImageNet weights are not on this machine yet. The Models page downloads "
                "them, says where to put the file offline, and imports or transfers models.")
        nav.link(nav.MODELS, "Open the Models page")
        return None, ""
    fingerprint = imagenet_key if choice == IMAGENET else usable[choice].fingerprint
    try:
        if choice == IMAGENET:
            predictor = imagenet_predictor(fingerprint, str(folder))
        else:
            predictor = stored_predictor(choice, fingerprint, str(folder))
    except UserError as exc:
        st.error(f"The model could not be loaded: {exc}")
        return None, fingerprint
    card, pre = predictor.card, predictor.card.preprocess
    st.caption(f"{card.summary()} · input: shorter side → {pre.resize} px, center crop "
               f"{pre.size}×{pre.size} · {card.provenance()}")
    return predictor, fingerprint


def classify(predictor: Predictor, model_key: str, uploads: Sequence[Any], k: int,
             cam: bool) -> list[FileResult]:
    """Results for the uploads, computed again only when the model or the inputs changed
    (every widget click reruns the page)."""
    key = (predictor.card.name, model_key,
           tuple((u.name, u.size, getattr(u, "file_id", "")) for u in uploads), k, cam)
    cached = st.session_state.get(RESULTS_KEY)
    if cached is None or cached[0] != key:
        with st.spinner(f"Classifying {len(uploads)} image(s)…"):
            cached = (key, predictor.classify(uploads, k=k, cam=cam))
        st.session_state[RESULTS_KEY] = cached
    return cached[1]


def results_grid(results: list[FileResult], show_cam: bool) -> None:
    for start in range(0, len(results), COLUMNS):
        row = enumerate(results[start:start + COLUMNS], start)
        for col, (i, r) in zip(st.columns(COLUMNS), row):
            with col:
                if not r.ok:
                    st.error(r.error, icon=":material/block:")
                    continue
                shown = r.cam if show_cam and r.cam is not None else r.image
                st.image(shown, caption=f"{r.name}: {r.topk.best} ({r.topk.probs[0]:.1%})",
                         width="stretch")
                st.plotly_chart(topk_figure(r.topk), key=f"inf_chart_{i}",
                                config={"displayModeBar": False})
