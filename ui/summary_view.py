"""The Summary page's glue: the comparison picker, the totals as metrics with deltas, the
layer table with changed rows marked, the diagram and the differences."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from resnet_explorer.analysis import (Analysis, LayerChange, changed_blocks, changes_frame,
                                      layer_frame, mib, si)
from resnet_explorer.analysis import charts
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


def diagram_tab(mine: Analysis, other: Analysis | None, other_label: str,
                changes: list[LayerChange] | None) -> None:
    """Both networks block by block, the blocks that differ outlined."""
    mark_mine: set[str] = set()
    mark_other: set[str] = set()
    if changes is not None:
        mark_mine = changed_blocks([c for c in changes if c.status != "removed"])
        mark_other = changed_blocks([c for c in changes if c.status != "added"])
    st.plotly_chart(
        charts.diagram(mine, mark_mine, (other_label, other) if other is not None else None,
                       mark_other),
        key="summary_diagram")
    st.caption("Height: output channels (log scale). Label: resolution · block type · shortcut. "
               "Red outline: differs from the comparison.")


def differences_tab(cfg: ArchConfig, other: Analysis | None, other_label: str,
                    changes: list[LayerChange] | None) -> None:
    """The options that differ in words, then every layer added, removed or changed."""
    if changes is None or other is None:
        st.info("Choose a valid comparison configuration to see the differences.")
    elif not changes:
        st.success(f"Layer by layer identical to {other_label}.")
    else:
        words = cfg.describe_diff(other.cfg)
        st.markdown(f"**Options changed from {other_label}:** " + ("; ".join(words) or "none"))
        counts = {s: sum(c.status == s for c in changes) for s in ("added", "removed", "changed")}
        st.markdown(", ".join(f"{n} layers {s}" for s, n in counts.items()))
        st.dataframe(changes_frame(changes), hide_index=True, width="stretch")
