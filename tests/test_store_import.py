"""Importing uploaded model files: what is accepted, what is refused, and that nothing runs."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile

import pytest
import torch
from safetensors.torch import save as save_safetensors

from resnet_explorer.arch import BASELINE, ArchConfig, build_model
from resnet_explorer.common import ModelError
from resnet_explorer.models import ModelCard, check_model_name, prepare_import
from tests.inference_helpers import TINY, CreatesFile, sidecar_for, torch_bytes


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model(TINY).state_dict()


# ----- accepted --------------------------------------------------------------------------------
def test_safetensors_with_sidecar_is_checked_and_accepted(state):
    data = save_safetensors(state)
    side = sidecar_for(sha256=hashlib.sha256(data).hexdigest())
    files = [("tiny.safetensors", data), ("tiny.json", json.dumps(side).encode())]
    imported = prepare_import(files, BASELINE)
    assert imported.card.name == "tiny" and imported.card.source == "imported"
    assert imported.card.class_names == ("k0", "k1", "k2") and imported.notes == []
    for k, v in state.items():
        torch.testing.assert_close(imported.state_dict[k], v)


def test_file_kinds_are_told_apart_by_content_whatever_their_first_bytes(state):
    # A safetensors header length whose low byte is 0x80 (a pickle's first byte), and a
    # compact sorted sidecar with "{" at offset 8 (where a safetensors header starts).
    pad = 0
    while (data := save_safetensors(state, metadata={"pad": "x" * pad}))[0] != 0x80:
        pad += 1
    side = json.dumps(sidecar_for(), sort_keys=True, separators=(",", ":")).encode()
    assert side[8:9] == b"{"
    imported = prepare_import([("t.safetensors", data), ("t.json", side)], BASELINE)
    assert imported.card.arch == TINY


def test_half_precision_safetensors_are_cast_to_the_models_dtypes(state):
    halves = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    imported = prepare_import([("t.safetensors", save_safetensors(halves)),
                               ("t.json", json.dumps(sidecar_for()).encode())], BASELINE,
                              name="renamed")
    assert imported.card.name == "renamed"
    assert imported.state_dict["fc.weight"].dtype == torch.float32


def test_pth_without_sidecar_takes_the_current_architecture_and_says_so(state):
    nested = {"epoch": 3, "state_dict": state}  # a common training-checkpoint layout
    imported = prepare_import([("My Model (v2).pth", torch_bytes(nested))], TINY)
    assert imported.card.arch == TINY and imported.card.name == "My-Model--v2"
    assert "No sidecar" in imported.notes[0] and "numbered class names" in imported.notes[0]


def test_torchvision_resnet34_pth_gets_imagenet_names_and_preprocessing():
    import torchvision

    sd = torchvision.models.resnet34().state_dict()
    current = ArchConfig(num_classes=10)  # the Architecture page's choice, 10 classes
    imported = prepare_import([("resnet34-b627a593.pth", torch_bytes(sd))], current)
    card = imported.card
    assert card.arch == BASELINE  # the class count comes from the tensors
    assert card.class_names[0] == "tench" and card.preprocess.resize == 256
    assert "ImageNet class names" in imported.notes[0]


# ----- refused ---------------------------------------------------------------------------------
def test_code_running_pickles_are_refused_and_nothing_runs(tmp_path, state):
    target = tmp_path / "pwned.txt"
    payloads = {
        "evil.pth": torch_bytes({**state, "fc.weight": CreatesFile(target)}),  # torch.save zip
        "evil.pt": pickle.dumps(CreatesFile(target)),  # a bare pickle stream
        "evil-nested.pth": torch_bytes({"state_dict": state, "extra": CreatesFile(target)}),
    }
    messages = {}
    for name, data in payloads.items():
        with pytest.raises(ModelError) as info:
            prepare_import([(name, data)], TINY)
        messages[name] = str(info.value)
    assert not target.exists(), "a payload ran"
    assert "could run code" in messages["evil.pth"] and "open" in messages["evil.pth"]
    assert "bare pickle" in messages["evil.pt"]
    # Control: the same payload, unpickled without protection, does create the file.
    pickle.loads(payloads["evil.pt"])
    assert target.exists()


def _compressed_torch_zip(state) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(torch_bytes(state)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item.filename, src.read(item))
    return out.getvalue()


WIDER = ArchConfig.from_dict({**TINY.to_dict(), "widths": [8, 32]})


def _with(state, **changes):
    return {**state, **changes}


@pytest.mark.parametrize("files, expected", [
    (lambda s: [("x.onnx", b"\x08\x07\x12\x04onnx")], "not a model file"),
    (lambda s: [("x.json", json.dumps(sidecar_for()).encode())], "no weights file"),
    (lambda s: [("x.safetensors", save_safetensors(s))], "needs its .json sidecar"),
    (lambda s: [("a.pth", torch_bytes(s)), ("b.pth", torch_bytes(s))], "one weights file"),
    (lambda s: [("x.pth", b"PK\x03\x04 not really a zip")], "damaged"),
    (lambda s: [("x.pth", _compressed_torch_zip(s))], "compressed members"),
    (lambda s: [("x.pth", torch_bytes([1, 2, 3]))], "no state dict"),
    (lambda s: [("x.pth", torch_bytes({"a": 1}))], "not named tensors"),
    (lambda s: [("x.pth", torch_bytes(_with(s, extra=torch.zeros(1))))], "not in the architecture"),
    (lambda s: [("x.pth", torch_bytes({k: v for k, v in s.items() if k != "bn1.bias"}))],
     "missing, e.g. bn1.bias"),
    (lambda s: [("x.pth", torch_bytes(_with(s, **{"layer1.0.conv1.weight":
                                                   torch.zeros(8, 8, 1, 1)})))], "shape mismatch"),
    (lambda s: [("x.pth", torch_bytes(_with(s, **{"bn1.weight": torch.full((8,), torch.nan)})))],
     "NaN or infinite"),
    (lambda s: [("x.pth", torch_bytes(_with(s, **{"bn1.weight": torch.ones(8).long()})))],
     "dtype"),
    # 4 kB on disk, gigabytes once made contiguous: views must not grow on import.
    (lambda s: [("x.pth", torch_bytes(_with(s, **{"fc.weight": torch.zeros(1).expand_as(
        s["fc.weight"])})))], "view larger than its stored data"),
    (lambda s: [("x.pth", torch_bytes(_with(s, **{"bn1.weight": s["bn1.weight"].to("meta")})))],
     "not a dense CPU tensor"),
    (lambda s: [("x.pth", torch_bytes(_with(s, **{"fc.weight": s["fc.weight"].to_sparse()})))],
     "not a dense CPU tensor"),
    (lambda s: [("x.safetensors", save_safetensors(s)[:500]),
                ("x.json", json.dumps(sidecar_for()).encode())], "damaged"),
    (lambda s: [("x.safetensors", save_safetensors(s)),
                ("x.json", json.dumps(sidecar_for(sha256="0" * 64)).encode())],
     "does not match the weights file"),
    (lambda s: [("x.safetensors", save_safetensors(s)),
                ("x.json", json.dumps(sidecar_for(class_names=["a"])).encode())],
     "class_names has 1 entries"),
    (lambda s: [("x.safetensors", save_safetensors(s)),
                ("x.json", b'{"format": "resnet-explorer/1", "arch": NaN}')], "not allowed"),
    (lambda s: [("x.safetensors", save_safetensors(s)),
                ("x.json", json.dumps(sidecar_for(cfg=WIDER)).encode())],
     "shape mismatch"),
], ids=["unknown-format", "sidecar-only", "safetensors-alone", "two-weights", "bad-zip",
        "compressed-zip", "not-a-mapping", "non-tensor-values", "extra-tensor", "missing-tensor",
        "wrong-shape", "nan", "int-dtype", "expanded-view", "meta", "sparse",
        "truncated-safetensors", "sha-mismatch",
        "class-count", "nan-json", "sidecar-arch-mismatch"])
def test_bad_uploads_are_refused_with_a_reason(state, files, expected):
    with pytest.raises(ModelError, match=expected):
        prepare_import(files(state), TINY)


def test_safetensors_header_is_checked_before_tensors_are_loaded(state, monkeypatch):
    import resnet_explorer.models.importing as mi

    def never(_data):
        raise AssertionError("tensors were materialised for a mismatching file")

    monkeypatch.setattr(mi, "load_safetensors", never)
    wrong = save_safetensors({**state, "fc.weight": torch.zeros(5, 16)})
    with pytest.raises(ModelError, match="fc.weight: file \\(5, 16\\)"):
        prepare_import([("x.safetensors", wrong), ("x.json", json.dumps(sidecar_for()).encode())],
                       TINY)


# ----- names and sidecars ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "", "x" * 81, "con sole", "end.",
                                  "nul\x00", 7])
def test_unsafe_model_names_are_refused(name):
    with pytest.raises(ModelError, match="model name"):
        check_model_name(name)


def test_sidecar_problems_are_listed_together():
    side = sidecar_for(input_size=[1, 32, 32], normalization={"mean": [0, 0, 0], "std": [1, 0, 1]},
                       source="stolen")
    with pytest.raises(ModelError) as info:
        ModelCard.from_sidecar(side)
    text = str(info.value)
    assert "3 channels" not in text and "network takes 3" in text and "source must be" in text
    side = sidecar_for(normalization={"mean": [0, 0, 0], "std": [1, 0, 1]})
    with pytest.raises(ModelError, match="std must be positive"):
        ModelCard.from_sidecar(side)
    card = ModelCard.from_sidecar(sidecar_for())
    assert ModelCard.from_sidecar(card.to_sidecar()) == card
