"""Analysis results as tables and text: pandas frames for the page, a report for the CLI,
and the layer-by-layer difference between two configurations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from .summary import Analysis

MIB = 2**20


def si(n: float) -> str:
    """3663761408 → '3.66 G' (decimal prefixes, as FLOP counts are quoted)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {prefix}"
    return f"{n:g}"


def mib(n: float) -> str:
    return f"{n / MIB:,.1f} MiB"


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def _mib_figure(n: float) -> str:
    return f"{n:,.2f}"


# How a person reads the number columns of the frames below, which keep raw numbers so that
# sorting stays numeric: counts exact with thousands separators, costs with the SI prefixes
# the totals use, memory in MiB to two decimals.
COLUMN_FORMATS: dict[str, Callable[[float], str]] = {
    "params": "{:,}".format, "MACs": si, "other FLOPs": si, "FLOPs": si,
    "activations MiB": _mib_figure, "activations MiB (fp32)": _mib_figure,
    "activations MiB (bf16)": _mib_figure,
}


@dataclass(frozen=True)
class LayerChange:
    name: str
    status: str  # "added", "removed", "changed"
    block: str  # the block holding the layer (same name in both configurations)
    detail: str


def compare_layers(mine: Analysis, other: Analysis) -> list[LayerChange]:
    """Layers added, removed or changed going from `other` to `mine`, matched by name."""
    theirs = {r.name: r for r in other.rows}
    ours = {r.name for r in mine.rows}
    changes: list[LayerChange] = []
    for r in mine.rows:
        o = theirs.get(r.name)
        if o is None:
            changes.append(LayerChange(r.name, "added", r.block,
                                       f"{r.kind} {r.detail} → {shape_text(r.out_shape)}".strip()))
            continue
        diffs = [f"{label} {a} → {b}" for label, a, b in (
            ("kind", o.kind, r.kind), ("layer", o.detail, r.detail),
            ("input", shape_text(o.in_shape), shape_text(r.in_shape)),
            ("output", shape_text(o.out_shape), shape_text(r.out_shape)),
            ("params", f"{o.params:,}", f"{r.params:,}"),
            ("MACs", f"{o.macs:,}", f"{r.macs:,}"),
            ("other FLOPs", f"{o.other_flops:,}", f"{r.other_flops:,}")) if a != b]
        if diffs:
            changes.append(LayerChange(r.name, "changed", r.block, "; ".join(diffs)))
    changes += [LayerChange(o.name, "removed", o.block, f"{o.kind} {o.detail}".strip())
                for o in other.rows if o.name not in ours]
    return changes


def changed_blocks(changes: list[LayerChange]) -> set[str]:
    return {c.block for c in changes}


def layer_frame(a: Analysis, changes: list[LayerChange] | None = None) -> pd.DataFrame:
    """One row per layer with raw numbers (so sorting is numeric); 'vs comparison' if given."""
    status = {c.name: c.status for c in changes or [] if c.status != "removed"}
    frame = pd.DataFrame({
        "layer": [r.name for r in a.rows],
        "kind": [r.kind for r in a.rows],
        "detail": [r.detail for r in a.rows],
        "stage": [r.stage for r in a.rows],
        "input": [shape_text(r.in_shape) for r in a.rows],
        "output": [shape_text(r.out_shape) for r in a.rows],
        "params": [r.params for r in a.rows],
        "MACs": [r.macs for r in a.rows],
        "other FLOPs": [r.other_flops for r in a.rows],
        "FLOPs": [r.flops for r in a.rows],
        "activations MiB": [r.act_bytes / MIB for r in a.rows],
    })
    if changes is not None:
        frame.insert(1, "vs comparison", [status.get(r.name, "") for r in a.rows])
    return frame


def stage_frame(a: Analysis) -> pd.DataFrame:
    return pd.DataFrame({
        "stage": [s.name for s in a.stages],
        "output": [shape_text(s.out_shape) for s in a.stages],
        "params": [s.params for s in a.stages],
        "MACs": [s.macs for s in a.stages],
        "FLOPs": [s.flops for s in a.stages],
        "activations MiB (fp32)": [s.act_bytes / MIB for s in a.stages],
        "activations MiB (bf16)": [s.act_bytes_bf16 / MIB for s in a.stages],
        "output stride": [s.output_stride for s in a.stages],
        "receptive field": [s.receptive_field for s in a.stages],
    })


def changes_frame(changes: list[LayerChange]) -> pd.DataFrame:
    return pd.DataFrame({"layer": [c.name for c in changes],
                         "change": [c.status for c in changes],
                         "what": [c.detail for c in changes]})


def other_flops_text(a: Analysis) -> str:
    """'norm 12.3 M, activation 1.83 M, …': other FLOPs by operation class."""
    return ", ".join(f"{k} {si(v)}" for k, v in a.other_flops_by_class().items())


def totals(a: Analysis) -> list[tuple[str, str]]:
    """Label and value of every headline figure, as the command-line report prints them."""
    training = (f"{mib(a.activation_bytes)} fp32, {mib(a.activation_bytes_bf16)} bf16"
                + (f" (training would fail: {a.training_error})" if a.training_error else ""))
    return [
        ("input", f"batch {a.batch} × {shape_text(a.input_size)}"),
        ("parameters", f"{a.params:,} ({mib(a.param_bytes)} in fp32)"),
        ("MACs (multiply-adds)", f"{a.macs:,} ({si(a.macs)}; what torchvision calls GFLOPS)"),
        ("other FLOPs", f"{a.other_flops:,} ({other_flops_text(a)})"),
        ("FLOPs = 2 × MACs + other", f"{a.flops:,} ({si(a.flops)})"),
        ("activation memory, training", training),
        ("output", shape_text(a.output_shape)),
    ]


def text_report(a: Analysis) -> str:
    figures = totals(a)
    width = max(len(label) for label, _ in figures)
    head = [a.cfg.short_name()] + [f"  {label:<{width}}  {value}" for label, value in figures]
    fmt = {"float_format": lambda v: f"{v:,.2f}", "index": False, "line_width": 250}
    stages, layers = stage_frame(a).to_string(**fmt), layer_frame(a).to_string(**fmt)
    return "\n".join(head) + "\n\nStages\n" + stages + "\n\nLayers\n" + layers
