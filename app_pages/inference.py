"""Inference: classify uploaded photos with a trained model or torchvision's ImageNet weights."""

from __future__ import annotations

import streamlit as st

from resnet_explorer.common import ConfigError, ImportRefused, PretrainedUnavailable, weights_dir
from resnet_explorer.datasets.imaging import MAX_BYTES
from resnet_explorer.inference import MAX_FILES, FileResult, Predictor, results_csv
from resnet_explorer.inference.charts import topk_figure
from resnet_explorer.models import (MAX_MODEL_BYTES, RESNET34_IMAGENET, checkpoint_fingerprint,
                                    download_checkpoint, import_imagenet_transfer, import_model,
                                    store, where_to_put)
from ui.inference_cache import imagenet_predictor, stored_predictor
from ui.state import current_arch

IMAGENET = "imagenet (torchvision)"  # picker entry; stored model names cannot contain spaces
FLASH = "inf_flash"  # (kind, message) shown once after an action that reruns the page
RESULTS = "inf_results"
COLUMNS = 3

st.title("Inference")
folder = weights_dir()  # per run: $RESNET_EXPLORER_HOME may differ between tests
if FLASH in st.session_state:
    kind, text = st.session_state.pop(FLASH)
    getattr(st, kind)(text)

models = store.list_models(folder)
usable = {m.name: m for m in models if m.card is not None}
imagenet_key = checkpoint_fingerprint(weights_dir=folder)


def _label(key: str) -> str:
    if key == IMAGENET:
        state = "" if imagenet_key else " — weights not downloaded yet"
        return f"ImageNet ResNet34 (torchvision IMAGENET1K_V1, 1000 classes){state}"
    return f"{key} — {usable[key].summary}"


def _finish(kind: str, text: str) -> None:
    st.session_state[FLASH] = (kind, text)
    st.rerun()


def _download() -> None:
    bar = st.progress(0.0, text="Downloading the ImageNet weights…")

    def progress(done: int, total: int | None) -> None:
        fraction = min(1.0, done / total) if total else 0.0
        bar.progress(fraction, text=f"Downloading the ImageNet weights… {done / 2**20:.0f} MB")

    try:
        path = download_checkpoint(progress=progress, weights_dir=folder)
    except PretrainedUnavailable as exc:
        st.error(str(exc))
    else:
        _finish("success", f"Downloaded and verified {path.name}.")


def _predictor(choice: str, model_key: str) -> Predictor | None:
    try:
        if choice == IMAGENET:
            return imagenet_predictor(model_key, str(folder))
        return stored_predictor(choice, model_key, str(folder))
    except Exception as exc:  # a damaged file must cost this model, not the page
        st.error(f"The model could not be loaded: {exc}")
        return None


# ----- model --------------------------------------------------------------------------------
choice = st.selectbox("Model", [IMAGENET, *usable], format_func=_label, key="inf_model")
model_key = imagenet_key if choice == IMAGENET else usable[choice].fingerprint
predictor: Predictor | None = None
if choice == IMAGENET and imagenet_key is None:
    st.info(f"The ImageNet weights are not on this machine. To add them offline, "
            f"{where_to_put(RESNET34_IMAGENET, folder)}. Or download them now:")
    if st.button("Download the ImageNet weights (~87 MB)", key="inf_download"):
        _download()
else:
    predictor = _predictor(choice, model_key)
if predictor is not None:
    card = predictor.card
    pre = card.preprocess
    st.caption(f"{card.summary()} · input: shorter side → {pre.resize} px, center crop "
               f"{pre.size}×{pre.size} · source: {card.source}"
               + (f" · run {card.run_id}" if card.run_id else ""))

