"""Walk a built (meta-device) ResNet by shape arithmetic: one LayerRow per layer, no forward pass.

A meta forward pass runs PyTorch's Python meta kernels and costs more than the whole
analysis budget, so shapes are computed here from each module's own attributes (kernel,
stride, padding, …) instead. Only the data flow between modules is assumed, and it is the
one arch/blocks.py's `ResidualBlock`, arch/layers.py's `SqueezeExcite` and arch/model.py
implement: children run in registration order, except that a residual block's `downsample`
branches off the block input (or off the child its class names in `shortcut_after`) and the
sum follows `drop_path`; squeeze-excitation's children see the spatial mean; the classifier
sees flattened features. Activation memory follows the same walk: which tensors autograd
keeps, and which share a storage (in-place layers). Activations are found by module class
in the option table (arch/options.py), the norm is the configured entry; those entries
carry their FLOPs and saved tensors, and only layers no option chooses have rules here.
tests/test_analysis.py holds all of it against real forward passes, torchinfo,
FlopCounterMode and autograd's saved tensors, for the presets and random configs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..arch.blocks import ResidualBlock
from ..arch.layers import DropPath, SqueezeExcite, ZeroPadShortcut
from ..arch.options import (ACTIVATIONS, NORMS, SHORTCUTS, ActivationOption, NormOption, Shape,
                            ShortcutOption)

SIGMOID_FLOPS = 4  # SE's gate 1/(1+e^−x), one per operation as the option tables count
IDENTITY_SHORTCUT = "identity"  # the shortcut text of a block without a downsample branch


# ResNet.forward_head runs fc(dropout(torch.flatten(x, 1))): the first child seeing flat features.
FLATTEN_BEFORE = "dropout"


class WalkError(Exception):
    """The network cannot run on this input: `name` is the module, `in_shape` what it got."""

    def __init__(self, name: str, in_shape: Shape, reason: str):
        super().__init__(reason)
        self.name, self.in_shape, self.reason = name, in_shape, reason


@dataclass(frozen=True)
class LayerRow:
    name: str  # state-dict prefix: "layer2.0.downsample.0"; a block's own row has its name
    kind: str  # module class, or "residual add" / "SE mean × scale" for a module's own ops
    detail: str  # "3×3/2, 64→128", "groups=64", "BasicBlock, shortcut: identity", …
    stage: str  # "stem", "stage 1" … "stage N", "head"
    block: str  # "stem", "layer1.0", …, "head"
    op_class: str  # conv, linear, norm, activation, residual add, pooling, SE, other
    in_shape: Shape
    out_shape: Shape
    params: int
    macs: int  # multiply-accumulates of convolutions and linear layers
    other_flops: int  # everything FlopCounterMode counts as zero (bias adds included)
    act_bytes: int  # fp32 bytes autograd keeps for backward, credited to the first keeper
    act_bytes_bf16: int  # the same tensors with floating ones in bfloat16
    kernel: int = 1  # effective (dilated) window along the height, for the receptive field
    stride: int = 1

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.other_flops


@dataclass(frozen=True)
class _Tensor:
    shape: Shape
    storage: int  # in-place layers keep their input's storage; autograd de-duplicates by it


@dataclass(frozen=True)
class _Fresh:
    """A tensor made only to be kept for backward: statistics, masks, indices, copies."""

    shape: Shape
    nbytes: int = 4  # per element; 8 for int64 pooling indices


Kept = str | _Fresh | _Tensor  # "input", "result", a new tensor, or an earlier one


@dataclass(frozen=True)
class _Effect:
    """One leaf module's effect: output, arithmetic and what autograd saves."""

    out: Shape
    kind: str
    op_class: str
    macs: int = 0
    other: int = 0
    detail: str = ""
    kernel: int = 1
    stride: int = 1
    inplace: bool = False  # output shares the input's storage
    saves: tuple[Kept, ...] = ()


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[-1])


