"""One table per architecture option: everything the program knows about each choice.

Each entry is the single place for one value of one option: the label a person sees, the
short text charts print, which other ArchConfig fields it reads (`uses`: the Architecture
page enables those widgets only for the entries that read them), the factory the network
is built with, and the rules the analysis walk applies to the layers it makes. ArchConfig's
allowed values and validation, the model, the walk, the charts and the page widgets read
these tables, so adding a choice is adding an entry (at run time too: nothing caches them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from . import blocks
from .layers import Layers

__all__ = ["Option", "ActivationOption", "NormOption", "ShortcutOption", "BlockOption",
           "StemOption", "STEMS", "BLOCKS", "SHORTCUTS", "ACTIVATIONS", "NORMS"]

Shape = tuple[int, ...]
# A tensor autograd keeps for backward: the layer's input, its result, or a copy of the input
# (an in-place layer that needs the original value after overwriting it).
Saved = Literal["input", "result", "input copy"]


@dataclass(frozen=True)
class Option:
    label: str  # widget text: "Leaky ReLU"
    short: str  # chart and diagram text: "leaky"
    uses: tuple[str, ...] = ()  # other ArchConfig fields this choice reads


@dataclass(frozen=True, kw_only=True)
class ActivationOption(Option):
    make: Callable[[float, bool], nn.Module]  # (slope, inplace) → a new module
    module: type[nn.Module]  # the class `make` returns; the walk finds this entry by it
    # Other FLOPs per output element: one per add, multiply, compare or transcendental.
    flops: int
    saves: Saved  # what autograd keeps when the module runs out of place
    saves_in_place: Saved | None = None  # … and in place; None: `make` ignores inplace


@dataclass(frozen=True, kw_only=True)
class NormOption(Option):
    make: Callable[[int, int], nn.Module]  # (channels, groups) → a new module
    module: type[nn.Module] | None  # the class `make` returns; None: no layer at all
    flops: int = 0  # other FLOPs per element at inference
    # Sizes of the statistics autograd keeps for backward besides the input.
    statistics: Callable[[nn.Module, Shape], tuple[int, ...]] = lambda m, x: ()
    # How many values one statistic is computed from: torch refuses to normalise one value.
    values_per_statistic: Callable[[nn.Module, Shape], int] = lambda m, x: 2
    too_few_values: str = ""  # why, in words, when it is one
    fails_only_in_training: bool = False  # running statistics let inference go on

    @property
    def grouped(self) -> bool:
        """The choices that read norm_groups split channels into that many groups."""
        return "norm_groups" in self.uses


ShortcutFactory = Callable[[int, int, int, Layers, bool], nn.Module | None]


@dataclass(frozen=True, kw_only=True)
class ShortcutOption(Option):
    make: ShortcutFactory  # (cin, cout, stride, layers, with_norm) → module, None = identity
    detail: str  # what the shortcut of a block that has one is, in the layer table
    can_reduce_channels: bool = True


@dataclass(frozen=True, kw_only=True)
class BlockOption(Option):
    cls: type[blocks.ResidualBlock]  # its class attributes say how model and walk treat it

    @property
    def expansion(self) -> int:
        return self.cls.expansion


StemFactory = Callable[[int, int, Layers], dict[str, nn.Module]]


@dataclass(frozen=True, kw_only=True)
class StemOption(Option):
    make: StemFactory  # (in_channels, stem_width, layers) → conv1, bn1, relu, maxpool
    # Channel counts of the stem's norms for a stem width (group counts must divide them).
    norm_widths: Callable[[int], tuple[int, ...]] = lambda width: (width,)
    width_multiple: int = 1  # stem_width must be a multiple of it


STEMS: dict[str, StemOption] = {
    "imagenet": StemOption("ImageNet: 7×7/2 conv + max-pool", "7×7", make=blocks.imagenet_stem),
    "deep": StemOption("Deep (ResNet-C): three 3×3 convs + max-pool", "deep",
                       make=blocks.deep_stem, norm_widths=lambda width: (width // 2, width),
                       width_multiple=2),
    "cifar": StemOption("CIFAR: one 3×3/1 conv, no max-pool", "cifar", make=blocks.cifar_stem),
}

BLOCKS: dict[str, BlockOption] = {
    "basic": BlockOption("Basic: two 3×3 convs", "basic", cls=blocks.BasicBlock),
    "bottleneck": BlockOption("Bottleneck: 1×1 → 3×3 → 1×1, expansion 4", "bottleneck",
                              cls=blocks.Bottleneck),
    "preact": BlockOption("Pre-activation: norm → act → conv", "pre-act", cls=blocks.PreActBlock),
}

SHORTCUTS: dict[str, ShortcutOption] = {
    "A": ShortcutOption("A: zero-padded identity (no parameters)", "zero-pad",
                        make=blocks.zero_pad_shortcut, detail="zero-pad",
                        can_reduce_channels=False),
    "B": ShortcutOption("B: 1×1 projection when the shape changes", "1×1 proj",
                        make=blocks.projection_if_reshaped, detail="1×1 projection"),
    "C": ShortcutOption("C: 1×1 projection in every block", "1×1 proj",
                        make=blocks.projection, detail="1×1 projection"),
    "D": ShortcutOption("D: avg-pool then 1×1 projection (ResNet-D)", "pool+1×1",
                        make=blocks.pooled_projection_if_reshaped, detail="avg-pool + 1×1"),
}

# FLOPs: relu max(x,0); leaky/prelu max(x,a·x); elu x>0?x:a(e^x−1); silu x/(1+e^−x);
# gelu ½x(1+erf(x/√2)); mish x·tanh(ln(1+e^x)); hardswish x·min(max(x+3,0),6)/6.
# Saved (PyTorch 2.x): in place, relu/leaky/elu keep their result (the input's own storage)
# and silu/mish/hardswish a copy of the original input; out of place, relu keeps its
# result and every other one its input. PReLU has a learnable slope, so every use needs
# its own module; a new module per call serves them all.
ACTIVATIONS: dict[str, ActivationOption] = {
    "relu": ActivationOption(
        "ReLU", "relu", make=lambda slope, inplace: nn.ReLU(inplace=inplace), module=nn.ReLU,
        flops=1, saves="result", saves_in_place="result"),
    "leaky_relu": ActivationOption(
        "Leaky ReLU", "leaky", uses=("leaky_slope",), module=nn.LeakyReLU,
        make=lambda slope, inplace: nn.LeakyReLU(slope, inplace=inplace),
        flops=2, saves="input", saves_in_place="result"),
    "silu": ActivationOption(
        "SiLU (swish)", "silu", make=lambda slope, inplace: nn.SiLU(inplace=inplace),
        module=nn.SiLU, flops=4, saves="input", saves_in_place="input copy"),
    "gelu": ActivationOption(
        "GELU", "gelu", make=lambda slope, inplace: nn.GELU(), module=nn.GELU, flops=5,
        saves="input"),
    "mish": ActivationOption(
        "Mish", "mish", make=lambda slope, inplace: nn.Mish(inplace=inplace), module=nn.Mish,
        flops=5, saves="input", saves_in_place="input copy"),
    "hardswish": ActivationOption(
        "Hard swish", "hswish", make=lambda slope, inplace: nn.Hardswish(inplace=inplace),
        module=nn.Hardswish, flops=5, saves="input", saves_in_place="input copy"),
    "elu": ActivationOption(
        "ELU", "elu", make=lambda slope, inplace: nn.ELU(inplace=inplace), module=nn.ELU,
        flops=4, saves="input", saves_in_place="result"),
    "prelu": ActivationOption(
        "PReLU (learnable slope)", "prelu", uses=("leaky_slope",), module=nn.PReLU,
        make=lambda slope, inplace: nn.PReLU(init=slope if slope > 0 else 0.25),
        flops=2, saves="input"),
}


# Statistics and the value counts torch checks (F.batch_norm, group_norm, instance_norm).
def _per_channel(m: nn.Module, x: Shape) -> tuple[int, ...]:
    return (x[1], x[1])  # mean and 1/σ


def _per_sample_group(m: nn.Module, x: Shape) -> tuple[int, ...]:
    return (x[0] * m.num_groups,) * 2


def _per_sample_channel(m: nn.Module, x: Shape) -> tuple[int, ...]:
    # Instance norm runs as batch norm over (1, N·C, H, W); affine repeats its weight N×.
    return (x[0] * x[1],) * (3 if m.affine else 2)


def _batch_values(m: nn.Module, x: Shape) -> int:
    return x[0] * math.prod(x[2:])


def _group_values(m: nn.Module, x: Shape) -> int:
    return x[0] * x[1] // m.num_groups * math.prod(x[2:])


def _spatial_values(m: nn.Module, x: Shape) -> int:
    return math.prod(x[2:])


_GROUPS_TOO_FEW = "group normalisation needs more than one value per group"

# FLOPs: batch norm at inference folds its running statistics into one scale and shift (2);
# group/layer/instance norm compute statistics per sample: mean 1, centre 1,
# square-and-accumulate 2, scale by 1/σ 1, affine 2 = 7.
NORMS: dict[str, NormOption] = {
    "batch": NormOption(
        "BatchNorm", "bn", make=lambda c, groups: nn.BatchNorm2d(c), module=nn.BatchNorm2d,
        flops=2, statistics=_per_channel, values_per_statistic=_batch_values,
        too_few_values="batch normalisation cannot train on a single value per channel",
        fails_only_in_training=True),
    "group": NormOption(
        "GroupNorm", "gn", uses=("norm_groups",), make=lambda c, groups: nn.GroupNorm(groups, c),
        module=nn.GroupNorm, flops=7, statistics=_per_sample_group,
        values_per_statistic=_group_values, too_few_values=_GROUPS_TOO_FEW),
    "layer": NormOption(  # LayerNorm over (C, H, W) for conv maps
        "LayerNorm (GroupNorm, 1 group)", "ln", make=lambda c, groups: nn.GroupNorm(1, c),
        module=nn.GroupNorm, flops=7, statistics=_per_sample_group,
        values_per_statistic=_group_values, too_few_values=_GROUPS_TOO_FEW),
    "instance": NormOption(
        "InstanceNorm", "in", make=lambda c, groups: nn.InstanceNorm2d(c, affine=True),
        module=nn.InstanceNorm2d, flops=7, statistics=_per_sample_channel,
        values_per_statistic=_spatial_values,
        too_few_values="instance normalisation needs more than one spatial element per channel"),
    "none": NormOption("None (no normalization)", "none", make=lambda c, groups: nn.Identity(),
                       module=None),
}
