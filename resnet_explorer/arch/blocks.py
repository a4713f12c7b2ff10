"""Building blocks: layer factories, stems, shortcuts and residual blocks.

Blocks never branch on option names: they receive a `Layers` factory resolved once
from the config (the timm pattern), so adding an activation or a norm is one dict entry.
Module names follow torchvision (conv1, bn1, downsample, …) so default state-dict
keys match `torchvision.models.resnet34` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ArchConfig

# PReLU has a learnable slope, so every use needs its own module (no sharing one `relu`).
# In-place variants save activation memory; a caller whose input is still needed elsewhere
# (a pre-activation block without norm, where the input is also the shortcut) asks for
# inplace=False.
_ACTIVATIONS: dict[str, Callable[[float, bool], nn.Module]] = {
    "relu": lambda slope, inplace: nn.ReLU(inplace=inplace),
    "leaky_relu": lambda slope, inplace: nn.LeakyReLU(slope, inplace=inplace),
    "silu": lambda slope, inplace: nn.SiLU(inplace=inplace),
    "gelu": lambda slope, inplace: nn.GELU(),
    "mish": lambda slope, inplace: nn.Mish(inplace=inplace),
    "hardswish": lambda slope, inplace: nn.Hardswish(inplace=inplace),
    "elu": lambda slope, inplace: nn.ELU(inplace=inplace),
    "prelu": lambda slope, inplace: nn.PReLU(init=slope if slope > 0 else 0.25),
}

_NORMS: dict[str, Callable[[int, int], nn.Module]] = {
    "batch": lambda c, groups: nn.BatchNorm2d(c),
    "group": lambda c, groups: nn.GroupNorm(groups, c),
    "layer": lambda c, groups: nn.GroupNorm(1, c),  # LayerNorm over (C, H, W) for conv maps
    "instance": lambda c, groups: nn.InstanceNorm2d(c, affine=True),
    "none": lambda c, groups: nn.Identity(),
}


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.0) -> int:
    """timm's rounding of reduced channel counts, so SE widths match timm exactly."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < round_limit * value else new


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al. 2018) with timm's layout: 1x1 convs with bias."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = make_divisible(channels / reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(scale))))


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 (Xception / MobileNet style)."""

    def __init__(self, cin: int, cout: int, stride: int, bias: bool):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_pw(self.conv_dw(x))


class ZeroPadShortcut(nn.Module):
    """Option A of the ResNet paper: subsample, then pad new channels with zeros."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride, self.extra_channels = stride, extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch during training."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate:.3f}"


