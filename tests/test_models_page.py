"""AppTest of the Models page: the store table (sortable, disk used), a model's card and
downloads, imports (good and hostile files), rename, deleting several models after a
confirmation, and torchvision's ImageNet weights (where to put them, a failed download, an
upload, transfer)."""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import pickle

import torch
import torchvision
from streamlit.testing.v1 import AppTest

from resnet_explorer.arch import ArchConfig, build_model
from resnet_explorer.inference.onnx_engine import cache_key
from resnet_explorer.models import (RESNET34_IMAGENET, download_checkpoint, install_checkpoint,
                                    list_models, read_model_card, save_model, update_metrics)
from tests.inference_helpers import TINY, CreatesFile, sidecar_for, torch_bytes
from tests.page_helpers import TIMEOUT, open_page_at, texts
from ui import models_view

PAGE = "../app_pages/models.py"
FILE = RESNET34_IMAGENET.file_name


def open_page() -> AppTest:
    return open_page_at(PAGE)


def names(store_home) -> set[str]:
    return {m.name for m in list_models(store_home / "weights")}


def add_model(store_home, name: str, acc: float | None = None, **changes) -> None:
    metrics = {"val_acc": acc, "dataset": "digits"} if acc is not None else {}
    save_model(build_model(TINY), sidecar_for(name=name, metrics=metrics, **changes), name,
               store_home / "weights")


def downloads(at: AppTest) -> dict[str, str]:
    return {b.key: b.label for b in at.get("download_button")}


def test_an_empty_store_says_how_to_get_models_and_where_the_imagenet_file_goes(store_home):
    at = open_page()
    info = texts(at.info)
    assert "No models yet" in info
    assert RESNET34_IMAGENET.file_name in info and str(store_home / "weights") in info
    assert RESNET34_IMAGENET.url in info
    assert at.button(key="models_download") and at.button(key="models_transfer").disabled
    assert at.button(key="models_import").disabled  # nothing uploaded yet


def test_the_store_table_lists_each_model_with_its_card_downloads_and_disk_used(with_tiny):
    at = open_page()
    table = at.dataframe[0].value
    assert list(table["model"]) == ["tiny"] and table["classes"][0] == 3
    assert {"network", "dataset", "val acc (%)", "size (MB)", "run", "created"} <= set(table)
    assert "tiny" in at.selectbox(key="models_card").options
    assert at.get("json")  # the sidecar, in full
    card = texts(at.markdown)
    assert "# Model card: `tiny`" in card and "| SHA-256 |" in card
    assert "| Differences from resnet34-cifar |" in card
    buttons = downloads(at)
    assert {"models_dl_weights", "models_dl_sidecar", "models_dl_zip", "models_dl_card"} <= set(
        buttons)
    disk = [c.value for c in at.caption if c.value.startswith("Disk used")]
    assert disk and "weights/" in disk[0] and "(2 files)" in disk[0] and "runs/" in disk[0]
    # ONNX: exported on request, then offered (a graph ONNX Runtime runs).
    assert "models_dl_onnx" not in buttons
    at.button(key="models_onnx_prepare").click().run()
    assert not at.exception and not at.error
    assert downloads(at)["models_dl_onnx"] == "ONNX (.onnx)"
    import onnxruntime
    session = onnxruntime.InferenceSession(at.session_state["models_onnx"][1])
    assert session.get_outputs()[0].shape[-1] == 3  # the tiny model's three classes


def test_listing_and_sorting_reads_no_weights_file(store_home, monkeypatch):
    for name, acc in (("low", 0.2), ("high", 0.9), ("mid", 0.5)):
        add_model(store_home, name, acc)
    read = []
    real = pathlib.Path.read_bytes

    def watched(self):
        read.append(self.name)
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", watched)
    at = open_page()
    at.selectbox(key="models_sort").set_value("accuracy").run()
    assert list(at.dataframe[0].value["model"]) == ["high", "mid", "low"]
    at.toggle(key="models_descending").set_value(False).run()
    assert list(at.dataframe[0].value["model"]) == ["low", "mid", "high"]
    assert list(at.dataframe[0].value["val acc (%)"]) == [20.0, 50.0, 90.0]
    at.selectbox(key="models_card").set_value("mid").run()
    assert not at.exception and "50.00%" in texts(at.markdown)
    # Downloads are made on click: drawing three models' buttons read no weights.
    assert not [n for n in read if n.endswith(".safetensors")], read


