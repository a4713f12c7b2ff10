"""ONNX export: ONNX Runtime's outputs equal PyTorch's for every preset, every option value and
hypothesis-drawn architectures; the metadata feeds the graph; a layer that cannot be exported
is named; the CLI and the Architecture page's download."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchvision.transforms as T
from hypothesis import HealthCheck, given, settings
from streamlit.runtime.media_file_manager import MediaFileManager
from torch import nn

from resnet_explorer import inference
from resnet_explorer.arch import (
    ACTIVATIONS,
    BLOCKS,
    NORMS,
    PRESETS,
    SHORTCUTS,
    STEMS,
    ArchConfig,
    build_model,
)
from resnet_explorer.common.errors import ModelError
from resnet_explorer.datasets import Preprocess
from resnet_explorer.inference import MAX_OPSET, MIN_OPSET, Predictor, export_onnx, untrained_card
from resnet_explorer.inference.export_cli import main as cli_main
from resnet_explorer.models import ModelCard, read_sidecar
from tests.imaging_helpers import photo
from tests.inference_helpers import TINY, classify_images
from tests.page_helpers import open_page_at
from tests.strategies import small_configs
from tests.train_helpers import ROOT

# The TorchScript exporter's notices (inference/export.py silences them for the program;
# pytest resets the process's filters around each test).
pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript:DeprecationWarning"),
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:torch\.onnx"),
    pytest.mark.filterwarnings(r"ignore::UserWarning:torch\.onnx"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]
TOLERANCE = 1e-4  # max abs difference of logits
# Two stages, channels growing (shortcut A cannot shrink them), group counts dividing them.
BASE = ArchConfig(stem="cifar", stem_width=8, blocks=(1, 1), widths=(8, 16),
                  depthwise=(False, False), norm_groups=4, num_classes=5)
# Every value of every option table, so a new entry is covered without touching this file.
TABLES = {"stem": STEMS, "block": BLOCKS, "shortcut": SHORTCUTS, "activation": ACTIVATIONS,
          "norm": NORMS}
OPTION_CASES = [(field, value) for field, table in TABLES.items() for value in table]
# The options that are not table entries, each set away from its default.
OTHER_CASES = {
    "depthwise": dict(depthwise=(True, True)),
    "squeeze-excitation": dict(se_reduction=4),
    "dropout and drop-path (identity in eval)": dict(dropout=0.5, drop_path=0.5),
    "1x1 head": dict(head_hidden=12),
    "grayscale input": dict(in_channels=1),
    "leaky slope": dict(activation="leaky_relu", leaky_slope=0.3),
    "zero-init last": dict(zero_init_last=True),
    "deep stem + shortcut D + bottleneck": dict(stem="deep", shortcut="D", block="bottleneck"),
}


def card_for(cfg: ArchConfig, size: int = 32) -> ModelCard:
    c = cfg.in_channels
    pre = Preprocess(c, size, size, (0.5,) * c, (0.25,) * c)
    return replace(untrained_card(cfg), preprocess=pre)


def assert_matches_pytorch(model: nn.Module, card: ModelCard, batch: int = 3) -> bytes:
    """Export (dynamic batch, traced at 2), then compare at another batch size."""
    data = export_onnx(model, card=card)
    pre = card.preprocess
    x = torch.randn(batch, pre.channels, pre.size, pre.size,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    got = ort.InferenceSession(data).run(None, {"input": x.numpy()})[0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE
    return data


def random_model(cfg: ArchConfig, size: int = 32, seed: int = 0) -> nn.Module:
    """A network in training mode (export_onnx must export it in eval mode) with non-trivial
    norm statistics and affine terms, so eval mode and batch-norm folding both matter, and
    its logits scaled to at most 10 in magnitude, as a trained classifier's are: random
    residual sums reach logits in the hundreds, where 1e-4 is below float32's resolution."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
            if getattr(m, "affine", False):  # batch, group and instance norms
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        x = torch.randn(4, cfg.in_channels, size, size, generator=torch.Generator().manual_seed(2))
        peak = model.eval()(x).abs().max().item()
        if peak > 10:
            model.fc.weight.mul_(10 / peak)
            model.fc.bias.mul_(10 / peak)
    return model.train()