@dataclass(frozen=True)
class Layers:
    """Factories for the layers a config asks for, resolved once per model."""

    activation: str = "relu"
    slope: float = 0.01
    norm_kind: str = "batch"
    groups: int = 32
    se_reduction: int = 0

    @classmethod
    def from_config(cls, cfg: ArchConfig) -> Layers:
        return cls(cfg.activation, cfg.leaky_slope, cfg.norm, cfg.norm_groups, cfg.se_reduction)

    @property
    def conv_bias(self) -> bool:
        return self.norm_kind == "none"  # a following norm would cancel the bias

    def act(self, inplace: bool = True) -> nn.Module:
        return _ACTIVATIONS[self.activation](self.slope, inplace)

    def norm(self, channels: int) -> nn.Module:
        return _NORMS[self.norm_kind](channels, self.groups)

    def attention(self, channels: int) -> nn.Module:
        return SqueezeExcite(channels, self.se_reduction) if self.se_reduction else nn.Identity()

    def conv3x3(self, cin: int, cout: int, stride: int = 1, depthwise: bool = False) -> nn.Module:
        if depthwise:
            return SeparableConv2d(cin, cout, stride, self.conv_bias)
        return nn.Conv2d(cin, cout, 3, stride, 1, bias=self.conv_bias)

    def conv1x1(self, cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
        return nn.Conv2d(cin, cout, 1, stride, bias=self.conv_bias)


def make_shortcut(
    kind: str, cin: int, cout: int, stride: int, layers: Layers, with_norm: bool = True
) -> nn.Module | None:
    """None means identity. Preact blocks pass with_norm=False: their input is already normalised."""
    changes_shape = stride != 1 or cin != cout
    if kind == "A":
        return ZeroPadShortcut(stride, cout - cin) if changes_shape else None
    if kind == "B" and not changes_shape:
        return None
    if kind == "D":
        if not changes_shape:
            return None
        pool = (
            nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
            if stride > 1
            else nn.Identity()
        )
        parts = [pool, layers.conv1x1(cin, cout)]
    else:  # B with a shape change, or C (projection always)
        parts = [layers.conv1x1(cin, cout, stride)]
    if with_norm:
        parts.append(layers.norm(cout))
    return nn.Sequential(*parts)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 layers: Layers, depthwise: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.conv1 = layers.conv3x3(cin, planes, stride, depthwise)
        self.bn1 = layers.norm(planes)
        self.act1 = layers.act()
        self.conv2 = layers.conv3x3(planes, planes, 1, depthwise)
        self.bn2 = layers.norm(planes)
        self.se = layers.attention(planes)
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()
        self.downsample = downsample
        self.act2 = layers.act()

    def zero_init_last(self) -> None:
        if getattr(self.bn2, "weight", None) is not None:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.act2(self.drop_path(out) + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, as torchvision's v1.5), 1x1 expand x4."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 layers: Layers, depthwise: bool = False, drop_path: float = 0.0):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = layers.conv1x1(cin, planes)
        self.bn1 = layers.norm(planes)
        self.act1 = layers.act()
        self.conv2 = layers.conv3x3(planes, planes, stride, depthwise)
        self.bn2 = layers.norm(planes)
        self.act2 = layers.act()
        self.conv3 = layers.conv1x1(planes, out)
        self.bn3 = layers.norm(out)
        self.se = layers.attention(out)
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()
        self.downsample = downsample
        self.act3 = layers.act()

    def zero_init_last(self) -> None:
        if getattr(self.bn3, "weight", None) is not None:
            nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.act3(self.drop_path(out) + shortcut)


class PreActBlock(nn.Module):
    """Norm-act-conv order (He et al. 2016, "Identity Mappings"): the sum is left un-activated."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 layers: Layers, depthwise: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.bn1 = layers.norm(cin)
        # Without a norm, bn1 is the identity and act1 would overwrite x, the shortcut.
        self.act1 = layers.act(inplace=layers.norm_kind != "none")
        self.conv1 = layers.conv3x3(cin, planes, stride, depthwise)
        self.bn2 = layers.norm(planes)
        self.act2 = layers.act()
        self.conv2 = layers.conv3x3(planes, planes, 1, depthwise)
        self.se = layers.attention(planes)
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()
        self.downsample = downsample

    def zero_init_last(self) -> None:
        # No norm ends the branch here, so zero its last conv to start as identity.
        last = self.conv2.conv_pw if isinstance(self.conv2, SeparableConv2d) else self.conv2
        nn.init.zeros_(last.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        # The projection sees the pre-activated input, as in the paper's reference code.
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.se(self.conv2(self.act2(self.bn2(out))))
        return self.drop_path(out) + shortcut


BLOCK_TYPES: dict[str, type[nn.Module]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact": PreActBlock,
}


def make_stem(cfg: ArchConfig, layers: Layers) -> dict[str, nn.Module]:
    """Stem modules by torchvision name (conv1, bn1, relu, maxpool), so keys stay familiar."""
    width = cfg.stem_width
    if cfg.stem == "deep":  # ResNet-C: three 3x3 convs, as timm's deep stem
        half = width // 2
        conv1: nn.Module = nn.Sequential(
            layers.conv3x3(cfg.in_channels, half, 2), layers.norm(half), layers.act(),
            layers.conv3x3(half, half), layers.norm(half), layers.act(),
            layers.conv3x3(half, width),
        )
    elif cfg.stem == "cifar":  # small images: keep resolution, no max-pool
        conv1 = layers.conv3x3(cfg.in_channels, width)
    else:
        conv1 = nn.Conv2d(cfg.in_channels, width, 7, 2, 3, bias=layers.conv_bias)
    maxpool = nn.Identity() if cfg.stem == "cifar" else nn.MaxPool2d(3, 2, 1)
    return {"conv1": conv1, "bn1": layers.norm(width), "relu": layers.act(), "maxpool": maxpool}
