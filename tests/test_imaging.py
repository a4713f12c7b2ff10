"""Tests for resnet_explorer.imaging: safe decoding of uploaded images."""

from __future__ import annotations

import io
import pickle
import random
import struct
import threading
import time
import warnings
import zlib
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image, ImageFile, features
from skimage import data as skdata

from resnet_explorer.common import ImageRejected, UserError
from resnet_explorer.datasets import decode_image, decode_many, imaging, sniff_format
from resnet_explorer.datasets.imaging import ALLOWED_FORMATS

W, H = 96, 64  # non-square on purpose: rotations must show up in the size
PHOTOS = ("chelsea", "coffee", "astronaut")


@lru_cache(maxsize=None)
def photo(name: str = "chelsea") -> Image.Image:
    """A real photo from scikit-image, downscaled to W x H RGB."""
    full = Image.fromarray(getattr(skdata, name)()).convert("RGB")
    return full.resize((W, H), Image.Resampling.LANCZOS)


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


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


# --------------------------------------------------------------------- formats

SAVE_KW: dict[str, dict[str, object]] = {
    "JPEG": {"quality": 95},
    "PNG": {},
    "WEBP": {"lossless": True},
    "GIF": {},
    "BMP": {},
    "TIFF": {},
    "MPO": {"quality": 95},
}
# Allowed mean abs difference to the source: lossy JPEG, palette GIF, else exact.
TOLERANCE = {"JPEG": 4.0, "MPO": 4.0, "GIF": 10.0}


def test_allowed_formats_constant() -> None:
    assert ALLOWED_FORMATS == ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


@pytest.mark.parametrize("out_mode", ["RGB", "L"])
@pytest.mark.parametrize("fmt", list(SAVE_KW))
@pytest.mark.parametrize("name", PHOTOS)
def test_real_photo_in_every_allowed_format(name: str, fmt: str, out_mode: str) -> None:
    src = photo(name)
    data = encode(src, fmt, **SAVE_KW[fmt])
    assert sniff_format(data) == ("JPEG" if fmt == "MPO" else fmt)
    img = decode_image(data, mode=out_mode, name=f"{name}.{fmt.lower()}")
    assert img.mode == out_mode and img.size == (W, H)
    assert mad(img, src.convert(out_mode)) <= TOLERANCE.get(fmt, 0.0)


def test_mpo_is_accepted_as_jpeg() -> None:
    data = encode(photo(), "MPO", save_all=True, append_images=[photo("coffee")], quality=95)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert mad(decode_image(data), photo()) < 4.0


def test_format_is_decided_by_content_not_name() -> None:
    jpeg = encode(photo(), "JPEG")
    assert decode_image(jpeg, name="holiday.png").size == (W, H)
    assert decode_image(jpeg, name="no_extension").size == (W, H)


def test_bytearray_and_memoryview_accepted() -> None:
    png = encode(photo(), "PNG")
    assert mad(decode_image(bytearray(png)), photo()) == 0
    assert mad(decode_image(memoryview(png)), photo()) == 0


# ----------------------------------------------------------------------- modes


def source_in_mode(mode: str) -> Image.Image:
    base = photo()
    g = gray8()
    if mode == "I;16":
        return Image.fromarray(g.astype(np.uint16) * 257)
    if mode == "I":
        return Image.fromarray(g.astype(np.int32) * 1000)  # 0..255000: min..max stretch
    if mode == "F":
        return Image.fromarray(g.astype(np.float32) / 255)  # normalised float
    if mode == "P":
        return base.quantize(256)  # adaptive palette (convert("P") would dither to the web palette)
    if mode == "P+t":
        p = base.quantize(255)
        p.info["transparency"] = 0
        return p
    return base.convert(mode)


