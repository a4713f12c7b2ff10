"""Safe decoding of user-uploaded images.

Uploaded bytes are hostile until proven otherwise. The format is decided by
content (magic bytes), never by the client's file name, and only Pillow's
plugin for that format may parse the bytes: this keeps e.g. the EPS plugin
(which runs Ghostscript) or the PDF/ICO parsers away from uploads. Sizes are
checked from the header before any pixel is decoded, truncated files are
errors, and every image leaves here fully loaded, EXIF-oriented and in the
requested mode. No global Pillow setting is changed (thread safety).
"""

from __future__ import annotations

import io
import threading
import warnings

import numpy as np
from PIL import Image, ImageOps

from ..common.errors import ImageRejected
from ..common.limits import IMAGE_UPLOAD

MAX_IMAGE_BYTES = IMAGE_UPLOAD.max_bytes  # larger uploads are refused before parsing
# The pixel cap bounds memory; the resize cuts a long side down before scaling
# (transforms.resize_center_crop), so a 12000×3000 phone panorama is fine. The side cap
# only refuses headers no camera writes (JPEG's own limit is 65,535).
MAX_IMAGE_SIDE = 32_768
MAX_PIXELS = 40_000_000  # 40 MP, below Pillow's MAX_IMAGE_PIXELS (~89 MP)
MAX_JPEG_SCANS = 100  # start-of-scan markers; progressive encoders write about 10

# Pillow format names (what Image.format reports); MPO is accepted as JPEG.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_SHOWN = {"WEBP": "WebP"}
_ALLOWED_TEXT = ", ".join(_SHOWN.get(f, f) for f in ALLOWED_FORMATS)
# Plugins allowed to parse a sniffed format. The JPEG plugin itself turns
# multi-picture camera files into MPO, so MPO must be allowed alongside it.
_PLUGINS: dict[str, tuple[str, ...]] = {f: (f,) for f in ALLOWED_FORMATS}
_PLUGINS["JPEG"] = ("JPEG", "MPO")
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)  # the DIB headers Pillow reads

