"""Grad-CAM (Selvaraju et al. 2017) on any stage's output, without touching the model.

Hooks would mutate a model shared by every session (and leak if an exception skipped
their removal), so the feature map is taken explicitly: `forward_features` runs up to the
chosen stage without autograd, and only the rest (`forward_rest`: the later stages and the
head) is differentiated, with the detached feature map as the leaf that needs a gradient.
That works for every block type, norm, activation and attention option; on the last stage
of a pre-activation network the map is the one after the final norm and activation, which
is what the head sees. Grad mode is thread-local, so concurrent calls do not interfere.

The map has the chosen stage's resolution. At a small input the last stage can be 1×1 or
2×2 (ImageNet stem at 32 px): such a map can only tint the whole image, so `coarse_stages`
names them and the page offers an earlier stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..arch.model import ResNet

__all__ = ["grad_cam", "upsample_cams", "colorize", "overlay", "COARSE_SIDE", "coarse_stages"]

# A map no more than this many cells on a side shows at most a corner: too coarse to say where.
COARSE_SIDE = 2


def coarse_stages(sides: Sequence[tuple[int, int]]) -> list[int]:
    """The stages (1-based) whose maps, of the given (height, width), are too coarse to read."""
    return [i for i, (h, w) in enumerate(sides, 1) if max(h, w) <= COARSE_SIDE]


def grad_cam(model: ResNet, x: torch.Tensor,
             stage: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM of each image's top class for a batch of preprocessed inputs, on the output of
    `stage` (1-based; default the last): (cams (N, h, w) scaled to [0, 1], logits (N, classes))."""
    stages = model.cfg.num_stages if stage is None else int(stage)
    if not 1 <= stages <= model.cfg.num_stages:
        raise ValueError(f"stage must be 1–{model.cfg.num_stages} (got {stage})")
    with torch.no_grad():
        features = model.forward_features(x, stages)
    # enable_grad: the caller may be under no_grad. Must not be called under inference_mode
    # (its tensors cannot join a graph); the clone makes a plain leaf either way.
    with torch.enable_grad():
        leaf = features.detach().clone().requires_grad_(True)
        logits = model.forward_rest(leaf, stages)
        score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
        (grad,) = torch.autograd.grad(score, leaf)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # channel importance: pooled gradients
    cams = F.relu((weights * leaf.detach()).sum(1))
    peak = cams.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    # An all-zero map (no positive evidence) stays zero instead of dividing noise up.
    return (cams / peak).nan_to_num(0.0), logits.detach()


def upsample_cams(cams: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) maps → (N, H, W) float32 in [0, 1] at the input's resolution."""
    up = F.interpolate(cams[:, None].float(), size=size, mode="bilinear", align_corners=False)
    return up[:, 0].clamp(0, 1).cpu().numpy()


OVERLAY_ALPHA = 0.45  # the heat map's share: enough to read, the photo still recognisable
# Anchors of the "jet" colour map (blue → cyan → yellow → red): no matplotlib needed.
_JET = np.array([
    [0.00, 0.0, 0.0, 0.5], [0.11, 0.0, 0.0, 1.0], [0.36, 0.0, 1.0, 1.0],
    [0.62, 1.0, 1.0, 0.0], [0.89, 1.0, 0.0, 0.0], [1.00, 0.5, 0.0, 0.0],
])


def colorize(cam: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] → (H, W, 3) uint8 jet colours."""
    channels = [np.interp(cam, _JET[:, 0], _JET[:, c]) for c in (1, 2, 3)]
    return np.rint(np.stack(channels, -1) * 255).astype(np.uint8)


def overlay(image: Image.Image, cam: np.ndarray) -> Image.Image:
    """The heat map blended over the (preprocessed, same-size) image, as RGB."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    if base.shape[:2] != cam.shape:
        raise ValueError(f"cam {cam.shape} and image {base.shape[:2]} differ in size")
    heat = colorize(cam).astype(np.float32)
    mixed = (1 - OVERLAY_ALPHA) * base + OVERLAY_ALPHA * heat
    return Image.fromarray(np.clip(np.rint(mixed), 0, 255).astype(np.uint8), "RGB")
