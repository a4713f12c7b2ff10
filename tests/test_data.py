"""Datasets: digits, torchvision formats on disk, offline failure, folders, uploaded zips."""

from __future__ import annotations

import io
import os
import pickle
import stat
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from resnet_explorer.common import DataError
from resnet_explorer.datasets import (Augment, BatchTransform, Preprocess, ZipLimits,
                                      describe_dataset, extract_zip, load_dataset)
from resnet_explorer.datasets import folders
from resnet_explorer.datasets import loading as data
from resnet_explorer.datasets import uploads


# ----- digits ----------------------------------------------------------------------------------
def test_digits_split_is_fixed_stratified_and_independent_of_channels():
    gray = load_dataset("digits", channels=1, image_size=16)
    rgb = load_dataset("digits", channels=3, image_size=16)
    assert len(gray.train_y) + len(gray.val_y) == 1797 and len(gray.val_y) == 359
    assert torch.equal(gray.val_y, rgb.val_y) and torch.equal(gray.train_x, rgb.train_x[:, :1])
    assert torch.equal(rgb.train_x[:, 0], rgb.train_x[:, 2])  # grey replicated
    counts = torch.bincount(gray.val_y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # every digit ~20 % in validation
    pre = rgb.preprocess
    assert (pre.channels, pre.size, pre.resize) == (3, 16, 16) and len(pre.mean) == 3
    assert gray.augment.flip is False  # a mirrored 2 is not a 2


def test_describe_shows_counts_and_samples_of_every_class():
    summary = describe_dataset("digits", channels=1)
    assert summary.available and summary.class_names == [str(i) for i in range(10)]
    assert sum(summary.train_counts) == 1438 and sum(summary.val_counts) == 359
    labels = [label for _, label in summary.samples]
    assert len(labels) == 16 and set(labels) == set(summary.class_names)
    assert summary.samples[0][0].shape == (64, 64) and summary.samples[0][0].dtype == np.uint8


# ----- batch transforms --------------------------------------------------------------------------
def test_eval_transform_is_resize_center_crop_normalize():
    pre = Preprocess(channels=1, size=4, resize=6, mean=(0.5,), std=(0.25,))
    x = torch.arange(36, dtype=torch.uint8).view(1, 1, 6, 6)
    out = BatchTransform(pre, None, torch.device("cpu")).eval(x)
    expected = (x[..., 1:5, 1:5].float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(out, expected)
    # A stored image smaller than the input (digits 8 px → 16 px) is resized bilinearly.
    pre = Preprocess(channels=1, size=16, resize=16, mean=(0.0,), std=(1.0,))
    small = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    up = F.interpolate(small.float(), size=(16, 16), mode="bilinear", align_corners=False) / 255
    torch.testing.assert_close(BatchTransform(pre, None, torch.device("cpu")).eval(small), up)


def _shifts(image: torch.Tensor, out: torch.Tensor) -> tuple[int, int] | None:
    """(dy, dx) if `out` is `image` moved by whole pixels with zero fill, else None."""
    side = image.shape[-1]
    for dy in range(-side + 1, side):
        for dx in range(-side + 1, side):
            moved = torch.zeros_like(image)
            ys, yd = slice(max(0, -dy), side - max(0, dy)), slice(max(0, dy), side - max(0, -dy))
            xs, xd = slice(max(0, -dx), side - max(0, dx)), slice(max(0, dx), side - max(0, -dx))
            moved[..., yd, xd] = image[..., ys, xs]
            if torch.allclose(moved, out, atol=1e-4):
                return dy, dx
    return None


def test_digit_augmentation_shifts_by_whole_pixels_and_never_mirrors():
    pre = Preprocess(channels=1, size=8, resize=8, mean=(0.0,), std=(1.0,))
    image = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    image[0, 0, 1:7, 2] = 255  # an asymmetric "1" with a foot
    image[0, 0, 6, 2:6] = 255
    batch = image.repeat(64, 1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    out = BatchTransform(pre, Augment(flip=False, translate=0.25), torch.device("cpu")).train(batch, gen)
    found = [_shifts(image[0].float() / 255, o) for o in out]
    assert all(s is not None for s in found)  # pure translations: no blur, no mirror
    assert len(set(found)) > 5 and max(abs(v) for s in found for v in s) <= 2
    flipped = BatchTransform(pre, Augment(flip=True), torch.device("cpu")).train(batch, gen)
    mirror = image.flip(-1).float() / 255
    n_mirrored = sum(torch.allclose(o, mirror[0]) for o in flipped)
    assert 10 < n_mirrored < 54  # about half of them


# ----- torchvision datasets on disk, and offline -----------------------------------------------------
def _idx(array: np.ndarray) -> bytes:
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_mnist_in_torchvision_format_loads_without_network(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(rng.integers(0, 256, (n, 28, 28))))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(np.arange(n) % 10))
    ds = load_dataset("mnist", channels=3, image_size=16, root=tmp_path)
    assert ds.train_x.shape == (30, 3, 16, 16) and ds.val_x.shape == (10, 3, 16, 16)  # shrunk once
    assert ds.class_names[0].startswith("0") and ds.val_y.tolist() == list(range(10))
    assert describe_dataset("mnist", root=tmp_path).available


def test_cifar10_in_torchvision_format_loads_and_converts_to_grey(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
             "test_batch"]
    for name in names:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch))
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": classes}))
    # The real files are checked against torchvision's MD5s; ours cannot match them.
    monkeypatch.setattr(tvd.cifar, "check_integrity", lambda *args, **kwargs: True)
    ds = load_dataset("cifar10", channels=1, image_size=32, root=tmp_path)
    assert ds.class_names == classes and ds.train_x.shape == (20, 1, 32, 32)
    assert ds.augment.flip  # natural images are mirrored in training
    rgb = np.frombuffer(pickle.loads((folder / "test_batch").read_bytes())["data"][0].tobytes(),
                        np.uint8).reshape(3, 32, 32).astype(float)
    grey = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).round()
    np.testing.assert_allclose(ds.val_x[0, 0].numpy(), grey, atol=1)


