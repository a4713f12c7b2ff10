"""The Models page's glue: the store as a table with each model's card, imports of uploaded
files, torchvision's ImageNet weights (download, or transfer into the current architecture),
renaming and deleting. Every refusal is a UserError and is shown as its message."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from resnet_explorer.arch import BASELINE
from resnet_explorer.common import UserError
from resnet_explorer.models import (MAX_MODEL_BYTES, RESNET34_IMAGENET, ModelInfo,
                                    checkpoint_fingerprint, delete_model, download_checkpoint,
                                    import_imagenet_transfer, import_model, read_sidecar,
                                    rename_model, where_to_put)
from ui.flash import flash
from ui.state import current_arch

IMPORT_FILES_KEY = "models_import_files"
IMPORT_NAME_KEY = "models_import_name"
TARGET_KEY = "models_target"
NEW_NAME_KEY = "models_new_name"
CONFIRM_KEY = "models_confirm_delete"
TRANSFER_NAME_KEY = "models_transfer_name"
CARD_KEY = "models_card"


def _accuracy(m: ModelInfo) -> str:
    acc = m.card.accuracy if m.card is not None else None
    return "" if acc is None else f"{acc:.1%}"


def store_table(models: list[ModelInfo], folder: Path) -> None:
    if not models:
        st.info("No models yet: train one on the Train page, import a file or transfer the "
                "ImageNet weights below.")
        return
    st.dataframe(
        [{"model": m.name,
          "network": m.card.arch.short_name() if m.card else "",
          "classes": len(m.card.class_names) if m.card else None,
          "val acc": _accuracy(m),
          "size (MB)": round(m.size_bytes / 2**20, 2),
          "source": m.card.source if m.card else "",
          "created": m.card.created if m.card else "",
          "problem": m.problem} for m in models], hide_index=True)
    readable = [m for m in models if m.card is not None]
    if readable:
        with st.expander("Model card"):
            name = st.selectbox("Model", [m.name for m in readable], key=CARD_KEY)
            card = next(m.card for m in readable if m.name == name)
            st.markdown(f"**{card.summary()}** · {card.provenance()}")
            diff = card.arch.describe_diff(BASELINE)
            st.caption("Architecture: " + ("; ".join(diff) if diff else "torchvision's resnet34"))
            try:
                st.json(read_sidecar(name, folder), expanded=1)
            except UserError as exc:
                st.error(str(exc))


def import_section(folder: Path) -> None:
    st.caption("A `.safetensors` file together with its `.json` sidecar, or a `.pth`/`.pt` "
               "saved by torch.save (read with weights_only: nothing in it can run code). "
               "Every tensor is checked against the architecture before it is saved; a bare "
               "`.pth` is read as the current architecture.")
    files = st.file_uploader("Model files", accept_multiple_files=True, key=IMPORT_FILES_KEY,
                             max_upload_size=MAX_MODEL_BYTES // 2**20)
    name = st.text_input("Name (optional; default: from the sidecar or file name)",
                         key=IMPORT_NAME_KEY)
    if st.button("Import", key="models_import", disabled=not files) and files:
        try:
            card, notes = import_model(files, current_arch(), name.strip() or None, folder)
        except UserError as exc:
            st.error(f"Not imported: {exc}")
        else:
            flash("success", f"Imported **{card.name}** ({card.summary()}). " + " ".join(notes))


def imagenet_section(folder: Path) -> None:
    have = checkpoint_fingerprint(weights_dir=folder) is not None
    if have:
        st.success("torchvision's ImageNet ResNet34 weights (IMAGENET1K_V1) are on this machine.")
    else:
        st.info(f"The ImageNet weights are not on this machine. To add them offline, "
                f"{where_to_put(RESNET34_IMAGENET, folder)}. Or download them now:")
        if st.button("Download the ImageNet weights (~87 MB)", key="models_download"):
            _download(folder)
    cfg = current_arch()
    st.markdown(f"**Into the current architecture ({cfg.short_name()}).** Every ImageNet tensor "
                "whose name and shape fit is copied; the rest stays freshly initialised (train "
                "it on the Train page).")
    new_name = st.text_input("Name for the new model", "imagenet-transfer", key=TRANSFER_NAME_KEY)
    if st.button("Transfer the ImageNet weights", key="models_transfer", disabled=not have,
                 help=None if have else "Download the ImageNet weights first.") and have:
        try:
            card, report = import_imagenet_transfer(cfg, new_name.strip(), folder)
        except UserError as exc:
            st.error(f"Not transferred: {exc}")
        else:
            redone = report.shape_mismatch + report.fresh
            detail = "; ".join(redone[:12]) + (" …" if len(redone) > 12 else "")
            flash("success", f"Saved **{card.name}**: {report.summary()}."
                  + (f" Re-initialised: {detail}" if redone else ""))


def _download(folder: Path) -> None:
    bar = st.progress(0.0, text="Downloading the ImageNet weights…")

    def progress(done: int, total: int | None) -> None:
        fraction = min(1.0, done / total) if total else 0.0
        bar.progress(fraction, text=f"Downloading the ImageNet weights… {done / 2**20:.0f} MB")

    try:
        path = download_checkpoint(progress=progress, weights_dir=folder)
    except UserError as exc:
        st.error(str(exc))
    else:
        flash("success", f"Downloaded and verified {path.name}.")


def manage_section(models: list[ModelInfo], folder: Path) -> None:
    if not models:
        st.caption("No models to rename or delete.")
        return
    names = [m.name for m in models]
    if st.session_state.get(TARGET_KEY) not in names:  # deleted or renamed: so is its consent
        st.session_state.pop(TARGET_KEY, None)
        st.session_state.pop(CONFIRM_KEY, None)
    target = st.selectbox("Model", names, key=TARGET_KEY, on_change=_unconfirm)
    renamed = st.text_input("New name", key=NEW_NAME_KEY).strip()
    c1, c2 = st.columns(2)
    if c1.button("Rename", key="models_rename", disabled=not renamed) and renamed:
        try:
            rename_model(target, renamed, folder)
        except UserError as exc:
            st.error(f"Not renamed: {exc}")
        else:
            flash("success", f"Renamed {target} to {renamed}.")
    confirm = c2.checkbox("Yes, delete it for good", key=CONFIRM_KEY)
    if c2.button("Delete", key="models_delete", disabled=not confirm) and confirm:
        try:
            delete_model(target, folder)
        except UserError as exc:
            st.error(f"Not deleted: {exc}")
        else:
            flash("success", f"Deleted {target}.")


def _unconfirm() -> None:
    """Choosing another model withdraws the consent given for the previous one (a callback,
    the one place a widget's value may be set)."""
    st.session_state[CONFIRM_KEY] = False