# ----- equality with PyTorch ---------------------------------------------------------------
# Each preset's exact structure at a quarter of its width: full width takes ~5 s per preset on
# two shared cores (40 s for the eight) and exercises no layer the narrow one does not.
@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_matches_pytorch(name, one_thread):
    cfg = replace(PRESETS[name], width_multiplier=0.25)
    assert_matches_pytorch(random_model(cfg, 64), card_for(cfg, 64))


@pytest.mark.parametrize("field, value", OPTION_CASES, ids=[f"{f}={v}" for f, v in OPTION_CASES])
def test_every_option_value_matches_pytorch(field, value, one_thread):
    cfg = replace(BASE, **{field: value})
    assert_matches_pytorch(random_model(cfg), card_for(cfg))


@pytest.mark.parametrize("changes", OTHER_CASES.values(), ids=OTHER_CASES.keys())
def test_every_other_option_matches_pytorch(changes, one_thread):
    cfg = replace(BASE, **changes)
    assert_matches_pytorch(random_model(cfg), card_for(cfg))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cfg=small_configs())
def test_drawn_architectures_match_pytorch(cfg, one_thread):
    assert_matches_pytorch(random_model(cfg), card_for(cfg))


def test_the_caller_network_keeps_its_mode_and_weights(one_thread):
    cfg = replace(BASE, dropout=0.5, drop_path=0.5)
    model = random_model(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, card=card_for(cfg))
    assert all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----- metadata, opsets, batch -------------------------------------------------------------
def test_stored_model_export_carries_what_is_needed_to_feed_it(with_tiny, tmp_path, one_thread):
    weights = with_tiny / "weights"
    path = export_onnx("tiny", tmp_path / "tiny.onnx", weights_dir=weights)
    assert path == tmp_path / "tiny.onnx"
    proto = onnx.load(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    sidecar = read_sidecar("tiny", weights)
    assert meta["input_preprocessed"] == "true" and "preprocessed" in meta["input"]
    assert json.loads(meta["class_names"]) == sidecar["class_names"]
    assert json.loads(meta["mean"]) == sidecar["normalization"]["mean"]
    assert json.loads(meta["std"]) == sidecar["normalization"]["std"]
    assert json.loads(meta["input_size"]) == sidecar["input_size"]
    assert int(meta["resize"]) == sidecar["resize"] and meta["channels"] == "3"
    assert ArchConfig.from_json(meta["architecture"]) == TINY
    assert meta["source_sha256"] == sidecar["sha256"] and meta["model_name"] == "tiny"
    # Feeding it by the metadata alone, with torchvision's transforms, gives the Predictor's top-1.
    transform = T.Compose([T.Resize(int(meta["resize"])),
                           T.CenterCrop(json.loads(meta["input_size"])[1:]), T.ToTensor(),
                           T.Normalize(json.loads(meta["mean"]), json.loads(meta["std"]))])
    images = [photo(name) for name in ("chelsea", "coffee", "astronaut")]
    x = torch.stack([transform(img) for img in images]).numpy()
    logits = ort.InferenceSession(str(path)).run(None, {"input": x})[0]
    predictor = Predictor.from_store("tiny", weights, engine="torch")
    tops = [r.topk.indices[0] for r in classify_images(predictor, images, k=1)]
    assert logits.argmax(1).tolist() == tops


@pytest.mark.parametrize("opset", [MIN_OPSET, 13, MAX_OPSET])
def test_requested_opset_is_the_graphs(opset, one_thread):
    cfg = replace(BASE, shortcut="A", activation="gelu", norm="group")  # slices, erf, groups
    model = random_model(cfg)
    data = export_onnx(model, card=card_for(cfg), opset=opset, dynamic_batch=False)
    proto = onnx.load_from_string(data)
    assert {o.domain: o.version for o in proto.opset_import}[""] == opset
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 32, 32]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    got = ort.InferenceSession(data).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - expected).max() <= TOLERANCE


def test_dynamic_batch_is_a_named_dimension(one_thread):
    proto = onnx.load_from_string(export_onnx(random_model(BASE), card=card_for(BASE)))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("opset", [MIN_OPSET - 1, MAX_OPSET + 1, True, "17"])
def test_opset_out_of_range_is_refused(opset):
    with pytest.raises(ModelError, match=f"from {MIN_OPSET} to {MAX_OPSET}"):
        export_onnx(BASE, opset=opset)


def test_untrained_architecture_exports_with_imagenet_preprocessing(one_thread):
    cfg = replace(BASE, in_channels=1)
    proto = onnx.load_from_string(export_onnx(cfg))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["source"] == "untrained" and meta["input_size"] == "[1, 224, 224]"
    assert json.loads(meta["class_names"]) == [f"class {i}" for i in range(5)]
    assert len(json.loads(meta["mean"])) == 1


