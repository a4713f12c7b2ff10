"""The Train page's glue: the network to train, the data section, the recipe form generated from
TrainConfig's fields, live validation, and starting a run.

The recipe widgets are keyed "hp_<field>" and made by ui.fields from the field's Spec, so the
bounds the boxes allow are the bounds TrainConfig.validate() checks; a TrainConfig field no
row below names still gets its widget (in the "More" expander). A train.json (downloaded
from a run) loads back into the same widgets, checked as strictly as the trainer checks it.
Nothing is adjusted behind the person's back: a combination the validator refuses is shown
with its problems and the Start button stays disabled. There is no st.form, so Enter in a box
only commits the value; only the Start button starts a run. Values are kept in session state
while the person visits other pages (widget state is dropped with the page otherwise).
"""

from __future__ import annotations

import uuid
from dataclasses import fields, replace
from typing import Any

import streamlit as st

from resnet_explorer.arch import PRESETS, STEMS, ArchConfig
from resnet_explorer.common import (CONFIG_UPLOAD, DATASET_ZIP_UPLOAD, UserError, data_dir,
                                    parse_json_object, runs_dir, spec_of, weights_dir)
from resnet_explorer.common.devices import device_kind, device_queue, gpu_count
from resnet_explorer.datasets import (FOLDER_ROOTS_ENV, SOURCES, DatasetSummary, describe_dataset,
                                      extract_upload)
from resnet_explorer.inference.gradcam import COARSE_SIDE
from resnet_explorer.runs import start_run
from resnet_explorer.training import QUICK, TrainConfig
from resnet_explorer.training.config import auto_warmup
from ui import fields as gen
from ui.analysis_cache import cached_analysis, cached_smallest_input_side
from ui.access import lock_reason
from ui.flash import flash, remember
from ui.state import SELECTED_RUN_KEY, current_arch, set_arch

FROM_PAGE = "the Architecture page"
NETWORK_KEY = "train_arch"
FOLDER_KEY = "train_folder"
ZIP_KEY = "train_zip"
ZIP_REPORTS_KEY = "train_zip_reports"
NPROC_KEY = "hp_nproc"
START_KEY = "train_start"
TOKEN_KEY = "train_token"
SAVED_KEY = "train_recipe"  # the recipe's values, kept across page visits
LOAD_KEY = "train_load_recipe"
# The fixes offered for a last stage too coarse for Grad-CAM (COARSE_SIDE cells a side or
# fewer, the Inference page's rule) aim at the first size that is not.
LOOKABLE_SIDE = COARSE_SIDE + 1

# The recipe as rows of four; MORE sits in an expander.
ROWS = (
    ("image_size", "epochs", "batch_size", "lr"),
    ("optimizer", "momentum", "nesterov", "weight_decay"),
    ("schedule", "warmup_epochs", "label_smoothing", "augment"),
    ("device", "precision", "channels_last", "seed"),
    ("time_budget_s", "train_limit", "validate_every_epoch"),
    ("keep_last", "keep_min_acc"),
)
MORE = ("step_every", "step_gamma", "val_fraction", "val_limit")
# Set by the data section, not the recipe widgets.
DATA_FIELDS = ("dataset", "data_path")


def unplaced_fields() -> list[str]:
    """TrainConfig fields no row names (a field added later): shown in the "More" expander."""
    placed = {*DATA_FIELDS, *MORE, *(name for row in ROWS for name in row)}
    return [f.name for f in fields(TrainConfig) if f.name not in placed]


def key(field: str) -> str:
    return f"hp_{field}"


def _current(name: str) -> Any:
    """A recipe value: its box's, else what was kept from an earlier visit, else the recipe's."""
    saved = st.session_state.get(SAVED_KEY, {})
    return st.session_state.get(key(name), saved.get(name, getattr(QUICK, name)))


def _field(name: str, where: Any = st, **options: Any) -> Any:
    if name == "warmup_epochs":  # empty = auto: the box shows what auto comes to now
        options["placeholder"] = f"auto: {auto_warmup(_current('epochs')):g}"
    return gen.widget(TrainConfig, name, key(name), default=_current(name), where=where,
                      **options)


# ----- network -------------------------------------------------------------------------------
def network(key: str = NETWORK_KEY, label: str = "Network") -> ArchConfig:
    """The architecture page's network or a preset (the Sweeps page asks under its own key)."""
    page_arch = current_arch()
    choice = st.selectbox(label, [FROM_PAGE, *PRESETS], key=key,
                          format_func=lambda k: f"{page_arch.short_name()} (from {k})"
                          if k == FROM_PAGE else f"preset {k}")
    return page_arch if choice == FROM_PAGE else PRESETS[choice]