# ----- images -------------------------------------------------------------------------------
left, right = st.columns([3, 1])
files = left.file_uploader(
    f"Images (JPEG, PNG, WebP, GIF, BMP, TIFF; up to {MAX_FILES} at once)",
    accept_multiple_files=True, key="inf_files", max_upload_size=MAX_BYTES // 2**20)
k = right.slider("Top-k classes", 1, 10, 5, key="inf_k")
show_cam = right.toggle("Grad-CAM overlay", key="inf_cam",
                        help="Where the last stage found evidence for the top class.")
shot = (st.camera_input("Take a photo", key="inf_camera")
        if right.toggle("Use the camera", key="inf_use_camera") else None)
uploads = [*(files or []), *([shot] if shot is not None else [])]

if predictor is not None and uploads:
    # Widget changes rerun the script; classify again only when the inputs changed.
    key = (choice, model_key, tuple((u.name, u.size, getattr(u, "file_id", "")) for u in uploads),
           k, show_cam)
    cached = st.session_state.get(RESULTS)
    if cached is None or cached[0] != key:
        with st.spinner(f"Classifying {len(uploads)} image(s)…"):
            cached = (key, predictor.classify(uploads, k=k, cam=show_cam))
        st.session_state[RESULTS] = cached
    results: list[FileResult] = cached[1]
    good = sum(r.ok for r in results)
    summary, download = st.columns([3, 1], vertical_alignment="center")
    refused = len(results) - good
    summary.markdown(f"**{good} of {len(results)} image(s) classified**"
                     + (f"; {refused} refused (reasons below)" if refused else ""))
    download.download_button("Download results (CSV)", results_csv(results), "predictions.csv",
                             "text/csv", key="inf_csv", on_click="ignore")
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
elif predictor is not None:
    st.caption("Upload images or use the camera to see what the model thinks and where it looked.")

# ----- model management ---------------------------------------------------------------------
with st.expander("Manage models: import a file, ImageNet weights for your architecture, "
                 "rename, delete"):
    imp, transfer, manage = st.tabs(["Import a model file", "ImageNet → current architecture",
                                     "Rename or delete"])
    with imp:
        st.caption("A `.safetensors` file together with its `.json` sidecar, or a `.pth`/`.pt` "
                   "saved by torch.save (read with weights_only: nothing in it can run code). "
                   "Every tensor is checked against the architecture before it is saved.")
        model_files = st.file_uploader("Model files", accept_multiple_files=True,
                                       key="inf_import_files",
                                       max_upload_size=MAX_MODEL_BYTES // 2**20)
        name = st.text_input("Name (optional; default: from the sidecar or file name)",
                             key="inf_import_name")
        if st.button("Import", key="inf_import", disabled=not model_files):
            try:
                card, notes = import_model(model_files, current_arch(), name.strip() or None,
                                           folder)
            except (ImportRefused, ConfigError) as exc:
                st.error(f"Not imported: {exc}")
            else:
                _finish("success",
                        f"Imported **{card.name}** ({card.summary()}). " + " ".join(notes))
    with transfer:
        cfg = current_arch()
        st.markdown(f"Current architecture: **{cfg.short_name()}**. Every ImageNet tensor whose "
                    "name and shape fit is copied; the rest stays freshly initialised (train it "
                    "on the Train page).")
        new_name = st.text_input("Name for the new model", "imagenet-transfer",
                                 key="inf_transfer_name")
        if st.button("Transfer the ImageNet weights", key="inf_transfer",
                     disabled=imagenet_key is None,
                     help=None if imagenet_key else "Download the ImageNet weights first."):
            try:
                card, report = import_imagenet_transfer(cfg, new_name.strip(), folder)
            except (ImportRefused, ConfigError, PretrainedUnavailable) as exc:
                st.error(f"Not transferred: {exc}")
            else:
                redone = report.shape_mismatch + report.fresh
                detail = "; ".join(redone[:12]) + (" …" if len(redone) > 12 else "")
                _finish("success", f"Saved **{card.name}**: {report.summary()}."
                        + (f" Re-initialised: {detail}" if redone else ""))
    with manage:
        if not models:
            st.caption("No models yet: train one on the Train page, import a file or transfer "
                       "the ImageNet weights.")
        else:
            target = st.selectbox("Model", [m.name for m in models], key="inf_manage_model")
            for m in models:
                if m.card is None:
                    st.warning(f"{m.name}: {m.problem}")
            renamed = st.text_input("New name", key="inf_new_name")
            c1, c2 = st.columns(2)
            if c1.button("Rename", key="inf_rename", disabled=not renamed.strip()):
                try:
                    store.rename_model(target, renamed.strip(), folder)
                except (ConfigError, OSError) as exc:
                    st.error(f"Not renamed: {exc}")
                else:
                    _finish("success", f"Renamed {target} to {renamed.strip()}.")
            confirm = c2.checkbox("Yes, delete it for good", key="inf_confirm_delete")
            if c2.button("Delete", key="inf_delete", disabled=not confirm):
                try:
                    store.delete_model(target, folder)
                except OSError as exc:
                    st.error(f"Not deleted: {exc}")
                else:
                    _finish("success", f"Deleted {target}.")
