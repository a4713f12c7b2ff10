"""The Compare page's parts: the cached table, its filters, the selectable table, the actions
on the selection (measure latency, delete after a confirmation, CSV), the overlaid curves and
the accuracy-against-cost scatter.

The table is rebuilt only when a file it is made from changes: `store_signature` stats them
(no reads) on every rerun and keys the st.cache_data entry, so a page of 200 runs reruns in
milliseconds; curves read only the selected runs' metrics, cached per file version.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from resnet_explorer.analysis import ranking_note
from resnet_explorer.common import AccessDenied, runs_dir, weights_dir
from resnet_explorer.experiments import (CompareRow, CompareTable, build_table, delete_rows,
                                         legend_names, measure_rows, shared_parts,
                                         store_signature, table_csv, with_live_states)
from resnet_explorer.experiments.charts import (COST_AXES, X_AXES, accuracy_cost_figure,
                                                curve_figures, run_colour)
from resnet_explorer.runs import RunMetrics, RunPaths, read_metrics
from ui import nav
from ui.access import compute_slot, lock_reason, write_button
from ui.flash import flash

TABLE_KEY_PREFIX = "cmp_table_"  # + a digest of the rows shown: a new row set starts unselected
PENDING_DELETE_KEY = "cmp_pending_delete"
FILTERS = (("dataset", "Dataset", "cmp_f_dataset"), ("status", "Status", "cmp_f_status"),
           ("sweep", "Sweep", "cmp_f_sweep"))
COLUMNS = {
    "label": st.column_config.TextColumn("label", width="large", pinned=True,
                                         help="what differs from ResNet34"),
    "best val acc": st.column_config.NumberColumn(format="percent"),
    "final train loss": st.column_config.NumberColumn(format="%.4f"),
    "wall time (s)": st.column_config.NumberColumn(format="%.1f"),
    "params": st.column_config.NumberColumn(format="compact"),
    "MACs": st.column_config.NumberColumn(format="compact", help="at the run's input size"),
    "latency b1 (ms)": st.column_config.NumberColumn(format="%.2f",
                                                     help="measured: Measure latency below"),
    "images/s": st.column_config.NumberColumn(format="%.0f", help="throughput at 'at batch'"),
}


@st.cache_data(max_entries=8, show_spinner="Reading the runs…")
def _cached_table(signature: str, runs: str, weights: str) -> CompareTable:
    return build_table(Path(runs), Path(weights))


def load_table() -> CompareTable:
    """The table of every run and stored model, rebuilt when one of their files changed; a run
    it shows as active that has died since (no file changes then) shows as interrupted."""
    runs, weights = runs_dir(), weights_dir()  # per run: the home may differ between tests
    table = _cached_table(store_signature(runs, weights), str(runs), str(weights))
    return with_live_states(table, runs)


def empty_store() -> None:
    st.info("No runs yet, and no stored model with metrics: train a network and its run "
            "appears here, next to every other run.")
    nav.link(nav.TRAIN, "Open the Train page")


def filters(table: CompareTable) -> list[CompareRow]:
    """Rows of the chosen datasets, statuses and sweeps (none chosen: all)."""
    chosen = {}
    for column, (attr, label, key) in zip(st.columns(len(FILTERS)), FILTERS):
        options = sorted({getattr(r, attr) for r in table.rows if getattr(r, attr)})
        if key in st.session_state:  # forget choices whose rows are gone
            st.session_state[key] = [v for v in st.session_state[key] if v in options]
        chosen[attr] = column.multiselect(label, options, key=key, placeholder="all",
                                          disabled=not options)
    return [r for r in table.rows
            if all(not values or getattr(r, attr) in values for attr, values in chosen.items())]


def table_section(table: CompareTable, rows: Sequence[CompareRow]) -> list[CompareRow]:
    """The rows as a sortable table; returns those a person ticked."""
    digest = hashlib.sha256("\n".join(r.key for r in rows).encode()).hexdigest()[:12]
    event = st.dataframe(table.frame(rows), key=TABLE_KEY_PREFIX + digest, hide_index=True,
                         on_select="rerun", selection_mode="multi-row", column_config=COLUMNS,
                         height=min(420, 38 + 35 * max(len(rows), 1)))
    picked = [rows[i] for i in sorted(event.selection.rows) if 0 <= i < len(rows)]
    st.caption(f"{len(rows)} of {len(table.rows)} row(s) shown, {len(picked)} selected. Click a "
               "column header to sort; tick rows to plot their curves, measure or delete them.")
    return picked


def actions(table: CompareTable, rows: Sequence[CompareRow],
            selected: Sequence[CompareRow]) -> None:
    """CSV of the rows shown; latency measurement and deletion of the selected ones."""
    csv_col, measure_col, delete_col = st.columns(3)
    csv_col.download_button("Download the table (CSV)", lambda: table_csv(table.frame(rows)),
                            file_name="runs.csv", mime="text/csv", key="cmp_csv",
                            on_click="ignore")  # the text is made only when clicked
    if measure_col.button(f"Measure latency ({len(selected)})", key="cmp_measure",
                          disabled=not selected,
                          help="runs each selected network (random weights) on the run's "
                               "device if this machine has it, else the CPU"):
        try:  # in a server-wide slot, as predictions: one visitor cannot take every core
            with compute_slot(), st.spinner("Measuring: each network runs for a few seconds…"):
                messages = measure_rows(selected)
            flash("info", "\n\n".join(messages))
        except AccessDenied as exc:
            flash("warning", str(exc))
    if write_button(f"Delete selected ({len(selected)})…", key="cmp_delete", where=delete_col,
                    disabled=not selected):
        st.session_state[PENDING_DELETE_KEY] = [r.key for r in selected]
    _confirm_delete(lock_reason())


def _confirm_delete(locked: str | None) -> None:
    pending = st.session_state.get(PENDING_DELETE_KEY)
    if not pending or locked:  # a session locked again drops the question with its consent
        st.session_state.pop(PENDING_DELETE_KEY, None)
        return
    st.warning(f"Delete {len(pending)} row(s) for good: each run's folder and the models it "
               "put in the store, and each stored model listed?\n\n"
               + "\n".join(f"- {key}" for key in pending))
    yes, no = st.columns(2)
    if yes.button("Yes, delete them", type="primary", key="cmp_delete_yes"):
        st.session_state.pop(PENDING_DELETE_KEY, None)
        messages = delete_rows(pending, runs_dir=runs_dir(), weights_dir=weights_dir())
        flash("success", "\n\n".join(messages))
    if no.button("Keep them", key="cmp_delete_no"):
        st.session_state.pop(PENDING_DELETE_KEY, None)
        st.rerun()


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics(run_id: str, runs: str, version: tuple[int, int]) -> RunMetrics:
    return read_metrics(run_id, Path(runs))


def _metrics_version(path: Path) -> tuple[int, int]:
    try:
        st_ = path.stat()
    except OSError:
        return (0, 0)
    return (st_.st_mtime_ns, st_.st_size)


def curves(selected: Sequence[CompareRow]) -> None:
    """The selected runs' loss, validation accuracy and learning rate, overlaid."""
    runs = [r for r in selected if r.is_run]
    if not runs:
        st.caption("Tick runs in the table to overlay their curves here.")
        return
    x = st.radio("x axis", list(X_AXES), horizontal=True, key="cmp_curve_x")
    shared = shared_parts(runs)
    if shared:
        st.caption("Every plotted run has: " + ", ".join(shared))
    root = runs_dir()
    names = legend_names(runs)
    _colour_key(names)
    series = [(name, _metrics(r.key, str(root), _metrics_version(RunPaths(root / r.key).metrics)))
              for name, r in zip(names, runs)]
    for column, (name, fig) in zip(st.columns(3), curve_figures(series, x).items()):
        fig.update_layout(showlegend=False)  # the key above serves all three, unabridged
        column.plotly_chart(fig, key=f"cmp_curve_{name}")


