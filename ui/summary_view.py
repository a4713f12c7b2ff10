"""The Summary page's glue: the comparison picker, the totals as metrics with deltas, the
measured speed, the layer table with changed rows marked, the diagram and the differences."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd
import streamlit as st

from resnet_explorer.analysis import (COLUMN_FORMATS, THROUGHPUT_BATCH, Analysis, LayerChange,
                                      Latency, cached_latency, changed_blocks, changes_frame,
                                      layer_frame, measure_latency, measured_on, mib,
                                      ranking_note, si)
from resnet_explorer.analysis import charts
from resnet_explorer.arch import BASELINE, PRESETS, ArchConfig
from resnet_explorer.common import UserError
from resnet_explorer.common.devices import device_kind
from ui.access import compute_slot
from ui.analysis_cache import cached_analysis
from ui.state import kept

PASTED = "pasted JSON…"
COMPARE_KEY = "summary_compare"
PASTE_KEY = "summary_compare_json"
MEASURE_KEY = "summary_measure"
# Where speed is measured: the session's best device, as the Inference page runs models.
MEASURE_DEVICE = "auto"
MARK = "background-color: rgba(214,39,40,0.15)"
ALL_COLUMNS_KEY = "summary_all_columns"
# The layer table's columns without "All columns", with widths in pixels that keep them in
# view side by side in a 1400 px window (the rest: stage, input and other FLOPs).
LAYER_COLUMNS = {"vs comparison": 90, "layer": 145, "kind": 100, "detail": 178, "output": 100,
                 "params": 72, "MACs": 58, "FLOPs": 62, "activations MiB": 115}
CARDS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("Parameters", "params", si), ("MACs (multiply-adds)", "macs", si), ("FLOPs", "flops", si),
    ("Activation memory (fp32)", "activation_bytes", mib),
    ("Parameter memory (fp32)", "param_bytes", mib))


def comparison(where=st) -> ArchConfig | None:
    """The configuration to compare with: a preset, or JSON pasted below (None if invalid)."""
    choice = where.selectbox("Compare with", [*PRESETS, PASTED], key=kept(COMPARE_KEY),
                             help="resnet34 is the baseline; paste any exported config as JSON.")
    if choice != PASTED:
        return PRESETS[choice]
    text = st.text_area("Configuration to compare (JSON)", height=160,
                        key=kept(PASTE_KEY, BASELINE.to_json()))
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


def _speeds(label: str, cfg: ArchConfig, size: tuple[int, int, int], big: int,
            measure: bool) -> tuple[Latency, Latency] | None:
    """Batch-1 latency and throughput from the cache, or measured when asked to."""
    if not measure:
        one, many = (cached_latency(cfg, size, MEASURE_DEVICE, b) for b in (1, big))
        return None if one is None or many is None else (one, many)
    # A server-wide slot: measurements take every core, and two at once time each other.
    with compute_slot(), st.spinner(f"Measuring {label} at batch 1 and {big}…"):
        return (measure_latency(cfg, size, MEASURE_DEVICE, 1),
                measure_latency(cfg, size, MEASURE_DEVICE, big))


def measured_speed(cfg: ArchConfig, height: int, width: int) -> None:
    """This architecture's measured latency and throughput at the page's input next to its
    MACs, with ResNet34's for comparison. The Measure button runs only what the latency
    cache lacks; every other rerun shows the cached figures without running a model."""
    st.subheader("Measured speed")
    big = THROUGHPUT_BATCH[device_kind(MEASURE_DEVICE)]
    where = measured_on(MEASURE_DEVICE)
    clicked = st.button("Measure", key=MEASURE_KEY,
                        help=f"Runs the real network (random weights, eval mode) at batch 1 "
                             f"and {big} on {where}.")
    configs = {cfg.short_name(): cfg}
    configs.setdefault(BASELINE.short_name(), BASELINE)
    rows, points = [], []
    for label, arch in configs.items():
        size = (arch.in_channels, height, width)
        try:
            speeds = _speeds(label, arch, size, big, clicked)
        except UserError as exc:
            (st.error if arch == cfg else st.warning)(f"{label} cannot be measured here: {exc}")
            continue
        except RuntimeError as exc:  # e.g. out of device memory: a message, as on Compare
            st.error(f"Measuring {label} failed: {str(exc)[:200]}")
            continue
        if speeds is None:
            continue
        one, many = speeds
        macs = cached_analysis(arch, size, 1).macs
        rows.append({"architecture": label, "MACs / image": si(macs),
                     "batch 1: ms / image": round(one.median_ms, 2),
                     "batch 1: images/s": round(one.images_per_s, 1),
                     f"batch {big}: ms / image": round(many.median_ms / many.batch, 2),
                     f"batch {big}: images/s": round(many.images_per_s, 1)})
        points.append((label, macs, one.median_ms))
    if not rows:
        st.caption(f"Press Measure to time this architecture and ResNet34 at {height}×{width}, "
                   f"batch 1 and {big}, on {where}.")
        return
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(f"Measured on {where}: random weights, eval mode, the median of several timed "
               "forward passes after warm-up. Kept in the latency cache for this exact setting.")
    note = ranking_note(points, configs)
    if note:
        st.info(note)


def table(frame: pd.DataFrame, marked: pd.Series | None = None,
          widths: Mapping[str, int] | None = None) -> None:
    """An analysis frame with its numbers formatted for reading (the data stays numeric, so
    columns sort by value), the `marked` rows shaded; with `widths` only those columns."""
    styled = frame.style.format({c: f for c, f in COLUMN_FORMATS.items() if c in frame})
    if marked is not None:
        styled = styled.apply(lambda row: [MARK if marked[row.name] else ""] * len(row), axis=1)
    order = None if widths is None else [c for c in widths if c in frame]
    config = {c: st.column_config.Column(width=w) for c, w in (widths or {}).items() if c in frame}
    st.dataframe(styled, hide_index=True, width="stretch", column_order=order,
                 column_config=config)


def layer_table(mine: Analysis, changes: list[LayerChange] | None) -> None:
    stages = [s.name for s in mine.stages]
    pick, more = st.columns([4, 1], vertical_alignment="bottom")
    shown = pick.multiselect("Stages", stages, default=stages, key="summary_stages")
    every = more.toggle("All columns", key=ALL_COLUMNS_KEY,
                        help="Also the stage, the input shape and the other FLOPs (norms, "
                             "activations, pooling, adds); wider than the page.")
    frame = layer_frame(mine, changes)
    frame = frame[frame["stage"].isin(shown)]
    marked = None if changes is None else frame["vs comparison"] != ""
    table(frame, marked, None if every else LAYER_COLUMNS)


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
        st.markdown(", ".join(f"{n} layer{'' if n == 1 else 's'} {s}" for s, n in counts.items()))
        st.dataframe(changes_frame(changes), hide_index=True, width="stretch")
