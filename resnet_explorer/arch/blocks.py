"""Building blocks: residual blocks, shortcut factories and stem factories.

Blocks never branch on option names: they receive a `Layers` factory resolved once from
the config (the timm pattern), and the option tables (options.py) point at the factories
here, so adding a block, shortcut or stem is a class or function plus one table entry.
Module names follow torchvision (conv1, bn1, downsample, …) so default state-dict keys
match `torchvision.models.resnet34` exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Layers, ZeroPadShortcut


class ResidualBlock(nn.Module):
    """What the network builder and the analysis walk read of a block, as class attributes.

    The walk assumes the data flow every block here has: children run in registration
    order, `downsample` branches off the block input (or off child `shortcut_after`'s
    output), the sum follows `drop_path`, and children registered after it act on the sum.
    """

    expansion = 1  # output channels per `planes`
    # Norm → act → conv order leaves the sum un-normalised, so the network ends its stages
    # with a norm and an activation, and a projection reads an input already normalised.
    pre_activation = False
    shortcut_after = ""  # child whose output a projection shortcut reads; "" = block input
    last_layer = "bn2"  # zeroed by zero_init_last so the residual branch starts at zero

    def zero_init_last(self) -> None:
        last = getattr(self, self.last_layer)
        last = getattr(last, "conv_pw", last)  # a separable conv ends with its pointwise part
        if getattr(last, "weight", None) is not None:  # no norm: nothing to zero
            nn.init.zeros_(last.weight)


class BasicBlock(ResidualBlock):
    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 layers: Layers, depthwise: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.conv1 = layers.conv3x3(cin, planes, stride, depthwise)
        self.bn1 = layers.norm(planes)
        self.act1 = layers.act()
        self.conv2 = layers.conv3x3(planes, planes, 1, depthwise)
        self.bn2 = layers.norm(planes)
        self.se = layers.attention(planes)
        self.drop_path = layers.drop_path(drop_path)
        self.downsample = downsample
        self.act2 = layers.act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.act2(self.drop_path(out) + shortcut)


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3 (carries the stride, as torchvision's v1.5), 1x1 expand x4."""

    expansion = 4
    last_layer = "bn3"

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
        self.drop_path = layers.drop_path(drop_path)
        self.downsample = downsample
        self.act3 = layers.act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.act3(self.drop_path(out) + shortcut)


class PreActBlock(ResidualBlock):
    """Norm-act-conv order (He et al. 2016, "Identity Mappings"): the sum is left un-activated."""

    pre_activation = True
    shortcut_after = "act1"  # the paper's reference code projects the pre-activated input
    last_layer = "conv2"  # no norm ends the branch

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 layers: Layers, depthwise: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.bn1 = layers.norm(cin)
        # Without a norm, bn1 is the identity and act1 would overwrite x, the shortcut.
        self.act1 = layers.act(inplace=layers.has_norm)
        self.conv1 = layers.conv3x3(cin, planes, stride, depthwise)
        self.bn2 = layers.norm(planes)
        self.act2 = layers.act()
        self.conv2 = layers.conv3x3(planes, planes, 1, depthwise)
        self.se = layers.attention(planes)
        self.drop_path = layers.drop_path(drop_path)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.se(self.conv2(self.act2(self.bn2(out))))
        return self.drop_path(out) + shortcut


# ----- shortcuts: (cin, cout, stride, layers, with_norm) → module, or None for identity -----
# with_norm=False where the block's input is already normalised (pre-activation blocks).
def _changes_shape(cin: int, cout: int, stride: int) -> bool:
    return stride != 1 or cin != cout


def _normed(parts: list[nn.Module], cout: int, layers: Layers, with_norm: bool) -> nn.Module:
    return nn.Sequential(*parts, *([layers.norm(cout)] if with_norm else []))


def zero_pad_shortcut(cin: int, cout: int, stride: int, layers: Layers,
                      with_norm: bool) -> nn.Module | None:
    return ZeroPadShortcut(stride, cout - cin) if _changes_shape(cin, cout, stride) else None


def projection(cin: int, cout: int, stride: int, layers: Layers,
               with_norm: bool) -> nn.Module | None:
    return _normed([layers.conv1x1(cin, cout, stride)], cout, layers, with_norm)


def projection_if_reshaped(cin: int, cout: int, stride: int, layers: Layers,
                           with_norm: bool) -> nn.Module | None:
    if not _changes_shape(cin, cout, stride):
        return None
    return projection(cin, cout, stride, layers, with_norm)


def pooled_projection_if_reshaped(cin: int, cout: int, stride: int, layers: Layers,
                                  with_norm: bool) -> nn.Module | None:
    """ResNet-D: average-pool first so the 1×1 convolution sees every input pixel."""
    if not _changes_shape(cin, cout, stride):
        return None
    pool = (nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1
            else nn.Identity())
    return _normed([pool, layers.conv1x1(cin, cout)], cout, layers, with_norm)


# ----- stems: (in_channels, width, layers) → modules by torchvision name ---------------------
def _stem(conv1: nn.Module, width: int, layers: Layers, pool: bool) -> dict[str, nn.Module]:
    return {"conv1": conv1, "bn1": layers.norm(width), "relu": layers.act(),
            "maxpool": nn.MaxPool2d(3, 2, 1) if pool else nn.Identity()}


def imagenet_stem(cin: int, width: int, layers: Layers) -> dict[str, nn.Module]:
    return _stem(nn.Conv2d(cin, width, 7, 2, 3, bias=layers.conv_bias), width, layers, True)


def deep_stem(cin: int, width: int, layers: Layers) -> dict[str, nn.Module]:
    """ResNet-C: three 3×3 convs (half width, half, full), as timm's deep stem."""
    half = width // 2
    conv1 = nn.Sequential(
        layers.conv3x3(cin, half, 2), layers.norm(half), layers.act(),
        layers.conv3x3(half, half), layers.norm(half), layers.act(),
        layers.conv3x3(half, width),
    )
    return _stem(conv1, width, layers, True)


def cifar_stem(cin: int, width: int, layers: Layers) -> dict[str, nn.Module]:
    """Small images: keep the resolution, no max-pool."""
    return _stem(layers.conv3x3(cin, width), width, layers, False)
