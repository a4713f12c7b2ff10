"""ImageNet weights: found in weights/, in torch hub's cache, or downloaded with a hash check.

No network: the checkpoints are state dicts the tests save in torchvision's format, and the
download path is exercised with file:// URLs (real urllib streaming, real hashing).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from skimage import data as skdata
from torchvision.models import ResNet34_Weights

from resnet_explorer.arch import ArchConfig
from resnet_explorer.common import ImportRefused, PretrainedUnavailable
from resnet_explorer.inference import Predictor
from resnet_explorer.models import (RESNET34_IMAGENET, ModelCard, download_checkpoint,
                                    imagenet_model, imagenet_sidecar, install_checkpoint)
from resnet_explorer.models.pretrained import (find_checkpoint, imagenet_state_dict,
                                               transfer_imagenet)
from tests.inference_helpers import classify_images

FILE = "resnet34-b627a593.pth"


@pytest.fixture(scope="module")
def reference() -> torchvision.models.ResNet:
    torch.manual_seed(0)
    return torchvision.models.resnet34().eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, reference) -> bytes:
    """torchvision's own file format: torch.save of the model's state dict."""
    path = tmp_path_factory.mktemp("ckpt") / FILE
    torch.save(reference.state_dict(), path)
    return path.read_bytes()


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """An empty weights/ folder and an empty torch hub cache ($TORCH_HOME)."""
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return weights, tmp_path / "torch" / "hub" / "checkpoints"


def test_spec_comes_from_torchvisions_weights_enum():
    weights = ResNet34_Weights.IMAGENET1K_V1
    assert RESNET34_IMAGENET.file_name == FILE and RESNET34_IMAGENET.hash_prefix == "b627a593"
    assert RESNET34_IMAGENET.url == weights.url
    assert RESNET34_IMAGENET.categories == tuple(weights.meta["categories"])
    pre = RESNET34_IMAGENET.preprocess
    assert (pre.resize, pre.size, pre.mean, pre.std) == (256, 224, (0.485, 0.456, 0.406),
                                                         (0.229, 0.224, 0.225))
    card = ModelCard.from_sidecar(imagenet_sidecar())
    assert card.class_names[0] == "tench" and len(card.class_names) == 1000


def test_file_in_weights_dir_loads_and_predicts_like_torchvision(dirs, checkpoint, reference):
    weights, _ = dirs
    (weights / FILE).write_bytes(checkpoint)
    assert find_checkpoint(weights_dir=weights) == weights / FILE
    predictor = Predictor.imagenet(weights_dir=weights, download=False)
    photo = Image.fromarray(skdata.chelsea())
    # The plain torchvision pipeline on the same photo.
    x = ResNet34_Weights.IMAGENET1K_V1.transforms()(photo)[None]
    with torch.no_grad():
        expected = torch.softmax(reference(x), 1)[0]
    top = classify_images(predictor, [photo], k=5)[0].topk
    assert list(top.indices) == expected.topk(5).indices.tolist()
    np.testing.assert_allclose(top.probs, expected.topk(5).values.numpy(), rtol=1e-4, atol=1e-6)
    assert top.labels[0] == RESNET34_IMAGENET.categories[top.indices[0]]


def test_hub_cache_is_used_when_weights_dir_is_empty(dirs, checkpoint):
    weights, hub = dirs
    hub.mkdir(parents=True)
    (hub / FILE).write_bytes(checkpoint)
    state, path = imagenet_state_dict(weights_dir=weights, download=False)
    assert path == hub / FILE and "fc.weight" in state


def test_download_streams_with_progress_and_checks_the_hash(dirs, checkpoint, tmp_path, reference):
    weights, hub = dirs
    served = tmp_path / "server" / FILE
    served.parent.mkdir()
    served.write_bytes(checkpoint)
    spec = dataclasses.replace(RESNET34_IMAGENET, url=served.as_uri(),
                               hash_prefix=hashlib.sha256(checkpoint).hexdigest()[:8])
    calls: list[tuple[int, int | None]] = []
    # As the page does it: the download with a progress bar, then the model from the file.
    path = download_checkpoint(spec, lambda d, t: calls.append((d, t)), weights_dir=weights)
    assert path == hub / FILE and path.read_bytes() == checkpoint
    model = imagenet_model(spec, weights_dir=weights, download=False)
    assert calls[-1] == (len(checkpoint), len(checkpoint)) and len(calls) > 1
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    torch.testing.assert_close(model.fc.weight, reference.fc.weight)


def test_download_with_wrong_hash_saves_nothing(dirs, checkpoint, tmp_path):
    weights, hub = dirs
    served = tmp_path / FILE
    served.write_bytes(checkpoint)
    spec = dataclasses.replace(RESNET34_IMAGENET, url=served.as_uri(), hash_prefix="deadbeef")
    with pytest.raises(PretrainedUnavailable, match="SHA-256.*expected deadbeef"):
        download_checkpoint(spec)
    assert list(hub.iterdir()) == []  # no file, no temporary leftovers


def test_offline_says_exactly_which_file_to_put_where(dirs):
    weights, hub = dirs
    spec = dataclasses.replace(RESNET34_IMAGENET, url="http://127.0.0.1:9/resnet34-b627a593.pth")
    with pytest.raises(PretrainedUnavailable) as info:
        imagenet_model(spec, weights_dir=weights)
    message = str(info.value)
    assert str(weights / FILE) in message and spec.url in message and str(hub / FILE) in message
    assert "upload that file on the dashboard's Models page" in message  # a remote server's way
    # Alone, for a page that already says where the file goes: what went wrong, no more.
    assert info.value.reason and str(weights) not in info.value.reason
    assert not (hub / FILE).exists()
    with pytest.raises(PretrainedUnavailable, match="download not attempted"):
        imagenet_model(weights_dir=weights, download=False)


def test_an_uploaded_checkpoint_is_saved_in_weights_only_when_its_hash_matches(dirs, checkpoint):
    weights, _ = dirs
    with pytest.raises(ImportRefused, match="SHA-256 starts .*expected b627a593; nothing was"):
        install_checkpoint(checkpoint, weights_dir=weights, name="mine.pth")
    assert list(weights.iterdir()) == []
    spec = dataclasses.replace(RESNET34_IMAGENET,
                               hash_prefix=hashlib.sha256(checkpoint).hexdigest()[:8])
    path = install_checkpoint(checkpoint, spec, weights_dir=weights, name="mine.pth")
    assert path == weights / FILE and find_checkpoint(weights_dir=weights) == path
    assert [p.name for p in weights.iterdir()] == [FILE]  # no temporary file left


@pytest.mark.parametrize("content, expected", [
    (b"not a checkpoint", "not a loadable PyTorch weights file"),
    ("resnet18", "does not hold ResNet34 weights"),
])
def test_wrong_local_file_is_refused_with_its_path(dirs, content, expected):
    weights, _ = dirs
    if content == "resnet18":
        torch.save(torchvision.models.resnet18().state_dict(), weights / FILE)
    else:
        (weights / FILE).write_bytes(content)
    with pytest.raises(PretrainedUnavailable, match=expected) as info:
        imagenet_model(weights_dir=weights, download=False)
    assert str(weights / FILE) in str(info.value)


def test_transfer_into_a_modified_architecture_reports_reinitialised_tensors(dirs, checkpoint,
                                                                             reference):
    weights, _ = dirs
    (weights / FILE).write_bytes(checkpoint)
    cfg = ArchConfig(blocks=(1, 1, 1, 1), se_reduction=16, num_classes=10)
    model, report = transfer_imagenet(cfg, weights_dir=weights, download=False)
    assert "conv1.weight" in report.loaded and "layer4.0.conv2.weight" in report.loaded
    assert any(name.startswith("layer1.0.se.") for name in report.fresh)
    assert any(m.startswith("fc.weight: (1000, 512) → (10, 512)") for m in report.shape_mismatch)
    assert "layer1.2.conv1.weight" in report.unexpected  # the blocks this variant dropped
    torch.testing.assert_close(model.layer4[0].conv2.weight, reference.layer4[0].conv2.weight)
    card = ModelCard.from_sidecar(imagenet_sidecar(cfg=cfg, name="se-transfer"))
    assert card.class_names == tuple(f"class {i}" for i in range(10))
