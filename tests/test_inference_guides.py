"""What makes an inference readable for a newcomer: top-k bars with a name on every bar,
Grad-CAM on a chosen stage (the last one can be 1×1), what a model expects to be shown,
and inverting dark-on-light uploads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from skimage import data as skdata

from resnet_explorer.arch import ArchConfig, build_model
from resnet_explorer.datasets import Preprocess
from resnet_explorer.inference import (Predictor, TopK, coarse_stages, grad_cam, input_guide,
                                       looks_inverted, training_samples)
from resnet_explorer.inference.charts import topk_figure
from resnet_explorer.models import ModelCard, imagenet_sidecar
from tests.inference_helpers import classify_images, encode

# ResNet34's ImageNet stem at the digits recipe's 32 px: stages of 8, 4, 2 and 1 pixels.
SMALL_IMAGENET_STEM = ArchConfig(stem_width=8, blocks=(1, 1, 1, 1), widths=(8, 8, 16, 16),
                                 num_classes=10, in_channels=1)


def card_for(cfg: ArchConfig, mean: float = 0.5, dataset: str = "", size: int = 32,
             resize: int = 32) -> ModelCard:
    c = cfg.in_channels
    return ModelCard(name="test", arch=cfg, source="trained",
                     class_names=tuple(str(i) for i in range(cfg.num_classes)),
                     preprocess=Preprocess(c, size, resize, (mean,) * c, (0.25,) * c),
                     metrics={"dataset": dataset} if dataset else {})


def predictor_for(cfg: ArchConfig, **card) -> Predictor:
    torch.manual_seed(0)
    return Predictor(build_model(cfg), card_for(cfg, **card), engine="torch")


# ----- top-k bars --------------------------------------------------------------------------
def test_digit_class_names_are_categories_with_a_name_on_every_bar():
    fig = topk_figure(TopK((1, 7, 2), ("1", "7", "2"), (0.76, 0.2, 0.04)))
    axis = fig.layout.yaxis
    assert axis.type == "category"  # not a numeric axis with ticks 0, 2, 4 …
    bars = fig.data[0]
    assert list(axis.tickvals) == list(bars.y)  # one tick per bar …
    assert list(axis.ticktext) == ["2", "7", "1"]  # … named, most likely on top
    assert list(bars.text) == ["4.0%", "20.0%", "76.0%"]


def test_two_classes_with_one_name_keep_a_bar_each():
    # ImageNet has two "crane"s (the bird, 134, and the machine, 517).
    fig = topk_figure(TopK((517, 134), ("crane", "crane"), (0.6, 0.3)))
    assert len(set(fig.data[0].y)) == 2 and list(fig.layout.yaxis.ticktext) == ["crane"] * 2


# ----- Grad-CAM on a chosen stage ----------------------------------------------------------
def hooked_grad_cam(model: torch.nn.Module, x: torch.Tensor, module: torch.nn.Module):
    """Textbook Grad-CAM with hooks on `module`, on a private model: the reference."""
    seen = {}
    handle = module.register_forward_hook(lambda m, args, out: seen.update(out=out))
    try:
        with torch.enable_grad():
            logits = model(x.requires_grad_(True))
            score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
            (grad,) = torch.autograd.grad(score, seen["out"])
    finally:
        handle.remove()
    cams = torch.relu((grad.mean((2, 3), keepdim=True) * seen["out"]).sum(1)).detach()
    return cams / cams.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)


@pytest.mark.parametrize("block", ["basic", "preact"])
def test_each_stage_gives_the_map_of_that_stage_at_its_resolution(block):
    cfg = ArchConfig(stem="cifar", stem_width=8, blocks=(1, 1, 1), widths=(8, 8, 16),
                     depthwise=(False,) * 3, num_classes=4, block=block)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.randn(2, 3, 16, 16)
    shapes = []
    # The last stage of a pre-activation network: the map after its final norm and activation.
    last = [] if block == "preact" else [3]
    for stage in (1, 2, *last):
        cams, logits = grad_cam(model, x, stage)
        reference = hooked_grad_cam(model, x.clone(), getattr(model, f"layer{stage}"))
        torch.testing.assert_close(cams, reference, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(logits, model(x), rtol=1e-4, atol=1e-5)
        shapes.append(tuple(cams.shape[1:]))
    assert shapes == [(16, 16), (8, 8), (4, 4)][:len(shapes)]
    assert grad_cam(model, x)[0].shape[1:] == (4, 4)  # the default: the last stage
    for bad in (0, 4):
        with pytest.raises(ValueError, match="stage must be 1–3"):
            grad_cam(model, x, bad)


def test_a_small_input_through_the_imagenet_stem_names_its_coarse_stages():
    pred = predictor_for(SMALL_IMAGENET_STEM)
    assert pred.stage_sides == ((8, 8), (4, 4), (2, 2), (1, 1))
    assert coarse_stages(pred.stage_sides) == [3, 4]
    digit = Image.fromarray(skdata.camera()).resize((32, 32))
    (last,) = classify_images(pred, [digit], cam=True)
    (early,) = pred.classify([("d.png", encode(digit))], cam=True, cam_stage=2)
    x = pred.to_input([pred.prepare(digit.convert("L"))])
    assert grad_cam(pred._model, x)[0].shape[1:] == (1, 1)  # one tint for the whole image
    assert grad_cam(pred._model, x, 2)[0].shape[1:] == (4, 4)
    assert not np.array_equal(np.asarray(early.cam), np.asarray(last.cam))
    assert early.topk == last.topk  # the stage changes the map, not the prediction


# ----- what a model expects, and inverting uploads -----------------------------------------
def test_a_digits_model_says_its_input_size_and_that_it_learned_light_on_dark():
    guide = input_guide(card_for(SMALL_IMAGENET_STEM, mean=0.3, dataset="digits"))
    assert guide.light_on_dark and guide.size.startswith("32×32 px greyscale")
    assert "8×8" in guide.dataset
    photos = input_guide(ModelCard.from_sidecar(imagenet_sidecar()))
    assert not photos.light_on_dark and "shorter side is scaled to 256 px" in photos.size
    assert photos.dataset == ""


def test_training_samples_of_built_in_data_only_and_never_a_download(tmp_path):
    samples = training_samples("digits", 1, tmp_path)
    assert [label for _, label in samples] == [str(i) for i in range(10)]
    assert all(img.dtype == np.uint8 for img, _ in samples)
    assert training_samples("mnist", 1, tmp_path) == [] and not any(tmp_path.iterdir())
    assert training_samples("folder", 3, tmp_path) == training_samples("", 3, tmp_path) == []


def test_invert_colours_turns_a_dark_digit_on_paper_into_what_the_model_knows():
    pred = predictor_for(SMALL_IMAGENET_STEM)
    paper = Image.new("L", (40, 40), 240)
    paper.paste(20, (16, 6, 24, 34))  # a dark "1" on white paper
    (inverted,) = pred.classify([("one.png", encode(paper))], invert=True)
    (reference,) = classify_images(pred, [ImageOps.invert(paper)])
    assert inverted.topk == reference.topk
    seen = np.asarray(inverted.image.convert("L"))
    assert seen[16, 16] > 200 and seen[2, 2] < 40  # light stroke, dark background
    digits, photos = card_for(SMALL_IMAGENET_STEM, mean=0.3), card_for(SMALL_IMAGENET_STEM)
    assert looks_inverted(digits, paper) and not looks_inverted(digits, inverted.image)
    assert not looks_inverted(photos, paper)  # light backgrounds are normal in photos
