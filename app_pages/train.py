"""Train: pick data and hyper-parameters, queue a run, watch it learn, try the model."""

from __future__ import annotations

import uuid

import streamlit as st
from streamlit.errors import StreamlitAPIException

from resnet_explorer.arch import PRESETS
from resnet_explorer.common import ConfigError, data_dir, runs_dir, weights_dir
from resnet_explorer.datasets import SOURCES
from resnet_explorer.datasets import folders as data_files
from resnet_explorer.datasets import loading as data
from resnet_explorer.datasets import uploads as data_zip
from resnet_explorer.runs import charts
from resnet_explorer.runs import control as runs
from resnet_explorer.training import (CHANNELS_LAST, OPTIMIZERS, PRECISIONS, QUICK, SCHEDULES,
                                      TrainConfig)
from resnet_explorer.common.devices import DEVICE_CHOICES as DEVICES, device_kind, gpu_count
from ui.state import current_arch

REFRESH_S = 1.5
FLASH = "train_flash"  # (kind, message) shown once after an action that reruns the page
SELECTED = "train_run"
FROM_PAGE = "the Architecture page"

st.title("Train")
if FLASH in st.session_state:
    kind, text = st.session_state.pop(FLASH)
    getattr(st, kind)(text)


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH] = (kind, text)
    st.rerun()


@st.cache_data(max_entries=16, show_spinner="Reading the dataset…")
def _summary(source: str, channels: int, data_path: str, root: str) -> data.DatasetSummary:
    return data.describe_dataset(source, channels=channels, data_path=data_path, root=root)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


# ----- architecture ----------------------------------------------------------------------
st.subheader("Architecture")
page_arch = current_arch()
arch_choice = st.selectbox("Network", [FROM_PAGE, *PRESETS], key="train_arch",
                           format_func=lambda k: f"{page_arch.short_name()} (from {k})"
                           if k == FROM_PAGE else f"preset {k}")
arch = page_arch if arch_choice == FROM_PAGE else PRESETS[arch_choice]
st.caption(f"{arch.in_channels} input channel(s); the output layer is sized to the dataset's "
           "classes when training starts.")

# ----- data --------------------------------------------------------------------------------
st.subheader("Data")
root = data_dir()
source = st.selectbox("Dataset", list(SOURCES), key="train_source",
                      format_func=lambda k: SOURCES[k].label)
data_path = ""
if source == "folder":
    data_path = st.text_input(
        "Folder on the server (one sub-folder per class)", key="train_folder",
        help=f"A path relative to {root}, or inside a folder listed in "
             f"${data_files.FOLDER_ROOTS_ENV} when the dashboard was started.")
elif source == "upload":
    upload = st.file_uploader("Zip of class folders (cat/1.jpg, dog/2.png, … or train/ and val/)",
                              type=["zip"], key="train_zip")
    if upload is not None:
        # Report or refusal per upload: a rerun (any click) neither extracts nor refuses again.
        reports = st.session_state.setdefault("train_zip_reports", {})
        if upload.file_id not in reports:
            with st.spinner("Checking and extracting the zip…"):
                data_zip.extract_upload(reports, upload.file_id, upload.getvalue(), upload.name,
                                        root=root)
        report = reports[upload.file_id]
        if isinstance(report, str):
            st.error(report)
        else:
            data_path = report.name
            lines = report.lines()
            st.success(lines[0])
            if len(lines) > 1:
                st.caption(" · ".join(lines[1:]))
summary = _summary(source, arch.in_channels, data_path, str(root)) if (
    data_path or not SOURCES[source].needs_path) else None
if summary is not None:
    if not summary.available:
        st.warning(summary.message)
    else:
        total_train, total_val = sum(summary.train_counts), sum(summary.val_counts)
        st.markdown(f"**{len(summary.class_names)} classes** · {total_train:,} training and "
                    f"{total_val:,} validation images")
        if summary.message:
            st.caption(summary.message)
        with st.expander("Classes and counts"):
            st.dataframe({"class": summary.class_names, "train": summary.train_counts,
                          "validation": summary.val_counts}, hide_index=True)
        if summary.samples:
            st.image([img for img, _ in summary.samples], caption=[c for _, c in summary.samples],
                     width=64)

