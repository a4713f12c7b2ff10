"""AppTest of the Inference page: the model a session opens on, what a model expects (input
size, training images, inverting), Grad-CAM on a chosen stage, mixed good and bad uploads,
camera, ImageNet weights.

Model management (import, rename, delete, download, transfer) is the Models page:
tests/test_models_page.py."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from skimage import data as skdata
from streamlit.testing.v1 import AppTest
from torchvision.models import ResNet34_Weights

from resnet_explorer.arch import ArchConfig, build_model
from resnet_explorer.models import RESNET34_IMAGENET, delete_model, save_model
from tests.inference_helpers import TINY, encode, sidecar_for
from tests.page_helpers import open_page_at, texts

PAGE = "../app_pages/inference.py"
# The digits recipe's network in small: ImageNet stem at 32 px, stages of 8, 4, 2, 1 pixels.
DIGITS = ArchConfig(stem_width=8, blocks=(1, 1, 1, 1), widths=(8, 8, 16, 16), num_classes=10,
                    in_channels=1)


def open_page() -> AppTest:
    return open_page_at(PAGE)


def save(home, cfg: ArchConfig, name: str, **changes) -> None:
    """A stored model trained (as its sidecar says) on the built-in digits: mean brightness
    0.3, the whole 8×8 image scaled to 32 px."""
    torch.manual_seed(0)
    side = sidecar_for(cfg, name, resize=32, metrics={"dataset": "digits"},
                       normalization={"mean": [0.3] * cfg.in_channels,
                                      "std": [0.4] * cfg.in_channels}, **changes)
    side["class_names"] = [str(i) for i in range(cfg.num_classes)]
    save_model(build_model(cfg), side, name, home / "weights")


@pytest.fixture(scope="module")
def photo_jpeg() -> bytes:
    return encode(Image.fromarray(skdata.chelsea()), "JPEG", quality=90)


def test_without_imagenet_weights_the_page_points_to_the_models_page(store_home):
    at = open_page()
    info = texts(at.info)
    assert "Models page" in info and "upload" in info and RESNET34_IMAGENET.file_name in info
    assert not at.error


def test_a_fresh_session_opens_on_the_newest_stored_model(with_tiny):
    save(with_tiny, TINY, "newer", created="2099-01-01T00:00:00+00:00")
    at = open_page()  # the ImageNet weights are missing: the first entry would be a dead end
    assert at.selectbox(key="inf_model").value == "newer"
    assert not at.info and not at.error  # a model that is there, ready for uploads


def test_a_digits_model_shows_its_input_size_its_training_images_and_how_to_invert(store_home):
    save(store_home, DIGITS, "digits-model")
    at = open_page()
    captions = texts(at.caption)
    assert "This model sees 32×32 px greyscale: each image is scaled to 32×32" in captions
    assert "Digits (built-in" in captions and "Invert colours" in captions
    assert len(at.image) == 1 and len(at.image[0].captions) == 10  # one digit per class
    paper = Image.new("L", (40, 40), 240)
    paper.paste(20, (16, 6, 24, 34))  # a dark "1" on white paper
    at.file_uploader(key="inf_files").set_value([("one.png", encode(paper), "image/png")]).run()
    seen = np.asarray(at.session_state["inf_results"][1][0].image.convert("L"))
    assert seen[2, 2] > 200  # as uploaded: white paper …
    hint = "Mostly light, unlike this model's training images"
    assert hint in texts(at.caption)  # … and the result says what to try
    at.toggle(key="inf_invert").set_value(True).run()
    assert not at.exception
    seen = np.asarray(at.session_state["inf_results"][1][0].image.convert("L"))
    assert seen[2, 2] < 40 and seen[16, 16] > 200  # what the model knows: light on dark
    assert hint not in texts(at.caption)


def test_gradcam_of_a_1x1_last_stage_says_so_and_offers_an_earlier_stage(store_home, photo_jpeg):
    save(store_home, DIGITS, "digits-model")
    at = open_page()
    at.file_uploader(key="inf_files").set_value([("cat.jpg", photo_jpeg, "image/jpeg")]).run()
    assert "1×1" in at.toggle(key="inf_cam").help  # why a map can be flat, before it is
    at.toggle(key="inf_cam").set_value(True).run()
    stage = at.selectbox(key="inf_cam_stage")
    assert stage.value == 4 and stage.options == ["stage 1 (8×8)", "stage 2 (4×4)",
                                                  "stage 3 (2×2)", "stage 4 (1×1) · last"]
    warning = texts(at.warning)
    assert "Stage 4's feature map is 1×1 at this model's 32 px input" in warning
    assert "Choose stage 2 (4×4)" in warning
    last = at.session_state["inf_results"][1][0].cam
    stage.set_value(2).run()
    assert not at.exception and not at.warning
    earlier = at.session_state["inf_results"][1][0].cam
    assert not np.array_equal(np.asarray(earlier), np.asarray(last))


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
