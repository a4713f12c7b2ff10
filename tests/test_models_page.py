"""AppTest of the Models page: the store table, imports (good and hostile files), rename,
delete with confirmation, and torchvision's ImageNet weights (where to put them, transfer)."""

from __future__ import annotations

import pickle

import torch
import torchvision
from streamlit.testing.v1 import AppTest

from resnet_explorer.arch import ArchConfig, build_model
from resnet_explorer.models import RESNET34_IMAGENET, list_models, read_model_card
from tests.inference_helpers import TINY, CreatesFile, torch_bytes
from tests.page_helpers import TIMEOUT, open_page_at, texts

PAGE = "../app_pages/models.py"


def open_page() -> AppTest:
    return open_page_at(PAGE)


def names(store_home) -> set[str]:
    return {m.name for m in list_models(store_home / "weights")}


def test_an_empty_store_says_how_to_get_models_and_where_the_imagenet_file_goes(store_home):
    at = open_page()
    info = texts(at.info)
    assert "No models yet" in info
    assert RESNET34_IMAGENET.file_name in info and str(store_home / "weights") in info
    assert RESNET34_IMAGENET.url in info
    assert at.button(key="models_download") and at.button(key="models_transfer").disabled
    assert at.button(key="models_import").disabled  # nothing uploaded yet


def test_the_store_table_lists_each_model_with_its_card(with_tiny):
    at = open_page()
    table = at.dataframe[0].value
    assert list(table["model"]) == ["tiny"] and table["classes"][0] == 3
    assert "tiny" in at.selectbox(key="models_card").options
    assert at.get("json")  # the sidecar, in full


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

    assert at.button(key="models_delete").disabled  # not without the confirmation
    at.checkbox(key="models_confirm_delete").check().run()
    at.button(key="models_delete").click().run()
    assert "Deleted renamed-net" in texts(at.success)
    assert names(with_tiny) == {"tiny"}
    # The confirmation was for that model: the next one needs its own.
    assert not at.checkbox(key="models_confirm_delete").value
    assert at.button(key="models_delete").disabled


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
