"""analyze() against references nobody here wrote: torchvision's published figures,
torchinfo, FlopCounterMode, real forward passes and what autograd really keeps for backward."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torchinfo
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from resnet_explorer.analysis import Analysis, analyze
from resnet_explorer.arch import BASELINE, PRESETS, ArchConfig, build_model
from resnet_explorer.common import InputSizeError
from tests.strategies import small_configs


def input_problems(cfg: ArchConfig, size: tuple, batch: int = 1) -> list[str]:
    """Why analyze() refuses this input, in the words a person sees; empty when it does not."""
    try:
        analyze(cfg, size, batch)
    except InputSizeError as exc:
        return exc.problems
    return []


# ----- references ---------------------------------------------------------------------------
def real_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[tuple, tuple]]:
    """(input shape, output shape) of every module call in a real CPU forward pass."""
    seen: dict[str, tuple[tuple, tuple]] = {}
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda m, a, o: seen.__setitem__(
        names[m], (tuple(a[0].shape), tuple(o.shape)))) for m in names]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return seen


def autograd_saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of distinct storages autograd keeps in a real training forward, weights excluded."""
    weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in weights:
            kept[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model.train()(x)  # `out` keeps the graph, so no kept storage is freed and reused
    assert out is not None
    return sum(kept.values())


def flop_counter_macs(cfg: ArchConfig, size: tuple[int, ...], batch: int) -> int:
    model = build_model(cfg, device="meta").eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(batch, *size, device="meta"))
    total = counter.get_total_flops()
    assert total % 2 == 0
    return total // 2


def torchinfo_params(cfg: ArchConfig, size: tuple[int, ...], batch: int = 1) -> int:
    stats = torchinfo.summary(build_model(cfg, device="meta"), input_size=(batch, *size),
                              device="meta", verbose=0)
    return stats.total_params


def assert_matches_references(cfg: ArchConfig, size: tuple[int, ...], batch: int) -> Analysis:
    """Every check the issue names, for one configuration and input."""
    a = analyze(cfg, size, batch)
    assert a.params == torchinfo_params(cfg, size, batch)
    assert a.macs == flop_counter_macs(cfg, size, batch)
    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.randn(batch, *size)
    shapes = real_shapes(model, x)
    assert a.output_shape == shapes[""][1]
    for r in a.rows:
        assert (r.in_shape, r.out_shape) == shapes[r.name], r.name
    # No layer is left out: every module that computes something has a row.
    leaves = {n for n, m in model.named_modules()
              if not list(m.children()) and not isinstance(m, nn.Identity)}
    assert leaves <= {r.name for r in a.rows}
    assert a.params == sum(p.numel() for p in model.parameters())
    if a.training_error is None:
        assert a.activation_bytes == autograd_saved_bytes(model, x)
    return a


# ----- the baseline: torchvision's published numbers --------------------------------------------
def test_baseline_at_224_matches_torchvision_torchinfo_and_flop_counter():
    meta = torchvision.models.ResNet34_Weights.IMAGENET1K_V1.meta
    a = analyze(BASELINE, (3, 224, 224))
    assert a.params == 21_797_672 == meta["num_params"] == torchinfo_params(BASELINE, (3, 224, 224))
    assert round(a.macs / 1e9, 3) == meta["_ops"]  # torchvision's "GFLOPS" are multiply-adds
    assert a.macs == flop_counter_macs(BASELINE, (3, 224, 224), 1)
    assert a.flops == 2 * a.macs + a.other_flops
    assert a.output_shape == (1, 1000) and a.training_error is None
    assert [s.output_stride for s in a.stages] == [4, 4, 8, 16, 32, 32]


