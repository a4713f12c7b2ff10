"""End to end: a network trained here on scikit-learn's digits, saved in the store, classifies
held-out digits rendered to PNG files through the full upload path (bytes → safe decode →
sidecar preprocessing → Predictor)."""

from __future__ import annotations

import io
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from resnet_explorer.arch import ArchConfig, build_model
from resnet_explorer.datasets import Preprocess
from resnet_explorer.inference import MAX_FILES, Predictor
from resnet_explorer.models import store

SIZE = 16
RENDER = 64  # uploads are bigger than the network input, as real ones are
CFG = ArchConfig(stem="cifar", stem_width=16, blocks=(1, 1), widths=(16, 32),
                 depthwise=(False, False), in_channels=1, num_classes=10)


def render(digit: np.ndarray) -> Image.Image:
    """An 8×8 digit (0..16) as a RENDER×RENDER greyscale picture, as someone might upload."""
    pixels = np.rint(digit * (255 / 16)).astype(np.uint8)
    return Image.fromarray(pixels, "L").resize((RENDER, RENDER), Image.Resampling.NEAREST)


def network_view(img: Image.Image) -> np.ndarray:
    # The sidecar's documented preprocessing, written out with torchvision here, so the test
    # also checks that the Predictor follows it.
    img = TF.resize(img, [SIZE], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return np.asarray(TF.center_crop(img, [SIZE, SIZE]), dtype=np.float32) / 255.0


def test_digits_model_classifies_held_out_png_uploads(tmp_path, one_thread):
    digits = load_digits()
    train_i, test_i = train_test_split(np.arange(len(digits.target)), test_size=0.2,
                                       stratify=digits.target, random_state=0)
    views = [network_view(render(digits.images[i])) for i in train_i]
    x = torch.from_numpy(np.stack(views))[:, None]
    y = torch.from_numpy(digits.target[train_i]).long()
    mean, std = float(x.mean()), float(x.std())
    x = (x - mean) / std

    torch.manual_seed(0)
    model = build_model(CFG)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    start = time.perf_counter()
    model.train()
    for epoch in range(8):
        for batch in torch.randperm(len(y)).split(64):
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    assert time.perf_counter() - start < 60, "training took too long"

    pre = Preprocess(channels=1, size=SIZE, resize=SIZE, mean=(mean,), std=(std,))
    sidecar = {"format": "resnet-explorer/1", "name": "digits", "arch": CFG.to_dict(),
               "train": None, "class_names": [str(d) for d in range(10)], **pre.to_sidecar(),
               "metrics": {}, "run_id": None, "source": "trained"}
    store.save_model(model, sidecar, "digits", tmp_path)
    predictor = Predictor.from_store("digits", tmp_path)

    uploads = []
    for i in test_i:
        buf = io.BytesIO()
        render(digits.images[i]).save(buf, "PNG")
        uploads.append((f"digit-{i}.png", buf.getvalue()))
    results = [r for start in range(0, len(uploads), MAX_FILES)  # a request's limit
               for r in predictor.classify(uploads[start:start + MAX_FILES], k=3)]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    predicted = np.array([int(r.topk.best) for r in results])
    accuracy = float((predicted == digits.target[test_i]).mean())
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.3f}"
