"""Layer modules the blocks share, and `Layers`: the factory a model's blocks build from.

`Layers` holds the option entries a config chose (arch/options.py), resolved once per model
(the timm pattern), so a block asks for "an activation" or "a norm" and never names one.
It takes entries rather than names because the tables themselves point at the factories
and classes defined here and in blocks.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # the tables import this module for its layer classes
    from .options import ActivationOption, NormOption


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

    activation: ActivationOption
    slope: float
    normalization: NormOption
    groups: int
    se_reduction: int = 0

    @property
    def has_norm(self) -> bool:
        return self.normalization.module is not None

    @property
    def conv_bias(self) -> bool:
        return not self.has_norm  # a following norm would cancel the bias

    def act(self, inplace: bool = True) -> nn.Module:
        return self.activation.make(self.slope, inplace)

    def norm(self, channels: int) -> nn.Module:
        return self.normalization.make(channels, self.groups)

    def attention(self, channels: int) -> nn.Module:
        return SqueezeExcite(channels, self.se_reduction) if self.se_reduction else nn.Identity()

    def conv3x3(self, cin: int, cout: int, stride: int = 1, depthwise: bool = False) -> nn.Module:
        if depthwise:
            return SeparableConv2d(cin, cout, stride, self.conv_bias)
        return nn.Conv2d(cin, cout, 3, stride, 1, bias=self.conv_bias)

    def conv1x1(self, cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
        return nn.Conv2d(cin, cout, 1, stride, bias=self.conv_bias)

    def drop_path(self, rate: float) -> nn.Module:
        return DropPath(rate) if rate else nn.Identity()
