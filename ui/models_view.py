"""The Models page's glue: the store as a sortable table, one model's card and downloads,
imports of uploaded files, torchvision's ImageNet weights (download, or transfer into the
current architecture), renaming, and deleting several models at once after a confirmation.
Every refusal is a UserError and is shown as its message.

Downloads hand Streamlit a function, not bytes: the files of a model are read only when its
button is clicked, so a store of twenty 85 MB models costs no reads on a rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import streamlit as st

from resnet_explorer.common import MODEL_UPLOAD, UserError
from resnet_explorer.inference import export_onnx, prune_onnx_cache
from resnet_explorer.models import (MODEL_SORTS, RESNET34_IMAGENET, DownloadFailed, ModelInfo,
                                    card_markdown, checkpoint_fingerprint, delete_models,
                                    download_checkpoint, import_imagenet_transfer, import_model,
                                    install_checkpoint, model_file_bytes, model_files, model_zip,
                                    read_sidecar, rename_model, size_text, sort_models,
                                    where_to_put)
from ui.access import lock_reason, write_button
from ui.flash import flash
from ui.state import current_arch, drop_stale_choice

IMPORT_FILES_KEY = "models_import_files"
IMPORT_NAME_KEY = "models_import_name"
TARGET_KEY = "models_target"
NEW_NAME_KEY = "models_new_name"
DELETE_PICK_KEY = "models_delete_pick"
CONFIRM_KEY = "models_confirm_delete"
TRANSFER_NAME_KEY = "models_transfer_name"
IMAGENET_FILE_KEY = "models_imagenet_file"
NEEDS_IMAGENET = "Needs the ImageNet weights on this machine: download or upload them above."
CARD_KEY = "models_card"
ONNX_KEY = "models_onnx"  # (fingerprint, bytes) of the export prepared in this session
SORT_KEY = "models_sort"
DESCENDING_KEY = "models_descending"

SORT_LABELS = {"date": "date", "accuracy": "validation accuracy", "size": "size",
               "name": "name", "dataset": "dataset", "run": "run"}
assert set(SORT_LABELS) == set(MODEL_SORTS)  # a new sort key needs its label here


def _accuracy_percent(m: ModelInfo) -> float | None:
    acc = m.card.accuracy if m.card is not None else None
    return None if acc is None else round(100 * acc, 2)


def store_table(models: list[ModelInfo]) -> list[ModelInfo]:
    """The sort controls and the table; the models in the order shown."""
    if not models:
        st.info("No models yet: train one on the Train page, import a file or transfer the "
                "ImageNet weights below.")
        return models
    left, right = st.columns([3, 1])
    by = left.selectbox("Sort by", MODEL_SORTS, format_func=SORT_LABELS.__getitem__,
                        key=SORT_KEY)
    descending = right.toggle("Descending", True, key=DESCENDING_KEY)
    ordered = sort_models(models, by, descending)
    st.dataframe(
        [{"model": m.name,
          "network": m.card.arch.short_name() if m.card else "",
          "dataset": m.card.dataset if m.card else "",
          "classes": len(m.card.class_names) if m.card else None,
          "val acc (%)": _accuracy_percent(m),
          "size (MB)": round(m.size_bytes / 2**20, 2),
          "run": (m.card.run_id or "") if m.card else "",
          "created": m.card.created[:25] if m.card else "",
          "source": m.card.source if m.card else "",
          "problem": m.problem} for m in ordered], hide_index=True,
        column_config={"val acc (%)": st.column_config.NumberColumn(format="%.2f")})
    return ordered


@st.cache_data(max_entries=64, show_spinner="Writing the model card…")
def _card_text(name: str, folder: str, fingerprint: str, sidecar_version: tuple[int, int]) -> str:
    """The card, once per version of the model (`fingerprint`: its weights) and of its
    sidecar (a run that ends adds its last epoch to the best model's sidecar, which leaves
    the weights as they are): an older sidecar without a hash makes it read the weights."""
    return card_markdown(name, Path(folder))


def _sidecar_version(name: str, folder: Path) -> tuple[int, int]:
    try:
        st_ = model_files(name, folder)[1].stat()
    except (OSError, UserError):
        return (0, 0)
    return (st_.st_mtime_ns, st_.st_size)


def model_section(models: list[ModelInfo], folder: Path) -> None:
    """One model: its card, its sidecar, and its downloads."""
    readable = [m for m in models if m.card is not None]
    if not readable:
        return
    st.subheader("Model card and downloads")
    names = [m.name for m in readable]
    drop_stale_choice(CARD_KEY, names)
    name = st.selectbox("Model", names, key=CARD_KEY)
    info = readable[names.index(name)]
    try:
        card = _card_text(name, str(folder), info.fingerprint, _sidecar_version(name, folder))
    except UserError as exc:
        st.error(str(exc))
        return
    st.markdown(card)
    cols = st.columns(5)
    _download(cols[0], "Weights (.safetensors)", f"{name}.safetensors",
              lambda: model_file_bytes(name, folder).weights, "application/octet-stream",
              "models_dl_weights")
    _download(cols[1], "Sidecar (.json)", f"{name}.json",
              lambda: model_file_bytes(name, folder).sidecar, "application/json",
              "models_dl_sidecar")
    _download(cols[2], "Both + card (.zip)", f"{name}.zip", lambda: model_zip(name, folder),
              "application/zip", "models_dl_zip")
    cols[3].download_button("Card (.md)", card.encode("utf-8"), file_name=f"{name}.md",
                            mime="text/markdown", key="models_dl_card")
    _onnx_download(cols[4], info, folder)
    with st.expander("The sidecar in full"):
        try:
            st.json(read_sidecar(name, folder), expanded=1)
        except UserError as exc:
            st.error(str(exc))


def _download(where, label: str, file_name: str, make: Callable[[], bytes], mime: str,
              key: str) -> None:
    """A download button whose bytes are made only when it is clicked."""
    where.download_button(label, make, file_name=file_name, mime=mime, key=key,
                          on_click="ignore")


def _onnx_download(where, info: ModelInfo, folder: Path) -> None:
    """ONNX export of the model: prepared on request (it can be refused with a message naming
    the layer), then offered; one prepared export per session, dropped with its model."""
    prepared = st.session_state.get(ONNX_KEY)
    if prepared is not None and prepared[0] != info.fingerprint:  # another model: let it go
        del st.session_state[ONNX_KEY]
        prepared = None
    if prepared is None:
        if where.button("Prepare ONNX", key="models_onnx_prepare",
                        help="Export to ONNX (the graph takes the preprocessed tensor; mean, "
                             "std, input size and class names are in its metadata)"):
            try:
                with st.spinner("Exporting to ONNX…"):
                    data = export_onnx(info.name, None, weights_dir=folder)
            except UserError as exc:
                st.error(f"Not exported: {exc}")
                return
            st.session_state[ONNX_KEY] = prepared = (info.fingerprint, data)
    if prepared is not None:
        where.download_button("ONNX (.onnx)", prepared[1], file_name=f"{info.name}.onnx",
                              mime="application/octet-stream", key="models_dl_onnx",
                              on_click="ignore")


def import_section(folder: Path) -> None:
    st.caption("A `.safetensors` file together with its `.json` sidecar, or a `.pth`/`.pt` "
               "saved by torch.save (read with weights_only: nothing in it can run code). "
               "Every tensor is checked against the architecture before it is saved; a bare "
               "`.pth` is read as the current architecture.")
    locked = lock_reason()
    files = st.file_uploader("Model files", accept_multiple_files=True, key=IMPORT_FILES_KEY,
                             max_upload_size=MODEL_UPLOAD.megabytes, disabled=bool(locked),
                             help=locked)
    name = st.text_input("Name (optional; default: from the sidecar or file name)",
                         key=IMPORT_NAME_KEY)
    if write_button("Import", key="models_import", disabled=not files):
        try:
            card, notes = import_model(files, current_arch(), name.strip() or None, folder)
        except UserError as exc:
            st.error(f"Not imported: {exc}")
        else:
            flash("success", f"Imported **{card.name}** ({card.summary()}). " + " ".join(notes))


def imagenet_section(folder: Path) -> None:
    locked = lock_reason()
    have = checkpoint_fingerprint(weights_dir=folder) is not None
    if have:
        st.success("torchvision's ImageNet ResNet34 weights (IMAGENET1K_V1) are on this machine.")
    else:
        _get_imagenet(folder, locked)
    cfg = current_arch()
    st.markdown(f"**Into the current architecture ({cfg.short_name()}).** Every ImageNet tensor "
                "whose name and shape fit is copied; the rest stays freshly initialised (train "
                "it on the Train page).")
    new_name = st.text_input("Name for the new model", "imagenet-transfer", key=TRANSFER_NAME_KEY)
    if write_button("Transfer the ImageNet weights", key="models_transfer", disabled=not have,
                    help=None if have else NEEDS_IMAGENET):
        try:
            card, report = import_imagenet_transfer(cfg, new_name.strip(), folder)
        except UserError as exc:
            st.error(f"Not transferred: {exc}")
        else:
            redone = report.shape_mismatch + report.fresh
            detail = "; ".join(redone[:12]) + (" …" if len(redone) > 12 else "")
            flash("success", f"Saved **{card.name}**: {report.summary()}."
                  + (f" Re-initialised: {detail}" if redone else ""))
    if not have:  # a greyed-out button alone does not say why
        st.caption(NEEDS_IMAGENET)


def _get_imagenet(folder: Path, locked: str | None) -> None:
    """The ways to get the ImageNet weights: download, upload (the practical one on a server
    without internet access), or a file put in place by hand."""
    st.info(f"The ImageNet weights are not on this machine. Download them here or, on a server "
            f"without internet access, {where_to_put(RESNET34_IMAGENET, folder)}; uploading "
            "that file below puts it there for you.")
    if write_button("Download the ImageNet weights (~87 MB)", key="models_download"):
        _download_imagenet(folder)
    upload = st.file_uploader(f"Upload {RESNET34_IMAGENET.file_name}", type=["pth"],
                              key=IMAGENET_FILE_KEY, max_upload_size=MODEL_UPLOAD.megabytes,
                              disabled=bool(locked), help=locked)
    if write_button("Save the uploaded weights", key="models_imagenet_save",
                    disabled=upload is None):
        try:
            path = install_checkpoint(upload.getvalue(), weights_dir=folder, name=upload.name)
        except UserError as exc:
            st.error(f"Not saved: {exc}")
        else:
            flash("success", f"Verified and saved {path.name}: the ImageNet weights are ready.")


def _download_imagenet(folder: Path) -> None:
    bar = st.progress(0.0, text="Downloading the ImageNet weights…")

    def progress(done: int, total: int | None) -> None:
        fraction = min(1.0, done / total) if total else 0.0
        bar.progress(fraction, text=f"Downloading the ImageNet weights… {done / 2**20:.0f} MB")

    try:
        path = download_checkpoint(progress=progress, weights_dir=folder)
    except UserError as exc:
        bar.empty()  # a bar left at 0 % would still say "Downloading…"
        # The box above already says where the file goes: the error says only what happened.
        reason = exc.reason if isinstance(exc, DownloadFailed) else str(exc)
        st.error(f"The download failed ({reason}). Upload the file below instead.")
    else:
        flash("success", f"Downloaded and verified {path.name}.")


def manage_section(models: list[ModelInfo], folder: Path) -> None:
    if not models:
        st.caption("No models to rename or delete.")
        return
    names = [m.name for m in models]
    drop_stale_choice(TARGET_KEY, names)
    st.markdown("**Rename**")
    target = st.selectbox("Model", names, key=TARGET_KEY)
    renamed = st.text_input("New name", key=NEW_NAME_KEY).strip()
    if write_button("Rename", key="models_rename", disabled=not renamed):
        try:
            rename_model(target, renamed, folder)
        except UserError as exc:
            st.error(f"Not renamed: {exc}")
        else:
            flash("success", f"Renamed {target} to {renamed}.")
    st.markdown("**Delete**")
    # Models deleted or renamed meanwhile leave the choice (and the consent given for them).
    picked = [n for n in st.session_state.get(DELETE_PICK_KEY, []) if n in names]
    if picked != st.session_state.get(DELETE_PICK_KEY, picked):
        st.session_state[DELETE_PICK_KEY] = picked
        st.session_state[CONFIRM_KEY] = False
    chosen = st.multiselect("Models to delete", names, key=DELETE_PICK_KEY, on_change=_unconfirm)
    size = sum(m.size_bytes for m in models if m.name in chosen)
    confirm = st.checkbox(f"Yes, delete {_count(len(chosen))} ({size_text(size)}) for good",
                          key=CONFIRM_KEY, disabled=not chosen)
    if write_button("Delete", key="models_delete", disabled=not (chosen and confirm)):
        # The deleted names leave the choice on the next run, and the consent with them.
        deleted, problems = delete_models(list(chosen), folder)
        prune_onnx_cache(folder)  # the Predictor's exports of the deleted models go too
        if problems:
            flash("warning", "; ".join(problems)
                  + (f". Deleted {', '.join(deleted)}." if deleted else ""))
        flash("success", f"Deleted {', '.join(deleted)}.")


def _count(n: int) -> str:
    return f"{n} model" + ("" if n == 1 else "s")


def _unconfirm() -> None:
    """Changing the choice withdraws the consent given for the previous one (a callback, the
    one place a widget's value may be set)."""
    st.session_state[CONFIRM_KEY] = False
