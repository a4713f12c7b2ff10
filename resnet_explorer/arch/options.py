"""One table per architecture option: everything the program knows about each choice.

Each entry is the single place for one value of one option: the label a person sees, the
short text charts print, and which other ArchConfig fields it reads (`uses`: the
Architecture page enables those widgets only for the entries that read them).
ArchConfig's allowed values, the validation messages and the page widgets read these
tables, so adding a choice is adding an entry.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Option", "STEMS", "BLOCKS", "SHORTCUTS", "ACTIVATIONS", "NORMS"]


@dataclass(frozen=True)
class Option:
    label: str  # widget text: "Leaky ReLU"
    short: str  # chart and diagram text: "leaky"
    uses: tuple[str, ...] = ()  # other ArchConfig fields this choice reads


STEMS: dict[str, Option] = {
    "imagenet": Option("ImageNet: 7×7/2 conv + max-pool", "7×7"),
    "deep": Option("Deep (ResNet-C): three 3×3 convs + max-pool", "deep"),
    "cifar": Option("CIFAR: one 3×3/1 conv, no max-pool", "cifar"),
}

BLOCKS: dict[str, Option] = {
    "basic": Option("Basic: two 3×3 convs", "basic"),
    "bottleneck": Option("Bottleneck: 1×1 → 3×3 → 1×1, expansion 4", "bottleneck"),
    "preact": Option("Pre-activation: norm → act → conv", "pre-act"),
}

SHORTCUTS: dict[str, Option] = {
    "A": Option("A: zero-padded identity (no parameters)", "zero-pad"),
    "B": Option("B: 1×1 projection when the shape changes", "1×1 proj"),
    "C": Option("C: 1×1 projection in every block", "1×1 proj"),
    "D": Option("D: avg-pool then 1×1 projection (ResNet-D)", "pool+1×1"),
}

ACTIVATIONS: dict[str, Option] = {
    "relu": Option("ReLU", "relu"),
    "leaky_relu": Option("Leaky ReLU", "leaky", uses=("leaky_slope",)),
    "silu": Option("SiLU (swish)", "silu"),
    "gelu": Option("GELU", "gelu"),
    "mish": Option("Mish", "mish"),
    "hardswish": Option("Hard swish", "hswish"),
    "elu": Option("ELU", "elu"),
    "prelu": Option("PReLU (learnable slope)", "prelu", uses=("leaky_slope",)),
}

NORMS: dict[str, Option] = {
    "batch": Option("BatchNorm", "bn"),
    "group": Option("GroupNorm", "gn", uses=("norm_groups",)),
    "layer": Option("LayerNorm (GroupNorm, 1 group)", "ln"),
    "instance": Option("InstanceNorm", "in"),
    "none": Option("None", "none"),
}
