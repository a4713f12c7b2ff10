"""Plotly figures for the Summary & FLOPs page: per-stage bars, per-block MACs, activation
memory and an architecture diagram, each optionally against a comparison configuration."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..arch.config import MAX_STAGES
from ..arch.options import BLOCKS, SHORTCUTS
from .report import MIB, shape_text, si
from .summary import Analysis, BlockSummary
from .walk import IDENTITY_SHORTCUT

Labelled = tuple[str, Analysis]  # legend label and its analysis
HIGHLIGHT = "#d62728"
_CONFIG_COLOURS = ("#1f77b4", "#ff7f0e")
_STAGE_ORDER = ("stem", *(f"stage {i}" for i in range(1, MAX_STAGES + 1)), "head")
# Plotly's SI tick labels (k, M, G), as the page's totals quote counts.
SI_TICKS = "~s"
PARAMS_AXIS = "parameters"
MACS_AXIS = "MACs (multiply-adds)"
# The diagram's shortest bar spans about half its panel's height (the log axis starts this
# far below it), so the label inside a narrow stage's bars has room.
_BELOW_SHORTEST = 16
_LABEL_MIN_PX = 10  # bar labels never shrink below this font size


def _stage_colour(stage: str) -> str:
    return qualitative.Set2[_STAGE_ORDER.index(stage) % len(qualitative.Set2)]


def stage_bars(configs: list[Labelled]) -> go.Figure:
    """Parameters and MACs per stage, one bar group per stage, one colour per configuration."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Parameters per stage", "MACs per stage"))
    fig.update_yaxes(title_text=PARAMS_AXIS, tickformat=SI_TICKS, row=1, col=1)
    fig.update_yaxes(title_text=MACS_AXIS, tickformat=SI_TICKS, row=1, col=2)
    for i, (label, a) in enumerate(configs):
        names = [s.name for s in a.stages]
        for col, values in ((1, [s.params for s in a.stages]), (2, [s.macs for s in a.stages])):
            fig.add_bar(x=names, y=values, name=label, legendgroup=label, showlegend=col == 1,
                        marker_color=_CONFIG_COLOURS[i % 2], row=1, col=col,
                        hovertemplate="%{x}: %{y:,}<extra>" + label + "</extra>")
    fig.update_layout(barmode="group", height=360, margin=dict(t=40, b=10))
    return fig


def block_macs(a: Analysis) -> go.Figure:
    """MACs of every block (stem and head included), coloured by stage."""
    fig = go.Figure()
    for stage in dict.fromkeys(b.stage for b in a.blocks):
        blocks = [b for b in a.blocks if b.stage == stage]
        fig.add_bar(x=[b.name for b in blocks], y=[b.macs for b in blocks], name=stage,
                    marker_color=_stage_colour(stage),
                    hovertemplate="%{x}: %{y:,} MACs<extra></extra>")
    fig.update_layout(title="MACs per block", height=340, margin=dict(t=40, b=10),
                      xaxis_tickangle=-45, yaxis_title=MACS_AXIS, yaxis_tickformat=SI_TICKS)
    return fig


def activation_memory(configs: list[Labelled]) -> go.Figure:
    """Training activation memory per stage in MiB (fp32; bf16 of the first configuration)."""
    fig = go.Figure()
    for i, (label, a) in enumerate(configs):
        fig.add_bar(x=[s.name for s in a.stages], y=[s.act_bytes / MIB for s in a.stages],
                    name=f"{label} (fp32)", marker_color=_CONFIG_COLOURS[i % 2])
    label, first = configs[0]
    fig.add_bar(x=[s.name for s in first.stages], y=[s.act_bytes_bf16 / MIB for s in first.stages],
                name=f"{label} (bf16)", marker_color=_CONFIG_COLOURS[0], opacity=0.45)
    fig.update_layout(barmode="group", title="Activation memory per stage, training batch",
                      yaxis_title="MiB", height=340, margin=dict(t=40, b=10))
    return fig