def test_imagenette_in_torchvision_layout_uses_its_own_split_and_class_names(tmp_path):
    import torchvision.datasets as tvd

    wnids = sorted(tvd.Imagenette._WNID_TO_CLASS)
    for split, n in (("train", 2), ("val", 1)):
        for i, wnid in enumerate(wnids):
            folder = tmp_path / "imagenette2-160" / split / wnid
            folder.mkdir(parents=True)
            for k in range(n):
                (folder / f"{k}.JPEG").write_bytes(_png((i * 20, k * 50, 0), size=40))
    ds = load_dataset("imagenette", channels=3, image_size=16, root=tmp_path)
    assert ds.class_names[0] == tvd.Imagenette._WNID_TO_CLASS[wnids[0]][0]  # "tench"
    assert (len(ds.train_y), len(ds.val_y)) == (20, 10) and ds.train_x.shape[1:] == (3, 18, 18)
    assert ds.augment.min_area < 1  # random-resized crops for photos


def test_offline_download_fails_fast_with_what_to_do(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        load_dataset("fashionmnist", channels=1, image_size=28, root=tmp_path)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "could not be downloaded" in message and "offline" in message and "digits" in message
    summary = describe_dataset("cifar10", root=tmp_path)  # previews never download
    assert not summary.available and "not been downloaded" in summary.message


# ----- folders and zips ------------------------------------------------------------------------------
def _png(color: tuple[int, int, int], size: int = 12) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size + 4), color).save(buf, "PNG")
    return buf.getvalue()


def _pets(folder: Path) -> Path:
    for cls, color in (("cats", (200, 0, 0)), ("dogs", (0, 0, 200))):
        (folder / cls).mkdir(parents=True)
        for i in range(5):
            (folder / cls / f"{i}.png").write_bytes(_png(color))
    return folder


def test_image_folder_skips_and_counts_unreadable_files(tmp_path):
    folder = _pets(tmp_path / "pets")
    (folder / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "dogs" / "notes.txt").write_text("ignored")
    # A relative path is taken inside the data folder.
    ds = load_dataset("folder", channels=3, image_size=8, data_path="pets", root=tmp_path,
                      val_fraction=0.2)
    assert ds.class_names == ["cats", "dogs"] and ds.skipped == 1
    assert len(ds.train_y) + len(ds.val_y) == 10 and set(ds.val_y.tolist()) == {0, 1}
    assert ds.train_x.shape[1:] == (3, 9, 9) and ds.preprocess.resize == 9  # 8 / 0.875
    assert any("unreadable" in n for n in ds.notes)
    assert ds.train_x[ds.train_y == 0][:, 0].float().mean() > 150  # cats are red


