"""Datasets for training: where images come from, and how they become tensors.

Every source ends as an `ImageData`: uint8 image tensors (N, C, S, S) plus
int64 labels for a train and a validation split. They are small enough to
hold in memory (and, on a GPU, on the device), which removes the DataLoader's
per-batch overhead; augmentation runs batched on the device (`transforms.py`).

Two kinds of source:
* array sources (digits, MNIST, FashionMNIST, CIFAR-10/100) arrive as fixed-size
  arrays and are stored at their native resolution; the batch transform
  resizes them to the input size, so a 224 px run on CIFAR costs no extra RAM;
* file sources (Imagenette, a local ImageFolder, an uploaded zip) are decoded
  through `imaging.decode_image`, resized (shorter side to `resize`) and
  center-cropped to `resize`², the same preprocessing inference applies.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..common.errors import DataError
from ..common.paths import data_dir
from .catalogue import SOURCES, Augment, crop_resize_for, source_info
from .folders import Files, decode_files, decode_one, resolve_folder, scan_folder, stratified_split
from .transforms import Preprocess, fit_side

__all__ = ["ImageData", "DatasetSummary", "load_dataset", "describe_dataset"]

MAX_DATASET_BYTES = 4 * 2**30  # stored uint8 images; beyond this ask for a limit or smaller size
SPLIT_SEED = 0  # validation split never depends on the run's seed, so runs stay comparable
DOWNLOAD_TIMEOUT_S = 20.0
SUMMARY_SAMPLES = 16  # sample images a summary shows, spread over the classes


@dataclass
class ImageData:
    """Both splits as uint8 tensors, with what a model file must record about them."""

    name: str
    class_names: list[str]
    train_x: torch.Tensor  # (N, C, S, S) uint8
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    preprocess: Preprocess
    augment: Augment
    skipped: int = 0  # undecodable files left out
    notes: list[str] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train_x, self.train_y, self.val_x, self.val_y))

    def to(self, device: torch.device | str) -> ImageData:
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y")}
        return ImageData(**{**self.__dict__, **moved})

    def describe(self) -> str:
        text = (f"{self.name}: {len(self.train_y):,} training and {len(self.val_y):,} validation "
                f"images, {len(self.class_names)} classes")
        if self.skipped:
            text += f", {self.skipped:,} unreadable files skipped"
        return text


@dataclass
class DatasetSummary:
    """What the Train page shows before a run: cheap to compute (no full decode of files)."""

    source: str
    label: str
    available: bool
    message: str = ""
    class_names: list[str] = field(default_factory=list)
    train_counts: list[int] = field(default_factory=list)
    val_counts: list[int] = field(default_factory=list)
    samples: list[tuple[np.ndarray, str]] = field(default_factory=list)  # (H, W, C) uint8, label


# ----- public entry points ------------------------------------------------------------------
def load_dataset(source: str, *, channels: int, image_size: int, data_path: str = "",
                 val_fraction: float = 0.2, train_limit: int = 0, val_limit: int = 0,
                 root: Path | None = None) -> ImageData:
    """Load a whole dataset into memory, ready for `transforms.BatchTransform`; a torchvision
    dataset missing from `root` is downloaded."""
    info = source_info(source)
    root = Path(root) if root is not None else data_dir()
    resize = crop_resize_for(source, image_size)
    if info.kind == "array":
        classes, (tx, ty), (vx, vy) = _load_arrays(source, root, True, val_fraction)
        tx, ty = _limit(tx, ty, train_limit)
        vx, vy = _limit(vx, vy, val_limit)
        _check_size(tx.shape[0] + vx.shape[0], channels, tx.shape[1])
        # Stored no larger than the input needs: bigger sources shrink once, here.
        train_x = fit_side(_to_chw(tx, channels), resize)
        val_x = fit_side(_to_chw(vx, channels), resize)
        skipped, notes = 0, []
    else:
        classes, train_files, val_files, notes = _list_files(source, root, data_path, True,
                                                             val_fraction, resize)
        train_files = _limit_list(train_files, train_limit)
        val_files = _limit_list(val_files, val_limit)
        _check_size(len(train_files) + len(val_files), channels, resize)
        train_x, ty, bad_t = decode_files(train_files, channels, resize)
        val_x, vy, bad_v = decode_files(val_files, channels, resize)
        skipped = len(bad_t) + len(bad_v)
        if skipped:
            shown = "; ".join(str(e) for e in (bad_t + bad_v)[:3])
            notes.append(f"{skipped} unreadable image(s) skipped, e.g. {shown}")
    if len(ty) == 0 or len(vy) == 0:
        raise DataError(f"{info.label}: the training or validation split is empty")
    train_y, val_y = torch.as_tensor(ty, dtype=torch.int64), torch.as_tensor(vy, dtype=torch.int64)
    mean, std = _channel_stats(train_x)
    pre = Preprocess(channels=channels, size=image_size, resize=resize, mean=mean, std=std)
    return ImageData(source, classes, train_x, train_y, val_x, val_y, pre, info.augment,
                     skipped=skipped, notes=notes)


def describe_dataset(source: str, *, channels: int = 3, data_path: str = "",
                     val_fraction: float = 0.2, root: Path | None = None) -> DatasetSummary:
    """Classes, counts and a few sample images, without downloading or decoding everything."""
    info = source_info(source)
    root = Path(root) if root is not None else data_dir()
    summary = DatasetSummary(source, info.label, available=False)
    try:
        if info.kind == "array":
            classes, (tx, ty), (_, vy) = _load_arrays(source, root, False, val_fraction)
            picks = _spread(ty, SUMMARY_SAMPLES)
            shown = [_display(tx[i]) for i in picks]
        else:
            classes, train_files, val_files, notes = _list_files(source, root, data_path, False,
                                                                 val_fraction, 160)
            ty = np.array([y for _, y in train_files], dtype=np.int64)
            vy = np.array([y for _, y in val_files], dtype=np.int64)
            picks = _spread(ty, SUMMARY_SAMPLES)
            decoded = [decode_one(train_files[i][0], channels, 96) for i in picks]
            picks = [i for i, img in zip(picks, decoded) if img is not None]
            shown = [_display(img.transpose(1, 2, 0)) for img in decoded if img is not None]
            summary.message = " ".join(notes)
    except DataError as exc:
        summary.message = str(exc)
        return summary
    summary.available = True
    summary.class_names = classes
    summary.train_counts = np.bincount(ty, minlength=len(classes)).tolist()
    summary.val_counts = np.bincount(vy, minlength=len(classes)).tolist()
    summary.samples = [(img, classes[int(ty[i])]) for img, i in zip(shown, picks)]
    return summary


# ----- array sources ------------------------------------------------------------------------
Arrays = tuple[np.ndarray, np.ndarray]  # images (N, H, W, C) uint8, labels (N,) int64


def _load_arrays(source: str, root: Path, download: bool,
                 val_fraction: float) -> tuple[list[str], Arrays, Arrays]:
    if source == "digits":
        from sklearn.datasets import load_digits  # ships the data: no network, ever

        digits = load_digits()
        # Pixel values are 0..16 ink counts; scale to the usual 0..255.
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        labels = digits.target.astype(np.int64)
        train_idx, val_idx = stratified_split(labels, val_fraction, SPLIT_SEED)
        classes = [str(c) for c in digits.target_names]
        return classes, (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])
    train = _torchvision(source, root, download, train=True)
    val = _torchvision(source, root, download, train=False)
    return list(_class_names(train)), _arrays_of(train), _arrays_of(val)


def _arrays_of(ds: object) -> Arrays:
    data = ds.data  # type: ignore[attr-defined]
    images = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if images.ndim == 3:  # MNIST-style (N, H, W)
        images = images[..., None]
    labels = np.asarray(ds.targets, dtype=np.int64)  # type: ignore[attr-defined]
    return images.astype(np.uint8, copy=False), labels


def _class_names(ds: object) -> list[str]:
    return [c[0] if isinstance(c, tuple) else str(c) for c in ds.classes]  # type: ignore[attr-defined]


_TV_NAMES = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "cifar10": "CIFAR10",
             "cifar100": "CIFAR100", "imagenette": "Imagenette"}


def _torchvision(source: str, root: Path, download: bool, **kwargs: object) -> object:
    """Open a torchvision dataset from `root`; download only when it is missing.

    Offline, torchvision would fail deep inside urllib (or wait on a dead
    route); we try the local copy first, bound the download with a socket
    timeout, and turn any failure into one sentence that says what to do.
    """
    import torchvision.datasets as tvd  # late: only the downloadable sources need it

    cls = getattr(tvd, _TV_NAMES[source])
    label = SOURCES[source].label.split(" (")[0]
    try:
        return cls(str(root), download=False, **kwargs)
    except RuntimeError:
        if not download:
            raise DataError(f"{label} has not been downloaded to {root} yet; the training run "
                            "downloads it (this needs network access)") from None
    root.mkdir(parents=True, exist_ok=True)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return cls(str(root), download=True, **kwargs)
    except Exception as exc:  # URLError, socket errors, checksum RuntimeError, ...
        raise DataError(
            f"{label} is not in {root} and could not be downloaded ({type(exc).__name__}: "
            f"{_shorten(str(exc))}). This machine seems to be offline: download it on a machine with "
            f"network (torchvision.datasets.{_TV_NAMES[source]}(root, download=True)) and copy the "
            f"folder into {root}, or train on the built-in digits dataset."
        ) from None


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 240 else flat[:240] + "…"


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # urllib inherits the process-wide default; only the trainer process downloads.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _to_chw(images: np.ndarray, channels: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    have = x.shape[1]
    if have == channels:
        return x.contiguous()
    if channels == 3:  # grey → RGB: repeat
        return x.expand(-1, 3, -1, -1).contiguous()
    # RGB → grey with the ITU-R 601 luma weights PIL's "L" conversion uses.
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


# ----- file sources -------------------------------------------------------------------------
def _list_files(source: str, root: Path, data_path: str, download: bool, val_fraction: float,
                resize: int) -> tuple[list[str], Files, Files, list[str]]:
    if source == "imagenette":
        # The 160 px edition is a 6th of the full download and enough below 160 px.
        size = "160px" if resize <= 160 else "320px"
        ds = _torchvision(source, root, download, split="train", size=size)
        # torchvision's class names are tuples of synonyms in wnid-sorted order.
        folder = Path(ds._image_root).parent  # type: ignore[attr-defined]
        wnids, train, val, notes = scan_folder(folder)
        if val is None or len(wnids) != len(ds.classes):  # type: ignore[attr-defined]
            raise DataError(f"{folder} does not look like Imagenette (train/ and val/ expected)")
        return _class_names(ds), train, val, notes
    folder = resolve_folder(source, root, data_path)
    classes, train, val, notes = scan_folder(folder)
    if val is None:
        labels = np.array([y for _, y in train], dtype=np.int64)
        t_idx, v_idx = stratified_split(labels, val_fraction, SPLIT_SEED)
        train, val = [train[i] for i in t_idx], [train[i] for i in v_idx]
    return classes, train, val, notes


# ----- helpers ----------------------------------------------------------------------------
def _subset(count: int, limit: int) -> np.ndarray | None:
    """Sorted indices of at most `limit` of `count` items, the same for every run; None: all."""
    if not limit or limit >= count:
        return None
    return np.sort(np.random.default_rng(SPLIT_SEED).permutation(count)[:limit])


def _limit(x: np.ndarray, y: np.ndarray, limit: int) -> Arrays:
    idx = _subset(len(y), limit)
    return (x, y) if idx is None else (x[idx], y[idx])


def _limit_list(files: Files, limit: int) -> Files:
    idx = _subset(len(files), limit)
    return files if idx is None else [files[i] for i in idx]


def _check_size(count: int, channels: int, side: int) -> None:
    need = count * channels * side * side
    if need > MAX_DATASET_BYTES:
        raise DataError(f"{count:,} images at {side}×{side} need {need / 2**30:.1f} GiB in memory "
                        f"(limit {MAX_DATASET_BYTES / 2**30:.0f} GiB): set a training-image limit "
                        "or a smaller image size")


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of the training images in 0..1 units (float64: 10⁸ pixels add up)."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double() / 255.0
    mean, std = flat.mean(1), flat.std(1).clamp_min(1e-3)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


def _spread(labels: np.ndarray, count: int) -> list[int]:
    """Up to `count` sample indices, cycling through classes so every class shows."""
    by_class = [list(np.flatnonzero(labels == c)[:count]) for c in np.unique(labels)]
    picks: list[int] = []
    while len(picks) < count and any(by_class):
        for group in by_class:
            if group and len(picks) < count:
                picks.append(int(group.pop(0)))
    return picks


def _display(img: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 enlarged with nearest-neighbour to at least 64 px, so 8×8 digits stay
    crisp in a grid."""
    factor = max(1, 64 // max(1, min(img.shape[:2])))
    img = img.repeat(factor, 0).repeat(factor, 1) if factor > 1 else img
    return img[..., 0] if img.shape[-1] == 1 else img

