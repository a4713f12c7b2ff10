"""Batched, on-device image transforms for in-memory datasets.

Images are stored as uint8 (N, C, S, S). A batch becomes the network input in
one pass on the training device: pick a window (random for training, the
centre for evaluation), resample it to the input size, normalize. Doing this
per batch on the GPU replaces a DataLoader with worker processes, which for
small images costs more than the network itself.

`Preprocess` is also what a model's sidecar records, so inference reproduces
the evaluation path: resize the shorter side to `resize`, center-crop
`size`×`size`, subtract `mean`, divide by `std`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from .catalogue import Augment

__all__ = ["Preprocess", "BatchTransform", "fit_side", "resize_center_crop"]


def resize_center_crop(image: Image.Image, resize: int, size: int) -> Image.Image:
    """torchvision's evaluation view: shorter side to `resize` (bilinear, antialiased), then
    the centre `size`×`size`. Dataset files and uploads both go through this one function,
    so a model sees the same pixels in training and at inference."""
    w, h = image.size
    short = min(w, h)
    if max(w, h) > 4 * short:
        # Only the centre survives the crop. Cut a very long side to twice the short one
        # first (the crop needs at most the short side, antialiasing a little more), or a
        # 100-byte 8192×1 strip would be resized to 2 million pixels wide (gigabytes).
        keep = 2 * short
        left, top = ((w - keep) // 2, 0) if w > h else (0, (h - keep) // 2)
        image = image.crop((left, top, left + min(w, keep), top + min(h, keep)))
    image = TF.resize(image, [resize], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(image, [size, size])


@dataclass(frozen=True)
class Preprocess:
    channels: int
    size: int  # network input is size × size
    resize: int  # shorter side before the center crop (== size: no crop margin)
    mean: tuple[float, ...]  # per channel, in 0..1 pixel units
    std: tuple[float, ...]

    def to_sidecar(self) -> dict[str, Any]:
        """The preprocessing fields of the model sidecar schema."""
        return {
            "input_size": [self.channels, self.size, self.size],
            "resize": self.resize,
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
        }

    def normalizer(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) with uint8 pixels · scale + shift == (x / 255 − mean) / std: the
        normalisation as one multiply-add, shared by training and inference."""
        std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        return 1.0 / (255.0 * std), -mean / std


class BatchTransform:
    """uint8 batches → normalized float input on the tensors' device."""

    def __init__(self, pre: Preprocess, augment: Augment | None, device: torch.device,
                 channels_last: bool = False):
        self.pre = pre
        self.augment = augment if augment is not None and augment.active else None
        self.channels_last = channels_last
        self._scale, self._shift = pre.normalizer(device)

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic center view, exactly the inference preprocessing."""
        side = x.shape[-1]
        window = max(1, round(side * self.pre.size / self.pre.resize))
        if window != side:
            top = (side - window) // 2
            x = x[..., top:top + window, top:top + window]
        x = x.float()
        if window != self.pre.size:
            x = F.interpolate(x, size=(self.pre.size, self.pre.size), mode="bilinear",
                              align_corners=False, antialias=window > self.pre.size)
        return self._finish(x)

    def train(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random window per image (scale, shift, mirror) resampled in one grid_sample call."""
        if self.augment is None:
            return self.eval(x)
        aug, n, size = self.augment, x.shape[0], self.pre.size
        kw = {"device": x.device, "generator": generator}
        if aug.min_area < 1:
            area = aug.min_area + (1 - aug.min_area) * torch.rand(n, **kw)
            side = area.sqrt()  # window side as a fraction of the stored image
        else:
            side = torch.full((n,), self.pre.size / self.pre.resize, device=x.device)
        # Normalized coordinates span 2 units: the window may move (1 - side) each way,
        # plus `translate` of the side into the zero padding.
        reach = (1 - side) + 2 * aug.translate
        shift = (torch.rand(n, 2, **kw) * 2 - 1) * reach[:, None]
        if aug.min_area >= 1:
            shift = torch.round(shift * size / 2) * (2 / size)  # whole output pixels: no blur
        sign = torch.ones(n, device=x.device)
        if aug.flip:
            sign = torch.where(torch.rand(n, **kw) < 0.5, -sign, sign)
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0] = side * sign
        theta[:, 1, 1] = side
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
        out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        return self._finish(out)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(self._shift, x, self._scale)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def fit_side(x: torch.Tensor, side: int) -> torch.Tensor:
    """Downscale stored uint8 images larger than `side` (antialiased); smaller ones stay."""
    if x.shape[-1] <= side or x.shape[0] == 0:
        return x
    out = []
    for chunk in x.split(4096):  # bounded float memory for 60k-image sets
        y = F.interpolate(chunk.float(), size=(side, side), mode="bilinear", align_corners=False,
                          antialias=True)
        out.append(y.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)