# (source mode, container, mode Pillow opens it as)
MODE_CASES = [
    ("1", "PNG", "1"), ("1", "TIFF", "1"), ("1", "BMP", "1"),
    ("L", "PNG", "L"), ("L", "TIFF", "L"), ("L", "JPEG", "L"),
    ("LA", "PNG", "LA"), ("LA", "TIFF", "LA"),
    ("P", "PNG", "P"), ("P", "GIF", "P"), ("P", "BMP", "P"), ("P", "TIFF", "P"),
    ("P+t", "PNG", "P"), ("P+t", "GIF", "P"),
    ("RGB", "PNG", "RGB"), ("RGB", "TIFF", "RGB"),
    ("RGBA", "PNG", "RGBA"), ("RGBA", "TIFF", "RGBA"),
    ("CMYK", "TIFF", "CMYK"), ("CMYK", "JPEG", "CMYK"),
    ("I;16", "PNG", "I;16"), ("I;16", "TIFF", "I;16"),
    ("I", "TIFF", "I"), ("F", "TIFF", "F"),
]


@pytest.mark.parametrize("out_mode", ["RGB", "L"])
@pytest.mark.parametrize(
    ("mode", "fmt", "opened"), MODE_CASES, ids=[f"{m}-{f}" for m, f, _ in MODE_CASES]
)
def test_every_mode_decodes_to_rgb_and_l(mode: str, fmt: str, opened: str, out_mode: str) -> None:
    kw = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(source_in_mode(mode), fmt, **kw)
    assert Image.open(io.BytesIO(data)).mode == opened  # the case really exercises that mode
    img = decode_image(data, mode=out_mode)
    assert img.mode == out_mode and img.size == (W, H)
    lum = np.asarray(img.convert("L"))
    if mode == "1":  # dithered: only black and white, same overall brightness
        assert set(np.unique(lum)) <= {0, 255}
        assert abs(lum.mean() - gray8().mean()) < 12
    else:
        assert corr(lum, gray8()) > 0.97


# (source mode, container): left half fully transparent over black, right half the photo
ALPHA_CASES = [("RGBA", "PNG"), ("RGBA", "WEBP"), ("RGBA", "TIFF"), ("LA", "PNG"), ("LA", "TIFF"),
               ("P", "PNG"), ("P", "GIF"), ("L-tRNS", "PNG"), ("RGB-tRNS", "PNG")]