def feature_map_note(arch: ArchConfig, image_size: int) -> None:
    """The size of the last stage's feature maps at this image size (the shape walk's), and
    when they are too coarse for Grad-CAM, buttons that apply a larger image or the CIFAR stem."""
    def last_side(cfg: ArchConfig, size: int) -> tuple[int, int]:
        return cached_analysis(cfg, (cfg.in_channels, size, size), 1).stage_sides[-1]

    try:
        h, w = last_side(arch, image_size)
    except UserError as exc:
        st.warning(str(exc))
        return
    text = f"At {image_size} px the last stage's feature maps are {h}×{w}"
    if max(h, w) > COARSE_SIDE:
        st.caption(f"{text}: Grad-CAM on the Inference page can show where this model looks.")
        return
    st.warning(f"{text}, so Grad-CAM of this model can only tint the whole image. For a model "
               f"you can look inside (maps of {LOOKABLE_SIDE}×{LOOKABLE_SIDE} or more), train on "
               "larger images or with a stem that downsamples less; either costs more compute.")
    largest = int(spec_of(TrainConfig, "image_size").hi)  # what the box allows
    size = cached_smallest_input_side(arch, LOOKABLE_SIDE, largest)
    cifar = replace(arch, stem="cifar")
    left, right = st.columns(2)
    if size is not None and size > image_size:
        left.button(f"Train at {size} px", key="train_fix_size", on_click=_set_image_size,
                    args=(size,), help=_cost_note(arch, image_size, arch, size))
    if arch.stem != "cifar" and min(last_side(cifar, image_size)) >= LOOKABLE_SIDE:
        right.button("Use the CIFAR stem", key="train_fix_stem", on_click=_use_network,
                     args=(cifar,), help=f"{STEMS['cifar'].label}, set on the Architecture "
                     f"page's network. {_cost_note(arch, image_size, cifar, image_size)}")


def _cost_note(before: ArchConfig, size: int, after: ArchConfig, new_size: int) -> str:
    old = cached_analysis(before, (before.in_channels, size, size), 1).macs
    new = cached_analysis(after, (after.in_channels, new_size, new_size), 1).macs
    return f"{new / old:.1f}× the multiply-accumulates per image."


def _set_image_size(size: int) -> None:
    st.session_state[key("image_size")] = size


def _use_network(cfg: ArchConfig) -> None:
    set_arch(cfg)  # what the Architecture page shows next time, and the URL
    st.session_state[NETWORK_KEY] = FROM_PAGE


# ----- data ----------------------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner="Reading the dataset…")
def _summary(source: str, channels: int, data_path: str, val_fraction: float,
             root: str) -> DatasetSummary:
    return describe_dataset(source, channels=channels, data_path=data_path,
                            val_fraction=val_fraction, root=root)


def data_source() -> tuple[str, str]:
    """The dataset widget and, for a folder or a zip, where the images are: (dataset, data_path).
    In a locked demo both boxes are disabled and give no path, so nothing on the server is read."""
    source = _field("dataset")
    root = data_dir()
    locked = lock_reason()
    if source == "folder":
        path = st.text_input(
            "Folder on the server (one sub-folder per class)", key=FOLDER_KEY,
            disabled=bool(locked),
            help=locked or f"A path relative to {root}, or inside a folder listed in "
                           f"${FOLDER_ROOTS_ENV} when the dashboard was started.")
        return source, "" if locked else path.strip()
    if source == "upload":
        return source, _zip_upload(root, locked)
    return source, ""


def _zip_upload(root: Any, locked: str | None) -> str:
    upload = st.file_uploader("Zip of class folders (cat/1.jpg, dog/2.png, … or train/ and val/)",
                              type=["zip"], key=ZIP_KEY, disabled=bool(locked), help=locked,
                              max_upload_size=DATASET_ZIP_UPLOAD.megabytes)
    if upload is None or locked:
        return ""
    # Report or refusal per upload: a rerun (any click) neither extracts nor refuses again.
    reports = st.session_state.setdefault(ZIP_REPORTS_KEY, {})
    if upload.file_id not in reports:
        with st.spinner("Checking and extracting the zip…"):
            extract_upload(reports, upload.file_id, upload.getvalue(), upload.name, root=root)
    report = reports[upload.file_id]
    if isinstance(report, str):
        st.error(report)
        return ""
    lines = report.lines()
    st.success(lines[0])
    if len(lines) > 1:
        st.caption(" · ".join(lines[1:]))
    return report.name


SAMPLES_PER_ROW = 8  # the data preview's grid (16 samples: two rows)


