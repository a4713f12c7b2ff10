"""Which datasets exist and how each is treated: labels, kind, augmentation policy.

Plain data (this module imports no torch): TrainConfig's allowed datasets and the Train page's picker read this
table, and the loaders (loading.py) follow each entry's kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..common.errors import DataError

__all__ = ["Augment", "SourceInfo", "SOURCES", "source_info", "crop_resize_for"]


@dataclass(frozen=True)
class Augment:
    flip: bool = False  # random horizontal mirror
    translate: float = 0.0  # random shift up to this fraction of the side (zero padded)
    min_area: float = 1.0  # < 1: random crop covering [min_area, 1] of the stored image

    @property
    def active(self) -> bool:
        return self.flip or self.translate > 0 or self.min_area < 1


@dataclass(frozen=True)
class SourceInfo:
    label: str
    kind: str  # "array" | "files"
    augment: Augment  # policy for natural vs. symbol-like images
    needs_path: bool = False
    download: bool = False


# Digits and MNIST are not mirror-symmetric: no flip. Natural images: flip + crops.
_SYMBOLS = Augment(flip=False, translate=0.1)
_CLOTHES = Augment(flip=True, translate=0.1)
_SMALL_PHOTOS = Augment(flip=True, translate=0.125)  # CIFAR's pad-4-and-crop at 32 px
_PHOTOS = Augment(flip=True, translate=0.0, min_area=0.35)  # random-resized-crop style

SOURCES: dict[str, SourceInfo] = {
    "digits": SourceInfo("Digits (built-in, 1,797 8×8 handwritten digits, offline)", "array", _SYMBOLS),
    "mnist": SourceInfo("MNIST (download, 70,000 28×28 digits)", "array", _SYMBOLS, download=True),
    "fashionmnist": SourceInfo("FashionMNIST (download, 70,000 28×28 clothes)", "array", _CLOTHES,
                               download=True),
    "cifar10": SourceInfo("CIFAR-10 (download, 60,000 32×32 photos)", "array", _SMALL_PHOTOS,
                          download=True),
    "cifar100": SourceInfo("CIFAR-100 (download, 60,000 32×32 photos)", "array", _SMALL_PHOTOS,
                           download=True),
    "imagenette": SourceInfo("Imagenette (download, 13,394 photos of 10 ImageNet classes)", "files",
                             _PHOTOS, download=True),
    "folder": SourceInfo("Local image folder (one sub-folder per class)", "files", _PHOTOS,
                         needs_path=True),
    "upload": SourceInfo("Uploaded zip of class folders", "files", _PHOTOS, needs_path=True),
}


def source_info(source: str) -> SourceInfo:
    if source not in SOURCES:
        raise DataError(f"unknown dataset {source!r}; choose one of {', '.join(SOURCES)}")
    return SOURCES[source]


def crop_resize_for(source: str, image_size: int) -> int:
    """The `resize` (shorter side before the center crop) that pairs with `image_size`."""
    if SOURCES[source].kind == "files":
        return int(round(image_size / 0.875))  # the classic 256 → 224
    return image_size  # fixed-size arrays: the whole image is the input