def half_transparent(mode: str) -> Image.Image:
    src = photo()
    if mode in ("RGBA", "LA"):
        img = src.convert(mode)
        alpha = Image.new("L", (W, H), 255)
        alpha.paste(0, (0, 0, W // 2, H))
        img.putalpha(alpha)
        black = Image.new(mode, (W // 2, H), 0)
        # the hidden pixels are black, so white can only come from compositing
        img.paste(black, (0, 0), black)
        img.putalpha(alpha)
        return img
    if mode == "P":
        img = src.quantize(255)
        img.putpalette(img.getpalette()[: 255 * 3] + [0, 0, 0])  # index 255: black, transparent
        img.paste(255, (0, 0, W // 2, H))
        img.info["transparency"] = 255
        return img
    if mode == "L-tRNS":
        g = np.maximum(gray8(), 8)
        g[:, : W // 2] = 7
        img = Image.fromarray(g)
        img.info["transparency"] = 7
        return img
    a = np.asarray(src).copy()
    a[..., 0] |= 1  # no visible pixel equals the transparent colour (0, 2, 4)
    a[:, : W // 2] = (0, 2, 4)
    img = Image.fromarray(a)
    img.info["transparency"] = (0, 2, 4)
    return img


@pytest.mark.parametrize("out_mode", ["RGB", "L"])
@pytest.mark.parametrize(("mode", "fmt"), ALPHA_CASES, ids=[f"{m}-{f}" for m, f in ALPHA_CASES])
def test_transparent_pixels_become_white(mode: str, fmt: str, out_mode: str) -> None:
    src = half_transparent(mode)
    kw: dict[str, object] = {"lossless": True} if fmt == "WEBP" else {}
    if "transparency" in src.info:
        kw["transparency"] = src.info["transparency"]
    img = decode_image(encode(src, fmt, **kw), mode=out_mode)
    a = np.asarray(img)
    assert (a[:, : W // 2] == 255).all()
    assert a[:, W // 2 :].mean() < 200  # the opaque half keeps the photo


# ------------------------------------------------------------ high bit depths


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_image_matches_8bit_original(fmt: str) -> None:
    g = gray8()
    data = encode(Image.fromarray(g.astype(np.uint16) * 257), fmt)
    out = np.asarray(decode_image(data, mode="L"))
    assert 0 < out.mean() < 255 and out.std() > 10  # neither all white nor all black
    assert corr(out, g) > 0.999
    assert np.array_equal(out, g)  # x*257 / 257 is exact


def test_16bit_with_narrow_range_is_scaled_not_clipped() -> None:
    g16 = (gray8().astype(np.uint16) * 64)  # 14-bit sensor data, max ~16320
    out = np.asarray(decode_image(encode(Image.fromarray(g16), "PNG"), mode="L"))
    assert out.max() < 70 and corr(out, gray8()) > 0.99  # /257, not clipped to 255


@pytest.mark.parametrize(
    ("values", "expect"),
    [
        (lambda g: g.astype(np.int32), "same"),  # 8-bit data in a 32-bit container: kept
        (lambda g: g.astype(np.int32) * 257, "same"),  # 16-bit data in I: /257
        (lambda g: g.astype(np.int32) * 100_000 - 5_000_000, "stretched"),  # out of range: min..max
        (lambda g: g.astype(np.float32) / 255, "same"),  # float 0..1: *255
        (lambda g: g.astype(np.float32) * 3.5 - 100, "stretched"),  # arbitrary floats: min..max
    ],
    ids=["I-8bit", "I-16bit", "I-wide", "F-unit", "F-wide"],
)
def test_32bit_int_and_float_scaling(values, expect: str) -> None:
    g = gray8()
    out = np.asarray(decode_image(encode(Image.fromarray(values(g)), "TIFF"), mode="L")).astype(int)
    assert corr(out, g) > 0.999
    if expect == "same":
        assert np.abs(out - g).max() <= 1
    else:
        assert out.min() == 0 and out.max() == 255


def test_float_nan_and_constant_images() -> None:
    f = (gray8() / 255).astype(np.float32)
    f[0, 0] = np.nan
    f[0, 1] = np.inf
    out = np.asarray(decode_image(encode(Image.fromarray(f), "TIFF"), mode="L"))
    assert corr(out[1:], gray8()[1:]) > 0.99
    constant = encode(Image.fromarray(np.full((H, W), 7e6, np.float32)), "TIFF")
    flat = np.asarray(decode_image(constant, mode="L"))
    assert flat.shape == (H, W) and len(np.unique(flat)) == 1


# ----------------------------------------------------------- EXIF orientation

# How a viewer turns the STORED pixels into the DISPLAYED picture, written from
# the EXIF spec (0th row / 0th column meaning), independently of Pillow.
DISPLAY = {
    1: lambda a: a,
    2: np.fliplr,  # mirrored horizontally
    3: lambda a: np.rot90(a, 2),  # rotated 180
    4: np.flipud,  # mirrored vertically
    5: lambda a: a.swapaxes(0, 1),  # transpose: 0th row is the left side, 0th column the top
    6: lambda a: np.rot90(a, -1),  # needs 90 degrees clockwise
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # anti-transpose
    8: lambda a: np.rot90(a, 1),  # needs 90 degrees counter-clockwise
}
STORE = {o: DISPLAY[{6: 8, 8: 6}.get(o, o)] for o in DISPLAY}  # inverses: only 6 and 8 differ
EXIF_FORMATS = {"PNG": {}, "TIFF": {}, "WEBP": {"lossless": True}, "JPEG": {"quality": 95}}


@pytest.mark.parametrize("fmt", list(EXIF_FORMATS))
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(orientation: int, fmt: str) -> None:
    reference = np.asarray(photo("astronaut"))  # what the user must see, W x H
    stored = np.ascontiguousarray(STORE[orientation](reference))
    assert np.array_equal(DISPLAY[orientation](stored), reference)  # the table is self-consistent
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(stored), fmt, exif=exif, **EXIF_FORMATS[fmt])
    assert Image.open(io.BytesIO(data)).getexif().get(0x0112) == orientation
    img = decode_image(data)
    assert img.size == (W, H)
    assert mad(img, Image.fromarray(reference)) <= (4.0 if fmt == "JPEG" else 0.0)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize(
    "exif",
    [
        b"Exif\x00\x00" + bytes(range(256)) * 2,
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff",
        b"\x00",
    ],
    ids=["garbage", "bad-ifd-count", "tiny"],
)
def test_broken_exif_still_decodes(exif: bytes) -> None:
    data = encode(photo(), "JPEG", exif=exif, quality=95)
    img = decode_image(data)
    assert img.size == (W, H) and mad(img, photo()) < 4.0


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_out_of_range_orientation_is_ignored(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    img = decode_image(encode(photo(), "PNG", exif=exif))
    assert mad(img, photo()) == 0


# ------------------------------------------------------------------ animation

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_image_gives_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (W, H), c) for c in COLOURS]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=40, loop=0)
    opened = Image.open(io.BytesIO(data))
    assert getattr(opened, "n_frames", 1) == 3
    a = np.asarray(decode_image(data)).astype(int)
    assert np.abs(a - COLOURS[0]).max() <= 2


def test_animated_gif_later_frames_are_never_decoded() -> None:
    # Noise frames don't compress, so the first frame ends well before half the
    # file. Cutting the file there leaves later frames broken: decoding must
    # still succeed, which shows only frame 0 is read.
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(4)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40)
    first_frame_size = len(encode(frames[0], "GIF"))
    assert first_frame_size < len(data) // 2
    img = decode_image(data[: len(data) // 2])
    assert img.size == (64, 64)


# ----------------------------------------------------------------- rejections


def make_avif() -> bytes:
    if features.check("avif"):
        return encode(photo(), "AVIF")
    return b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64)


def _other(fmt: str) -> bytes:
    return encode(photo().resize((32, 32)), fmt)


def _half(fmt: str) -> bytes:
    data = encode(photo(), fmt)
    return data[: len(data) // 2]


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>'

REJECTIONS = {
    # id: (bytes factory, name, words the message must contain)
    "empty": (lambda: b"", "empty.jpg", "empty"),
    "truncated-jpeg": (lambda: _half("JPEG"), "cut.jpg", "JPEG file is truncated"),
    "truncated-png": (lambda: _half("PNG"), "cut.png", "PNG file is truncated"),
    "truncated-png-header": (lambda: encode(photo(), "PNG")[:20], "cut.png", "PNG file is trunc"),
    "truncated-gif-frame0": (lambda: encode(photo(), "GIF")[:300], "cut.gif", "GIF file is trunc"),
    "png-magic-then-garbage": (
        lambda: b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(500), "x.png", "corrupt"
    ),
    "random-bytes": (lambda: random.Random(0).randbytes(4096), "noise.jpg", "found unrecognised"),
    "pdf-renamed": (lambda: _other("PDF"), "cat.png", "found PDF"),
    "eps-renamed": (lambda: _other("EPS"), "cat.png", "found PostScript/EPS"),
    "ico": (lambda: _other("ICO"), "favicon.png", "found ICO"),
    "svg": (lambda: SVG, "logo.png", "found SVG"),
    "text": (lambda: b"BM is not enough to be a bitmap\nhello\n", "notes.bmp", "found text"),
    "html": (lambda: b"<!DOCTYPE html><html><body>hi</body></html>", "page.jpg", "found HTML"),
    "heic": (lambda: HEIC, "IMG_0001.HEIC", "found HEIC"),
    "avif": (make_avif, "photo.avif", "found AVIF"),
    "mp4": (lambda: MP4, "clip.jpg", "found MP4"),
    "zip": (lambda: b"PK\x03\x04" + bytes(60), "images.png", "found ZIP"),
    "ppm": (lambda: _other("PPM"), "x.png", "found PPM"),
    "qoi": (lambda: _other("QOI"), "x.png", "found QOI"),
    "tga": (lambda: _other("TGA"), "x.png", "not a supported image"),
    "pcx": (lambda: _other("PCX"), "x.png", "not a supported image"),
    "psd-header": (lambda: b"8BPS\x00\x01" + bytes(40), "x.png", "found PSD"),
    "bomb-100000px": (lambda: png_header_only(100_000, 100_000), "bomb.png", "too large"),
    "over-pixel-cap": (lambda: png_header_only(7000, 7000), "big.png", "49.0 megapixels; the"),
    "over-side": (lambda: encode(Image.new("L", (9000, 1)), "PNG"), "wide.png", "9000x1 pixels"),
    "over-bytes": (
        lambda: b"\xff\xd8\xff" + bytes(imaging.MAX_BYTES), "huge.jpg", "too large (25.0 MB; limit"
    ),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejected_with_one_clear_message(case: str) -> None:
    make, name, words = REJECTIONS[case]
    data = make()
    start = time.perf_counter()
    with pytest.raises(ImageRejected) as info:
        decode_image(data, name=name)
    assert time.perf_counter() - start < 1.0  # headers are checked before any pixel is decoded
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    assert words in message
    assert "\n" not in message and "Traceback" not in message
    if "not a supported image" in message:
        assert message.endswith("allowed: JPEG, PNG, WebP, GIF, BMP, TIFF")


def test_bomb_is_small_and_fast() -> None:
    data = png_header_only(100_000, 100_000)
    assert len(data) < 5_000
    start = time.perf_counter()
    with pytest.raises(ImageRejected):
        decode_image(data)
    assert time.perf_counter() - start < 1.0


def test_pillow_bomb_warning_is_a_second_line_of_defence() -> None:
    # Our caps raised above Pillow's limit: Pillow's warning (> ~89 MP) must still refuse it.
    before = list(warnings.filters)
    with pytest.raises(ImageRejected, match="possible decompression bomb"):
        decode_image(png_header_only(10_000, 10_000), max_side=20_000, max_pixels=10**9)
    assert warnings.filters == before  # the "error" filter did not leak


@pytest.mark.parametrize(
    ("limits", "words"),
    [({"max_bytes": 100}, "limit 0.0 MB"), ({"max_side": 64}, "limit is 64 per side"),
     ({"max_pixels": 1000}, "limit is 0.0")],
    ids=["max_bytes", "max_side", "max_pixels"],
)
def test_limits_are_keyword_arguments(limits: dict[str, int], words: str) -> None:
    data = encode(photo(), "PNG")
    with pytest.raises(ImageRejected, match=words):
        decode_image(data, name="p.png", **limits)
    assert decode_image(data).size == (W, H)  # defaults accept it


def test_truncated_images_stay_errors_globally() -> None:
    d = encode(photo(), "JPEG")
    with pytest.raises(ImageRejected):
        decode_image(d[: len(d) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bad_arguments_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="mode") as info:
        decode_image(encode(photo(), "PNG"), mode="RGBA")
    assert not isinstance(info.value, ImageRejected)
    with pytest.raises(TypeError):
        decode_image("not bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------- file names


def test_name_is_never_used_as_a_path(tmp_path) -> None:
    decoy = tmp_path / "decoy.png"
    decoy.write_bytes(encode(Image.new("RGB", (5, 5), "red"), "PNG"))
    data = encode(photo(), "PNG")
    for name in (str(decoy), "../../etc/passwd", "/dev/zero", "C:\\Windows\\win.ini"):
        img = decode_image(data, name=name)
        assert img.size == (W, H) and mad(img, photo()) == 0  # the bytes, not the file
    with pytest.raises(ImageRejected, match=r"^\.\./\.\./etc/passwd: the file is empty$"):
        decode_image(b"", name="../../etc/passwd")


def test_name_is_sanitised_for_messages() -> None:
    with pytest.raises(ImageRejected) as info:
        decode_image(b"", name="evil\nname\x1b[31m" + "x" * 500)
    text = str(info.value)
    assert "\n" not in text and "\x1b" not in text and len(text) < 200


# ---------------------------------------------------------- smaller helpers


def test_sniff_format() -> None:
    for fmt in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"):
        assert sniff_format(encode(photo(), fmt)) == fmt
    assert sniff_format(b"II+\x00\x08\x00\x00\x00") == "TIFF"  # BigTIFF
    others = (b"", b"BM", b"GIF8", b"RIFF\x00\x00\x00\x00WAVE", _other("PDF"), _other("ICO"), b"hi")
    for data in others:
        assert sniff_format(data) is None


def test_image_rejected_is_a_user_error_and_pickles() -> None:
    exc = ImageRejected("a.png", "the file is empty")
    assert isinstance(exc, UserError) and exc.problems == ["a.png: the file is empty"]
    assert str(exc) == "a.png: the file is empty"
    again = pickle.loads(pickle.dumps(exc))
    assert str(again) == str(exc) and again.name == "a.png" and again.reason == "the file is empty"


class Upload:  # quacks like Streamlit's UploadedFile
    def __init__(self, name: str, data: bytes) -> None:
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def test_decode_many_keeps_going_past_bad_files() -> None:
    files = [
        ("a.jpg", encode(photo(), "JPEG")),
        Upload("b.pdf", _other("PDF")),
        Upload("c.png", encode(photo(), "PNG")),
    ]
    results = decode_many(files, mode="L")
    assert [n for n, _ in results] == ["a.jpg", "b.pdf", "c.png"]
    assert isinstance(results[0][1], Image.Image) and results[0][1].mode == "L"
    assert isinstance(results[1][1], ImageRejected) and "found PDF" in str(results[1][1])
    assert isinstance(results[2][1], Image.Image)
    limited = decode_many([("d.png", encode(photo(), "PNG"))], max_side=10)
    assert isinstance(limited[0][1], ImageRejected)


def _with_repeated_scan(jpeg: bytes, copies: int) -> bytes:
    """A progressive JPEG with its last scan repeated: valid to libjpeg, costly to decode."""
    start = jpeg.rindex(b"\xff\xda")
    end = jpeg.rindex(b"\xff\xd9")
    return jpeg[:end] + jpeg[start:end] * copies + jpeg[end:]


def test_progressive_jpeg_with_hundreds_of_scans_is_refused() -> None:
    progressive = encode(photo(), "JPEG", progressive=True, quality=80)
    # A few extra scans decode (a repeated refinement scan shifts the pixels; no matter).
    assert decode_image(_with_repeated_scan(progressive, 20)).size == (W, H)
    with pytest.raises(ImageRejected, match=r"scans; the limit is 100"):
        decode_image(_with_repeated_scan(progressive, 200))


def test_concurrent_decoding_is_safe() -> None:
    good = encode(photo(), "PNG")
    bomb = png_header_only(10_000, 10_000)
    before = list(warnings.filters)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                assert mad(decode_image(good), photo()) == 0
                with pytest.raises(ImageRejected):
                    decode_image(bomb, max_side=20_000, max_pixels=10**9)
        except BaseException as exc:  # noqa: BLE001 - report in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert warnings.filters == before


def test_package_does_not_import_streamlit() -> None:
    import subprocess
    import sys

    code = "import sys, resnet_explorer.datasets.imaging; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