@pytest.mark.parametrize("typed", ["/", "/etc", "../elsewhere", "pets/../../elsewhere"])
def test_typed_folders_outside_the_data_folder_are_refused(tmp_path, typed):
    _pets(tmp_path / "elsewhere")
    root = tmp_path / "data"
    _pets(root / "pets")
    with pytest.raises(DataError, match="outside the folders this dashboard reads"):
        load_dataset("folder", channels=3, image_size=8, data_path=typed, root=root)
    summary = describe_dataset("folder", data_path=typed, root=root)  # what the page shows
    assert not summary.available and "outside the folders" in summary.message


def test_more_dataset_roots_can_be_allowed_and_huge_trees_are_not_walked(tmp_path, monkeypatch):
    elsewhere = _pets(tmp_path / "elsewhere")
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv(folders.FOLDER_ROOTS_ENV, str(tmp_path / "nowhere") + os.pathsep
                       + str(elsewhere))
    ds = load_dataset("folder", channels=3, image_size=8, data_path=str(elsewhere), root=root)
    assert ds.class_names == ["cats", "dogs"]
    monkeypatch.setattr(folders, "MAX_SCANNED_ENTRIES", 7)  # 10 images in all
    with pytest.raises(DataError, match="more than 7 files and folders"):
        load_dataset("folder", channels=3, image_size=8, data_path=str(elsewhere), root=root)


def _zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in entries.items():
            z.writestr(name, payload)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_zip_upload_is_extracted_with_its_split_and_a_report(tmp_path):
    entries = {f"photos/{split}/{cls}/{i}.png": _png(color)
               for split, n in (("train", 4), ("val", 2))
               for cls, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))) for i in range(n)}
    entries["photos/train/red/bad.png"] = b"\x89PNG\r\n\x1a\n truncated"
    entries["photos/readme.md"] = b"hello"
    entries["__MACOSX/photos/._x.png"] = b"junk"
    report = extract_zip(_zip(entries, links=("photos/train/red/link.png",)), "My Photos.zip",
                         root=tmp_path)
    assert report.classes == {"blue": 6, "red": 6} and report.has_split
    assert (report.corrupt, report.not_images, report.links) == (1, 1, 1)
    assert report.lines()[0] == "12 images in 2 classes (with its own train/val split)"
    assert report.name.startswith("My-Photos-")
    folder = tmp_path / "uploads" / report.name
    assert not any(p.is_symlink() for p in folder.rglob("*"))
    ds = load_dataset("upload", channels=3, image_size=8, data_path=report.name, root=tmp_path)
    assert (len(ds.train_y), len(ds.val_y)) == (8, 4)
    assert extract_zip(_zip(entries), "again.zip", root=tmp_path).name != report.name  # new bytes
    assert extract_zip(_zip(entries, links=("photos/train/red/link.png",)), "My Photos.zip",
                       root=tmp_path) == report  # same bytes: reused


@pytest.mark.parametrize("name", ["../evil.png", "a/../../evil.png", "/etc/evil.png",
                                  "C:/evil.png", "a\\..\\..\\evil.png"])
def test_zip_entries_outside_the_folder_are_refused(tmp_path, name):
    payload = _zip({"a/1.png": _png((1, 2, 3)), "b/1.png": _png((3, 2, 1)), name: _png((0, 0, 0))})
    with pytest.raises(DataError, match="outside the upload folder"):
        extract_zip(payload, "evil.zip", root=tmp_path / "data")
    assert not (tmp_path / "evil.png").exists()
    assert not any((tmp_path / "data" / "uploads").glob("evil*"))


