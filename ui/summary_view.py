"""The Summary page's glue: the comparison picker, the totals as metrics with deltas, and the
layer table with changed rows marked."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from resnet_explorer.analysis import Analysis, LayerChange, layer_frame, mib, si
from resnet_explorer.arch import BASELINE, PRESETS, ArchConfig
from resnet_explorer.common import UserError

PASTED = "pasted JSON…"
COMPARE_KEY = "summary_compare"
PASTE_KEY = "summary_compare_json"
MARK = "background-color: rgba(214,39,40,0.15)"
CARDS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("Parameters", "params", si), ("MACs (multiply-adds)", "macs", si), ("FLOPs", "flops", si),
    ("Activation memory (fp32)", "activation_bytes", mib),
    ("Parameter memory (fp32)", "param_bytes", mib))


def comparison(where=st) -> ArchConfig | None:
    """The configuration to compare with: a preset, or JSON pasted below (None if invalid)."""
    choice = where.selectbox("Compare with", [*PRESETS, PASTED], key=COMPARE_KEY,
                             help="resnet34 is the baseline; paste any exported config as JSON.")
    if choice != PASTED:
        return PRESETS[choice]
    text = st.text_area("Configuration to compare (JSON)", BASELINE.to_json(), height=160,
                        key=PASTE_KEY)
    try:
        return ArchConfig.from_json(text)
    except UserError as exc:
        st.error("The pasted configuration is not valid:\n\n- " + "\n- ".join(exc.problems))
        return None


def _delta(value: float, base: float | None, fmt: Callable[[float], str]) -> str | None:
    """Signed difference for st.metric, which colours by a leading '-'."""
    if base is None or value == base:
        return None
    return ("+" if value > base else "-") + fmt(abs(value - base))


def totals(mine: Analysis, other: Analysis | None) -> None:
    for col, (label, attr, fmt) in zip(st.columns(len(CARDS)), CARDS):
        value, base = getattr(mine, attr), getattr(other, attr) if other is not None else None
        col.metric(label, fmt(value), _delta(value, base, fmt), delta_color="inverse",
                   help=f"{value:,}" + (f" (comparison: {base:,})" if base is not None else ""))


def layer_table(mine: Analysis, changes: list[LayerChange] | None) -> None:
    stages = [s.name for s in mine.stages]
    shown = st.multiselect("Stages", stages, default=stages, key="summary_stages")
    frame = layer_frame(mine, changes)
    frame = frame[frame["stage"].isin(shown)]
    if changes is None:
        st.dataframe(frame, hide_index=True, width="stretch")
        return
    marked = frame["vs comparison"] != ""
    styled = frame.style.apply(lambda row: [MARK if marked[row.name] else ""] * len(row), axis=1)
    st.dataframe(styled, hide_index=True, width="stretch")