def _colour_key(names: Sequence[str]) -> None:
    """Which colour is which run, once for the three charts: a legend inside each third of
    the page width would cut long names off. The names are escaped: sweeps name their
    modifications freely."""
    items = "".join(
        f'<span style="white-space:nowrap;margin-right:1.5em"><span style="color:'
        f'{run_colour(i)};font-size:1.3em">&#9632;</span> {html.escape(name)}</span> '
        for i, name in enumerate(names))
    st.html(f'<div style="line-height:1.9;font-size:0.9rem">{items}</div>')


def scatter(rows: Sequence[CompareRow]) -> None:
    """Best accuracy against the chosen cost, with the Pareto front and the baseline."""
    cost = st.radio("Cost axis", list(COST_AXES), horizontal=True, key="cmp_cost")
    st.plotly_chart(accuracy_cost_figure(rows, [r.label for r in rows], cost), key="cmp_scatter")
    measured = [r for r in rows if r.latency_ms is not None and r.macs]
    if cost == "latency" and not measured:
        st.caption("No latency measured yet: tick rows and press Measure latency.")
    # One point per network measured (runs of one network share its measurement).
    measured = list({(r.arch, r.input_size, r.latency_device): r for r in measured}.values())
    names = legend_names(measured)
    note = ranking_note([(n, r.macs, r.latency_ms) for n, r in zip(names, measured)],
                        {n: r.arch for n, r in zip(names, measured) if r.arch is not None})
    if note:
        st.info(note)