@pytest.mark.slow
def test_baseline_at_224_shapes_and_activation_memory_equal_a_real_pass():
    torch.manual_seed(0)
    model, x = build_model(BASELINE), torch.randn(1, 3, 224, 224)
    a = analyze(BASELINE, (3, 224, 224))
    shapes = real_shapes(model, x)
    assert [(r.name, r.in_shape, r.out_shape) for r in a.rows] == [
        (r.name, *shapes[r.name]) for r in a.rows]
    assert a.activation_bytes == autograd_saved_bytes(model, x)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_match_references(name):
    cfg = PRESETS[name]
    size = (cfg.in_channels, 32, 40) if cfg.stem == "cifar" else (cfg.in_channels, 64, 48)
    assert_matches_references(cfg, size, batch=2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=small_configs(max_stages=5), h=st.integers(8, 64), w=st.integers(8, 64),
       batch=st.integers(1, 3))
def test_random_configs_match_references_or_fail_like_the_real_network(cfg, h, w, batch):
    size = (cfg.in_channels, h, w)
    model, x = build_model(cfg), torch.randn(batch, *size)
    try:
        real_shapes(model, x)
    except (RuntimeError, ValueError):
        with pytest.raises(InputSizeError, match=r"stage \d|the stem|the head"):
            analyze(cfg, size, batch)
        return
    try:
        autograd_saved_bytes(model, x)
        trains = True
    except ValueError:  # BatchNorm over one value per channel
        trains = False
    a = assert_matches_references(cfg, size, batch)
    assert (a.training_error is None) == trains


# ----- other FLOPs: element counts from the operations a real forward runs --------------------
class OpElements(TorchDispatchMode):
    """Output (and input) elements of every aten operation, by operation name."""

    def __init__(self) -> None:
        super().__init__()
        self.out: Counter[str] = Counter()
        self.inp: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        first = result[0] if isinstance(result, (tuple, list)) else result
        name = func.overloadpacket.__name__
        self.out[name] += first.numel()
        if name == "convolution" and args[2] is not None:
            self.out["convolution bias"] += first.numel()
        self.inp[name] += args[0].numel() if isinstance(args[0], torch.Tensor) else 0
        return result


@pytest.mark.parametrize("name", ["resnet34", "se-resnet34"])
def test_other_flops_count_the_elements_the_real_operations_touch(name):
    cfg = PRESETS[name]
    model, x = build_model(cfg).eval(), torch.randn(2, 3, 64, 48)
    with torch.no_grad(), OpElements() as ops:
        model(x)
    a = analyze(cfg, (3, 64, 48), batch=2)
    by = a.other_flops_by_class()
    assert by["residual add"] == ops.out["add"]
    assert by["norm"] == 2 * ops.out["native_batch_norm"]
    assert by["activation"] == ops.out["relu_"] + 4 * ops.out["sigmoid"]  # formula costs 1, 4
    # 3×3 max-pool: 8 compares per output; global mean (pooling and SE): one add per input;
    # SE also multiplies every element by its gate.
    assert by["pooling"] + by["SE"] == (8 * ops.out["max_pool2d_with_indices"] + ops.inp["mean"]
                                        + ops.out["mul"])
    assert by["bias"] == ops.out["addmm"] + ops.out["convolution bias"]
    assert (by["SE"] > 0) == (name == "se-resnet34")


