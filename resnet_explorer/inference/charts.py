"""Plotly figures for the Inference page."""

from __future__ import annotations

import plotly.graph_objects as go

from .predictor import TopK

__all__ = ["topk_figure"]


def topk_figure(top: TopK) -> go.Figure:
    """Horizontal bars, most likely class on top, probabilities as percentages.

    Class names are categories, always: names such as "0"–"9" would otherwise make plotly
    draw a numeric axis (ticks 0, 2, 4 … and bars without a name). Each bar sits at its class
    index, so two classes with the same name (ImageNet has two "crane"s) keep a bar each, and
    every bar gets its name as its tick."""
    slots = [f"#{i}" for i in top.indices][::-1]
    probs = list(top.probs)[::-1]
    fig = go.Figure(go.Bar(
        x=probs, y=slots, orientation="h", text=[f"{p:.1%}" for p in probs],
        textposition="auto", cliponaxis=False, marker_color="#4c78a8",
        hovertext=list(top.labels)[::-1], hovertemplate="%{hovertext}: %{x:.2%}<extra></extra>",
    ))
    fig.update_layout(height=220, margin=dict(l=0, r=10, t=10, b=0),
                      xaxis=dict(range=[0, 1], tickformat=".0%", title=None),
                      yaxis=dict(type="category", categoryorder="array", categoryarray=slots,
                                 tickmode="array", tickvals=slots,
                                 ticktext=[_short(label) for label in top.labels][::-1],
                                 title=None, automargin=True),
                      showlegend=False)
    return fig


def _short(label: str) -> str:
    # ImageNet names can be long ("German short-haired pointer"); the hover shows them whole.
    return label if len(label) <= 28 else label[:27] + "…"