def _window_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """torch's output-size formula for convolutions and pooling."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:  # the last window must start inside the input
        out -= 1
    return out


def _spatial(m: nn.Module, shape: Shape, k: tuple[int, int], ceil: bool = False) -> Shape:
    s, p, d = _pair(m.stride), _pair(m.padding), _pair(getattr(m, "dilation", 1))
    return tuple(_window_out(shape[2 + i], k[i], s[i], p[i], d[i], ceil) for i in (0, 1))


def _activation_effect(entry: ActivationOption, m: nn.Module, x: Shape) -> _Effect:
    inplace = bool(getattr(m, "inplace", False))
    saved = entry.saves_in_place if inplace else entry.saves
    if saved is None:
        raise TypeError(f"{type(m).__name__} runs in place but its option entry has no "
                        "saves_in_place rule")
    return _Effect(x, type(m).__name__, "activation", other=entry.flops * math.prod(x),
                   inplace=inplace, saves=(_Fresh(x) if saved == "input copy" else saved,))


def _norm_effect(entry: NormOption, m: nn.Module, x: Shape) -> _Effect:
    # Autograd keeps the input and the statistics the norm computed.
    return _Effect(x, type(m).__name__, "norm", other=entry.flops * math.prod(x),
                   saves=("input", *(_Fresh((size,)) for size in entry.statistics(m, x))))


def _layer_effect(m: nn.Module, x: Shape) -> _Effect:
    """The rules of the layers no option table describes."""
    n, c = x[0], x[1]
    numel = math.prod(x)
    if isinstance(m, nn.Conv2d):
        k, (s, _), d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)[0]
        out = (n, m.out_channels, *_spatial(m, x, k))
        macs = math.prod(out) * (m.in_channels // m.groups) * k[0] * k[1]
        detail = f"{k[0]}×{k[1]}/{s}, {m.in_channels}→{m.out_channels}"
        detail += f", groups={m.groups}" if m.groups > 1 else ""
        return _Effect(out, "Conv2d", "conv", macs, math.prod(out) if m.bias is not None else 0,
                       detail, d * (k[0] - 1) + 1, s, saves=("input",))
    if isinstance(m, nn.Linear):
        out = (n, m.out_features)
        return _Effect(out, "Linear", "linear", n * m.in_features * m.out_features,
                       n * m.out_features if m.bias is not None else 0,
                       f"{m.in_features}→{m.out_features}", saves=("input",))
    if isinstance(m, nn.Sigmoid):
        return _Effect(x, "Sigmoid", "activation", other=SIGMOID_FLOPS * numel, saves=("result",))
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s = _pair(m.kernel_size), _pair(m.stride)[0]
        out = (n, c, *_spatial(m, x, k, m.ceil_mode))
        is_max = isinstance(m, nn.MaxPool2d)
        window = k[0] * k[1] - 1 if is_max else k[0] * k[1]  # compares / adds and a divide
        return _Effect(out, type(m).__name__, "pooling", other=window * math.prod(out),
                       detail=f"{k[0]}×{k[1]}/{s}", kernel=k[0], stride=s,
                       saves=("input",) + ((_Fresh(out, 8),) if is_max else ()))  # int64 indices
    if isinstance(m, nn.AdaptiveAvgPool2d):
        size = _pair(m.output_size)
        if size != (1, 1):
            raise TypeError("analysis handles only global average pooling")
        # Every input is added once (the divide folds in); computed as a mean, so nothing saved.
        return _Effect((n, c, 1, 1), "AdaptiveAvgPool2d", "pooling", other=numel, detail="global")
    if isinstance(m, ZeroPadShortcut):
        out = (n, c + m.extra_channels, -(-x[2] // m.stride), -(-x[3] // m.stride))
        return _Effect(out, "ZeroPadShortcut", "other", detail=f"stride {m.stride}, "
                       f"+{m.extra_channels} zero channels")
    if isinstance(m, nn.Dropout):  # training masks; CPU keeps a float mask (CUDA a bool one)
        return _Effect(x, "Dropout", "other", detail=f"p={m.p}",
                       saves=(_Fresh(x),) if m.p > 0 else ())
    if isinstance(m, DropPath):
        return _Effect(x, "DropPath", "other", detail=f"rate={m.rate:.3f}",
                       saves=(_Fresh((n, 1, 1, 1)),) if m.rate > 0 else ())
    raise TypeError(f"layer analysis has no rule for {type(m).__name__}: give it an entry in "
                    "arch/options.py, or a rule in analysis/walk.py if no option chooses it")


def shortcut_text(block: nn.Module, shortcut: ShortcutOption) -> str:
    """What the block's shortcut is: identity, or the detail of the config's shortcut."""
    return IDENTITY_SHORTCUT if getattr(block, "downsample", None) is None else shortcut.detail


class Walker:
    """Propagates shapes through a model, recording rows, saved storages and the first problem."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.rows: list[LayerRow] = []
        self.training_problem: WalkError | None = None
        self._storages = 0
        self._saved: set[int] = set()
        self._stages = [n for n, _ in model.named_children() if n.startswith("layer")]
        self._after_stages = False
        # Looked up for every walk, so an entry added at run time is analysed like the rest.
        # Activations by class: SE's own ReLU is not the configured activation. Every norm is
        # the configured one (Layers.norm), which matters where two entries share a class
        # (group and layer norm are both nn.GroupNorm).
        self._activations = {e.module: e for e in ACTIVATIONS.values()}
        self._norm = NORMS[model.cfg.norm]
        self._shortcut = SHORTCUTS[model.cfg.shortcut]

    def run(self, batch: int, input_size: Shape) -> Shape:
        return self._module("", self.model, self._tensor((batch, *input_size))).shape

    # -- storages ---------------------------------------------------------------------
    def _tensor(self, shape: Shape) -> _Tensor:
        self._storages += 1
        return _Tensor(shape, self._storages)

    def _keep(self, storage: int, shape: Shape, nbytes: int = 4) -> tuple[int, int]:
        """fp32 and bf16 bytes of a storage autograd keeps, the first time it is kept."""
        if storage in self._saved:
            return 0, 0
        self._saved.add(storage)
        numel = math.prod(shape)
        return numel * nbytes, numel * (2 if nbytes == 4 else nbytes)

    # -- traversal --------------------------------------------------------------------
    def _module(self, name: str, m: nn.Module, x: _Tensor) -> _Tensor:
        if isinstance(m, ResidualBlock):
            return self._block(name, m, x)
        if isinstance(m, SqueezeExcite):
            return self._squeeze_excite(name, m, x)
        if isinstance(m, nn.Identity):  # a switched-off option (no norm, no SE, …): no row
            return x
        children = list(m.named_children())
        if not children:
            return self._leaf(name, m, x)
        for child_name, child in children:
            if not name and child_name == FLATTEN_BEFORE:  # torch.flatten(x, 1): a view
                x = _Tensor((x.shape[0], math.prod(x.shape[1:])), x.storage)
            x = self._module(f"{name}.{child_name}" if name else child_name, child, x)
        return x

    def _block(self, name: str, m: ResidualBlock, x: _Tensor) -> _Tensor:
        # As the blocks' forward() runs it: the shortcut first, off the block input or off
        # child `shortcut_after`'s output; the branch ends with drop_path, then comes the
        # sum, and children registered after it (a final activation) act on the sum.
        after, downsample = m.shortcut_after, m.downsample
        shortcut = x
        if downsample is not None and not after:
            shortcut = self._module(f"{name}.downsample", downsample, x)
        out = x
        for child_name, child in m.named_children():
            if child_name == "downsample":
                continue
            out = self._module(f"{name}.{child_name}", child, out)
            if child_name == after and downsample is not None:
                shortcut = self._module(f"{name}.downsample", downsample, out)
            if child_name == "drop_path":
                out = self._add(name, m, x, out, shortcut)
        return out

    def _add(self, name: str, m: nn.Module, x: _Tensor, branch: _Tensor,
             shortcut: _Tensor) -> _Tensor:
        if branch.shape != shortcut.shape:
            raise WalkError(name, x.shape, f"the residual branch gives {branch.shape[1:]} but "
                            f"the shortcut gives {shortcut.shape[1:]}")
        add = _Effect(branch.shape, "residual add", "residual add", other=math.prod(branch.shape),
                      detail=f"{type(m).__name__}, shortcut: {shortcut_text(m, self._shortcut)}")
        return self._record(name, m, x, add)  # the block's row; an addition keeps nothing

    def _squeeze_excite(self, name: str, m: SqueezeExcite, x: _Tensor) -> _Tensor:
        n, c = x.shape[:2]
        gate = self._tensor((n, c, 1, 1))  # the spatial mean: a new tensor, nothing kept
        for child_name, child in m.named_children():
            gate = self._module(f"{name}.{child_name}", child, gate)
        # x * gate keeps both factors for backward (gate is the sigmoid's result, kept already).
        own = _Effect(x.shape, "SE mean × scale", "SE", other=2 * math.prod(x.shape),
                      saves=("input", gate))
        return self._record(name, m, x, own)

    def _leaf(self, name: str, m: nn.Module, x: _Tensor) -> _Tensor:
        activation = self._activations.get(type(m))
        norm = self._norm if type(m) is self._norm.module else None  # module None: no norm layer
        if activation is not None:
            effect = _activation_effect(activation, m, x.shape)
        elif norm is not None:
            effect = _norm_effect(norm, m, x.shape)
        else:
            effect = _layer_effect(m, x.shape)
        if any(side <= 0 for side in effect.out[2:]):
            raise WalkError(name, x.shape, f"its output would be {effect.out[2]}×{effect.out[3]}")
        if norm is not None and norm.values_per_statistic(m, x.shape) == 1:
            problem = WalkError(name, x.shape, norm.too_few_values)
            if not norm.fails_only_in_training:
                raise problem
            self.training_problem = self.training_problem or problem
        return self._record(name, m, x, effect)

    # -- rows ---------------------------------------------------------------------------
    def _record(self, name: str, m: nn.Module, x: _Tensor, effect: _Effect) -> _Tensor:
        out = _Tensor(effect.out, x.storage) if effect.inplace else self._tensor(effect.out)
        fp32 = bf16 = 0
        for item in effect.saves:
            if isinstance(item, _Fresh):
                kept = self._keep(self._tensor(item.shape).storage, item.shape, item.nbytes)
            else:
                t = x if item == "input" else out if item == "result" else item
                kept = self._keep(t.storage, t.shape)
            fp32, bf16 = fp32 + kept[0], bf16 + kept[1]
        top = name.split(".")[0]
        if top in self._stages:
            self._after_stages = top == self._stages[-1]
            stage, block = f"stage {self._stages.index(top) + 1}", ".".join(name.split(".")[:2])
        else:
            stage = block = "head" if self._after_stages else "stem"
        params = sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)
        self.rows.append(LayerRow(
            name, effect.kind, effect.detail, stage, block, effect.op_class, x.shape, effect.out,
            params, effect.macs, effect.other, fp32, bf16, effect.kernel, effect.stride))
        return out
