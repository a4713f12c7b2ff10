"""Predictor and Grad-CAM: the upload path, bad files, EXIF, every architecture option."""

from __future__ import annotations

import csv
import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from resnet_explorer.arch import ArchConfig, build_model
from resnet_explorer.datasets import Preprocess
from resnet_explorer.inference import MAX_FILES, Predictor, colorize, grad_cam, overlay, results_csv
from resnet_explorer.models import ModelCard
from tests.inference_helpers import classify_images, encode

SMALL = dict(stem="cifar", stem_width=8, blocks=(1, 1), widths=(8, 16), depthwise=(False, False))


def make_predictor(cfg: ArchConfig, size: int = 32, resize: int = 36, seed: int = 0) -> Predictor:
    torch.manual_seed(seed)
    model = build_model(cfg)
    c = cfg.in_channels
    card = ModelCard(name="test", arch=cfg, source="trained",
                     class_names=tuple(f"c{i}" for i in range(cfg.num_classes)),
                     preprocess=Preprocess(c, size, resize, (0.5,) * c, (0.25,) * c))
    return Predictor(model, card)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return make_predictor(ArchConfig(**SMALL, num_classes=7))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(skdata.chelsea()).resize((96, 64))


# ----- preprocessing and top-k -------------------------------------------------------------
def test_prepare_resizes_shorter_side_and_center_crops(predictor):
    img = Image.new("RGB", (90, 45), "red")
    img.paste((0, 0, 255), (0, 0, 20, 45))  # a blue band on the left, outside the crop
    crop = predictor.prepare(img)
    assert crop.size == (32, 32)
    assert np.asarray(crop)[:, :, 2].max() < 5  # the band was cropped away


def test_thin_strips_are_cut_before_resizing_and_match_torchvision(predictor, monkeypatch):
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    from resnet_explorer.datasets import transforms

    # Same pixels as torchvision's resize + center crop for an ordinary wide image …
    wide = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 300, 3), np.uint8))
    expected = TF.center_crop(TF.resize(wide, [36], InterpolationMode.BILINEAR, antialias=True),
                              [32, 32])
    assert np.array_equal(np.asarray(predictor.prepare(wide)), np.asarray(expected))
    # … but a 110-byte 8192×1 PNG must not be resized to 294,912 pixels wide first.
    sizes = []
    real_resize = transforms.TF.resize
    monkeypatch.setattr(transforms.TF, "resize",
                        lambda img, *a, **k: sizes.append(img.size) or real_resize(img, *a, **k))
    strip = encode(Image.new("RGB", (8192, 1), "green"), "PNG")
    (result,) = predictor.classify([("strip.png", strip)])
    assert result.ok and result.image.size == (32, 32)
    assert sizes and max(max(s) for s in sizes) <= 2


def test_batches_shrink_for_networks_with_huge_activations(predictor):
    assert predictor.max_batch == 32  # 8 channels at 32×32: nowhere near the budget
    wide = ArchConfig(**{**SMALL, "stem_width": 256}, num_classes=3)
    big = make_predictor(wide, size=512, resize=512)  # 256 × 512² floats = 256 MiB per image
    assert big.max_batch == 1


def test_grad_cam_batches_are_bounded_by_what_its_backward_keeps(predictor):
    # Grad-CAM on stage 1 keeps every later stage's activations: a batch that fits the budget
    # one activation at a time may not fit it all at once.
    assert predictor.cam_batch == 32
    wide = ArchConfig(**{**SMALL, "stem_width": 64}, num_classes=3)
    mid = make_predictor(wide, size=256, resize=256)  # 16 MiB a layer, far more in all
    assert mid.cam_batch < mid.max_batch and mid.cam_batch >= 1


def test_topk_is_sorted_sums_to_at_most_one_and_is_clamped_to_the_class_count(predictor, photo):
    top = classify_images(predictor, [photo], k=50)[0].topk
    assert len(top.indices) == 7 and sorted(top.indices) == list(range(7))
    assert list(top.probs) == sorted(top.probs, reverse=True)
    assert sum(top.probs) == pytest.approx(1.0, abs=1e-5)
    x = predictor.to_input([predictor.prepare(photo)])
    with torch.no_grad():
        expected = torch.softmax(predictor._model(x), 1)[0]
    assert top.indices[0] == int(expected.argmax())
    assert classify_images(predictor, [photo], k=0)[0].topk.labels == (top.labels[0],)


