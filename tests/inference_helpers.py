"""Shared pieces of the inference, store and page tests."""

from __future__ import annotations

import io

import torch
from PIL import Image

from resnet_explorer.arch import ArchConfig
from resnet_explorer.inference import FileResult, Predictor
from resnet_explorer.models import imagenet_sidecar

TINY = ArchConfig(stem="cifar", stem_width=8, blocks=(1, 1), widths=(8, 16),
                  depthwise=(False, False), num_classes=3)


def sidecar_for(cfg: ArchConfig = TINY, name: str = "tiny", **changes) -> dict:
    """A valid sidecar for `cfg`: classes k0.., 32 px input from a 36 px resize."""
    side = imagenet_sidecar(cfg=cfg, name=name)
    side.update(source="trained", class_names=[f"k{i}" for i in range(cfg.num_classes)])
    side["input_size"] = [cfg.in_channels, 32, 32]
    side["resize"] = 36
    side.update(changes)
    return side


class CreatesFile:
    """Unpickling this calls open(path, "w"): the file's existence proves code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def classify_images(predictor: Predictor, images: list[Image.Image], k: int = 5,
                    cam: bool = False) -> list[FileResult]:
    """Predictor.classify on decoded images, as lossless PNG uploads (the same pixels)."""
    results = predictor.classify([(f"{i}.png", encode(img)) for i, img in enumerate(images)],
                                 k=k, cam=cam)
    assert all(r.ok for r in results), [r.error for r in results]
    return results


def torch_bytes(obj) -> bytes:
    """What torch.save writes for `obj`, as an upload would carry it."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
