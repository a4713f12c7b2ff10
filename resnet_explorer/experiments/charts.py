"""Plotly figures of the Compare and Sweeps pages (no Streamlit here; pages call st.plotly_chart).

Curves of several runs overlaid (one colour per run, named by what differs), best accuracy
against a cost with the Pareto front and the ResNet34 baseline marked, and a sweep's
differences to its baseline with their confidence intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from ..runs import RunMetrics
from .chart_data import pareto_front
from .stats import NAN, Comparison, verdict
from .sweep_spec import BASELINE_NAME
from .table import CompareRow

__all__ = ["COST_AXES", "X_AXES", "run_colour", "curve_figures", "accuracy_cost_figure",
           "sweep_deltas_figure"]

# Bar colour by stats.verdict of the bar's interval.
_VERDICT_COLOURS = {"better": "seagreen", "worse": "indianred"}  # else within seed noise: grey
PALETTE = qualitative.Plotly + qualitative.D3[1::2]  # 15 distinct colours, then repeated
X_AXES = {"epoch": ("epoch", "epoch"), "wall time": ("elapsed_s", "wall time (s)")}
# The cost a scatter puts on x: row attribute and axis title.
COST_AXES = {"MACs": ("macs", "MACs (multiply-adds) at the run's input size"),
             "parameters": ("params", "parameters"),
             "latency": ("latency_ms", "measured latency, batch 1 (ms)")}
_HEIGHT = 300
_LEGEND = dict(orientation="h", yanchor="top", y=-0.25, xanchor="left", x=0.0)


def run_colour(i: int) -> str:
    """The colour of the i-th run in curve_figures (for a key drawn outside the figures)."""
    return PALETTE[i % len(PALETTE)]


def _figure(title: str, x_title: str, y_title: str, **layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, height=_HEIGHT, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title=x_title, yaxis_title=y_title, legend=_LEGEND, **layout)
    return fig


def _xy(records: Sequence[dict[str, Any]], x_key: str, y_key: str) -> tuple[list, list]:
    pairs = [(r[x_key], r[y_key]) for r in records
             if isinstance(r.get(x_key), (int, float)) and isinstance(r.get(y_key), (int, float))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def curve_figures(runs: Sequence[tuple[str, RunMetrics]], x: str = "epoch") -> dict[str, go.Figure]:
    """Loss (train solid, validation dotted), validation accuracy and learning rate of each
    (legend name, metrics) pair, one colour per run; x is a key of X_AXES."""
    x_key, x_title = X_AXES[x]
    figures = {"loss": _figure("Loss", x_title, "cross-entropy"),
               "accuracy": _figure("Validation accuracy", x_title, "accuracy",
                                   yaxis_tickformat=".0%"),
               "lr": _figure("Learning rate", x_title, "learning rate")}
    for i, (name, metrics) in enumerate(runs):
        colour = run_colour(i)
        style = dict(legendgroup=name, line=dict(color=colour))
        for key, dash, shown in (("train_loss", None, True), ("val_loss", "dot", False)):
            xs, ys = _xy(metrics.epochs, x_key, key)
            figures["loss"].add_scatter(
                x=xs, y=ys, mode="lines+markers", showlegend=shown, **style,
                name=name if shown else f"{name} (validation)",
                line_dash=dash, hovertemplate=f"{name}<br>{key}: %{{y:.4f}}<extra></extra>")
        xs, ys = _xy(metrics.epochs, x_key, "val_acc")
        figures["accuracy"].add_scatter(x=xs, y=ys, mode="lines+markers", name=name, **style,
                                        hovertemplate=f"{name}<br>%{{y:.2%}}<extra></extra>")
        xs, ys = _xy(metrics.steps or metrics.epochs, x_key, "lr")
        figures["lr"].add_scatter(x=xs, y=ys, mode="lines", name=name, **style)
    return figures


def _cost(row: CompareRow, attr: str) -> float | None:
    value = getattr(row, attr)
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def accuracy_cost_figure(rows: Sequence[CompareRow], names: Sequence[str],
                         cost: str = "MACs") -> go.Figure:
    """Best validation accuracy of each row against a cost (a key of COST_AXES): runs and
    models as points, the ResNet34 rows as stars, and the Pareto front (no point both cheaper
    and more accurate) as a staircase. Rows missing either value are left out."""
    attr, x_title = COST_AXES[cost]
    fig = _figure(f"Best validation accuracy against {cost}", x_title, "best val acc",
                  yaxis_tickformat=".0%")
    fig.update_layout(height=420, hovermode="closest")
    points = [(r, n, _cost(r, attr)) for r, n in zip(rows, names)]
    points = [(r, n, c) for r, n, c in points if c is not None and r.best_val_acc is not None]
    for baseline, label, symbol in ((False, "runs and models", "circle"),
                                    (True, "resnet34 (baseline)", "star")):
        mine = [(r, n, c) for r, n, c in points if r.is_baseline == baseline]
        if not mine:
            continue
        fig.add_scatter(
            x=[c for _, _, c in mine], y=[r.best_val_acc for r, _, _ in mine], mode="markers",
            name=label, marker=dict(symbol=symbol, size=16 if baseline else 10,
                                    line=dict(width=1, color="white")),
            text=[f"{n}<br>{r.key}<br>{r.dataset} {r.image_size or '?'} px" for r, n, _ in mine],
            hovertemplate="%{text}<br>%{x:.4s}<br>%{y:.2%}<extra></extra>")
    front = pareto_front([c for _, _, c in points], [r.best_val_acc for r, _, _ in points])
    if len(front) > 1:
        fig.add_scatter(x=[points[i][2] for i in front],
                        y=[points[i][0].best_val_acc for i in front],
                        mode="lines", line_shape="hv", name="Pareto front",
                        line=dict(color="grey", dash="dash"), hoverinfo="skip")
    costs = [c for _, _, c in points]
    if costs and max(costs) / min(costs) > 30:  # tiny and full-size networks in one chart
        fig.update_xaxes(type="log")
    return fig


def sweep_deltas_figure(summary: pd.DataFrame) -> go.Figure:
    """A bar per modification (the baseline left out): its mean best validation accuracy
    minus the baseline's, with the 95 % interval as error bars. A modification without an
    estimate yet (NaN: runs pending or fewer than two) is an empty slot with a note in its
    hover. Green: the interval is above 0; red: below; grey: within seed noise."""
    fig = _figure("Difference to the baseline (best validation accuracy)", "modification",
                  "Δ accuracy vs baseline", yaxis_tickformat="+.1%")
    rows = summary[summary["name"] != BASELINE_NAME] if len(summary) else summary
    known, unknown = [], []
    for _, row in rows.iterrows():
        delta = row.get("delta_vs_baseline")
        (known if _finite(delta) else unknown).append(row)
    if known:
        deltas = [float(r["delta_vs_baseline"]) for r in known]
        lows = [_or(r.get("ci_low"), d) for r, d in zip(known, deltas)]
        highs = [_or(r.get("ci_high"), d) for r, d in zip(known, deltas)]
        fig.add_bar(
            x=[str(r["name"]) for r in known], y=deltas, name="Δ vs baseline",
            marker_color=[_verdict_colour(d, lo, hi) for d, lo, hi in zip(deltas, lows, highs)],
            error_y=dict(type="data", symmetric=False,
                         array=[hi - d for hi, d in zip(highs, deltas)],
                         arrayminus=[d - lo for lo, d in zip(lows, deltas)]),
            customdata=[[int(r["n"]) if _finite(r.get("n")) else 0, lo, hi]
                        for r, lo, hi in zip(known, lows, highs)],
            hovertemplate="%{x}: %{y:+.2%}<br>95 % CI %{customdata[1]:+.2%} … "
                          "%{customdata[2]:+.2%}<br>n = %{customdata[0]}<extra></extra>")
    if unknown:
        fig.add_scatter(
            x=[str(r["name"]) for r in unknown], y=[0.0] * len(unknown), mode="markers",
            name="no estimate yet", marker=dict(symbol="circle-open", size=12, color="grey"),
            text=[_pending_note(r) for r in unknown], hovertemplate="%{x}: %{text}<extra></extra>")
    fig.add_hline(y=0, line_color="black", line_width=1)
    fig.update_layout(height=360, showlegend=bool(unknown))
    return fig


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _or(value: Any, fallback: float) -> float:
    return float(value) if _finite(value) else fallback


def _verdict_colour(delta: float, low: float, high: float) -> str:
    word = verdict(Comparison(delta, low, high, NAN, NAN), pending=0)
    return _VERDICT_COLOURS.get(word, "darkgrey")


def _pending_note(row: pd.Series) -> str:
    n = int(row["n"]) if _finite(row.get("n")) else 0
    pending = int(row["pending"]) if _finite(row.get("pending")) else 0
    if pending:
        return f"{pending} run(s) still pending, {n} finished: no estimate yet"
    return f"n = {n}: at least two finished runs on each side are needed for an interval"