def _block_label(a: Analysis, b: BlockSummary) -> str:
    if b.stage == "head":
        return f"head → {b.out_shape[-1]}"
    side = shape_text(b.out_shape[2:])
    if b.stage == "stem":
        return f"stem · {side}"
    # Every block of a network is of the config's kind and has its shortcut, or none.
    shortcut = "id" if b.shortcut == IDENTITY_SHORTCUT else SHORTCUTS[a.cfg.shortcut].short
    return f"{side} · {BLOCKS[a.cfg.block].short} · {shortcut}"


def _diagram_trace(a: Analysis, highlight: set[str]) -> go.Bar:
    blocks = a.blocks
    return go.Bar(
        x=list(range(len(blocks))), y=[b.out_shape[1] for b in blocks],
        text=[_block_label(a, b) for b in blocks], textposition="inside", textangle=-90,
        insidetextanchor="start", textfont_size=11,
        marker=dict(color=[_stage_colour(b.stage) for b in blocks],
                    line=dict(color=[HIGHLIGHT if b.name in highlight else "rgba(0,0,0,0.25)"
                                     for b in blocks],
                              width=[4 if b.name in highlight else 1 for b in blocks])),
        customdata=[[b.name, b.kind, b.shortcut or "—", shape_text(b.in_shape),
                     shape_text(b.out_shape), f"{b.params:,}", si(b.macs),
                     "changed" if b.name in highlight else ""] for b in blocks],
        hovertemplate=("<b>%{customdata[0]}</b> %{customdata[1]}<br>shortcut: %{customdata[2]}"
                       "<br>%{customdata[3]} → %{customdata[4]}<br>params %{customdata[5]}, "
                       "MACs %{customdata[6]}<br><b>%{customdata[7]}</b><extra></extra>"),
        showlegend=False)


def diagram(a: Analysis, highlight: set[str] = frozenset(),
            other: Labelled | None = None, other_highlight: set[str] = frozenset()) -> go.Figure:
    """Stem, blocks and head left to right: height = output channels (log scale), label =
    resolution · block type · shortcut, colour = stage, red outline = differs from the other."""
    panels = [(a, highlight)] + ([(other[1], other_highlight)] if other else [])
    rows = len(panels)
    titles = ("this configuration",) + ((other[0],) if other else ())
    fig = make_subplots(rows=rows, cols=1, subplot_titles=titles, vertical_spacing=0.12)
    channels = [b.out_shape[1] for analysis, _ in panels for b in analysis.blocks]
    bottom, top = min(channels) / _BELOW_SHORTEST, max(channels) * 1.05
    ticks = _powers_of_two(bottom, top)
    for row, (analysis, marks) in enumerate(panels, start=1):
        fig.add_trace(_diagram_trace(analysis, marks), row=row, col=1)
        fig.update_xaxes(tickvals=list(range(len(analysis.blocks))),
                         ticktext=[b.name for b in analysis.blocks], tickangle=-45, row=row, col=1)
        # Both panels on one scale; ticks at the powers of two that channel counts are, each
        # labelled in full (plotly's own log ticks label minor ones: "1000, 9, 8 … 2, 100").
        fig.update_yaxes(type="log", title_text="output channels (log scale)",
                         range=[math.log10(bottom), math.log10(top)], tickvals=ticks,
                         ticktext=[str(t) for t in ticks], row=row, col=1)
    fig.update_layout(height=360 * rows, bargap=0.08, margin=dict(t=40, b=10),
                      uniformtext=dict(minsize=_LABEL_MIN_PX, mode="show"))
    return fig


def _powers_of_two(low: float, high: float) -> list[int]:
    """Every whole power of two from `low` to `high` (channel counts are at least 1)."""
    first = max(0, math.ceil(math.log2(low)))
    return [2**k for k in range(first, math.floor(math.log2(high)) + 1)]