def test_batches_give_the_same_results_as_single_images(predictor, photo):
    images = [photo.rotate(a) for a in (0, 10, 20, 30, 40)]
    batched = [r.topk for r in classify_images(predictor, images, k=3)]
    single = [classify_images(predictor, [im], k=3)[0].topk for im in images]
    for a, b in zip(batched, single):
        assert a.indices == b.indices
        np.testing.assert_allclose(a.probs, b.probs, rtol=1e-4, atol=1e-6)


# ----- the full upload path -------------------------------------------------------------------
def _bad_and_good_uploads(photo: Image.Image) -> list[tuple[str, bytes, str | None]]:
    """(name, bytes, expected error fragment or None for a good file)."""
    png = encode(photo)
    rgba = photo.convert("RGBA")
    rgba.putalpha(128)
    frames = [photo, photo.rotate(90)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    return [
        ("photo.jpg", encode(photo, "JPEG", quality=90), None),
        ("empty.png", b"", "empty"),
        ("notes.png", b"hello, this is text", "found text"),
        ("truncated.png", png[: len(png) // 2], "truncated or corrupt"),
        ("doc.jpg", b"%PDF-1.7\n" + b"0" * 100, "found PDF"),
        ("model.png", b"PK\x03\x04" + b"\0" * 100, "ZIP archive"),
        ("huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (26 * 2**20), "too large"),
        ("bomb.png", encode(Image.new("1", (8000, 8000))), "megapixels"),
        ("grey.png", encode(photo.convert("L")), None),
        ("alpha.png", encode(rgba), None),
        ("animated.gif", gif.getvalue(), None),
        ("sixteen-bit.png", encode(Image.fromarray(
            (np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16))), None),
        ("tiny.bmp", encode(Image.new("RGB", (1, 1), "white"), "BMP"), None),
        ("cmyk.jpg", encode(photo.convert("CMYK"), "JPEG"), None),
    ]


def test_mixed_batch_classifies_good_files_and_explains_each_bad_one(predictor, photo):
    cases = _bad_and_good_uploads(photo)
    results = predictor.classify([(n, b) for n, b, _ in cases], k=3, cam=True)
    assert [r.name for r in results] == [n for n, _, _ in cases]  # order kept
    for (name, _, expected), result in zip(cases, results):
        if expected is None:
            assert result.ok and result.topk is not None, (name, result.error)
            assert len(result.topk.labels) == 3
            assert result.image.size == (32, 32) and result.cam.size == (32, 32)
        else:
            assert not result.ok and result.topk is None
            assert result.error.startswith(name) and expected in result.error, result.error
    # The good files get exactly what classifying them alone gives.
    alone = predictor.classify([cases[0][:2]], k=3)[0]
    assert alone.topk.indices == results[0].topk.indices
    np.testing.assert_allclose(alone.topk.probs, results[0].topk.probs, atol=1e-6)


def test_uploaded_file_objects_and_the_file_limit(predictor, photo):
    class Uploaded:  # what st.file_uploader / st.camera_input hand over
        def __init__(self, name: str, data: bytes):
            self.name, self._data = name, data

        def getvalue(self) -> bytes:
            return self._data

    png = encode(photo.resize((8, 8)))
    files = [Uploaded(f"{i}.png", png) for i in range(MAX_FILES + 1)]
    results = predictor.classify(files)
    assert [r.ok for r in results] == [True] * MAX_FILES + [False]
    assert f"at most {MAX_FILES} files" in results[-1].error


ORIENT_INVERSE = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                  4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                  6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
                  8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientations_give_the_prediction_of_the_upright_image(predictor, fmt):
    upright = Image.fromarray(skdata.chelsea()).resize((120, 80))
    expected = predictor.classify([("upright", encode(upright, fmt, quality=95))], k=7)[0].topk
    for orientation, inverse in ORIENT_INVERSE.items():
        stored = upright if inverse is None else upright.transpose(inverse)
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = encode(stored, fmt, exif=exif.tobytes(), quality=95)
        got = predictor.classify([(f"o{orientation}", data)], k=7)[0].topk
        assert got.indices[0] == expected.indices[0], orientation
        # PNG is lossless, so equal; JPEG re-encodes rotated blocks, so only close.
        tol = 1e-5 if fmt == "PNG" else 0.05
        np.testing.assert_allclose(sorted(got.probs), sorted(expected.probs), atol=tol)


def test_grayscale_model_reads_colour_uploads_as_one_channel(photo):
    grey = make_predictor(ArchConfig(**SMALL, in_channels=1, num_classes=3))
    colour, luminance = grey.classify([("c", encode(photo)), ("l", encode(photo.convert("L")))])
    assert colour.topk.indices == luminance.topk.indices
    np.testing.assert_allclose(colour.topk.probs, luminance.topk.probs, atol=1e-5)


def test_results_csv_has_a_row_per_rank_and_per_error_and_defuses_formulas(predictor, photo):
    results = predictor.classify([("=cmd()|x.png", encode(photo)), ("bad.png", b"junk")], k=2)
    rows = list(csv.DictReader(io.StringIO(results_csv(results))))
    assert [r["rank"] for r in rows] == ["1", "2", ""]
    assert rows[0]["file"] == "'=cmd()|x.png"  # not a formula in a spreadsheet
    assert float(rows[0]["probability"]) == pytest.approx(results[0].topk.probs[0], abs=1e-6)
    assert rows[2]["file"] == "bad.png" and "not a supported image" in rows[2]["error"]


# ----- Grad-CAM --------------------------------------------------------------------------------
CAM_CONFIGS = {
    "basic-relu": {},
    "preact-gelu": dict(block="preact", activation="gelu"),
    "preact-none-norm": dict(block="preact", norm="none"),
    "bottleneck-se-silu": dict(block="bottleneck", se_reduction=4, activation="silu"),
    "depthwise-prelu-group": dict(depthwise=(True, True), activation="prelu", norm="group",
                                  norm_groups=4),
    "mish-layer-norm-shortcut-A": dict(activation="mish", norm="layer", shortcut="A"),
    "hardswish-instance-D": dict(activation="hardswish", norm="instance", shortcut="D"),
    "leaky-elu-head-hidden-deep": dict(activation="elu", head_hidden=12, stem="deep",
                                       stem_width=8, dropout=0.3, drop_path=0.2),
    "three-stages-leaky": dict(activation="leaky_relu", blocks=(1, 1, 1), widths=(8, 8, 16),
                               depthwise=(False, True, False)),
}


@pytest.mark.parametrize("options", CAM_CONFIGS.values(), ids=CAM_CONFIGS.keys())
def test_gradcam_works_for_every_option_and_leaves_the_model_untouched(options, photo):
    cfg = ArchConfig(**{**SMALL, **options, "num_classes": 5})
    pred = make_predictor(cfg)
    model = pred._model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = [photo, photo.rotate(90)]
    plain = [r.topk for r in classify_images(pred, images)]
    explained = [(r.topk, r.cam) for r in classify_images(pred, images, cam=True)]
    for top, (cam_top, image) in zip(plain, explained):
        assert top.indices == cam_top.indices  # the CAM pass gives the same prediction
        np.testing.assert_allclose(top.probs, cam_top.probs, atol=1e-5)
        assert image.size == (32, 32) and image.mode == "RGB"
    assert not model.training
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
               for m in model.modules())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_gradcam_equals_the_class_activation_map_of_a_pool_and_linear_head(predictor, photo):
    """For GAP + fc, Grad-CAM reduces to CAM (Zhou et al. 2016): relu(Σ_k w_ck A_k)."""
    model = predictor._model
    x = predictor.to_input([predictor.prepare(photo), predictor.prepare(photo.rotate(45))])
    cams, logits = grad_cam(model, x)
    with torch.no_grad():
        features = model.forward_features(x)
    for i, cls in enumerate(logits.argmax(1).tolist()):  # each image's top class
        manual = torch.relu(torch.einsum("k,khw->hw", model.fc.weight[cls], features[i]))
        manual = manual / manual.max() if manual.max() > 0 else manual
        torch.testing.assert_close(cams[i], manual, rtol=1e-4, atol=1e-5)
    assert cams.shape == features.shape[:1] + features.shape[2:]


def test_gradcam_points_at_the_evidence():
    """A hand-built network that detects red: the map must peak on the red square."""
    cfg = ArchConfig(**SMALL, num_classes=2, norm="none", activation="relu")
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        # Pass the red channel straight through every conv (identity kernels, channel 0).
        model.conv1.weight[0, 0, 1, 1] = 1.0
        for block in (model.layer1[0], model.layer2[0]):
            block.conv1.weight[0, 0, 1, 1] = 1.0
            block.conv2.weight[0, 0, 1, 1] = 1.0
        model.fc.weight[1, 0] = 1.0
    img = Image.new("RGB", (32, 32), "black")
    img.paste((255, 0, 0), (20, 4, 28, 12))  # red square, top right
    card = ModelCard(name="red", arch=cfg, source="trained", class_names=("other", "red"),
                     preprocess=Preprocess(3, 32, 32, (0.0,) * 3, (1.0,) * 3))
    (result,) = classify_images(Predictor(model, card), [img], cam=True)
    top, cam_image = result.topk, result.cam
    assert top.best == "red"
    x = Predictor(model, card).to_input([img])
    cams, _ = grad_cam(model, x)
    h, w = cams.shape[1:]
    peak = divmod(int(cams[0].argmax()), w)
    assert peak[0] < h // 2 and peak[1] >= w // 2  # top right quadrant
    red_area = np.asarray(cam_image)[6:10, 22:26].astype(int)
    elsewhere = np.asarray(cam_image)[24:28, 4:8].astype(int)
    assert red_area[..., 0].mean() > elsewhere[..., 0].mean()  # hotter (redder) on the square


def test_colormap_and_overlay_shapes_and_ends():
    assert colorize(np.array([[0.0, 1.0]])).tolist() == [[[0, 0, 128], [128, 0, 0]]]
    out = overlay(Image.new("L", (4, 3), 200), np.zeros((3, 4)))
    assert out.size == (4, 3) and out.mode == "RGB"
    with pytest.raises(ValueError, match="differ in size"):
        overlay(Image.new("RGB", (4, 4)), np.zeros((3, 4)))


def test_one_predictor_serves_concurrent_sessions(predictor, photo):
    uploads = [(f"{i}.png", encode(photo.rotate(i * 30))) for i in range(6)]
    expected = predictor.classify(uploads, k=3, cam=True)
    outcomes: list[list] = []
    errors: list[BaseException] = []

    def session(cam: bool) -> None:
        try:
            for _ in range(3):
                outcomes.append((cam, predictor.classify(uploads, k=3, cam=cam)))
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(outcomes) == 12
    for cam, results in outcomes:
        for got, want in zip(results, expected):
            assert got.topk.indices == want.topk.indices
            np.testing.assert_allclose(got.topk.probs, want.topk.probs, atol=1e-5)
            assert (got.cam is not None) == cam
    assert all(p.grad is None and not p.requires_grad for p in predictor._model.parameters())


@pytest.mark.parametrize("options", CAM_CONFIGS.values(), ids=CAM_CONFIGS.keys())
def test_folding_batch_norms_keeps_the_function_and_the_callers_model(options):
    from resnet_explorer.inference.predictor import fold_batch_norms

    torch.manual_seed(1)
    model = build_model(ArchConfig(**{**SMALL, **options, "num_classes": 4})).eval()
    with torch.no_grad():  # non-trivial running statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fold_batch_norms(model)
    x = torch.randn(3, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)
    assert model.state_dict().keys() == before.keys()  # the caller's model keeps its norms
    batch_norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    if options.get("norm", "batch") == "batch" and options.get("block") != "preact":
        assert batch_norms == 0
