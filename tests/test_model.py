"""build_model against references nobody here wrote: torchvision's resnet34 and timm's counts."""

import dataclasses

import pytest
import timm
import torch
import torchvision
from hypothesis import assume, given, settings
from torch import nn

from resnet_explorer.arch import (BASELINE, PRESETS, ArchConfig, build_model, count_parameters,
                                  transfer_weights)
from resnet_explorer.arch.layers import DropPath, SqueezeExcite, ZeroPadShortcut
from resnet_explorer.common import ConfigError, UserError
from tests.strategies import small_configs
from tests.test_analysis import input_problems

# Our preset name → the timm model that defines the same architecture.
TIMM_EQUIVALENTS = {
    "resnet34": "resnet34",
    "resnet18": "resnet18",
    "resnet34-d": "resnet34d",
    "se-resnet34": "seresnet34",
    "resnet26": "resnet26",
}

TINY = ArchConfig(stem="cifar", stem_width=8, blocks=(1, 1), widths=(8, 16),
                  depthwise=(False, False), num_classes=5)


def test_default_state_dict_keys_and_shapes_equal_torchvision():
    with torch.device("meta"):
        reference = torchvision.models.resnet34().state_dict()
    ours = build_model(BASELINE, device="meta").state_dict()
    assert list(ours) == list(reference)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}


def test_torchvision_weights_load_strictly_and_give_the_same_logits():
    torch.manual_seed(0)
    reference = torchvision.models.resnet34().eval()
    ours = build_model(BASELINE).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        assert (ours(x) - reference(x)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("preset, timm_name", sorted(TIMM_EQUIVALENTS.items()))
def test_parameter_counts_equal_timm(preset, timm_name):
    with torch.device("meta"):
        reference = timm.create_model(timm_name, pretrained=False)
    expected = sum(p.numel() for p in reference.parameters())
    assert count_parameters(PRESETS[preset]) == expected
    model = build_model(PRESETS[preset], device="meta")
    assert sum(p.numel() for p in model.parameters()) == expected


def test_resnet18_matches_torchvision_too():
    with torch.device("meta"):
        reference = torchvision.models.resnet18().state_dict()
    ours = build_model(PRESETS["resnet18"], device="meta").state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}


def test_resnet26_state_dict_matches_torchvision_bottleneck_layout():
    # torchvision's ResNet with its Bottleneck and [2,2,2,2] is the same network as timm's resnet26.
    with torch.device("meta"):
        reference = torchvision.models.ResNet(torchvision.models.resnet.Bottleneck, [2, 2, 2, 2])
    ours = build_model(PRESETS["resnet26"], device="meta").state_dict()
    assert {k: v.shape for k, v in ours.items()} == {
        k: v.shape for k, v in reference.state_dict().items()}


# One change at a time from a tiny network, so every option is exercised on its own.
SINGLE_OPTIONS = [
    {"stem": "imagenet"}, {"stem": "deep"}, {"block": "bottleneck"}, {"block": "preact"},
    {"shortcut": "A"}, {"shortcut": "C"}, {"shortcut": "D"}, {"depthwise": (True, False)},
    {"depthwise": (True, True), "block": "bottleneck"}, {"width_multiplier": 1.5},
    *({"activation": a} for a in ("leaky_relu", "silu", "gelu", "mish", "hardswish", "elu", "prelu")),
    {"norm": "group", "norm_groups": 4},
    *({"norm": n} for n in ("layer", "instance", "none")),
    {"se_reduction": 4}, {"dropout": 0.5}, {"drop_path": 0.3}, {"zero_init_last": True},
    {"head_hidden": 32}, {"in_channels": 1},
    {"blocks": (1, 1, 1, 1, 1, 1), "widths": (4, 4, 8, 8, 16, 16), "depthwise": (False,) * 6},
    {"blocks": (2,), "widths": (8,), "depthwise": (False,)},
]


