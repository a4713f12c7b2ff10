"""Tensors against an architecture: the one check used when saving, loading and importing,
and the transfer of whatever fits from one variant into another.

A model file is only trusted once its tensors are exactly the architecture's: the same
names, the same shapes, floating point where the network is floating point, and finite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..common.errors import WeightsMismatch
from .config import ArchConfig
from .model import meta_model


def expected_tensors(arch: ArchConfig) -> dict[str, torch.Tensor]:
    """Names, shapes and dtypes of the architecture's state dict; no memory (meta device)."""
    arch.check()
    return meta_model(arch).state_dict()


def require_layout(shapes: Mapping[str, tuple[int, ...]],
                   expected: Mapping[str, torch.Tensor]) -> None:
    """Refuse, listing what differs, unless the names and shapes are exactly `expected`'s.

    Takes bare shapes so a file header can be checked before any tensor is read.
    """
    missing = [k for k in expected if k not in shapes]
    extra = [k for k in shapes if k not in expected]
    wrong = [f"{k}: file {tuple(shapes[k])}, architecture {tuple(v.shape)}"
             for k, v in expected.items() if k in shapes and tuple(shapes[k]) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing, e.g. {', '.join(missing[:3])}")
    if extra:
        problems.append(f"{len(extra)} tensor(s) not in the architecture, "
                        f"e.g. {', '.join(extra[:3])}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es), e.g. {'; '.join(wrong[:3])}")
    if problems:
        raise WeightsMismatch("the weights do not match the architecture: " + "; ".join(problems))


def check_state_dict(state: Mapping[str, torch.Tensor],
                     arch: ArchConfig) -> dict[str, torch.Tensor]:
    """Exactly the architecture's tensors, right shapes, finite; cast to the model's dtypes."""
    expected = expected_tensors(arch)
    require_layout({k: tuple(v.shape) for k, v in state.items()}, expected)
    out: dict[str, torch.Tensor] = {}
    for k, ref in expected.items():
        t = state[k]
        if not isinstance(t, torch.Tensor):
            raise WeightsMismatch(f"{k} is not a tensor")
        if t.layout != torch.strided or t.device.type != "cpu":
            raise WeightsMismatch(f"tensor {k} is not a dense CPU tensor ({t.layout}, "
                                  f"{t.device.type})")
        if ref.dtype.is_floating_point != t.dtype.is_floating_point or t.is_complex():
            raise WeightsMismatch(f"tensor {k} has dtype {t.dtype}; expected {ref.dtype}")
        if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
            raise WeightsMismatch(f"tensor {k} contains NaN or infinite values")
        out[k] = t.to(ref.dtype).contiguous()
    return out


@dataclass
class TransferReport:
    loaded: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)  # "name: (src) → (dst)"
    fresh: list[str] = field(default_factory=list)  # in the model, absent from the source
    unexpected: list[str] = field(default_factory=list)  # in the source, absent from the model

    def summary(self) -> str:
        return (f"{len(self.loaded)} tensors loaded, {len(self.shape_mismatch)} skipped for shape, "
                f"{len(self.fresh)} freshly initialised, {len(self.unexpected)} unused")


def transfer_weights(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> TransferReport:
    """Copy every tensor whose name and shape match; report the rest instead of failing."""
    report = TransferReport()
    target = model.state_dict()
    matched = {}
    for name, tensor in state_dict.items():
        if name not in target:
            report.unexpected.append(name)
        elif tuple(tensor.shape) != tuple(target[name].shape):
            report.shape_mismatch.append(
                f"{name}: {tuple(tensor.shape)} → {tuple(target[name].shape)}")
        else:
            matched[name] = tensor
            report.loaded.append(name)
    report.fresh = [n for n in target if n not in matched and n not in state_dict]
    model.load_state_dict(matched, strict=False)
    return report