def preview(source: str, data_path: str, channels: int) -> None:
    """Classes, counts and a few samples of the chosen data (nothing to show without a path)."""
    if SOURCES[source].needs_path and not data_path:
        return
    try:
        # The split the run will use (its box sits further down, in the recipe).
        summary = _summary(source, channels, data_path, _current("val_fraction"), str(data_dir()))
    except UserError as exc:
        st.warning(str(exc))
        return
    if not summary.available:
        st.warning(summary.message)
        return
    total_train, total_val = sum(summary.train_counts), sum(summary.val_counts)
    st.markdown(f"**{len(summary.class_names)} classes** · {total_train:,} training and "
                f"{total_val:,} validation images")
    if summary.message:
        st.caption(summary.message)
    with st.expander("Classes and counts"):
        st.dataframe({"class": summary.class_names, "train": summary.train_counts,
                      "validation": summary.val_counts}, hide_index=True)
    # Rows of a fixed count, so the samples form an even grid (a flowing list of 16 wraps as
    # 14 + 2 in a 1400 px window).
    for start in range(0, len(summary.samples), SAMPLES_PER_ROW):
        row = summary.samples[start:start + SAMPLES_PER_ROW]
        for col, (img, label) in zip(st.columns(SAMPLES_PER_ROW), row):
            col.image(img, caption=label, width=64)


# ----- recipe --------------------------------------------------------------------------------
def recipe(dataset: str, data_path: str) -> tuple[TrainConfig, list[str], int]:
    """The recipe widgets; the config they describe, the validator's problems, and processes."""
    values: dict[str, Any] = {}
    for row in ROWS:
        for col, name in zip(st.columns(4), row):
            values[name] = _field(name, where=col)
    with st.expander("More: step schedule, validation split, limits"):
        more = [*MORE, *unplaced_fields()]
        for start in range(0, len(more), 4):
            for col, name in zip(st.columns(4), more[start:start + 4]):
                values[name] = _field(name, where=col)
    gpus = gpu_count()
    nproc = 1
    if gpus > 1:
        nproc = int(st.number_input("Processes (GPUs)", 1, gpus, 1, key=NPROC_KEY,
                                    help="several GPUs: torchrun with DistributedDataParallel"))
    st.session_state[SAVED_KEY] = {**values, "dataset": dataset}
    cfg = replace(QUICK, dataset=dataset, data_path=data_path, **values)
    problems = cfg.validate()
    try:
        device_kind(cfg.device)  # a device this machine does not have
    except UserError as exc:
        problems += exc.problems
    return cfg, problems, nproc


def load_recipe() -> None:
    """Upload a train.json to fill the recipe (and the dataset) from it."""
    st.file_uploader("Load a train.json (from a run's downloads)", type=["json"], key=LOAD_KEY,
                     on_change=_on_load, max_upload_size=CONFIG_UPLOAD.megabytes,
                     help="Only the settings the file names change; the rest keep your values.")


def _on_load() -> None:
    """The uploaded train.json into the widgets, before they are drawn (a callback). A file
    the trainer would refuse changes nothing and says why, naming the field."""
    upload = st.session_state.get(LOAD_KEY)
    if upload is None:
        return
    try:
        data = parse_json_object(upload.getvalue())
        cfg = TrainConfig.from_dict(data)
    except UserError as exc:
        remember("error", f"{upload.name} was not loaded: {exc}")
        return
    notes = []
    names = [n for n in data if n != "data_path"]  # data_path goes to the data section's box
    for name in names:
        st.session_state[key(name)] = getattr(cfg, name)
    if "data_path" in data and cfg.data_path:
        if cfg.dataset == "folder":
            st.session_state[FOLDER_KEY] = cfg.data_path
        elif cfg.dataset == "upload":
            notes.append(f"upload the zip it was trained on again ({cfg.data_path})")
    remember("success", f"Loaded {len(names)} setting(s) from {upload.name}."
             + (" Then " + "; ".join(notes) + "." if notes else ""))


def start(arch: ArchConfig, cfg: TrainConfig, nproc: int) -> None:
    """Queue the run (the page reruns showing it) or say why it cannot start."""
    # One token per browser session: a double click within seconds reuses the first run.
    token = st.session_state.setdefault(TOKEN_KEY, uuid.uuid4().hex)
    try:
        run_id = start_run(arch, cfg, device=device_queue(cfg.device), runs_dir=runs_dir(),
                           weights_dir=weights_dir(), data_dir=data_dir(), nproc=nproc,
                           dedupe_key=f"{token}:{arch.to_json()}:{cfg.to_json()}")
    except UserError as exc:
        st.error(f"Cannot start: {exc}")
        return
    st.session_state[SELECTED_RUN_KEY] = run_id
    flash("success", f"Started run {run_id}.")