# Signatures of common non-allowed files, only to say what was found.
_OTHER = (
    (b"%PDF", "PDF"), (b"%!PS", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"\x00\x00\x01\x00", "ICO"), (b"\x00\x00\x02\x00", "CUR"), (b"icns", "ICNS"),
    (b"8BPS", "PSD"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xffO\xffQ", "JPEG 2000"),
    (b"qoif", "QOI"), (b"DDS ", "DDS"), (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip archive"), (b"RIFF", "RIFF audio/video"),
    (b"\x7fELF", "executable"), (b"MZ", "executable"),
)
# catch_warnings swaps the process-wide filter list (until Python 3.14), so two
# overlapping uses can leave our "error" filter installed for good. Serialising
# our own uses prevents that; only the cheap header parse runs under the lock.
_WARNINGS_LOCK = threading.Lock()
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def sniff_format(data: bytes) -> str | None:
    """Allowed format of ``data`` by magic bytes ("JPEG", "PNG", "WEBP", ...), else None."""
    head = bytes(data[:18])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    # "BM" alone is too weak (text can start with it): also require a DIB header size.
    dib_size = int.from_bytes(head[14:18], "little") if len(head) >= 18 else 0
    if head[:2] == b"BM" and dib_size in _BMP_HEADER_SIZES:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF
        return "TIFF"
    return None


def _describe(data: bytes) -> str:
    """Best-effort name of what a refused file is, for the message."""
    head = bytes(data[:32])
    if head[4:8] == b"ftyp":  # ISO base media: HEIC/AVIF photos from phones, or video
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        return "HEIC/HEIF" if brand in _HEIF_BRANDS else "MP4/QuickTime video"
    for magic, label in _OTHER:
        if head.startswith(magic):
            return label
    if head[:1] == b"P" and head[1:2] in b"1234567" and head[2:3].isspace():
        return "PPM/PGM/PBM"
    sample = bytes(data[:4096])
    try:
        text = sample.decode("utf-8", errors="strict" if len(data) <= 4096 else "ignore")
    except UnicodeDecodeError:
        return "unrecognised binary data"
    if "\x00" in text or sum(c.isprintable() or c.isspace() for c in text) < 0.95 * len(text):
        return "unrecognised binary data"
    lowered = text.lower()
    if "<svg" in lowered:
        return "SVG"
    return "HTML" if "<html" in lowered or "<!doctype html" in lowered else "text"


def _display_name(name: object) -> str:
    # The name is only ever shown, never opened; strip control characters so it
    # cannot break the message layout, and keep it short.
    text = "".join(c if c.isprintable() else "?" for c in str(name)) or "image"
    return text if len(text) <= 120 else text[:117] + "..."


def _mb(n: int) -> str:
    return f"{n / 1_048_576:.1f} MB"


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map 16/32-bit integer or float pixels to 0..255.

    * 16-bit unsigned (I;16*): divide by 257, so 65535 -> 255 exactly.
    * I (int32) and F (float32): keep the scale when the values fit a known
      convention -- floats within [0, 1] are multiplied by 255, values within
      [0, 255] are kept, integers within [0, 65535] are 16-bit data in a
      32-bit container (/257). Anything else (negative, HDR, 32-bit counts) is
      stretched linearly from its actual min..max. Clipping would turn most of
      those images all-white. NaN/inf become the minimum.
    """
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    a = arr.astype(np.float32)
    finite = np.isfinite(a)
    if not finite.all():
        a = np.where(finite, a, a[finite].min() if finite.any() else 0.0)
    lo, hi = float(a.min()), float(a.max())
    if arr.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        a = a * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        pass
    elif arr.dtype.kind in "iu" and lo >= 0.0 and hi <= 65535.0:
        a = a / 257.0
    elif hi > lo:
        a = (a - lo) * (255.0 / (hi - lo))
    else:
        a = np.full_like(a, 0.0 if lo <= 0 else 255.0)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _convert(img: Image.Image, mode: str) -> Image.Image:
    """Return a new image in ``mode`` ("RGB" or "L"), alpha composited on white."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = Image.fromarray(_to_uint8(np.asarray(img)))  # 2-D uint8 -> "L"
    # "transparency" covers P/L/RGB images with a tRNS chunk or GIF transparent index.
    if "A" in img.mode or "a" in img.mode or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    elif img.mode not in ("L", "RGB"):
        img = img.convert("L" if img.mode == "1" else "RGB")  # P, CMYK, YCbCr, ...
    return img.convert(mode)  # same mode -> a copy, so never tied to the source file


def _orient(img: Image.Image) -> Image.Image:
    # EXIF is untrusted metadata: a broken block must not cost the user the
    # picture, so any failure here means "leave it unrotated".
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        return img


def decode_image(
    data: bytes,
    *,
    mode: str = "RGB",
    name: str = "image",
    max_bytes: int = MAX_IMAGE_BYTES,
    max_side: int = MAX_IMAGE_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Decode uploaded bytes to a fully loaded, EXIF-oriented image in ``mode``.

    ``name`` is only used in messages. Raises ImageRejected (its str() names the
    file and the reason) for anything that is not a usable image.
    Animated images give their first frame; other frames are never decoded.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', not {mode!r}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    label = _display_name(name)
    size = memoryview(data).nbytes
    if size == 0:
        raise ImageRejected(label, "the file is empty")
    if size > max_bytes:
        raise ImageRejected(label, f"the file is too large ({_mb(size)}; limit {_mb(max_bytes)})")
    fmt = sniff_format(data)
    if fmt is None:
        reason = f"not a supported image (found {_describe(data)}); allowed: {_ALLOWED_TEXT}"
        raise ImageRejected(label, reason)
    shown = _SHOWN.get(fmt, fmt)
    try:
        # Our own caps (below Pillow's) are the first line of defence, checked
        # on the header before any pixel is decoded; Pillow's bomb warning,
        # turned into an error while the header is parsed, is the second. (Pillow
        # re-checks some sizes in load(); with our caps those cannot trip it.)
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(bytes(data)), formats=_PLUGINS[fmt])  # lazy: header only
        with img:
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ImageRejected(label, f"the {shown} file declares an empty image")
            if width > max_side or height > max_side:
                raise ImageRejected(
                    label, f"the image is {width}x{height} pixels; the limit is {max_side} per side"
                )
            if width * height > max_pixels:
                raise ImageRejected(
                    label,
                    f"the image has {width * height / 1e6:.1f} megapixels; "
                    f"the limit is {max_pixels / 1e6:.1f}",
                )
            scans = bytes(data).count(b"\xff\xda") if fmt == "JPEG" else 0
            if scans > MAX_JPEG_SCANS:
                # libjpeg only warns about repeated progressive scans, and each one
                # re-processes the whole image: 25 MB of them is half an hour of CPU.
                raise ImageRejected(label, f"the JPEG has {scans} scans; the limit is "
                                           f"{MAX_JPEG_SCANS} (real encoders write under 20)")
            # Full decode of frame 0 only (never seek/n_frames: that walks every
            # frame). With LOAD_TRUNCATED_IMAGES False, truncation raises here.
            img.load()
            oriented = _orient(img)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        reason = "the image dimensions are too large (possible decompression bomb)"
        raise ImageRejected(label, reason) from None
    except MemoryError:
        raise ImageRejected(label, "the image is too large to decode") from None
    except Exception:  # any parser failure on untrusted bytes means the file is damaged
        raise ImageRejected(label, f"the {shown} file is truncated or corrupt") from None
    try:
        return _convert(oriented, mode)
    except (ValueError, OSError):
        reason = f"unsupported colour mode {oriented.mode} in {shown} file"
        raise ImageRejected(label, reason) from None

