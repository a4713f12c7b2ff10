"""Refusing uploaded images (datasets.imaging): what is not an allowed image, bombs, hostile
names and headers, and decoding from many threads at once."""

from __future__ import annotations

import pickle
import random
import threading
import time
import warnings

import pytest
from PIL import Image, ImageFile, features

from resnet_explorer.common import ImageRejected, UserError
from resnet_explorer.datasets import decode_image, imaging, sniff_format
from resnet_explorer.datasets.transforms import resize_center_crop
from tests.imaging_helpers import H, W, mad, photo, png_header_only
from tests.inference_helpers import encode

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
    "over-side": (lambda: png_header_only(40_000, 1), "wide.png", "40000x1 pixels"),
    "over-bytes": (
        lambda: b"\xff\xd8\xff" + bytes(imaging.MAX_IMAGE_BYTES), "huge.jpg", "too large (25.0 MB; limit"
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


def test_a_phone_panorama_under_the_pixel_cap_is_classified_at_the_model_size() -> None:
    # 12000×3000 = 36 MP: under the 40 MP cap. The side cap used to refuse it at 8192.
    panorama = Image.new("L", (12_000, 3_000), 128)
    image = decode_image(encode(panorama, "PNG"), name="pano.png")
    assert image.size == (12_000, 3_000)
    assert resize_center_crop(image, 36, 32).size == (32, 32)


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
