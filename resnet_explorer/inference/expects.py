"""What a model expects to be shown, for the words and pictures next to the uploader.

A model only knows the images it was trained on. The digits model saw 8×8 white-on-black
digits scaled to 32 px; a photo of a dark digit on white paper is, to it, the negative of
everything it knows. So the page says the input size, shows a few training images of a
built-in dataset, and, for a model trained on light shapes on a dark background, says so
and offers to invert uploads (`Predictor.classify(invert=True)`); an upload that the network
saw as mostly light gets that hint beside its result (`looks_inverted`).

Whether the background was dark is read from the sidecar's normalisation mean (the training
images' mean brightness, recorded by every run), so it holds for any dataset, also a folder
or a zip; the sample pictures are for the datasets the catalogue can read without a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..common.errors import DataError
from ..datasets import SOURCES, describe_dataset
from ..models.card import ModelCard

__all__ = ["InputGuide", "input_guide", "looks_inverted", "training_samples", "DARK_MEAN",
           "LIGHT_UPLOAD", "SAMPLES_SHOWN"]

# Mean brightness (0..1) below which the training images were mostly dark background:
# digits 0.30, MNIST 0.13, FashionMNIST 0.29; photos are near 0.45 (ImageNet, CIFAR 0.47).
DARK_MEAN = 0.35
# An upload whose view is brighter than this on average is mostly light background: a dark
# digit on paper is ~0.85, a white digit on black ~0.3.
LIGHT_UPLOAD = 0.5
SAMPLES_SHOWN = 10  # one per class for ten classes: enough to see the style, one row wide


@dataclass(frozen=True)
class InputGuide:
    size: str  # "32×32 px greyscale: each image is scaled to 32×32"
    light_on_dark: bool  # trained on light shapes on a dark background
    dataset: str  # the catalogue's label of the training set, "" when not a catalogue set


def input_guide(card: ModelCard) -> InputGuide:
    pre = card.preprocess
    colour = "greyscale" if pre.channels == 1 else "colour"
    if pre.resize == pre.size:
        how = f"each image is scaled to {pre.size}×{pre.size}"
    else:
        how = (f"the shorter side is scaled to {pre.resize} px, then the centre "
               f"{pre.size}×{pre.size} is cut out")
    source = SOURCES.get(card.dataset)
    return InputGuide(size=f"{pre.size}×{pre.size} px {colour}: {how}",
                      light_on_dark=_learned_light_on_dark(card),
                      dataset=source.label if source is not None else "")


def looks_inverted(card: ModelCard, seen: Image.Image) -> bool:
    """The view the network got (`FileResult.image`) is mostly light, while the model learned
    light shapes on a dark background: it reads such an image as a negative of its data."""
    brightness = float(np.asarray(seen.convert("L"), dtype=np.float32).mean()) / 255
    return _learned_light_on_dark(card) and brightness > LIGHT_UPLOAD


def _learned_light_on_dark(card: ModelCard) -> bool:
    return max(card.preprocess.mean) < DARK_MEAN


def training_samples(dataset: str, channels: int, root: Path | None = None,
                     count: int = SAMPLES_SHOWN) -> list[tuple[np.ndarray, str]]:
    """Up to `count` training images (uint8, one per class first) of a catalogue dataset that
    needs no path, with their labels; none when it is not one or is not on this machine (a
    page never downloads a dataset to show a picture)."""
    source = SOURCES.get(dataset)
    if source is None or source.needs_path or source.kind != "array":
        return []
    try:
        summary = describe_dataset(dataset, channels=channels, root=root)
    except DataError:
        return []
    return summary.samples[:count] if summary.available else []