def test_several_models_are_deleted_at_once_after_a_confirmation(with_tiny):
    add_model(with_tiny, "second", 0.5)
    add_model(with_tiny, "third", 0.7)
    at = open_page()
    assert at.button(key="models_delete").disabled  # nothing chosen
    at.multiselect(key="models_delete_pick").set_value(["tiny", "second"]).run()
    assert at.button(key="models_delete").disabled  # not without the confirmation
    at.checkbox(key="models_confirm_delete").check().run()
    assert "delete 2 models" in at.checkbox(key="models_confirm_delete").label
    # Changing the choice withdraws the consent given for the previous one.
    at.multiselect(key="models_delete_pick").set_value(["tiny", "second", "third"]).run()
    assert not at.checkbox(key="models_confirm_delete").value
    assert at.button(key="models_delete").disabled and names(with_tiny) == {
        "tiny", "second", "third"}
    at.multiselect(key="models_delete_pick").set_value(["tiny", "second"]).run()
    at.checkbox(key="models_confirm_delete").check().run()
    cache = with_tiny / "weights" / ".onnx"  # the Predictor's exports, keyed by weights hash
    cache.mkdir()
    for name in ("tiny", "third"):
        key = cache_key(read_model_card(name, with_tiny / "weights"))
        (cache / f"{key}.0123.onnx").write_bytes(b"onnx")
    at.button(key="models_delete").click().run()
    assert not at.exception
    assert "Deleted tiny, second." in texts(at.success) and names(with_tiny) == {"third"}
    third = cache_key(read_model_card("third", with_tiny / "weights"))
    assert [p.name for p in cache.iterdir()] == [f"{third}.0123.onnx"]
    # The choice and the consent went with the models.
    assert at.multiselect(key="models_delete_pick").value == []
    assert not at.checkbox(key="models_confirm_delete").value
    assert list(at.dataframe[0].value["model"]) == ["third"]


def test_import_a_bad_file_then_a_good_one_rename_and_delete(with_tiny, tmp_path):
    target = tmp_path / "pwned.txt"
    at = open_page()
    evil = pickle.dumps(CreatesFile(target))
    at.file_uploader(key="models_import_files").set_value(
        [("model.pth", evil, "application/octet-stream")]).run()
    at.button(key="models_import").click().run()
    assert not at.exception
    assert "Not imported" in texts(at.error) and not target.exists()
    assert names(with_tiny) == {"tiny"}

    at.session_state["arch"] = TINY  # the current architecture a bare .pth is read as
    at.file_uploader(key="models_import_files").set_value(
        [("net.pth", torch_bytes(build_model(TINY).state_dict()), "application/octet-stream")])
    at.text_input(key="models_import_name").input("imported-net").run()
    at.button(key="models_import").click().run()
    assert not at.exception
    assert "Imported **imported-net**" in texts(at.success)
    assert names(with_tiny) == {"tiny", "imported-net"}

    at.selectbox(key="models_target").set_value("imported-net")
    at.text_input(key="models_new_name").input("renamed-net").run()
    at.button(key="models_rename").click().run()
    assert "Renamed imported-net to renamed-net" in texts(at.success)
    assert names(with_tiny) == {"tiny", "renamed-net"}

    at.text_input(key="models_new_name").input("tiny").run()  # a name in use is refused
    at.selectbox(key="models_target").set_value("renamed-net").run()
    at.button(key="models_rename").click().run()
    assert "already exists" in texts(at.error) and names(with_tiny) == {"tiny", "renamed-net"}

    at.multiselect(key="models_delete_pick").set_value(["renamed-net"]).run()
    assert at.button(key="models_delete").disabled  # not without the confirmation
    at.checkbox(key="models_confirm_delete").check().run()
    at.button(key="models_delete").click().run()
    assert "Deleted renamed-net" in texts(at.success)
    assert names(with_tiny) == {"tiny"}
    # The confirmation was for that model: the next one needs its own.
    assert not at.checkbox(key="models_confirm_delete").value
    assert at.button(key="models_delete").disabled


