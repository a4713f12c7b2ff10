"""Shared pieces of the image decoding tests: real photos, comparisons, crafted headers."""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image
from skimage import data as skdata

W, H = 96, 64  # non-square on purpose: rotations must show up in the size
PHOTOS = ("chelsea", "coffee", "astronaut")


@lru_cache(maxsize=None)
def photo(name: str = "chelsea") -> Image.Image:
    """A real photo from scikit-image, downscaled to W x H RGB."""
    full = Image.fromarray(getattr(skdata, name)()).convert("RGB")
    return full.resize((W, H), Image.Resampling.LANCZOS)


def arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(np.int16)


def mad(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel difference."""
    return float(np.abs(arr(a) - arr(b)).mean())


def corr(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    x, y = (np.asarray(v, np.float64).ravel() for v in (a, b))
    return float(np.corrcoef(x, y)[0, 1])


def gray8() -> np.ndarray:
    return np.asarray(photo().convert("L"))


def png_header_only(width: int, height: int, payload: int = 1 << 20) -> bytes:
    """A small PNG whose IHDR declares width x height (IDAT: compressed zeros)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(bytes(payload), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
