"""Image folders on disk: the ImageFolder layout, safe decoding, a stratified split.

Used for local folders, extracted zip uploads and Imagenette. Every file goes
through `imaging.decode_image` (format by content, size caps, EXIF
orientation), so a folder can hold anything: what does not decode is skipped
and reported, never fatal.
"""

from __future__ import annotations

import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..common.errors import DataError, ImageRejected
from ..common.paths import data_dir
from . import imaging, transforms

__all__ = ["IMAGE_EXTENSIONS", "SPLIT_NAMES", "uploads_dir", "Files", "resolve_folder",
           "scan_folder", "decode_files", "decode_one", "eval_view_array", "stratified_split"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


Files = list[tuple[Path, int]]
# Beyond the data folder, a typed path may only point into these (os.pathsep-separated): a
# dashboard open to others must not list or walk the whole server (think "/" or "/proc").
FOLDER_ROOTS_ENV = "RESNET_EXPLORER_FOLDER_ROOTS"
MAX_SCANNED_ENTRIES = 1_000_000  # files and folders looked at in one dataset folder
# Folder names that mark a split, and the split each marks (first listed wins in a folder).
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "val"}


def uploads_dir(root: Path | None = None) -> Path:
    """Where extracted zip uploads live: data/uploads/<name>."""
    return (Path(root) if root is not None else data_dir()) / "uploads"


def resolve_folder(source: str, root: Path, data_path: str) -> Path:
    if not data_path:
        raise DataError("choose a folder" if source == "folder" else "upload a zip first")
    if source == "upload":
        # An upload is named by the store, never a path typed by someone.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}", data_path):
            raise DataError(f"unknown upload {data_path!r}")
        folder = uploads_dir(root) / data_path
    else:
        if "\0" in data_path:  # the OS cannot even look such a path up (ValueError)
            raise DataError("the folder path contains a NUL character; type it again")
        folder = _allowed_folder(root, data_path)
    shown = _shown(folder)
    try:
        is_dir = stat.S_ISDIR(folder.stat().st_mode)
        resolved = folder.resolve()
    except FileNotFoundError:
        is_dir = False
    except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: a link loop (3.11)
        # A typed path can be too long, loop through links or be unreadable: say which.
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise DataError(f"cannot open the folder {shown}: {why}") from None
    if not is_dir:
        raise DataError(f"{shown} is not a folder")
    return resolved


def _shown(folder: Path, limit: int = 120) -> str:
    """A path for a message: a typed one may be thousands of characters long."""
    text = str(folder)
    return text if len(text) <= limit else text[: limit // 2] + "…" + text[-limit // 2:]


def _allowed_folder(root: Path, data_path: str) -> Path:
    """A relative path is taken inside `root`; any path must stay inside `root` or a folder
    listed in $RESNET_EXPLORER_FOLDER_ROOTS. Links placed there by the owner are followed."""
    roots = [root, *(Path(p).expanduser() for p in
                     os.environ.get(FOLDER_ROOTS_ENV, "").split(os.pathsep) if p.strip())]
    # abspath removes "..", without following links, before the containment check.
    folder = Path(os.path.abspath(root / Path(data_path).expanduser()))
    if not any(folder.is_relative_to(os.path.abspath(r)) for r in roots):
        shown = ", ".join(str(r) for r in roots)
        raise DataError(f"{data_path} is outside the folders this dashboard reads datasets from "
                        f"({shown}). Put the dataset (or a link to it) in {root}, or start the "
                        f"dashboard with {FOLDER_ROOTS_ENV} set to its parent folder.")
    return folder


def scan_folder(folder: Path) -> tuple[list[str], Files, Files | None, list[str]]:
    """ImageFolder layout: class/file, or train/class/file + val/class/file."""
    subdirs = {p.name.lower(): p for p in _visible_dirs(folder)}
    train_dir, val_dir = _split_dir(subdirs, "train"), _split_dir(subdirs, "val")
    notes: list[str] = []
    if train_dir is not None and val_dir is not None:
        classes = sorted({d.name for d in _visible_dirs(train_dir)} | {d.name for d in _visible_dirs(val_dir)})
        train, val = _files_by_class(train_dir, classes), _files_by_class(val_dir, classes)
        notes.append(f"using the folder's own split ({train_dir.name}/ and {val_dir.name}/)")
    else:
        classes = sorted(d.name for d in _visible_dirs(folder))
        train, val = _files_by_class(folder, classes), None
    counts = np.bincount([y for _, y in train], minlength=len(classes)) if classes else []
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        notes.append(f"{len(empty)} folder(s) without images ignored: {', '.join(empty[:5])}")
        keep = [c for c in classes if c not in empty]
        remap = {classes.index(c): i for i, c in enumerate(keep)}
        train = [(p, remap[y]) for p, y in train]
        val = None if val is None else [(p, remap[y]) for p, y in val if y in remap]
        classes = keep
    if len(classes) < 2:
        raise DataError(f"{folder} needs at least two sub-folders of images (one per class); "
                        f"found {len(classes)}")
    return classes, train, val, notes


def _split_dir(subdirs: dict[str, Path], split: str) -> Path | None:
    return next((subdirs[n] for n, s in SPLIT_NAMES.items() if s == split and n in subdirs), None)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _files_by_class(folder: Path, classes: list[str]) -> Files:
    out: Files = []
    budget = MAX_SCANNED_ENTRIES
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        found = []
        for p in class_dir.rglob("*"):
            budget -= 1
            if budget < 0:
                raise DataError(f"{folder} holds more than {MAX_SCANNED_ENTRIES:,} files and "
                                "folders; point at the dataset's own folder")
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file():
                found.append((p, label))
        out += sorted(found)
    return out


def decode_files(files: Files, channels: int, resize: int) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    # Pillow releases the GIL while decoding and resizing, so threads scale.
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(files)))) as pool:
        results = list(pool.map(lambda f: _decode_or_error(f[0], channels, resize), files))
    keep = [i for i, r in enumerate(results) if not isinstance(r, str)]
    errors = [r for r in results if isinstance(r, str)]
    if not keep:
        return torch.zeros((0, channels, resize, resize), dtype=torch.uint8), np.zeros(0, np.int64), errors
    images = torch.from_numpy(np.stack([results[i] for i in keep]))  # type: ignore[misc]
    labels = np.array([files[i][1] for i in keep], dtype=np.int64)
    return images, labels, errors


def _decode_or_error(path: Path, channels: int, resize: int) -> np.ndarray | str:
    try:
        data = path.read_bytes()
        img = imaging.decode_image(data, mode="L" if channels == 1 else "RGB", name=path.name)
    except (OSError, ImageRejected) as exc:
        return str(exc)
    return eval_view_array(img, resize)


def decode_one(path: Path, channels: int, resize: int) -> np.ndarray | None:
    out = _decode_or_error(path, channels, resize)
    return None if isinstance(out, str) else out


def eval_view_array(img: Image.Image, size: int) -> np.ndarray:
    """The evaluation view at `size` (what inference does), as a (C, H, W) uint8 array."""
    arr = np.asarray(transforms.resize_center_crop(img, size, size), dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class shuffled split, so every class appears in both parts in proportion."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) > 1:
            n_val = min(max(n_val, 1), len(idx) - 1)  # each class in both splits when possible
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
