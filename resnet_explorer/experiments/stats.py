"""What a sweep found: per modification, the best validation accuracy over its seeds, the
difference to the baseline with a 95 % confidence interval, and what the network costs.

The interval is Welch's (unequal variances): delta ± t(0.975, df) · se, with
se² = s₁²/n₁ + s₂²/n₂ and the Welch–Satterthwaite df; the p-value is scipy's
`ttest_ind(equal_var=False)`. With fewer than two finished runs on either side there is no
estimate of the seed noise, so delta, interval and p are NaN. An interval that covers 0 is
"within seed noise": other seeds of the baseline alone move its accuracy by as much.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ..analysis import analyze, si
from ..analysis.latency import cached_latency
from ..arch.config import ArchConfig
from ..common.csvcells import spreadsheet_safe
from ..common.errors import UserError

__all__ = ["SUMMARY_COLUMNS", "EXTRA_COLUMNS", "CONFIDENCE", "NOISE_NOTE", "Comparison",
           "Group", "describe", "welch", "verdict", "summarize", "summary_csv", "format_table"]

# summary.csv: these first, in this order (the contract), then EXTRA_COLUMNS.
SUMMARY_COLUMNS = ("name", "n", "mean_best_val_acc", "std_best_val_acc", "delta_vs_baseline",
                   "ci_low", "ci_high", "params", "macs", "mean_wall_s")
EXTRA_COLUMNS = ("p_value", "verdict", "latency_ms", "pending", "stopped")
CONFIDENCE = 0.95
WITHIN_NOISE = "within seed noise"
NOISE_NOTE = ("“Within seed noise”: the 95 % interval of the difference to the baseline covers "
              "0, so re-running the same configuration with other seeds can move the accuracy "
              "by as much; this sweep cannot tell the modification from the baseline.")
NAN = math.nan


@dataclass(frozen=True)
class Comparison:
    """A modification's mean minus the baseline's, Welch's interval and p-value, and df."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    df: float

    @property
    def within_noise(self) -> bool:
        return self.ci_low <= 0 <= self.ci_high  # False for NaN: no interval, no verdict


@dataclass(frozen=True)
class Group:
    """The finished runs of one modification (or the baseline) and what is still to come."""

    name: str
    accuracies: Sequence[float]  # best validation accuracy of each completed run
    wall_s: Sequence[float]  # each completed run's training time
    arch: ArchConfig  # as trained (the output layer sized to the data)
    input_size: tuple[int, int, int]
    device: str = "cpu"  # the device kind latency is looked up for
    pending: int = 0  # queued, running or waiting for an external scheduler
    stopped: int = 0  # failed, cancelled, interrupted, diverged or removed


def describe(values: Sequence[float]) -> tuple[int, float, float]:
    """(n, mean, sample standard deviation with ddof=1); NaN where n is too small."""
    a = np.asarray(values, dtype=float)
    mean = float(a.mean()) if a.size else NAN
    std = float(a.std(ddof=1)) if a.size >= 2 else NAN
    return int(a.size), mean, std


def welch(values: Sequence[float], baseline: Sequence[float],
          confidence: float = CONFIDENCE) -> Comparison:
    """mean(values) − mean(baseline) with Welch's interval; all NaN if either n < 2."""
    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    if a.size < 2 or b.size < 2:
        return Comparison(NAN, NAN, NAN, NAN, NAN)
    delta = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    with warnings.catch_warnings():  # identical accuracies: scipy warns, its result stands
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    if va + vb == 0:  # every run of both scored the same: the difference is exact
        return Comparison(delta, delta, delta, p_value, NAN)
    df = float((va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1)))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(va + vb))
    return Comparison(delta, delta - half, delta + half, p_value, df)


def verdict(comparison: Comparison, pending: int) -> str:
    if math.isnan(comparison.delta):
        return "pending" if pending else "too few runs"
    if comparison.within_noise:
        return WITHIN_NOISE
    return "better" if comparison.delta > 0 else "worse"


def summarize(groups: Sequence[Group]) -> pd.DataFrame:
    """One row per group, the first being the baseline; columns SUMMARY_COLUMNS + EXTRA."""
    rows = []
    baseline = groups[0].accuracies if groups else ()
    for i, group in enumerate(groups):
        n, mean, std = describe(group.accuracies)
        if i == 0:
            cmp = Comparison(0.0 if n else NAN, NAN, NAN, NAN, NAN)
            word = "baseline"
        else:
            cmp = welch(group.accuracies, baseline)
            word = verdict(cmp, group.pending + groups[0].pending)
        params, macs, latency_ms = _cost(group)
        walls = [w for w in group.wall_s if w is not None]
        rows.append({
            "name": group.name, "n": n, "mean_best_val_acc": mean, "std_best_val_acc": std,
            "delta_vs_baseline": cmp.delta, "ci_low": cmp.ci_low, "ci_high": cmp.ci_high,
            "params": params, "macs": macs,
            "mean_wall_s": float(np.mean(walls)) if walls else NAN,
            "p_value": cmp.p_value, "verdict": word, "latency_ms": latency_ms,
            "pending": group.pending, "stopped": group.stopped})
    return pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, *EXTRA_COLUMNS])


def _cost(group: Group) -> tuple[float, float, float]:
    """Parameters and MACs at the run's input size, and the cached batch-1 latency (ms)."""
    try:
        analysis = analyze(group.arch, group.input_size)
    except UserError:  # an input too small for the network: its runs fail and say why
        return NAN, NAN, NAN
    latency = cached_latency(group.arch, group.input_size, group.device, 1)
    return (float(analysis.params), float(analysis.macs),
            latency.median_ms if latency is not None else NAN)


def summary_csv(summary: pd.DataFrame) -> str:
    """summary.csv's text (the file the CLI writes, the page's download): modification names
    are chosen by people, so one a spreadsheet would run as a formula is defused."""
    return summary.assign(name=summary["name"].map(spreadsheet_safe)).to_csv(index=False)


def format_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary for people: accuracy in %, differences in percentage points, SI costs."""
    def pct(v: float) -> str:
        return "" if _missing(v) else f"{100 * v:.2f} %"

    def points(v: float) -> str:
        return "" if _missing(v) else f"{100 * v:+.2f}"

    out = []
    for r in summary.to_dict("records"):
        spread = "" if _missing(r["std_best_val_acc"]) else f" ± {100 * r['std_best_val_acc']:.2f}"
        interval = ("" if _missing(r["ci_low"])
                    else f" [{points(r['ci_low'])}, {points(r['ci_high'])}]")
        delta = "" if r["verdict"] == "baseline" else points(r["delta_vs_baseline"]) + interval
        out.append({
            "modification": r["name"], "n": f"{r['n']}" + (f" (+{r['pending']} pending)"
                                                           if r["pending"] else ""),
            "best val acc": pct(r["mean_best_val_acc"]) + spread,
            "Δ vs baseline, pt [95 % CI]": delta,
            "p": "" if _missing(r["p_value"]) else f"{r['p_value']:.3f}",
            "verdict": r["verdict"],
            "params": "" if _missing(r["params"]) else si(r["params"]),
            "MACs": "" if _missing(r["macs"]) else si(r["macs"]),
            "latency": "" if _missing(r["latency_ms"]) else f"{r['latency_ms']:.2f} ms",
            "wall": "" if _missing(r["mean_wall_s"]) else f"{r['mean_wall_s']:.1f} s"})
    return pd.DataFrame(out)


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
