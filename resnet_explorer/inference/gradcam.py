"""Grad-CAM (Selvaraju et al. 2017) on the last stage, without touching the model.

Hooks would mutate a model shared by every session (and leak if an exception skipped
their removal), so the feature map is taken explicitly: `forward_features` runs once
without autograd, and only the head is differentiated, with the detached feature map
as the leaf that needs a gradient. That works for every block type, norm, activation
and attention option, because they all sit before the feature map; for pre-activation
networks `forward_features` already applies the final norm and activation, which is
the map the head sees. Grad mode is thread-local, so concurrent calls do not interfere.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..arch.model import ResNet

__all__ = ["grad_cam", "upsample_cams", "colorize", "overlay"]


def grad_cam(model: ResNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM of each image's top class for a batch of preprocessed inputs:
    (cams (N, h, w) scaled to [0, 1], logits (N, classes))."""
    with torch.no_grad():
        features = model.forward_features(x)
    # enable_grad: the caller may be under no_grad. Must not be called under inference_mode
    # (its tensors cannot join a graph); the clone makes a plain leaf either way.
    with torch.enable_grad():
        leaf = features.detach().clone().requires_grad_(True)
        logits = model.forward_head(leaf)
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
