"""analyze(): what a configured network looks like layer by layer, and what it costs.

The network is built on the `meta` device (no weights exist, nothing is computed) and walked
by shape arithmetic (walk.py): a full ResNet34 at 224×224 takes about 4 ms beyond the
build — fast enough for every toggle. Counting rules:

* MACs: multiply-accumulates of convolutions and linear layers — the figure torchvision
  publishes as "GFLOPS" and FlopCounterMode's FLOPs / 2.
* Other FLOPs: what torchinfo and FlopCounterMode count as zero — normalisation,
  activations, residual additions, pooling, the SE mean and scale, bias additions — at
  inference, one FLOP per add, multiply, compare or transcendental (ptflops' convention).
* FLOPs = 2 × MACs + other FLOPs.
* Activation memory: the tensors autograd keeps for backward in one training step,
  de-duplicated by storage (an in-place ReLU and the next convolution share one); weights
  excluded. bf16 stores every floating tensor in 2 bytes (pooling indices stay int64).

`python -m resnet_explorer.analysis --config cfg.json --input 3x224x224` prints a text report
(analysis/__main__.py).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..arch.config import ArchConfig
from ..arch.model import build_model, meta_model
from ..arch.options import SHORTCUTS
from ..common.errors import InputSizeError
from .walk import LayerRow, Walker, WalkError, shortcut_text

# What analyze() accepts; the Summary page's boxes offer exactly this. Shape arithmetic costs
# the same at any size, so the bounds only keep a typo from asking for nonsense.
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 8, 2048  # pixels
MAX_BATCH = 4096
OP_CLASSES = ("norm", "activation", "residual add", "pooling", "SE", "bias")


@dataclass(frozen=True)
class StageSummary:
    name: str  # "stem", "stage 1" … "stage N", "head"
    params: int
    macs: int
    other_flops: int
    act_bytes: int
    act_bytes_bf16: int
    out_shape: tuple[int, ...]
    output_stride: int  # input pixels per output pixel (product of strides on the main path)
    receptive_field: int  # theoretical, of convolution and pooling windows, in input pixels

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.other_flops


@dataclass(frozen=True)
class BlockSummary:
    name: str  # "stem", "layer1.0", …, "head"
    stage: str
    kind: str  # "BasicBlock", "Bottleneck", "PreActBlock", "stem", "head"
    shortcut: str  # "identity" or the shortcut entry's detail ("1×1 projection"); "" for stem/head
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int
    macs: int
    flops: int


@dataclass(frozen=True)
class Analysis:
    cfg: ArchConfig
    input_size: tuple[int, int, int]
    batch: int
    rows: tuple[LayerRow, ...]
    stages: tuple[StageSummary, ...]
    blocks: tuple[BlockSummary, ...]
    output_shape: tuple[int, ...]
    training_error: str | None = None  # why a training step would fail on this input, if it would

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def other_flops(self) -> int:
        return sum(r.other_flops for r in self.rows)

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.other_flops

    @property
    def param_bytes(self) -> int:
        return 4 * self.params  # fp32 weights

    @property
    def activation_bytes(self) -> int:
        return sum(r.act_bytes for r in self.rows)

    @property
    def activation_bytes_bf16(self) -> int:
        return sum(r.act_bytes_bf16 for r in self.rows)

    @property
    def stage_sides(self) -> tuple[tuple[int, int], ...]:
        """Each stage's output (height, width): the cells of a Grad-CAM map on that stage."""
        return tuple((s.out_shape[-2], s.out_shape[-1]) for s in self.stages
                     if s.name.startswith("stage "))

    def other_flops_by_class(self) -> dict[str, int]:
        totals = Counter({c: 0 for c in OP_CLASSES})
        for r in self.rows:
            totals["bias" if r.op_class in ("conv", "linear") else r.op_class] += r.other_flops
        return {c: totals[c] for c in OP_CLASSES}


# ----- summaries --------------------------------------------------------------------------
def _grouped(rows: list[LayerRow], key: str) -> dict[str, list[LayerRow]]:
    """Rows by stage or block, in order of first appearance (one pass: runs on every toggle)."""
    groups: dict[str, list[LayerRow]] = {}
    for r in rows:
        groups.setdefault(getattr(r, key), []).append(r)
    return groups


def _stage_summaries(rows: list[LayerRow]) -> list[StageSummary]:
    rf, jump = 1, 1
    out: list[StageSummary] = []
    for stage, mine in _grouped(rows, "stage").items():
        for r in mine:  # the main path sets the field; shortcuts are shorter, SE's mean global
            if ".downsample" not in r.name and ".se" not in r.name:
                rf, jump = rf + (r.kernel - 1) * jump, jump * r.stride
        out.append(StageSummary(
            stage, sum(r.params for r in mine), sum(r.macs for r in mine),
            sum(r.other_flops for r in mine), sum(r.act_bytes for r in mine),
            sum(r.act_bytes_bf16 for r in mine), mine[-1].out_shape, jump, rf))
    return out


