"""The Sweeps page: the form for a new sweep (ui.sweep_form) and the sweeps so far, each with
its results table (pending runs counted), the chart of differences to the baseline, cancel,
resume and the summary as CSV; live while any of its runs can change.

Reading only reads: the summary is computed from the runs' status files (cached by their
modification times), never written from here (the CLI writes summary.csv).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from resnet_explorer.common import UserError, data_dir, runs_dir, weights_dir
from resnet_explorer.common.filevalues import fraction
from resnet_explorer.common.paths import sweeps_dir
from resnet_explorer.experiments import stats
from resnet_explorer.experiments.charts import sweep_deltas_figure
from resnet_explorer.experiments.sweep import (SweepRecord, SweepRun, cancel_sweep, list_sweeps,
                                               progress, read_sweep, resume_sweep, sweep_runs,
                                               sweep_summary, trainer_commands)
from ui import sweep_form as form
from ui.access import write_button
from ui.flash import flash
from ui.state import drop_stale_choice

REFRESH_S = 2.0


def new_sweep() -> None:
    """Base, recipe, modifications, seeds, devices; problems listed; one click queues."""
    base = form.base_arch()
    st.caption("The baseline (this architecture with the recipe below, unchanged) always runs.")
    with st.expander("Recipe (every run starts from it)", expanded=False):
        train = form.recipe()
    st.markdown("**Modifications**")
    mods = form.modifications(base, train)
    seeds = form.seeds()
    chosen = form.devices(train)
    spec, problems = form.check({"base_arch": base.to_dict(), "train": train,
                                 "modifications": mods, "seeds": seeds}, chosen)
    form.queue_controls(spec, problems, chosen)


def sweeps_section() -> None:
    """The sweeps so far, newest first, and the chosen one in detail."""
    records = list_sweeps(sweeps_dir())
    if not records:
        st.info("No sweeps yet. Queue one above, or run `python -m resnet_explorer.sweep "
                "SPEC.json`.")
        return
    ids = [r.sweep_id for r in records]
    drop_stale_choice(form.SELECTED_KEY, ids)
    chosen = st.selectbox("Sweep", ids, key=form.SELECTED_KEY,
                          format_func=lambda i: _title(records[ids.index(i)]))
    record = records[ids.index(chosen)]
    runs = sweep_runs(record, runs_dir())
    if _active(runs):
        _live(record.sweep_id)
    else:
        _render(record, runs)
    _buttons(record, runs)


def _title(record: SweepRecord) -> str:
    names = ", ".join(v.name for v in record.spec.modifications) or "seeds only"
    return f"{record.sweep_id} · {names} · {record.spec.seeds} seed(s)"


def _active(runs: list[SweepRun]) -> bool:
    return any(r.info is not None and r.info.active for r in runs)


# Live only while a run can change; once none can, rerun the whole page so the buttons
# (drawn outside the fragment, where a click is never lost) match the sweep's state.
@st.fragment(run_every=REFRESH_S)
def _live(sweep_id: str) -> None:
    try:
        record = read_sweep(sweep_id, sweeps_dir())
    except UserError as exc:
        st.warning(str(exc))
        return
    runs = sweep_runs(record, runs_dir())
    if not _active(runs):
        st.rerun(scope="app")
    _render(record, runs)


def _render(record: SweepRecord, runs: list[SweepRun]) -> None:
    counts = progress(runs)
    st.markdown(" · ".join(f"**{n}** {state}" for state, n in counts.items()))
    summary = _summary(record.sweep_id, _signature(record, runs), str(runs_dir()),
                       str(sweeps_dir()))
    st.dataframe(stats.format_table(summary), hide_index=True)
    st.caption(stats.NOISE_NOTE)
    st.plotly_chart(sweep_deltas_figure(summary), key=f"sweep_chart_{record.sweep_id}")
    st.download_button("Download summary.csv", stats.summary_csv(summary),
                       file_name=f"sweep-{record.sweep_id}-summary.csv", mime="text/csv",
                       on_click="ignore", key=f"sweep_csv_{record.sweep_id}")
    with st.expander("Runs"):
        st.dataframe([{"run": r.slot.run_id, "modification": r.slot.modification,
                       "seed": r.slot.seed, "device": r.slot.device, "state": r.state,
                       "best val acc": _accuracy(r),
                       "message": r.info.message if r.info is not None
                       else r.problem or "removed"}
                      for r in runs], hide_index=True)
    if record.external:
        with st.expander("Trainer commands for the cluster scheduler"):
            st.code("\n".join(trainer_commands(record, runs_dir(), weights_dir=weights_dir(),
                                               data_dir=data_dir())), language="bash")


def _accuracy(run: SweepRun) -> str:
    acc = fraction(run.info.best_val_acc) if run.info is not None else None
    return "" if acc is None else f"{acc:.2%}"


def _signature(record: SweepRecord, runs: list[SweepRun]) -> tuple[tuple[str, int], ...]:
    """What the summary depends on: each run's status file (absent: -1), the record, and each
    run's observed state (a run that dies changes no file: readers never write)."""
    root = runs_dir()
    out = [(run.info.state if run.info is not None else "", 0) for run in runs]
    for path in [record.folder / "runs.json",
                 *(root / s.run_id / "status.json" for s in record.slots)]:
        try:
            out.append((str(path), path.stat().st_mtime_ns))
        except OSError:
            out.append((str(path), -1))
    return tuple(out)


@st.cache_data(max_entries=32, show_spinner=False)
def _summary(sweep_id: str, signature: tuple[tuple[str, int], ...], runs_root: str,
             sweeps_root: str) -> pd.DataFrame:
    del signature  # only part of the cache key
    return sweep_summary(read_sweep(sweep_id, Path(sweeps_root)), Path(runs_root))


def _buttons(record: SweepRecord, runs: list[SweepRun]) -> None:
    left, right = st.columns(2)
    if write_button("Cancel sweep", key="sweep_cancel", where=left, disabled=not _active(runs),
                    help="cancels its queued and running runs (resume brings them back)"):
        flash("info", cancel_sweep(record, runs_dir()))
    resumable = any(r.info.can_resume if r.info is not None else not r.problem for r in runs)
    if write_button("Resume sweep", key="sweep_resume", where=right, disabled=not resumable,
                    help="resumes interrupted, cancelled and failed runs and queues removed "
                         "ones again"):
        try:
            _, message = resume_sweep(record, runs_dir(), weights_dir=weights_dir(),
                                      data_dir=data_dir())
        except UserError as exc:
            st.error(str(exc))
        else:
            flash("success", message)