def _forward_backward(cfg: ArchConfig, size: int = 32) -> None:
    torch.manual_seed(0)
    model = build_model(cfg).train()
    x = torch.randn(2, cfg.in_channels, size, size)
    out = model(x)
    assert out.shape == (2, cfg.num_classes)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("changes", SINGLE_OPTIONS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_every_option_builds_and_trains(changes):
    _forward_backward(dataclasses.replace(TINY, **changes))


@settings(max_examples=25, deadline=None)
@given(small_configs())
def test_random_valid_configs_build_and_train(cfg):
    # Some valid networks cannot run on 16×16 (instance norm on a 1×1 map): the analysis
    # says so, and those are the ones it refuses (test_analysis checks that it is right).
    assume(not input_problems(cfg, (cfg.in_channels, 16, 16), batch=2))
    _forward_backward(cfg, size=16)


@pytest.mark.parametrize("block", ["basic", "bottleneck", "preact"])
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_inplace_activations_change_nothing(block, norm):
    # In-place activations only save memory: the same weights with every activation made
    # out-of-place must give the same output and gradients (CI once caught a preact block
    # without norm whose first activation overwrote its own shortcut).
    cfg = dataclasses.replace(TINY, block=block, norm=norm, shortcut="B")
    torch.manual_seed(0)
    inplace = build_model(cfg).eval()
    reference = build_model(cfg).eval()
    reference.load_state_dict(inplace.state_dict())
    for module in reference.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    x = torch.randn(2, cfg.in_channels, 16, 16)
    outputs, grads = [], []
    for model in (inplace, reference):
        out = model(x)
        out.square().sum().backward()
        outputs.append(out.detach())
        grads.append([p.grad for p in model.parameters()])
    torch.testing.assert_close(outputs[0], outputs[1])
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs)


def _modules(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_options_change_the_structure_they_name():
    base = build_model(TINY)
    assert not _modules(base, SqueezeExcite) and not _modules(base, DropPath)
    assert len(_modules(build_model(dataclasses.replace(TINY, se_reduction=4)), SqueezeExcite)) == 2
    # Rates grow linearly from 0 at the first block to drop_path at the last (as timm).
    (drop,) = _modules(build_model(dataclasses.replace(TINY, drop_path=0.2)), DropPath)
    assert drop.rate == pytest.approx(0.2)
    zero_pad = build_model(dataclasses.replace(TINY, shortcut="A"))
    assert _modules(zero_pad, ZeroPadShortcut) and count_parameters(zero_pad.cfg) < count_parameters(TINY)
    always = build_model(dataclasses.replace(TINY, shortcut="C"))
    assert all(block.downsample is not None for stage in always.stages for block in stage)
    resnet_d = build_model(dataclasses.replace(TINY, shortcut="D"))
    assert isinstance(resnet_d.layer2[0].downsample[0], nn.AvgPool2d)
    gn = build_model(dataclasses.replace(TINY, norm="group", norm_groups=4))
    assert isinstance(gn.bn1, nn.GroupNorm) and gn.bn1.num_groups == 4
    dw = build_model(dataclasses.replace(TINY, depthwise=(False, True)))
    assert dw.layer2[0].conv1.conv_dw.groups == 8
    assert isinstance(build_model(dataclasses.replace(TINY, activation="prelu")).layer1[0].act1, nn.PReLU)


def test_zero_init_last_makes_residual_branches_start_at_zero():
    model = build_model(dataclasses.replace(TINY, zero_init_last=True))
    assert all(block.bn2.weight.abs().sum() == 0 for stage in model.stages for block in stage)


def test_drop_path_is_random_in_training_and_off_in_eval():
    model = build_model(dataclasses.replace(TINY, drop_path=0.9, dropout=0.5))
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    a = model(x)
    assert not torch.equal(a, model(x))


def test_invalid_config_raises_with_every_problem():
    with pytest.raises(ConfigError) as info:
        build_model(ArchConfig(blocks=(0, 4, 6, 3), dropout=3.0))
    assert len(info.value.problems) == 2 and isinstance(info.value, UserError)


def test_transfer_weights_reports_loaded_mismatched_and_fresh():
    torch.manual_seed(0)
    source = torchvision.models.resnet34().state_dict()
    variant = build_model(dataclasses.replace(PRESETS["se-resnet34"], num_classes=10))
    report = transfer_weights(source, variant)
    assert "conv1.weight" in report.loaded and "layer4.2.bn2.running_var" in report.loaded
    assert report.shape_mismatch == ["fc.weight: (1000, 512) → (10, 512)", "fc.bias: (1000,) → (10,)"]
    assert "layer1.0.se.fc1.weight" in report.fresh and not report.unexpected
    assert torch.equal(variant.state_dict()["layer3.1.conv2.weight"], source["layer3.1.conv2.weight"])
    assert "loaded" in report.summary()


def test_transfer_weights_into_a_shallower_network_lists_unused_tensors():
    source = build_model(BASELINE, device="meta").state_dict()
    source = {k: torch.zeros(v.shape) for k, v in source.items()}
    shallow = build_model(PRESETS["resnet18"])
    report = transfer_weights(source, shallow)
    assert "layer3.5.conv1.weight" in report.unexpected and not report.fresh