def _block_summaries(model: nn.Module, rows: list[LayerRow]) -> list[BlockSummary]:
    modules = dict(model.named_modules())
    shortcut = SHORTCUTS[model.cfg.shortcut]
    out: list[BlockSummary] = []
    for name, mine in _grouped(rows, "block").items():
        module = modules.get(name)
        kind = type(module).__name__ if module is not None else name
        out.append(BlockSummary(
            name, mine[0].stage, kind, "" if module is None else shortcut_text(module, shortcut),
            mine[0].in_shape, mine[-1].out_shape, sum(r.params for r in mine),
            sum(r.macs for r in mine), sum(r.flops for r in mine)))
    return out


# ----- validation -------------------------------------------------------------------------
def _format_problems(cfg: ArchConfig, input_size: Any, batch: Any) -> list[str]:
    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in input_size)):
        return [f"input size must be three whole numbers (channels, height, width), "
                f"got {input_size!r}"]
    c, h, w = input_size
    problems = []
    if c != cfg.in_channels:
        problems.append(f"this architecture takes {cfg.in_channels}-channel images; "
                        f"the input has {c} channel{'s' * (c != 1)}")
    for side, value in (("height", h), ("width", w)):
        if not MIN_INPUT_SIDE <= value <= MAX_INPUT_SIDE:
            problems.append(f"input {side} must be between {MIN_INPUT_SIDE} and "
                            f"{MAX_INPUT_SIDE} pixels (got {value})")
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        problems.append(f"batch must be a whole number between 1 and {MAX_BATCH} (got {batch!r})")
    return problems


def _stage_of(model: nn.Module, name: str) -> str:
    """'stage 3' for layer3.*, otherwise 'the stem' or 'the head' by position in the model."""
    top = name.split(".")[0]
    match = re.fullmatch(r"layer(\d+)", top)
    if match:
        return f"stage {match.group(1)}"
    children = [n for n, _ in model.named_children()]
    return "the stem" if children.index(top) < children.index("layer1") else "the head"


def _describe(model: nn.Module, problem: WalkError, input_size: tuple[int, ...],
              verb: str = "run") -> str:
    sides = "×".join(map(str, problem.in_shape[2:]))
    return (f"{_stage_of(model, problem.name)} cannot {verb} on a {input_size[1]}×{input_size[2]} "
            f"input: {problem.name} receives {sides} feature maps and {problem.reason}")


def _walk(cfg: ArchConfig, input_size: Any, batch: Any,
          private: bool = False) -> tuple[nn.Module, Walker, tuple[int, ...]]:
    """Shape walk over the shared meta build (the Walker only reads it); `private` builds
    a model of its own for callers that change it (torchinfo adds hooks)."""
    problems = _format_problems(cfg, input_size, batch)
    if problems:
        raise InputSizeError(problems)
    cfg.check()  # ConfigError for an invalid config
    model = build_model(cfg, device="meta") if private else meta_model(cfg)
    walker = Walker(model)
    try:
        out = walker.run(batch, input_size)
    except WalkError as problem:
        raise InputSizeError(
            _describe(model, problem, input_size) + "; use a larger input") from None
    return model, walker, out


def analyze(cfg: ArchConfig, input_size: tuple[int, int, int] | None = None,
            batch: int = 1) -> Analysis:
    """Rows, stage and block summaries for `cfg` on a (C, H, W) input; raises ConfigError."""
    input_size = (cfg.in_channels, 224, 224) if input_size is None else input_size
    model, walker, out = _walk(cfg, input_size, batch)
    input_size = tuple(input_size)
    problem = walker.training_problem
    training_error = None
    if problem:
        training_error = (_describe(model, problem, input_size, verb="train")
                          + f" at batch {batch}; use a larger batch or input")
    return Analysis(cfg, input_size, batch, tuple(walker.rows),
                    tuple(_stage_summaries(walker.rows)),
                    tuple(_block_summaries(model, walker.rows)), out, training_error)


def smallest_input_side(cfg: ArchConfig, last_side: int, step: int = 8,
                        upto: int = MAX_INPUT_SIDE) -> int | None:
    """The smallest square input side, a multiple of `step`, at which the last stage's maps
    are at least `last_side` cells on a side (by shape walk); None when even `upto` is too
    small. A map grows with its input, so bisection needs only a few walks."""
    def enough(units: int) -> bool:
        side = units * step
        try:
            sides = analyze(cfg, (cfg.in_channels, side, side)).stage_sides
        except InputSizeError:  # too small for the network to run at all
            return False
        return min(sides[-1]) >= last_side

    lo, hi = 1, upto // step
    if not enough(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
    return lo * step


def torchinfo_text(cfg: ArchConfig, input_size: tuple[int, int, int] | None = None,
                   depth: int = 4) -> str:
    """torchinfo's own summary of the same model, run on the meta device (no arithmetic)."""
    import torchinfo  # imported here: only the expander and the CLI flag need it

    input_size = (cfg.in_channels, 224, 224) if input_size is None else input_size
    model, _, _ = _walk(cfg, input_size, 1, private=True)  # analyze()'s message for a bad input
    stats = torchinfo.summary(
        model.eval(), input_size=(1, *input_size), device="meta", depth=depth, verbose=0,
        col_names=("input_size", "output_size", "num_params", "mult_adds"))
    return str(stats)


def parse_input_size(text: str) -> tuple[int, int, int]:
    """'3x224x224' (or with ×) → (3, 224, 224)."""
    parts = re.split(r"\s*[x×,]\s*", text.strip().lower())
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise InputSizeError(f"input size must look like 3x224x224 (channels×height×width), "
                             f"got {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])
