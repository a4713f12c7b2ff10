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
ACCURACY_RANGE = (0.0, 1.0)  # fixed: before the first epoch there is nothing to autoscale to
# On the linear loss axis, values above this many times the highest training loss are left
# off the axis (and named in a note): one validation loss of 521 after an unlucky first epoch
# would otherwise flatten the whole training curve. The log axis shows everything.
LOSS_CLIP_FACTOR = 3.0


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


def loss_figure(steps: Records, epochs: Records, log_y: bool = False) -> go.Figure:
    """Running and per-epoch losses; on a log axis, or a linear one that leaves outliers off
    (LOSS_CLIP_FACTOR) with a note naming them."""
    fig = _figure("Loss", "cross-entropy (log axis)" if log_y else "cross-entropy")
    running = _series(steps, "loss")
    per_epoch = {name: _series(epochs, key)
                 for key, name in (("train_loss", "train (epoch)"), ("val_loss", "validation"))}
    fig.add_scatter(x=running[0], y=running[1], mode="lines", name="train (running)",
                    line=dict(width=1), opacity=0.6)
    for name, (x, y) in per_epoch.items():
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=name)
    if log_y:
        fig.update_yaxes(type="log")
        return fig
    top = LOSS_CLIP_FACTOR * max([*running[1], *per_epoch["train (epoch)"][1]], default=0.0)
    off_axis = [f"{name} {v:.3g} at epoch {e:g}" for name, (x, y) in per_epoch.items()
                for e, v in zip(x, y) if top and v > top]
    if off_axis:
        fig.update_yaxes(range=[0, top])
        fig.add_annotation(text="off the axis: " + "; ".join(off_axis[:3]) + " (the log axis "
                           "shows all)", xref="paper", yref="paper", x=1, y=1, xanchor="right",
                           yanchor="top", showarrow=False, font=dict(size=11))
    return fig


def accuracy_figure(epochs: Records) -> go.Figure:
    fig = _figure("Accuracy", "accuracy", yaxis_tickformat=".0%", yaxis_range=ACCURACY_RANGE)
    for key, name in (("train_acc", "train (augmented)"), ("val_acc", "validation")):
        x, y = _series(epochs, key)
        # cliponaxis off: a marker at 100 % is drawn whole on the top edge
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=name, cliponaxis=False)
    return fig


def step_figure(steps: Records, key: str, title: str, axis: str, name: str) -> go.Figure:
    """One per-step quantity as a line (learning rate, throughput)."""
    fig = _figure(title, axis)
    x, y = _series(steps, key)
    fig.add_scatter(x=x, y=y, mode="lines", name=name)
    return fig


def training_figures(steps: Records, epochs: Records,
                     log_loss: bool = False) -> dict[str, go.Figure]:
    """The four live curves of a run, by name."""
    return {"loss": loss_figure(steps, epochs, log_loss), "accuracy": accuracy_figure(epochs),
            "lr": step_figure(steps, "lr", "Learning rate", "learning rate", "lr"),
            "throughput": step_figure(steps, "images_per_s", "Throughput", "images / s",
                                      "images/s")}