# ----- hyper-parameters ----------------------------------------------------------------------
st.subheader("Hyper-parameters")
st.caption("Pre-filled with the quick recipe: full-width ResNet34 reaches ≥ 97 % on digits "
           "within 8 epochs, a minute or two on a laptop CPU and seconds on a GPU.")
with st.form("train_form"):
    c1, c2, c3, c4 = st.columns(4)
    image_size = c1.number_input("Image size (px)", 8, 512, QUICK.image_size, key="hp_size")
    epochs = c2.number_input("Epochs", 1, 1000, QUICK.epochs, key="hp_epochs")
    batch_size = c3.number_input("Batch size", 2, 4096, QUICK.batch_size, key="hp_batch")
    lr = c4.number_input("Learning rate", 1e-6, 10.0, QUICK.lr, format="%.5f", key="hp_lr")
    optimizer = c1.selectbox("Optimizer", OPTIMIZERS, OPTIMIZERS.index(QUICK.optimizer), key="hp_opt")
    momentum = c2.number_input("Momentum (SGD)", 0.0, 0.999, QUICK.momentum, key="hp_momentum")
    nesterov = c3.checkbox("Nesterov (SGD)", QUICK.nesterov, key="hp_nesterov")
    weight_decay = c4.number_input("Weight decay", 0.0, 1.0, QUICK.weight_decay, format="%.5f",
                                   key="hp_wd")
    schedule = c1.selectbox("Schedule", SCHEDULES, SCHEDULES.index(QUICK.schedule), key="hp_sched")
    warmup = c2.number_input("Warm-up epochs", 0.0, 1000.0, QUICK.warmup_epochs, key="hp_warmup")
    smoothing = c3.number_input("Label smoothing", 0.0, 0.5, QUICK.label_smoothing, key="hp_ls")
    augment = c4.checkbox("Augmentation", QUICK.augment, key="hp_aug")
    device = c1.selectbox("Device", DEVICES, DEVICES.index(QUICK.device), key="hp_device")
    precision = c2.selectbox("Precision", PRECISIONS, PRECISIONS.index(QUICK.precision),
                             key="hp_precision", help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    channels_last = c3.selectbox("Channels-last", CHANNELS_LAST,
                                 CHANNELS_LAST.index(QUICK.channels_last), key="hp_cl")
    seed = c4.number_input("Seed", 0, 2**31 - 1, QUICK.seed, key="hp_seed")
    budget = c1.number_input("Time budget (s, 0 = none)", 0.0, 7 * 24 * 3600.0,
                             QUICK.time_budget_s, key="hp_budget")
    train_limit = c2.number_input("Max training images (0 = all)", 0, 10_000_000, 0, key="hp_limit")
    validate_each = c3.checkbox("Validate every epoch", QUICK.validate_every_epoch, key="hp_val")
    gpus = gpu_count()
    nproc = c4.number_input("Processes (GPUs)", 1, gpus, 1, key="hp_nproc",
                            help="several GPUs: torchrun with DistributedDataParallel") \
        if gpus > 1 else 1
    submitted = st.form_submit_button("Start training", type="primary")

if submitted:
    try:
        cfg = TrainConfig(
            dataset=source, data_path=data_path, image_size=int(image_size), epochs=int(epochs),
            batch_size=int(batch_size), optimizer=optimizer, lr=float(lr),
            momentum=float(momentum), nesterov=bool(nesterov) and optimizer == "sgd",
            weight_decay=float(weight_decay), schedule=schedule,
            warmup_epochs=min(float(warmup), float(epochs)), label_smoothing=float(smoothing),
            augment=bool(augment), device=device, precision=precision, channels_last=channels_last,
            seed=int(seed), time_budget_s=float(budget), train_limit=int(train_limit),
            validate_every_epoch=bool(validate_each)).check()
        # One token per browser session: a double click within seconds reuses the first run.
        token = st.session_state.setdefault("train_token", uuid.uuid4().hex)
        run_id = runs.start_run(arch, cfg, device=device_kind(cfg.device), runs_dir=runs_dir(), weights_dir=weights_dir(),
                                data_dir=root, nproc=int(nproc),
                                dedupe_key=f"{token}:{arch.to_json()}:{cfg.to_json()}")
    except ConfigError as exc:
        st.error(f"Cannot start: {exc}")
    else:
        st.session_state[SELECTED] = run_id
        _flash("success", f"Started run {run_id}.")

# ----- runs --------------------------------------------------------------------------------
st.subheader("Runs")
all_runs = runs.list_runs(runs_dir())
if not all_runs:
    st.info("No runs yet. Start one above.")
    st.stop()
st.dataframe(
    [{"run": r.run_id, "state": r.state, "network": r.arch_name, "data": r.dataset,
      "epoch": f"{r.epoch:.1f}/{r.epochs}",
      "best val acc": f"{r.best_val_acc:.1%}" if r.best_val_acc is not None else "",
      "message": r.message} for r in all_runs], hide_index=True)
ids = [r.run_id for r in all_runs]
if st.session_state.get(SELECTED) not in ids:
    st.session_state[SELECTED] = ids[0]
run_id = st.selectbox("Run", ids, key=SELECTED)


def _render(run_id: str, info: runs.RunInfo | None) -> None:
    if info is None:
        st.info("This run was removed.")
        return
    icon = {"completed": "✅", "running": "🏃", "queued": "⏳", "failed": "❌", "diverged": "💥",
            "cancelled": "🛑", "interrupted": "⚠️"}.get(info.state, "")
    st.markdown(f"**{icon} {info.state}** — {info.message}")
    if info.state == "running":
        speed = f" · {info.images_per_s:,.0f} images/s" if info.images_per_s else ""
        st.progress(info.progress, text=f"epoch {info.epoch:.2f} of {info.epochs} · "
                    f"ETA {_duration(info.eta_s)}{speed}")
    metrics = runs.read_metrics(run_id, runs_dir())
    if metrics.steps or metrics.epochs:
        figures = charts.training_figures(metrics.steps, metrics.epochs)
        left, right = st.columns(2)
        for i, (name, fig) in enumerate(figures.items()):
            (left if i % 2 == 0 else right).plotly_chart(fig, key=f"train_chart_{name}")
    with st.expander("Log", expanded=info.state in ("failed", "diverged", "interrupted")):
        st.code(runs.log_tail(run_id, runs_dir()) or "(empty)", language=None)
    b1, b2, b3 = st.columns(3)
    if info.active and b1.button("Cancel run", key="train_cancel"):
        _flash("info", runs.cancel_run(run_id, runs_dir()))
    if info.can_resume and b2.button("Resume run", key="train_resume"):
        try:
            runs.resume_run(run_id, runs_dir())
        except ConfigError as exc:
            st.error(str(exc))
        else:
            _flash("success", f"Run {run_id} queued to resume.")
    model = info.best_model or info.last_model
    if model and not info.active:
        st.caption(f"Model in the store: **{model}**")
        if b3.button("Try it on the Inference page", key="train_try"):
            st.session_state["inf_model"] = model  # the Inference page's model picker
            try:
                st.switch_page("app_pages/inference.py")
            except StreamlitAPIException:  # page not registered (tests, trimmed app)
                st.info(f"Open the Inference page and choose {model}.")


# A live fragment only while the run can change: it re-reads the run each tick and reruns the
# whole page once the run ends so the run table and buttons catch up.
selected = all_runs[ids.index(run_id)]
if selected.active:
    @st.fragment(run_every=REFRESH_S)
    def _live() -> None:
        info = runs.get_run(run_id, runs_dir())
        _render(run_id, info)
        if info is None or not info.active:
            st.rerun(scope="app")
    _live()
else:
    _render(run_id, selected)
