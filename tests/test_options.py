"""Adding a choice is adding one table entry: each entry below exists only inside its test,
and with no other file touched it validates, round-trips, builds, trains a step and is
analysed exactly as torchinfo, FlopCounterMode, real forward passes and autograd see it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_explorer.analysis import analyze
from resnet_explorer.analysis.charts import diagram
from resnet_explorer.arch import (ACTIVATIONS, BASELINE, NORMS, SHORTCUTS, STEMS,
                                  ActivationOption, ArchConfig, NormOption, ShortcutOption,
                                  StemOption, build_model, meta_model)
from resnet_explorer.arch.layers import Layers
from resnet_explorer.common import ConfigError
from resnet_explorer.common.schema import spec_of
from tests.test_analysis import OpElements, assert_matches_references
from tests.test_model import TINY


# softplus ln(1+e^x): exponential, add, logarithm; autograd keeps its input.
SOFTPLUS = ActivationOption("Softplus", "softplus", make=lambda slope, inplace: nn.Softplus(),
                            module=nn.Softplus, flops=3, saves="input")


@pytest.fixture(autouse=True)
def _forget_builds():
    yield
    meta_model.cache_clear()  # no build with a test's entry outlives the test


def _round_trips(cfg: ArchConfig) -> None:
    assert cfg.validate() == []
    assert ArchConfig.from_json(cfg.to_json()) == cfg
    assert ArchConfig.from_query(cfg.to_query()) == cfg


def _trains_one_step(cfg: ArchConfig) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(cfg).train()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, cfg.in_channels, 32, 32), torch.randint(0, cfg.num_classes, (4,))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(old, new) for old, new in zip(before, model.parameters()))
    return model


def test_an_activation_added_in_one_entry_validates_builds_trains_and_is_analysed(monkeypatch):
    assert "softplus" not in ACTIVATIONS
    refused = " | ".join(ArchConfig(activation="softplus").validate())
    assert "activation must be one of" in refused and "(got 'softplus')" in refused
    monkeypatch.setitem(ACTIVATIONS, "softplus", SOFTPLUS)

    cfg = ArchConfig(activation="softplus")
    _round_trips(cfg)
    assert spec_of(ArchConfig, "activation").choice_label("softplus") == "Softplus"
    (problem,) = ArchConfig(activation="tanh").validate()
    assert problem == f"activation must be one of {', '.join(ACTIVATIONS)} (got 'tanh')"
    assert problem.startswith("activation must be one of relu, leaky_relu")
    assert "softplus" in problem
    with pytest.raises(ConfigError):
        ArchConfig.from_query({"activation": "tanh"})

    tiny = _trains_one_step(dataclasses.replace(TINY, activation="softplus"))
    assert any(isinstance(m, nn.Softplus) for m in tiny.modules())

    # The full-width network: torchinfo's parameters, FlopCounterMode's MACs, real shapes
    # and the bytes of the tensors autograd keeps.
    a = assert_matches_references(cfg, (3, 64, 64), batch=2)
    assert a.training_error is None
    softplus_rows = [r for r in a.rows if r.kind == "Softplus"]
    assert len(softplus_rows) == 1 + 2 * sum(cfg.blocks)  # stem, and two in every block
    # Other FLOPs: the entry's cost per element times the elements torch's softplus made.
    model = build_model(cfg).eval()
    with torch.no_grad(), OpElements() as ops:
        model(torch.randn(2, 3, 64, 64))
    assert ops.out["softplus"] > 0
    assert a.other_flops_by_class()["activation"] == SOFTPLUS.flops * ops.out["softplus"]


def test_a_norm_added_in_one_entry_is_built_and_analysed(monkeypatch):
    # SyncBatchNorm is a class the walk has never named; off a process group it runs as
    # batch norm, so autograd keeps the input, mean and 1/σ per channel.
    sync = dataclasses.replace(NORMS["batch"], label="SyncBatchNorm", short="sbn",
                               make=lambda c, groups: nn.SyncBatchNorm(c),
                               module=nn.SyncBatchNorm)
    assert isinstance(sync, NormOption)
    monkeypatch.setitem(NORMS, "sync_batch", sync)
    cfg = ArchConfig(norm="sync_batch", blocks=(2, 2, 2, 2))
    _round_trips(cfg)
    _trains_one_step(dataclasses.replace(TINY, norm="sync_batch"))
    a = assert_matches_references(cfg, (3, 64, 48), batch=2)
    assert {r.kind for r in a.rows if r.op_class == "norm"} == {"SyncBatchNorm"}
    # Its entry's rule for one value per channel says what the real layer does.
    with pytest.raises(ValueError):
        build_model(cfg).train()(torch.randn(1, 3, 32, 32))  # stage 4 is 1×1
    assert "batch normalisation cannot train" in analyze(cfg, (3, 32, 32), batch=1).training_error


def test_a_shortcut_added_in_one_entry_is_validated_built_analysed_and_charted(monkeypatch):
    def unnormalised_projection(cin, cout, stride, layers: Layers, with_norm):
        return nn.Sequential(layers.conv1x1(cin, cout, stride))

    entry = ShortcutOption("E: 1×1 projection in every block, no norm", "bare 1×1",
                           make=unnormalised_projection, detail="bare projection",
                           can_reduce_channels=False)
    monkeypatch.setitem(SHORTCUTS, "E", entry)
    cfg = ArchConfig(shortcut="E", blocks=(1, 2, 1, 1))
    _round_trips(cfg)
    narrowing = " | ".join(ArchConfig(shortcut="E", widths=(64, 32, 256, 512)).validate())
    assert "stage 2: shortcut E (bare projection) cannot reduce channels 64 → 32" in narrowing
    assert "use B, C or D" in narrowing
    _trains_one_step(dataclasses.replace(TINY, shortcut="E"))
    a = assert_matches_references(cfg, (3, 64, 48), batch=2)
    blocks = [b for b in a.blocks if b.stage.startswith("stage")]
    assert {b.shortcut for b in blocks} == {"bare projection"}
    assert all(label.endswith("· basic · bare 1×1") for label in diagram(a).data[0].text[1:-1])


def test_a_stem_added_in_one_entry_is_built_and_analysed(monkeypatch):
    def patchify_stem(cin, width, layers: Layers):  # ConvNeXt-style 4×4/4 patches
        return {"conv1": nn.Conv2d(cin, width, 4, 4, bias=layers.conv_bias),
                "bn1": layers.norm(width), "relu": layers.act(), "maxpool": nn.Identity()}

    monkeypatch.setitem(STEMS, "patchify", StemOption("Patchify: 4×4/4 conv", "patch",
                                                      make=patchify_stem, width_multiple=4))
    cfg = ArchConfig(stem="patchify")
    _round_trips(cfg)
    assert "stem_width must be a multiple of 4" in " | ".join(
        ArchConfig(stem="patchify", stem_width=30).validate())
    _trains_one_step(dataclasses.replace(TINY, stem="patchify"))
    a = assert_matches_references(cfg, (3, 64, 48), batch=2)
    assert a.rows[0].detail == "4×4/4, 3→64" and a.stages[0].output_stride == 4


def test_the_builtin_tables_are_what_the_config_offers():
    assert spec_of(ArchConfig, "activation").choices is ACTIVATIONS
    assert spec_of(ArchConfig, "norm").choices is NORMS
    assert spec_of(ArchConfig, "shortcut").choices is SHORTCUTS
    assert spec_of(ArchConfig, "stem").choices is STEMS
    assert BASELINE.validate() == []