# ----- receptive field: where the gradient of one output pixel reaches ------------------------
def gradient_extent(cfg: ArchConfig, stage: int, side: int) -> int:
    """Rows of the input that influence the centre pixel of a stage's output (max-pool made
    average so every window position passes gradient; smooth activation for the same reason)."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    if isinstance(model.maxpool, nn.MaxPool2d):
        model.maxpool = nn.AvgPool2d(3, 2, 1)
    x = torch.randn(1, cfg.in_channels, side, side, requires_grad=True)
    feats = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for s in model.stages[:stage]:
        feats = s(feats)
    feats[0, :, feats.shape[2] // 2, feats.shape[3] // 2].sum().backward()
    rows = x.grad[0].abs().sum((0, 2)).nonzero()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize("cfg, stage, side", [
    (ArchConfig(activation="silu"), 2, 224),
    (ArchConfig(activation="silu", stem="deep", shortcut="D"), 2, 224),
    (ArchConfig(activation="silu", block="bottleneck", blocks=(2, 2, 2, 2)), 2, 160),
    (ArchConfig(activation="silu", stem="cifar", widths=(8, 8, 8, 8), stem_width=8), 3, 160),
])
def test_receptive_field_is_where_gradients_reach(cfg, stage, side):
    a = analyze(cfg, (3, side, side))
    rf = a.stages[stage].receptive_field  # stages[0] is the stem
    assert rf < side  # the field fits, so the image border does not clip it
    assert gradient_extent(cfg, stage, side) == rf


# ----- input validation --------------------------------------------------------------------
@pytest.mark.parametrize("size, batch, words", [
    ((1, 224, 224), 1, "3-channel"),
    ((3, 4, 224), 1, "height must be between"),
    ((3, 224, 5000), 1, "width must be between"),
    ((3, 224), 1, "three whole numbers"),
    ((3, 224.0, 224), 1, "three whole numbers"),
    ((3, 224, 224), 0, "batch"),
])
def test_malformed_inputs_are_refused_with_a_reason(size, batch, words):
    with pytest.raises(InputSizeError, match=words):
        analyze(BASELINE, size, batch)


def test_an_input_too_small_for_a_stage_names_that_stage():
    cfg = ArchConfig(norm="instance")  # instance norm needs more than one pixel per channel
    with pytest.raises(ValueError):  # what the real network does on 32×32 …
        build_model(cfg).eval()(torch.randn(1, 3, 32, 32))
    problems = input_problems(cfg, (3, 32, 32))  # … and what a person is told instead
    assert len(problems) == 1 and problems[0].startswith("stage 4 cannot run on a 32×32 input")
    assert input_problems(cfg, (3, 64, 64)) == []


def test_non_square_and_grey_inputs_from_32_to_512():
    grey = ArchConfig(in_channels=1)
    for size in [(1, 32, 32), (1, 32, 512), (1, 512, 96), (1, 512, 512)]:
        a = analyze(grey, size)
        assert a.rows[0].in_shape == (1, *size)
        assert a.stages[-2].out_shape[2:] == tuple(-(-s // 32) for s in size[1:])


def test_training_that_would_fail_is_reported_not_raised():
    a = analyze(BASELINE, (3, 32, 32), batch=1)  # stage 4 is 1×1: BatchNorm sees one value
    assert a.training_error and "stage 4 cannot train" in a.training_error
    assert analyze(BASELINE, (3, 32, 32), batch=2).training_error is None


def test_bf16_memory_halves_floats_but_not_pooling_indices():
    a = analyze(BASELINE, (3, 224, 224))
    indices = 8 * 64 * 56 * 56  # int64 argmax positions of the stem's max-pool
    assert a.activation_bytes_bf16 == (a.activation_bytes - indices) // 2 + indices


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "silu", "hardswish"])
def test_out_of_place_activations_are_counted_like_autograd(activation):
    # A pre-activation block without norm runs its first activation out of place (its input
    # is the shortcut); autograd then keeps the input, not the result, for most activations.
    cfg = ArchConfig(stem="imagenet", stem_width=4, blocks=(1,), widths=(4,), block="preact",
                     depthwise=(False,), activation=activation, norm="none", in_channels=1,
                     num_classes=1)
    assert_matches_references(cfg, (1, 8, 8), 1)


def test_stage_sides_and_the_smallest_input_that_gives_the_last_stage_a_size():
    from dataclasses import replace

    from resnet_explorer.analysis import smallest_input_side

    assert analyze(BASELINE, (3, 32, 32)).stage_sides == ((8, 8), (4, 4), (2, 2), (1, 1))
    # The walk's own arithmetic, not size / 32: 72 px gives 3×3 and 64 px only 2×2.
    assert smallest_input_side(BASELINE, 3) == 72
    assert analyze(BASELINE, (3, 64, 64)).stage_sides[-1] == (2, 2)
    assert smallest_input_side(BASELINE, 4) == 104
    assert smallest_input_side(replace(BASELINE, stem="cifar"), 4) == 32
    assert smallest_input_side(BASELINE, 100, upto=256) is None
