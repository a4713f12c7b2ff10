"""AppTest of the Inference page: mixed good and bad uploads, camera, ImageNet, model management."""

from __future__ import annotations

import io
import pickle

import pytest
import torch
import torchvision
from PIL import Image
from skimage import data as skdata
from streamlit.testing.v1 import AppTest
from torchvision.models import ResNet34_Weights

from resnet_explorer.arch import ArchConfig, build_model
from resnet_explorer.models import RESNET34_IMAGENET, store
from tests.inference_helpers import TINY, CreatesFile, encode, sidecar_for

TIMEOUT = 90


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty model store and torch hub cache for the page to use."""
    monkeypatch.setenv("RESNET_EXPLORER_HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "weights").mkdir()
    return tmp_path


@pytest.fixture
def with_tiny(home):
    torch.manual_seed(0)
    store.save_model(build_model(TINY), sidecar_for(name="tiny"), "tiny", home / "weights")
    return home


def open_page() -> AppTest:
    at = AppTest.from_file("../app_pages/inference.py", default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


@pytest.fixture(scope="module")
def photo_jpeg() -> bytes:
    return encode(Image.fromarray(skdata.chelsea()), "JPEG", quality=90)


def test_without_imagenet_weights_the_page_says_which_file_to_put_where(home):
    at = open_page()
    info = texts(at.info)
    assert RESNET34_IMAGENET.file_name in info and str(home / "weights") in info
    assert RESNET34_IMAGENET.url in info
    assert any(b.key == "inf_download" for b in at.button)


def test_a_batch_of_good_and_bad_files_shows_predictions_and_a_message_each(with_tiny, photo_jpeg):
    at = open_page()
    at.selectbox(key="inf_model").set_value("tiny").run()
    at.file_uploader(key="inf_files").set_value([
        ("cat.jpg", photo_jpeg, "image/jpeg"),
        ("bad.png", b"junk", "image/png"),
        ("grey.png", encode(Image.fromarray(skdata.camera())), "image/png"),
        ("empty.png", b"", "image/png"),
    ]).run()
    assert not at.exception
    errors = texts(at.error)
    assert "bad.png: not a supported image" in errors and "empty.png: the file is empty" in errors
    assert len(at.error) == 2
    assert "2 of 4 image(s) classified" in texts(at.markdown)
    assert len(at.get("plotly_chart")) == 2
    captions = [c for img in at.image for c in img.captions]
    assert len(captions) == 2 and captions[0].startswith("cat.jpg: k")
    assert len(at.get("download_button")) == 1

    at.toggle(key="inf_cam").set_value(True).run()  # Grad-CAM overlays for the same files
    assert not at.exception and len(at.get("plotly_chart")) == 2 and len(at.error) == 2

    at.toggle(key="inf_use_camera").set_value(True).run()
    at.camera_input(key="inf_camera").set_value(("photo.jpg", photo_jpeg, "image/jpeg")).run()
    assert not at.exception
    assert "3 of 5 image(s) classified" in texts(at.markdown)


def test_imagenet_weights_from_the_weights_folder_classify_like_torchvision(home, photo_jpeg,
                                                                             one_thread):
    torch.manual_seed(0)
    reference = torchvision.models.resnet34().eval()
    torch.save(reference.state_dict(), home / "weights" / RESNET34_IMAGENET.file_name)
    at = open_page()
    assert "1000 classes" in texts(at.caption)
    at.file_uploader(key="inf_files").set_value([("cat.jpg", photo_jpeg, "image/jpeg")]).run()
    assert not at.exception
    x = ResNet34_Weights.IMAGENET1K_V1.transforms()(Image.open(io.BytesIO(photo_jpeg)))[None]
    with torch.no_grad():
        best = RESNET34_IMAGENET.categories[int(reference(x).argmax())]
    assert "1 of 1 image(s) classified" in texts(at.markdown)
    assert at.image[0].captions[0].startswith(f"cat.jpg: {best} (")

    # Transfer the same weights into a modified architecture, saved as a new model.
    at.session_state["arch"] = ArchConfig(blocks=(1, 1, 1, 1), se_reduction=16, num_classes=10)
    at.text_input(key="inf_transfer_name").input("se-from-imagenet").run()
    at.button(key="inf_transfer").click().run()
    assert not at.exception
    message = texts(at.success)
    assert "Saved **se-from-imagenet**" in message and "skipped for shape" in message
    assert "fc.weight: (1000, 512) → (10, 512)" in message and "Re-initialised" in message
    card = store.read_model_card("se-from-imagenet", home / "weights")
    assert card.source == "imagenet" and card.preprocess.resize == 256


def test_import_rename_and_delete_through_the_page(with_tiny, tmp_path):
    target = tmp_path / "pwned.txt"
    at = open_page()
    evil = pickle.dumps(CreatesFile(target))
    at.file_uploader(key="inf_import_files").set_value(
        [("model.pth", evil, "application/octet-stream")])
    at.run()
    at.button(key="inf_import").click().run()
    assert "Not imported" in texts(at.error) and not target.exists()

    buf = io.BytesIO()
    torch.save(build_model(TINY).state_dict(), buf)
    at.session_state["arch"] = TINY  # the current architecture a bare .pth is read as
    at.file_uploader(key="inf_import_files").set_value(
        [("net.pth", buf.getvalue(), "application/octet-stream")])
    at.text_input(key="inf_import_name").input("imported-net")
    at.run()
    at.button(key="inf_import").click().run()
    assert not at.exception
    assert "Imported **imported-net**" in texts(at.success)
    assert any(o.startswith("imported-net — ") for o in at.selectbox(key="inf_model").options)

    at.selectbox(key="inf_manage_model").set_value("imported-net")
    at.text_input(key="inf_new_name").input("renamed-net").run()
    at.button(key="inf_rename").click().run()
    assert "Renamed imported-net to renamed-net" in texts(at.success)
    assert {m.name for m in store.list_models(with_tiny / "weights")} == {"tiny", "renamed-net"}

    at.selectbox(key="inf_manage_model").set_value("renamed-net").run()
    at.checkbox(key="inf_confirm_delete").check().run()
    at.button(key="inf_delete").click().run()
    assert "Deleted renamed-net" in texts(at.success)
    assert [m.name for m in store.list_models(with_tiny / "weights")] == ["tiny"]
