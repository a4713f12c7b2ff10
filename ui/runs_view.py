"""The Train page's run list: the table, one run's status, curves and log, live while it runs,
its buttons (cancel, resume, try the model on the Inference page) and, once it has ended, its
downloads (the kept models, metrics as CSV, arch.json and train.json)."""

from __future__ import annotations

import streamlit as st

from resnet_explorer.common import UserError, runs_dir, weights_dir
from resnet_explorer.models import metrics_csv, model_zip, run_config_bytes, run_files
from resnet_explorer.runs import (FAILED, RunInfo, cancel_run, get_run, list_runs, log_tail,
                                  read_metrics, resume_run)
from resnet_explorer.runs.charts import training_figures
from ui import nav
from ui.access import write_button
from ui.flash import flash
from ui.state import MODEL_PICK_KEY, SELECTED_RUN_KEY, drop_stale_choice

REFRESH_S = 1.5
ICONS = {"completed": "✅", "running": "🏃", "queued": "⏳", "failed": "❌",
         "diverged": "💥", "cancelled": "🛑", "interrupted": "⚠️", "prepared": "📋",
         "damaged": "🩹"}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def runs_section() -> None:
    """Every run, newest first, and the chosen one in detail (live while it can change)."""
    all_runs = list_runs(runs_dir())
    if not all_runs:
        st.info("No runs yet. Start one above.")
        return
    ids = [r.run_id for r in all_runs]
    if any(r.active for r in all_runs):
        _live_table(ids)
    else:
        _table(all_runs)
    drop_stale_choice(SELECTED_RUN_KEY, ids)
    run_id = st.selectbox("Run", ids, key=SELECTED_RUN_KEY)
    selected = all_runs[ids.index(run_id)]
    if selected.active:
        _live(run_id)
    else:
        _render(run_id, selected)


def _table(runs: list[RunInfo]) -> None:
    st.dataframe(
        [{"run": r.run_id, "state": r.state, "network": r.arch_name, "data": r.dataset,
          "epoch": f"{r.epoch:.1f}/{r.epochs}",
          "best val acc": (f"{r.best_val_acc:.1%}" + (" (chance)" if r.warning else "")
                           if r.best_val_acc is not None else ""),
          "message": r.message} for r in runs], hide_index=True)


# The table is live while any run can change (a queued run starts, a running one advances):
# each tick re-reads every run. Once a run is added or removed, or none can change any more,
# the whole page reruns so the run picker and the panel below follow.
@st.fragment(run_every=REFRESH_S)
def _live_table(ids: list[str]) -> None:
    runs = list_runs(runs_dir())
    if [r.run_id for r in runs] != ids or not any(r.active for r in runs):
        st.rerun(scope="app")
    _table(runs)


# A live fragment only while the run can change: it re-reads the run each tick and, once the
# run has ended, reruns the whole page (before drawing anything) so the run table catches up
# and the finished run's buttons are only ever drawn outside the fragment: a click on a
# button the fragment drew just before the page rerun would be lost.
@st.fragment(run_every=REFRESH_S)
def _live(run_id: str) -> None:
    info = get_run(run_id, runs_dir())
    if info is None or not info.active:
        st.rerun(scope="app")
    _render(run_id, info)


def _render(run_id: str, info: RunInfo | None) -> None:
    if info is None:
        st.info("This run was removed.")
        return
    st.markdown(f"**{ICONS.get(info.state, '')} {info.state}** — {info.message}")
    if info.warning:  # its model is kept, but must not pass for a result
        st.warning(f"Model {info.warning}.")
    if info.state == FAILED and not info.can_resume:
        st.caption(f"Not resumable: a resume would load the same {info.failure} again. Fix the "
                   "cause, then start a new run.")
    if info.state == "running":
        speed = f" · {info.images_per_s:,.0f} images/s" if info.images_per_s else ""
        st.progress(info.progress, text=f"epoch {info.epoch:.2f} of {info.epochs} · "
                    f"ETA {duration(info.eta_s)}{speed}")
    metrics = read_metrics(run_id, runs_dir())
    if metrics.steps or metrics.epochs:
        log_loss = st.toggle("Log axis for the loss", key="train_loss_log",
                             help="shows a huge loss (an unlucky first epoch) with the rest")
        figures = training_figures(metrics.steps, metrics.epochs, log_loss)
        left, right = st.columns(2)
        for i, (name, fig) in enumerate(figures.items()):
            (left if i % 2 == 0 else right).plotly_chart(fig, key=f"train_chart_{name}")
    with st.expander("Log", expanded=info.state in ("failed", "diverged", "interrupted")):
        st.code(log_tail(run_id, runs_dir()) or "(empty)", language=None)
    b1, b2, b3 = st.columns(3)
    if info.active and write_button("Cancel run", key="train_cancel", where=b1):
        flash("info", cancel_run(run_id, runs_dir()))
    if info.can_resume and write_button("Resume run", key="train_resume", where=b2):
        try:
            resume_run(run_id, runs_dir())
        except UserError as exc:
            st.error(str(exc))
        else:
            flash("success", f"Run {run_id} queued to resume.")
    if info.active:
        return
    if info.damaged:  # its model names and configs cannot be trusted: offer none of them
        st.caption("This run cannot be resumed; delete it on the Compare page.")
        return
    # What the run kept and is still in the store (a model may have been deleted since).
    models, configs = run_files(run_id, runs_dir(), weights_dir())
    if models:
        st.caption(f"Model in the store: **{models[0]}**"
                   + (" (at chance level: see the warning above)" if info.warning else ""))
        if b3.button("Try it on the Inference page", key="train_try"):
            st.session_state[MODEL_PICK_KEY] = models[0]
            nav.go(nav.INFERENCE)
    _downloads(run_id, models, configs)


def _downloads(run_id: str, models: list[str], configs: list[str]) -> None:
    """A finished run's files; each is read only when its button is clicked."""
    runs, weights = runs_dir(), weights_dir()
    st.markdown("**Downloads**")
    cols = iter(st.columns(len(models) + len(configs) + 1))
    for name in models:
        next(cols).download_button(f"{name} (.zip)", lambda name=name: model_zip(name, weights),
                                   file_name=f"{name}.zip", mime="application/zip",
                                   key=f"train_dl_model_{name}", on_click="ignore")
    next(cols).download_button("Metrics (.csv)", lambda: metrics_csv(run_id, runs),
                               file_name=f"{run_id}-metrics.csv", mime="text/csv",
                               key="train_dl_metrics", on_click="ignore")
    for file_name in configs:
        next(cols).download_button(file_name,
                                   lambda f=file_name: run_config_bytes(run_id, f, runs),
                                   file_name=f"{run_id}-{file_name}", mime="application/json",
                                   key=f"train_dl_{file_name.removesuffix('.json')}",
                                   on_click="ignore")
