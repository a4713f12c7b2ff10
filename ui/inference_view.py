"""The Inference page's glue: the model picker, loading the chosen predictor, what the model
expects to be shown, the Grad-CAM stage, classifying the uploads once per change of input,
and the grid of results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from resnet_explorer.common import AccessDenied, UserError, data_dir, weights_dir
from resnet_explorer.inference import (FileResult, Predictor, coarse_stages, input_guide,
                                       looks_inverted)
from resnet_explorer.inference.charts import topk_figure
from resnet_explorer.inference.gradcam import COARSE_SIDE
from resnet_explorer.models import (RESNET34_IMAGENET, ModelCard, ModelInfo,
                                    checkpoint_fingerprint, list_models, sort_models)
from ui import access, nav
from ui.inference_cache import imagenet_predictor, stored_predictor, training_samples
from ui.state import MODEL_PICK_KEY, drop_stale_choice

IMAGENET = "imagenet (torchvision)"  # picker entry; stored model names cannot contain spaces
RESULTS_KEY = "inf_results"
CAM_STAGE_KEY = "inf_cam_stage"
COLUMNS = 3
CAM_HELP = ("A heat map of where the chosen stage found evidence for the top class (red: "
            "strongest). The map has that stage's resolution, stretched over the image: a last "
            f"stage of {COARSE_SIDE}×{COARSE_SIDE} or less (such as 1×1: a small input through "
            "the ImageNet stem) can only tint the whole picture, so pick an earlier stage for "
            "detail.")


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

    # Stored models newest first; a fresh session starts on the newest, the one a person who
    # just trained comes to try, and a file that is there (the ImageNet weights may not be).
    stored = [m.name for m in sort_models(list(usable.values()), "date", descending=True)]
    drop_stale_choice(MODEL_PICK_KEY, [IMAGENET, *stored])
    # Seeded through the state, not `index`: the Train page may have chosen a model already.
    st.session_state.setdefault(MODEL_PICK_KEY, stored[0] if stored else IMAGENET)
    choice = st.selectbox("Model", [IMAGENET, *stored], format_func=label, key=MODEL_PICK_KEY)
    if choice == IMAGENET and imagenet_key is None:
        st.info(f"The ImageNet weights are not on this machine yet. On the Models page, tab "
                f"“ImageNet weights”, download them, or upload the file "
                f"`{RESNET34_IMAGENET.file_name}` fetched on any computer with internet "
                f"access (the way to go on a server that has none).")
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
    st.caption(f"{predictor.card.summary()} · {predictor.card.provenance()}")
    return predictor, fingerprint


def expected_input(predictor: Predictor) -> None:
    """Beside the uploader: the input size, a few training images, and for a model trained on
    light shapes on a dark background, how to get an upload to look like that."""
    guide = input_guide(predictor.card)
    st.caption(f"This model sees {guide.size}.")
    samples = training_samples(predictor.card.dataset, predictor.card.preprocess.channels,
                               str(data_dir()))
    if samples:
        st.caption(f"What it was trained on: {guide.dataset}")
        st.image([img for img, _ in samples], caption=[label for _, label in samples], width=40)
    if guide.light_on_dark:
        st.caption("It learned light shapes on a dark background: a dark digit or drawing on "
                   "white paper needs **Invert colours**. Crop close, with a thick, high-contrast "
                   "stroke and nothing else in the picture (shadows and paper texture are not in "
                   "its training data).")


def cam_stage(predictor: Predictor, where: Any) -> int | None:
    """Which stage's map Grad-CAM shows (default the last), and a warning when it is too
    coarse to say where; None when the stage sizes are unknown (the last stage is used)."""
    sides = predictor.stage_sides
    if not sides:
        return None
    stages = list(range(1, len(sides) + 1))

    def label(stage: int) -> str:
        h, w = sides[stage - 1]
        return f"stage {stage} ({h}×{w})" + (" · last" if stage == stages[-1] else "")

    drop_stale_choice(CAM_STAGE_KEY, stages)
    stage = where.selectbox("Grad-CAM on", stages, index=len(stages) - 1, format_func=label,
                            key=CAM_STAGE_KEY)
    coarse = coarse_stages(sides)
    if stage in coarse:
        h, w = sides[stage - 1]
        size = predictor.card.preprocess.size
        finer = [s for s in stages if s not in coarse]
        fix = (f"Choose {label(finer[-1])} under “Grad-CAM on” to see where it looked."
               if finer else "Every stage is this coarse: train with a larger "
               "image size or the cifar stem (Train page) for a map with detail.")
        st.warning(f"Stage {stage}'s feature map is {h}×{w} at this model's {size} px input, so "
                   f"its Grad-CAM can only tint the whole image. {fix}")
    return stage


def classify(predictor: Predictor, model_key: str, uploads: Sequence[Any], k: int,
             cam: bool, cam_stage: int | None = None, invert: bool = False) -> list[FileResult]:
    """Results for the uploads, computed again only when the model or the inputs changed
    (every widget click reruns the page). A refused prediction (ui/access.py) ends the page
    with its message; the next rerun tries again."""
    key = (predictor.card.name, model_key,
           tuple((u.name, u.size, getattr(u, "file_id", "")) for u in uploads), k, cam,
           cam_stage if cam else None, invert)
    cached = st.session_state.get(RESULTS_KEY)
    if cached is None or cached[0] != key:
        try:
            with st.spinner(f"Classifying {len(uploads)} image(s)…"):
                cached = (key, access.run_prediction(len(uploads), lambda: predictor.classify(
                    uploads, k=k, cam=cam, cam_stage=cam_stage, invert=invert)))
        except AccessDenied as exc:  # over a demo visitor's rate, or the server is busy
            st.warning(str(exc))
            st.stop()
        st.session_state[RESULTS_KEY] = cached
    return cached[1]


def results_grid(results: list[FileResult], show_cam: bool, card: ModelCard) -> None:
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
                if looks_inverted(card, r.image):
                    st.caption("Mostly light, unlike this model's training images (light on "
                               "dark): try switching **Invert colours**.")
                st.plotly_chart(topk_figure(r.topk), key=f"inf_chart_{i}",
                                config={"displayModeBar": False})
