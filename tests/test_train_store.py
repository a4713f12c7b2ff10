"""Model store save/load: the sidecar schema, integrity checks and atomic writes."""

from __future__ import annotations

import json

import pytest
import torch

from resnet_explorer.arch import build_model
from resnet_explorer.common import ModelError
from resnet_explorer.datasets import Preprocess
from resnet_explorer.models import store
from tests.train_helpers import TINY_ARCH, TINY_TRAIN


def sidecar(**changes) -> dict:
    pre = Preprocess(channels=1, size=8, resize=8, mean=(0.3,), std=(0.4,))
    return {"arch": TINY_ARCH.to_dict(), "train": TINY_TRAIN.to_dict(),
            "class_names": [str(i) for i in range(10)], **pre.to_sidecar(),
            "metrics": {"val_acc": 0.5}, "run_id": "r1", "source": "trained", **changes}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY_ARCH)
    with torch.no_grad():  # non-trivial batch-norm statistics, so buffers matter too
        model.bn1.running_mean.uniform_()
    store.save_model(model, sidecar(), "tiny", tmp_path)
    return model.eval(), tmp_path


def test_round_trip_gives_identical_outputs_and_a_complete_sidecar(saved):
    model, folder = saved
    loaded, side = store.load_model("tiny", folder)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert side["format"] == "resnet-explorer/1" and side["name"] == "tiny"
    assert side["input_size"] == [1, 8, 8] and side["resize"] == 8
    assert len(side["sha256"]) == 64 and side["created"].endswith("+00:00")
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.json", "tiny.safetensors"]


def test_weights_that_do_not_match_their_sidecar_are_refused(saved):
    _, folder = saved
    other = build_model(TINY_ARCH)
    store.save_model(other, sidecar(), "other", folder)
    (folder / "tiny.safetensors").write_bytes((folder / "other.safetensors").read_bytes())
    with pytest.raises(ModelError, match="does not match its sidecar"):
        store.load_model("tiny", folder)


def test_wrong_shapes_non_finite_values_and_bad_names_are_refused(saved, tmp_path):
    model, _ = saved
    state = dict(model.state_dict())
    state["fc.weight"] = torch.zeros(3, 16)
    with pytest.raises(ModelError, match=r"fc.weight: file \(3, 16\), architecture \(10, 16\)"):
        store.save_model(state, sidecar(), "bad", tmp_path / "x")
    state = dict(model.state_dict())
    state["fc.bias"] = torch.full((10,), float("nan"))
    with pytest.raises(ModelError, match="NaN"):
        store.save_model(state, sidecar(), "bad", tmp_path / "x")
    with pytest.raises(ModelError, match="class_names has 3 entries"):
        store.save_model(model, sidecar(class_names=["a", "b", "c"]), "bad", tmp_path / "x")
    for name in ("../up", "a/b", ".hidden", ""):
        with pytest.raises(ModelError, match="model name"):
            store.save_model(model, sidecar(), name, tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing written for a refused save


def test_edited_sidecar_that_renames_the_model_is_refused(saved):
    _, folder = saved
    data = json.loads((folder / "tiny.json").read_text())
    data["name"] = "someone-else"
    (folder / "tiny.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="names it"):
        store.load_model("tiny", folder)


def test_shared_and_strided_tensors_are_saved_as_plain_copies(saved, tmp_path):
    model, _ = saved
    state = dict(model.state_dict())
    base = torch.randn(170)
    state["fc.weight"] = base[:160].view(10, 16)  # contiguous views sharing one buffer,
    state["fc.bias"] = base[160:]  # which safetensors refuses as they are
    state["bn1.weight"] = state["bn1.bias"] = torch.rand(8)  # tied tensors
    store.save_model(state, sidecar(), "views", tmp_path)
    loaded, _ = store.load_model("views", tmp_path)
    assert torch.equal(loaded.fc.weight, base[:160].view(10, 16))
    assert torch.equal(loaded.fc.bias, base[160:]) and torch.equal(loaded.bn1.bias, state["bn1.bias"])


def test_a_save_that_must_not_overwrite_never_replaces_an_existing_model(saved):
    model, folder = saved
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    other = build_model(TINY_ARCH)  # different weights, same name
    with pytest.raises(ModelError, match="already exists"):
        store.save_model(other, sidecar(), "tiny", folder, overwrite=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temp file either
    store.save_model(other, sidecar(), "tiny", folder)  # the trainer's -best/-last updates
    assert store.load_model("tiny", folder)[0].state_dict()["fc.weight"].equal(
        other.state_dict()["fc.weight"])
