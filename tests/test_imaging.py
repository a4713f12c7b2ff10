"""Decoding uploaded images (datasets.imaging): every allowed format and colour mode, high bit
depths, EXIF orientation and animations. Refusals are in test_imaging_refusals.py."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from resnet_explorer.datasets import decode_image, sniff_format
from resnet_explorer.datasets.imaging import ALLOWED_FORMATS
from tests.imaging_helpers import PHOTOS, H, W, corr, gray8, mad, photo
from tests.inference_helpers import encode

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