# ----- refusals ----------------------------------------------------------------------------
class Bessel(nn.Module):
    """torch.special.bessel_j0 has no ONNX operator."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x)


def test_an_unexportable_layer_is_named(one_thread):
    model = random_model(BASE).eval()
    model.layer2[0].act1 = Bessel()
    with pytest.raises(ModelError) as caught:
        export_onnx(model, card=card_for(BASE))
    message = str(caught.value)
    assert "layer2.0.act1 (Bessel)" in message and "bessel_j0" in message
    assert isinstance(model.layer2[0].act1, Bessel) and not model.layer2[0].act1._forward_pre_hooks


def test_an_unexportable_top_level_network_is_named_as_such(one_thread):
    with pytest.raises(ModelError, match="the network cannot be exported"):
        export_onnx(Bessel(), card=card_for(BASE))
    with pytest.raises(ValueError, match="needs its card"):
        export_onnx(Bessel())


def test_unknown_model_and_unwritable_path_are_user_errors(with_tiny, tmp_path):
    with pytest.raises(ModelError, match="nope"):
        export_onnx("nope", weights_dir=with_tiny / "weights")
    (tmp_path / "file").write_text("")
    with pytest.raises(ModelError, match="cannot write"):
        export_onnx(BASE, tmp_path / "file" / "x.onnx")


# ----- CLI ---------------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resnet_explorer.export", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_the_stored_model(with_tiny, tmp_path):
    out = tmp_path / "out" / "tiny.onnx"
    done = run_cli("tiny", "--format", "onnx", "--out", str(out), "--opset", "13",
                   "--no-dynamic-batch")
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout and "opset 13" in done.stdout
    proto = onnx.load(out)
    assert {o.domain: o.version for o in proto.opset_import}[""] == 13
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


# In process (a subprocess costs seconds of imports): main()'s return value is the exit status
# of `python -m resnet_explorer.export` (sys.exit(main())), as the test above runs it.
@pytest.mark.parametrize("args, fragment", [
    (["nope", "--out", "{tmp}/x.onnx"],
     "no model named 'nope' in {tmp}/weights; stored models: tiny"),
    (["tiny", "--out", "{tmp}"], "is a folder"),
    (["tiny", "--out", "{tmp}/file/x.onnx"], "cannot write"),
    (["tiny", "--out", "{tmp}/x.onnx", "--opset", "30"], "opset must be"),
])
def test_cli_user_errors_exit_2_with_a_message(with_tiny, tmp_path, capsys, args, fragment):
    (tmp_path / "file").write_text("")
    code = cli_main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and fragment.format(tmp=tmp_path) in err


def test_cli_refuses_another_format(with_tiny, capsys):
    with pytest.raises(SystemExit) as exited:
        cli_main(["tiny", "--format", "zip", "--out", "x"])
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err


# ----- the Architecture page's download ----------------------------------------------------
def test_architecture_page_exports_the_current_architecture_on_click_only(monkeypatch,
                                                                          one_thread):
    calls: list[tuple] = []
    real_export = inference.export_onnx
    monkeypatch.setattr(inference, "export_onnx",
                        lambda *a, **k: calls.append(a) or real_export(*a, **k))
    # The download's callable, as Streamlit registers it to run on a click.
    deferred = []
    real_add = MediaFileManager.add_deferred

    def add_deferred(self, fn, *args, **kwargs):
        deferred.append(fn)
        return real_add(self, fn, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    at = open_page_at("../app_pages/architecture.py", arch=BASE)
    at.selectbox(key="aw_activation").set_value("silu").run()
    button = onnx_button(at)
    assert button.deferred_file_id and not button.disabled
    assert calls == []  # two runs of the page, no export
    proto = onnx.load_from_string(deferred[-1]())
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ArchConfig.from_json(meta["architecture"]) == replace(BASE, activation="silu")
    assert len(calls) == 1
    at.selectbox(key="aw_norm").set_value("group").run()
    at.number_input(key="aw_norm_groups").set_value(3).run()  # 3 does not divide 8: invalid
    assert not at.exception and onnx_button(at).disabled


def onnx_button(at):
    return next(b.proto for b in at.get("download_button")
                if b.proto.label == "Download ONNX (untrained)")