def test_zip_caps_on_count_size_and_ratio(tmp_path):
    two = {"a/1.png": _png((1, 2, 3)), "b/1.png": _png((3, 2, 1)), "b/2.png": _png((3, 2, 2))}
    with pytest.raises(DataError, match="3 images; the limit is 2"):
        extract_zip(_zip(two), "x.zip", root=tmp_path, limits=ZipLimits(max_files=2))
    with pytest.raises(DataError, match="inflates to more than"):
        extract_zip(_zip(two), "x.zip", root=tmp_path, limits=ZipLimits(max_total_bytes=100))
    bomb = {"a/1.bmp": b"BM" + bytes(4_000_000), "b/1.png": _png((0, 0, 0))}
    with pytest.raises(DataError, match="zip bomb"):
        extract_zip(_zip(bomb), "bomb.zip", root=tmp_path)
    with pytest.raises(DataError, match="not a readable zip"):
        extract_zip(b"PK\x03\x04 garbage", "bad.zip", root=tmp_path)
    with pytest.raises(DataError, match="at least two class folders"):
        extract_zip(_zip({"only/1.png": _png((1, 1, 1))}), "one.zip", root=tmp_path)
    assert not [p for p in (tmp_path / "uploads").iterdir()]  # nothing half-extracted is left


def test_unknown_sources_and_upload_names_that_are_paths_are_refused(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet21k", channels=3, image_size=8)
    with pytest.raises(DataError, match="unknown upload"):
        load_dataset("upload", channels=3, image_size=8, data_path="../../etc", root=tmp_path)
    assert set(data.SOURCES) >= {"digits", "cifar10", "cifar100", "mnist", "fashionmnist",
                                 "imagenette", "folder", "upload"}


def _damage_first_entry(raw: bytes) -> bytes:
    """The first entry's compressed bytes overwritten: a broken deflate stream."""
    out = bytearray(raw)
    info = zipfile.ZipFile(io.BytesIO(raw)).infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    out[start:start + info.compress_size] = b"\xff" * info.compress_size
    return bytes(out)


def _noisy_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_damaged_zips_are_refused_or_their_damaged_entries_skipped_never_a_traceback(tmp_path):
    entries = {f"{c}/{i}.png": _noisy_png(n * 3 + i) for n, c in enumerate(("cat", "dog"))
               for i in range(3)}
    report = extract_zip(_damage_first_entry(_zip(entries)), "d.zip", root=tmp_path)  # zlib.error
    assert report.corrupt == 1 and report.classes == {"cat": 2, "dog": 3}
    assert "cat/0.png: damaged in the zip" in report.problems[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("a/1.png")
        info.extract_version = 99  # a zip version Python cannot read: NotImplementedError
        z.writestr(info, _png((1, 2, 3)))
    with pytest.raises(DataError, match="not a readable zip file"):
        extract_zip(buf.getvalue(), "new.zip", root=tmp_path)
    # Random damage anywhere (also EOFError from a truncated stream): a DataError or a report.
    rng, base = np.random.default_rng(0), _zip(entries)
    for attempt in range(300):
        raw = bytearray(base)
        for at in rng.integers(0, len(raw), int(rng.integers(1, 9))):
            raw[at] = int(rng.integers(0, 256))
        try:
            extract_zip(bytes(raw), f"f{attempt}.zip", root=tmp_path / "fuzz")
        except DataError:
            pass


def test_zip_bombs_of_small_entries_are_refused(tmp_path):
    small = {"a/1.bmp": b"BM" + bytes(8_000), "b/1.png": _png((0, 0, 0))}  # one 8 KB entry, 100:1+
    with pytest.raises(DataError, match="zip bomb"):
        extract_zip(_zip(small), "small.zip", root=tmp_path)
    # Each entry under 4 KiB (no per-entry check) but 200 KB from a zip of a few KB.
    many = {f"{'ab'[i % 2]}/{i}.bmp": b"BM" + bytes(4_000) for i in range(50)}
    with pytest.raises(DataError, match="times its size; the limit is 20"):
        extract_zip(_zip(many), "many.zip", root=tmp_path)


def test_the_page_extracts_an_upload_once_and_remembers_a_refusal(tmp_path, monkeypatch):
    cache: dict = {}
    bad = b"PK\x03\x04 garbage"
    first = uploads.extract_upload(cache, "id-1", bad, "bad.zip", root=tmp_path)
    assert isinstance(first, str) and "not a readable zip" in first
    calls = []
    monkeypatch.setattr(uploads, "extract_zip", lambda *a, **k: calls.append(a) or 1 / 0)
    assert uploads.extract_upload(cache, "id-1", bad, "bad.zip", root=tmp_path) == first
    assert not calls  # a rerun does not extract a refused upload again
    broken = uploads.extract_upload(cache, "id-2", bad, "x.zip", root=tmp_path)
    assert broken == "could not extract x.zip: ZeroDivisionError: division by zero" and calls