def test_a_failed_imagenet_download_says_what_happened_once_and_offers_the_upload(
        store_home, monkeypatch):
    offline = dataclasses.replace(RESNET34_IMAGENET, url="http://127.0.0.1:9/" + FILE)
    monkeypatch.setattr(models_view, "download_checkpoint",
                        lambda **kw: download_checkpoint(offline, **kw))
    at = open_page()
    assert "upload" in texts(at.info)  # the route for a server without internet access
    # The transfer button is greyed out, and the page says why.
    assert at.button(key="models_transfer").disabled
    assert "Needs the ImageNet weights" in texts(at.caption)
    at.button(key="models_download").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("The download failed (") and "Upload the file" in error.value
    assert str(store_home / "weights") not in error.value  # the box above says where, once
    assert not at.get("progress")  # no empty "Downloading…" bar left behind


def test_an_uploaded_imagenet_file_is_checked_and_saved(store_home, monkeypatch):
    torch.manual_seed(0)
    data = torch_bytes(torchvision.models.resnet34().state_dict())
    at = open_page()
    assert at.button(key="models_imagenet_save").disabled  # nothing uploaded yet
    at.file_uploader(key="models_imagenet_file").set_value(
        [("resnet34.pth", data, "application/octet-stream")]).run()
    at.button(key="models_imagenet_save").click().run()
    assert "Not saved" in texts(at.error) and "SHA-256" in texts(at.error)
    assert not (store_home / "weights" / FILE).exists()
    # The file torchvision publishes (here: its hash is this file's).
    spec = dataclasses.replace(RESNET34_IMAGENET,
                               hash_prefix=hashlib.sha256(data).hexdigest()[:8])
    monkeypatch.setattr(models_view, "install_checkpoint",
                        lambda data, **kw: install_checkpoint(data, spec, **kw))
    at.button(key="models_imagenet_save").click().run()
    assert not at.exception and "Verified and saved" in texts(at.success)
    assert "are on this machine" in texts(at.success)
    assert (store_home / "weights" / FILE).read_bytes() == data
    assert not at.button(key="models_transfer").disabled


def test_imagenet_weights_transfer_into_the_current_architecture(store_home):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet34().state_dict(),
               store_home / "weights" / RESNET34_IMAGENET.file_name)
    at = open_page()
    assert "are on this machine" in texts(at.success)
    at.session_state["arch"] = ArchConfig(blocks=(1, 1, 1, 1), se_reduction=16, num_classes=10)
    at.text_input(key="models_transfer_name").input("se-from-imagenet").run()
    at.button(key="models_transfer").click().run()
    assert not at.exception
    message = texts(at.success)
    assert "Saved **se-from-imagenet**" in message and "skipped for shape" in message
    assert "fc.weight: (1000, 512) → (10, 512)" in message and "Re-initialised" in message
    card = read_model_card("se-from-imagenet", store_home / "weights")
    assert card.source == "imagenet" and card.preprocess.resize == 256
    at.button(key="models_transfer").click().run()  # the same name again
    assert "Not transferred" in texts(at.error) and "already exists" in texts(at.error)


def test_the_models_page_is_in_the_navigation_after_inference(store_home):
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/models.py").run()
    assert not at.exception and at.title[0].value == "Models"
    from ui.nav import PAGES
    titles = [p.title for p in PAGES]
    assert titles.index("Models") == titles.index("Inference") + 1


def test_the_card_follows_its_sidecar_when_a_run_adds_its_last_epoch(store_home):
    add_model(store_home, "best", 0.8)
    at = open_page()
    assert "| Last validation accuracy | — |" in texts(at.markdown)
    # What the trainer does when the run ends: the sidecar changes, the weights do not.
    update_metrics("best", {"last_epoch": 3, "last_val_acc": 0.5}, store_home / "weights")
    at.run()
    assert not at.exception
    assert "| Last validation accuracy | 50.00% (epoch 3) |" in texts(at.markdown)
