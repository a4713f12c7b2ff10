"""Plotly figure builders for pages (no Streamlit here; pages call st.plotly_chart).

Training curves take the records of a run's metrics.jsonl (see runs.read_metrics):
"step" records (logged about once a second) and "epoch" records. The x axis is
always the epoch as a fraction, so step and epoch series line up.
"""

from __future__ import annotations

from typing import Any, Sequence

import plotly.graph_objects as go

__all__ = ["loss_figure", "accuracy_figure", "step_figure", "training_figures"]

Records = Sequence[dict[str, Any]]
_HEIGHT = 280


def _figure(title: str, y_title: str, **layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, height=_HEIGHT, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="epoch", yaxis_title=y_title, hovermode="x unified",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
                      **layout)
    return fig


def _series(records: Records, key: str) -> tuple[list[float], list[float]]:
    pairs = [(r["epoch"], r[key]) for r in records if r.get(key) is not None and "epoch" in r]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def loss_figure(steps: Records, epochs: Records) -> go.Figure:
    fig = _figure("Loss", "cross-entropy")
    x, y = _series(steps, "loss")
    fig.add_scatter(x=x, y=y, mode="lines", name="train (running)", line=dict(width=1), opacity=0.6)
    for key, name in (("train_loss", "train (epoch)"), ("val_loss", "validation")):
        x, y = _series(epochs, key)
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=name)
    return fig


def accuracy_figure(epochs: Records) -> go.Figure:
    fig = _figure("Accuracy", "accuracy", yaxis_tickformat=".0%")
    for key, name in (("train_acc", "train (augmented)"), ("val_acc", "validation")):
        x, y = _series(epochs, key)
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=name)
    return fig


def step_figure(steps: Records, key: str, title: str, axis: str, name: str) -> go.Figure:
    """One per-step quantity as a line (learning rate, throughput)."""
    fig = _figure(title, axis)
    x, y = _series(steps, key)
    fig.add_scatter(x=x, y=y, mode="lines", name=name)
    return fig


def training_figures(steps: Records, epochs: Records) -> dict[str, go.Figure]:
    """The four live curves of a run, by name."""
    return {"loss": loss_figure(steps, epochs), "accuracy": accuracy_figure(epochs),
            "lr": step_figure(steps, "lr", "Learning rate", "learning rate", "lr"),
            "throughput": step_figure(steps, "images_per_s", "Throughput", "images / s",
                                      "images/s")}
