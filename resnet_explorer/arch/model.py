"""build_model: an ArchConfig becomes a network (torchvision's layout and state-dict names)."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from .blocks import ResidualBlock
from .config import ArchConfig
from .layers import Layers
from .options import ACTIVATIONS, BLOCKS, NORMS, SHORTCUTS, STEMS, ShortcutOption


class ResNet(nn.Module):
    """torchvision's ResNet layout generalised to 1–6 stages and the options in ArchConfig."""

    def __init__(self, cfg: ArchConfig):
        super().__init__()
        self.cfg = cfg
        layers = Layers(ACTIVATIONS[cfg.activation], cfg.leaky_slope, NORMS[cfg.norm],
                        cfg.norm_groups, cfg.se_reduction)
        for name, module in STEMS[cfg.stem].make(cfg.in_channels, cfg.stem_width, layers).items():
            self.add_module(name, module)
        block = BLOCKS[cfg.block].cls
        total_blocks = sum(cfg.blocks)
        block_index = 0
        cin = cfg.stem_width
        for i, (count, planes) in enumerate(zip(cfg.blocks, cfg.stage_widths)):
            # Stochastic depth grows linearly with depth (Huang et al. 2016, as timm does).
            rates = [
                cfg.drop_path * (block_index + j) / max(1, total_blocks - 1) for j in range(count)
            ]
            stage = self._make_layer(block, layers, SHORTCUTS[cfg.shortcut], cin, planes, count,
                                     1 if i == 0 else 2, cfg.depthwise[i], rates)
            self.add_module(f"layer{i + 1}", stage)
            block_index += count
            cin = planes * block.expansion
        self.final_norm_act = block.pre_activation  # the last sum is still un-normalised
        if self.final_norm_act:
            self.final_norm = layers.norm(cin)
            self.final_act = layers.act()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        if cfg.head_hidden:
            self.head_conv = nn.Conv2d(cin, cfg.head_hidden, 1, bias=True)
            self.head_act = layers.act()
            cin = cfg.head_hidden
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity()
        self.fc = nn.Linear(cin, cfg.num_classes)
        # A meta build holds no values to initialise; skipping halves the cost of analysis.
        if not self.fc.weight.is_meta:
            self._init_weights(cfg.zero_init_last)

    @staticmethod
    def _make_layer(block: type[ResidualBlock], layers: Layers, shortcut: ShortcutOption,
                    cin: int, planes: int, count: int, stride: int, depthwise: bool,
                    drop_rates: list[float]) -> nn.Sequential:
        cout = planes * block.expansion
        modules = []
        for j in range(count):
            block_in, block_stride = (cin, stride) if j == 0 else (cout, 1)
            downsample = shortcut.make(block_in, cout, block_stride, layers,
                                       not block.pre_activation)
            modules.append(block(block_in, planes, block_stride, downsample, layers,
                                 depthwise=depthwise, drop_path=drop_rates[j]))
        return nn.Sequential(*modules)

    def _init_weights(self, zero_init_last: bool) -> None:
        # torchvision's initialisation, so a default model trains like theirs.
        norms = tuple(entry.module for entry in NORMS.values() if entry.module is not None)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, norms) and getattr(m, "affine", False):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, ResidualBlock):
                    m.zero_init_last()

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.cfg.num_stages)]

    def forward_features(self, x: torch.Tensor, stages: int | None = None) -> torch.Tensor:
        """The feature map after the first `stages` stages (default: all of them, with a
        pre-activation network's final norm and activation: the map the head sees)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self._stages(x, 0, self.cfg.num_stages if stages is None else stages)

    def forward_rest(self, features: torch.Tensor, stages: int) -> torch.Tensor:
        """The logits from `forward_features(x, stages)`: the later stages and the head (what
        Grad-CAM on an earlier stage differentiates)."""
        return self.forward_head(self._stages(features, stages, self.cfg.num_stages))

    def _stages(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for stage in self.stages[start:stop]:
            x = stage(x)
        if self.final_norm_act and start < stop == self.cfg.num_stages:
            x = self.final_act(self.final_norm(x))
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(features)
        if self.cfg.head_hidden:
            x = self.head_act(self.head_conv(x))
        return self.fc(self.dropout(torch.flatten(x, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build_model(cfg: ArchConfig, device: torch.device | str | None = None) -> ResNet:
    """Validate and build. On device="meta" no memory is allocated (used by analysis)."""
    cfg.check()
    with torch.device(device or "cpu"):
        return ResNet(cfg)


@lru_cache(maxsize=64)
def meta_model(cfg: ArchConfig) -> ResNet:
    """One meta-device build per config, shared by validation, analysis and weight checks.

    Building is most of an analysis' cost, so a config seen once is not built again. The
    module is shared between callers and sessions: read it, never change it (no hooks,
    no train()/eval(), no assignments); build_model(cfg, device="meta") gives a private
    one. It is not validated here because validation itself counts parameters with it.
    """
    with torch.device("meta"):
        return ResNet(cfg)


def count_parameters(cfg: ArchConfig) -> int:
    """Trainable parameters, from the shared meta-device build: no weights are allocated."""
    return sum(p.numel() for p in meta_model(cfg).parameters() if p.requires_grad)
