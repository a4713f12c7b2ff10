"""The model store as the Models and Inference pages use it: list, load, rename, delete, import."""

from __future__ import annotations

import io
import json

import pytest
import torch
from safetensors.torch import save as save_safetensors

from resnet_explorer.arch import ArchConfig, build_model
from resnet_explorer.common import ModelError
from resnet_explorer.inference import Predictor
from resnet_explorer.models import ModelCard, import_model, store
from tests.inference_helpers import TINY, sidecar_for


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "weights"


def save_tiny(folder, name: str = "tiny", seed: int = 0, **changes) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(TINY)
    store.save_model(model, sidecar_for(name=name, **changes), name, folder)
    return model


def test_list_models_describes_each_model_and_flags_broken_ones(folder):
    save_tiny(folder, "first", metrics={"best_val_acc": 0.875}, run_id="run-7")
    save_tiny(folder, "second")
    (folder / "orphan.safetensors").write_bytes(b"\0" * 16)  # no sidecar
    (folder / "bad.safetensors").write_bytes(b"\0" * 16)
    (folder / "bad.json").write_text("{not json")
    (folder / ".first.safetensors.abc.tmp").write_bytes(b"")  # a killed writer's leftover
    models = {m.name: m for m in store.list_models(folder)}
    assert set(models) == {"first", "second", "orphan", "bad"}
    first = models["first"]
    assert first.card.class_names == ("k0", "k1", "k2") and first.card.run_id == "run-7"
    assert "3 classes" in first.summary and "val acc 87.5%" in first.summary
    assert first.card.preprocess.size == 32 and first.card.arch == TINY
    assert models["orphan"].card is None and "missing" in models["orphan"].problem
    assert models["bad"].card is None and "not valid JSON" in models["bad"].problem
    assert store.list_models(folder / "absent") == []


def test_fingerprint_changes_when_a_model_file_is_replaced(folder):
    save_tiny(folder, "m", seed=0)
    before = store.list_models(folder)[0].fingerprint
    save_tiny(folder, "m", seed=1)
    assert store.list_models(folder)[0].fingerprint != before


def test_rename_moves_both_files_and_updates_the_name_inside(folder):
    model = save_tiny(folder, "old")
    save_tiny(folder, "taken")
    with pytest.raises(ModelError, match="already exists"):
        store.rename_model("old", "taken", folder)
    with pytest.raises(ModelError, match="model name"):
        store.rename_model("old", "../escape", folder)
    store.rename_model("old", "new", folder)
    assert sorted(p.name for p in folder.iterdir()) == ["new.json", "new.safetensors",
                                                        "taken.json", "taken.safetensors"]
    assert json.loads((folder / "new.json").read_text())["name"] == "new"
    loaded, sidecar = store.load_model("new", folder)
    torch.testing.assert_close(loaded.fc.weight, model.fc.weight)
    with pytest.raises(ModelError, match="no model named"):
        store.rename_model("old", "again", folder)


def test_delete_removes_the_model(folder):
    save_tiny(folder, "gone")
    store.delete_model("gone", folder)
    assert list(folder.iterdir()) == [] and store.list_models(folder) == []
    with pytest.raises(ModelError, match="no model named"):
        store.delete_model("gone", folder)


def test_a_file_system_that_refuses_is_a_message_not_a_traceback(folder, monkeypatch):
    save_tiny(folder, "kept")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(folder), "unlink", refuse)
    monkeypatch.setattr(type(folder), "hardlink_to", refuse)
    monkeypatch.setattr(type(folder), "replace", refuse)
    with pytest.raises(ModelError, match="'kept' could not be deleted: Permission denied"):
        store.delete_model("kept", folder)
    with pytest.raises(ModelError, match="'kept' could not be renamed: Permission denied"):
        store.rename_model("kept", "moved", folder)


@pytest.mark.parametrize("recorded, shown", [
    (0.9831, 0.9831), (1, 1.0), (10**400, None), (float("nan"), None), (1.5, None),
    (-0.1, None), (True, None), ("98%", None), (None, None),
])
def test_a_card_reports_only_an_accuracy_that_is_a_fraction(recorded, shown):
    # Sidecars can be uploaded: whatever they hold must not break formatting on a page.
    card = ModelCard.from_sidecar(sidecar_for(name="m", metrics={"best_val_acc": recorded}))
    assert card.accuracy == shown
    assert ("val acc" in card.summary()) == (shown is not None)


def test_predictor_from_store_uses_the_sidecar(folder):
    model = save_tiny(folder, "p")
    predictor = Predictor.from_store("p", folder)
    assert predictor.class_names == ("k0", "k1", "k2") and predictor.card.preprocess.resize == 36
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(predictor._model(x), model.eval()(x), rtol=1e-4, atol=1e-5)


def test_import_saves_a_checked_model_and_never_overwrites(folder):
    torch.manual_seed(3)
    state = build_model(TINY).state_dict()
    files = [("net.safetensors", save_safetensors(state)),
             ("net.json", json.dumps(sidecar_for(name="net")).encode())]
    card, notes = import_model(files, ArchConfig(), weights_dir=folder)
    assert card.name == "net" and card.source == "imported" and len(card.sha256) == 64
    loaded, _ = store.load_model("net", folder)
    torch.testing.assert_close(loaded.state_dict()["fc.weight"], state["fc.weight"])
    with pytest.raises(ModelError, match="already exists"):
        import_model(files, ArchConfig(), weights_dir=folder)
    buf = io.BytesIO()
    torch.save(state, buf)
    card, notes = import_model([("net.pth", buf.getvalue())], TINY, name="net-2",
                               weights_dir=folder)
    assert card.name == "net-2" and notes and {m.name for m in store.list_models(folder)} == {
        "net", "net-2"}
