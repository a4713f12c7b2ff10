"""AppTest of the Inference page: mixed good and bad uploads, camera, ImageNet weights.

Model management (import, rename, delete, download, transfer) is the Models page:
tests/test_models_page.py."""

from __future__ import annotations

import io

import pytest
import torch
import torchvision
from PIL import Image
from skimage import data as skdata
from streamlit.testing.v1 import AppTest
from torchvision.models import ResNet34_Weights

from resnet_explorer.models import RESNET34_IMAGENET, delete_model
from tests.inference_helpers import encode
from tests.page_helpers import open_page_at, texts

PAGE = "../app_pages/inference.py"


def open_page() -> AppTest:
    return open_page_at(PAGE)


@pytest.fixture(scope="module")
def photo_jpeg() -> bytes:
    return encode(Image.fromarray(skdata.chelsea()), "JPEG", quality=90)


def test_without_imagenet_weights_the_page_points_to_the_models_page(store_home):
    at = open_page()
    assert "Models page" in texts(at.info)
    assert not at.error


def test_a_model_removed_meanwhile_falls_back_to_the_first_entry(with_tiny):
    at = open_page()
    at.selectbox(key="inf_model").set_value("tiny").run()
    delete_model("tiny", with_tiny / "weights")
    at.run()
    assert not at.exception
    assert at.selectbox(key="inf_model").value == "imagenet (torchvision)"


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


def test_imagenet_weights_from_the_weights_folder_classify_like_torchvision(store_home, photo_jpeg,
                                                                             one_thread):
    torch.manual_seed(0)
    reference = torchvision.models.resnet34().eval()
    torch.save(reference.state_dict(), store_home / "weights" / RESNET34_IMAGENET.file_name)
    at = open_page()
    assert "1000 classes" in texts(at.caption)
    at.file_uploader(key="inf_files").set_value([("cat.jpg", photo_jpeg, "image/jpeg")]).run()
    assert not at.exception
    x = ResNet34_Weights.IMAGENET1K_V1.transforms()(Image.open(io.BytesIO(photo_jpeg)))[None]
    with torch.no_grad():
        best = RESNET34_IMAGENET.categories[int(reference(x).argmax())]
    assert "1 of 1 image(s) classified" in texts(at.markdown)
    assert at.image[0].captions[0].startswith(f"cat.jpg: {best} (")
