"""Predictor: uploaded bytes → top-k classes and a Grad-CAM overlay, for one model.

A Predictor is built once per model file (the page caches it with st.cache_resource)
and shared by every session, so it does not change after construction: the network is in
eval mode with gradients switched off for its parameters, and nothing later changes
either. The one exception is made once, under a lock: top-k's ONNX Runtime session, created
on the first plain prediction (exported, or read from the cache next to a stored model; see
onnx_engine.py), so a Predictor used only for Grad-CAM never exports. Without onnxruntime,
on a GPU, or when the export fails, top-k runs in PyTorch under `torch.inference_mode`, and
`engine_note` says why. Grad-CAM needs gradients and always runs in PyTorch; it
differentiates only what follows the chosen stage (see gradcam.py), so concurrent calls never
share autograd state.

Preprocessing is torchvision's evaluation transform, driven by the sidecar: resize the
shorter side to `resize` (bilinear, antialiased), center-crop `size`×`size`, scale to
0..1, normalise. For the ImageNet weights those numbers come from the weights' own
`transforms()`, so results equal torchvision's pipeline.
"""

from __future__ import annotations

import copy
import csv
import functools
import io
import logging
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from PIL import Image, ImageOps
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..analysis.summary import analyze
from ..arch.model import ResNet
from ..common.csvcells import spreadsheet_safe  # file names are user-chosen
from ..common.errors import ImageRejected, InputSizeError, ModelError
from ..datasets.imaging import decode_image
from ..datasets.transforms import resize_center_crop
from ..models import store
from ..models.card import MAX_INFERENCE_ACTIVATION_BYTES, ModelCard, largest_activation_bytes
from ..models.pretrained import RESNET34_IMAGENET, PretrainedSpec, imagenet_model, imagenet_sidecar
from . import gradcam
from .onnx_engine import ENGINES, OnnxRunner, cache_dir_for, load_onnxruntime, onnx_runner

__all__ = ["TopK", "FileResult", "Predictor", "fold_batch_norms", "results_csv", "MAX_FILES",
           "MAX_BATCH"]

MAX_FILES = 64  # per request: a bound on the work one person can ask of a shared server
MAX_BATCH = 32  # images per forward pass
# Pillow lets go of the GIL while it decodes and resizes, so two threads halve that part of a
# batch on two cores; more would take cores from the other sessions of a shared server.
PREPARE_THREADS = 2
CHANNELS_LAST_MIN_BATCH = 8
# Largest single activation of one batch. A wide network on a large input (a 512-pixel
# CIFAR-stem model keeps full resolution) gets smaller batches instead of exhausting memory;
# an import refuses a model whose batch of one would already exceed it.
BATCH_ACTIVATION_BYTES = MAX_INFERENCE_ACTIVATION_BYTES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopK:
    indices: tuple[int, ...]
    labels: tuple[str, ...]
    probs: tuple[float, ...]

    @property
    def best(self) -> str:
        return self.labels[0]


@dataclass(frozen=True)
class FileResult:
    """One upload's outcome: a prediction (and optional overlay) or the reason it was refused."""

    name: str
    image: Image.Image | None = None  # what the network saw (resized + cropped), RGB
    topk: TopK | None = None
    cam: Image.Image | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def fold_batch_norms(model: ResNet) -> ResNet:
    """An eval-only copy with every BatchNorm that directly follows a convolution folded
    into that convolution's weights and bias (the norm becomes Identity).

    Same function, ~5% less CPU time for ResNet34 (one memory pass per norm saved). The
    conv → norm pairs are found on an FX trace, not by module names, so every block type
    works: pre-activation norms (fed by a sum, not a conv) and non-batch norms stay as
    they are. The caller's model is not modified.
    """
    fused = copy.deepcopy(model).eval()
    try:
        traced = fx.symbolic_trace(fused)
    except Exception:  # an optimisation only: a module FX cannot trace keeps its norms
        return fused
    modules = dict(fused.named_modules())
    for node in traced.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        source = node.args[0]
        if (isinstance(source, fx.Node) and source.op == "call_module"
                and isinstance(modules[source.target], nn.Conv2d) and len(source.users) == 1):
            conv = fuse_conv_bn_eval(modules[source.target], modules[node.target])
            fused.set_submodule(source.target, conv)
            fused.set_submodule(node.target, nn.Identity())
    return fused


def _shape_facts(card: ModelCard) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    """(images per forward pass such that no activation of the batch exceeds the budget,
    images per Grad-CAM pass such that what its backward keeps fits the same budget, each
    stage's output (height, width) at the card's input size)."""
    pre = card.preprocess
    try:
        analysis = analyze(card.arch, (pre.channels, pre.size, pre.size))
    except InputSizeError:  # the forward pass will say why, one file at a time
        return 1, 1, ()
    largest = largest_activation_bytes(analysis)
    # Grad-CAM on an early stage keeps every later activation for its backward pass: bounded
    # by what autograd keeps for the whole network, whichever stage is chosen.
    kept = max(1, analysis.activation_bytes)
    return (max(1, min(MAX_BATCH, BATCH_ACTIVATION_BYTES // largest)),
            max(1, min(MAX_BATCH, BATCH_ACTIVATION_BYTES // kept)), analysis.stage_sides)


class Predictor:
    """`engine` chooses top-k's engine: "auto" (ONNX Runtime where it can be imported and the
    device is the CPU, else PyTorch), "onnx" (ONNX Runtime or an error) or "torch".
    `onnx_cache` is the folder of cached exports (from_store passes weights/.onnx); without
    one the export is kept in memory only."""

    def __init__(self, model: ResNet, card: ModelCard, device: torch.device | str = "cpu", *,
                 engine: str = "auto", onnx_cache: Path | None = None):
        if model.cfg != card.arch:
            raise ValueError("the network's architecture differs from its sidecar's")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")
        self.card = card
        self.device = torch.device(device)
        model = fold_batch_norms(model).to(self.device)
        for p in model.parameters():
            p.requires_grad_(False)  # a shared model never accumulates gradients
        self._model = model
        self._scale, self._shift = card.preprocess.normalizer(self.device)
        # stage_sides: what Grad-CAM's map on each stage measures, (height, width).
        self.max_batch, self.cam_batch, self.stage_sides = _shape_facts(card)
        self._onnx_cache = onnx_cache
        self._engine_lock = threading.Lock()
        self._runner: OnnxRunner | None = None
        self._ort, self.engine_note = None, ""
        if engine != "torch":
            self._ort, self.engine_note = load_onnxruntime()
            if self._ort is None and engine == "onnx":
                raise ModelError(self.engine_note)
            if self._ort is not None and engine == "auto" and self.device.type != "cpu":
                self._ort, self.engine_note = None, f"the model runs on {self.device.type}"
            if self.engine_note:
                log.info("%s: top-k runs in PyTorch: %s", card.name, self.engine_note)
        self._strict = engine == "onnx"

    # ----- construction ----------------------------------------------------------------
    @classmethod
    def from_store(cls, name: str, weights_dir: Path | None = None,
                   device: torch.device | str = "cpu", *, engine: str = "auto") -> Predictor:
        model, sidecar = store.load_model(name, weights_dir)
        return cls(model, ModelCard.from_sidecar(sidecar), device, engine=engine,
                   onnx_cache=cache_dir_for(weights_dir))

    @classmethod
    def imagenet(cls, spec: PretrainedSpec = RESNET34_IMAGENET, weights_dir: Path | None = None,
                 download: bool = True, device: torch.device | str = "cpu", *,
                 engine: str = "auto") -> Predictor:
        # Exported in memory, once per process: the checkpoint has no store hash to key on.
        model = imagenet_model(spec, weights_dir, download)
        return cls(model, ModelCard.from_sidecar(imagenet_sidecar(spec)), device, engine=engine)

    @property
    def engine(self) -> str:
        """The engine top-k runs on: "onnx" or "torch" (after a failed export, "torch")."""
        return "onnx" if self._ort is not None else "torch"

    def _onnx(self) -> OnnxRunner | None:
        """The ONNX Runtime session, created on first use; None where PyTorch runs top-k."""
        if self._runner is not None or self._ort is None:
            return self._runner
        with self._engine_lock:
            if self._runner is None and self._ort is not None:
                try:
                    self._runner = onnx_runner(self._ort, self._model, self.card,
                                               self._onnx_cache)
                except Exception as exc:  # any failure: PyTorch gives the same answers
                    if self._strict:
                        raise
                    self._ort, self.engine_note = None, f"ONNX export failed ({exc})"
                    log.warning("%s: top-k runs in PyTorch: %s", self.card.name,
                                self.engine_note)
        return self._runner

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.card.class_names

    @property
    def image_mode(self) -> str:
        return "L" if self.card.preprocess.channels == 1 else "RGB"

    # ----- preprocessing ---------------------------------------------------------------
    def prepare(self, image: Image.Image, invert: bool = False) -> Image.Image:
        """Shorter side to `resize`, center crop: the exact view the network gets. `invert`
        first turns dark-on-light into light-on-dark (a digit on paper for a model trained on
        white strokes on black)."""
        pre = self.card.preprocess
        if image.mode != self.image_mode:
            image = image.convert(self.image_mode)
        if invert:
            image = ImageOps.invert(image)
        return resize_center_crop(image, pre.resize, pre.size)

    def to_input(self, crops: Sequence[Image.Image],
                 channels_last: bool | None = None) -> torch.Tensor:
        """Prepared crops → normalised (N, C, H, W) float tensor on the device; channels_last
        memory for PyTorch batches from CHANNELS_LAST_MIN_BATCH on unless told otherwise."""
        arrays = [np.asarray(c, dtype=np.uint8) for c in crops]
        batch = torch.from_numpy(np.stack([a[..., None] if a.ndim == 2 else a for a in arrays]))
        # NHWC → NCHW as a view is channels_last in memory. Measured on CPU (oneDNN, ResNet34,
        # 224 px): channels_last is ~15% faster from 8 images on, ~25% slower for one image;
        # so small batches are made contiguous (cheap while still uint8). ONNX Runtime takes
        # plain NCHW.
        x = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        if channels_last is None:
            channels_last = x.shape[0] >= CHANNELS_LAST_MIN_BATCH
        if not channels_last:
            x = x.contiguous()
        return torch.addcmul(self._shift, x.float(), self._scale)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output for a preprocessed batch, from the top-k engine."""
        runner = self._onnx()
        if runner is not None:
            return torch.from_numpy(runner(x.cpu().numpy()))
        with torch.inference_mode():
            return self._model(x)

    # ----- prediction ------------------------------------------------------------------
    def _run(self, crops: Sequence[Image.Image], k: int, cam: bool,
             cam_stage: int | None) -> list[tuple[TopK, Image.Image | None]]:
        """Top-k (and a Grad-CAM overlay of the top class) for prepared crops, batched."""
        out: list[tuple[TopK, Image.Image | None]] = []
        step = self.cam_batch if cam else self.max_batch
        for start in range(0, len(crops), step):
            chunk = crops[start:start + step]
            if not cam:
                x = self.to_input(chunk, channels_last=False if self._ort is not None else None)
                out.extend((top, None) for top in self._topk(self.logits(x), k))
                continue
            x = self.to_input(chunk)
            # One forward pass gives both: the logits come from the differentiated head.
            cams, logits = gradcam.grad_cam(self._model, x, cam_stage)
            maps = gradcam.upsample_cams(cams, (x.shape[-2], x.shape[-1]))
            for top, crop, heat in zip(self._topk(logits, k), chunk, maps):
                out.append((top, gradcam.overlay(crop, heat)))
        return out

    def _topk(self, logits: torch.Tensor, k: int) -> list[TopK]:
        k = max(1, min(int(k), len(self.class_names)))
        probs = torch.softmax(logits.float(), dim=1)
        values, indices = probs.topk(k, dim=1)
        result = []
        for vals, idx in zip(values.cpu().tolist(), indices.cpu().tolist()):
            result.append(TopK(tuple(idx), tuple(self.class_names[i] for i in idx), tuple(vals)))
        return result

    def classify(self, uploads: Iterable[Any], k: int = 5, cam: bool = False, *,
                 cam_stage: int | None = None, invert: bool = False) -> list[FileResult]:
        """The full upload path: bytes → safe decode → prepare → batched top-k (+ Grad-CAM on
        `cam_stage`, 1-based, default the last; `invert`: see `prepare`).

        `uploads` are (name, bytes) pairs or objects with .name and .getvalue() (Streamlit's
        UploadedFile, camera input). Each bad file becomes a result with `error` set and
        the others are still classified. At most PREPARE_THREADS files are decoded at a time
        and only the small prepared crop is kept, so many large photos never sit in memory
        together.
        """
        slots: list[FileResult] = []
        accepted: list[tuple[int, str, Any]] = []
        for i, item in enumerate(uploads):
            name, data = item if isinstance(item, tuple) else (item.name, item.getvalue())
            if i >= MAX_FILES:
                slots.append(FileResult(str(name), error=f"{name}: not classified; at most "
                                        f"{MAX_FILES} files are classified at once"))
                continue
            accepted.append((len(slots), str(name), data))
            slots.append(FileResult(str(name)))
        workers = min(PREPARE_THREADS, len(accepted))
        prepare = functools.partial(self._decode_and_prepare, invert=invert)
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                prepared = list(pool.map(prepare, accepted))
        else:
            prepared = [prepare(upload) for upload in accepted]
        crops: list[tuple[int, Image.Image]] = []
        for (slot, name, _), (crop, error) in zip(accepted, prepared):
            if crop is None:
                slots[slot] = FileResult(name, error=error)
            else:
                crops.append((slot, crop))
        if crops:
            outcomes = self._run([c for _, c in crops], k, cam, cam_stage)
            for (slot, crop), (top, overlay) in zip(crops, outcomes):
                slots[slot] = FileResult(slots[slot].name, crop.convert("RGB"), top, overlay)
        return slots

    def _decode_and_prepare(self, upload: tuple[int, str, Any],
                            invert: bool = False) -> tuple[Image.Image | None, str]:
        """(the prepared crop, "") or (None, why the file is refused); the full-size image is
        dropped as soon as it is cropped."""
        _, name, data = upload
        try:
            decoded = decode_image(data, mode=self.image_mode, name=name)
        except ImageRejected as exc:
            return None, str(exc)
        return self.prepare(decoded, invert), ""


def results_csv(results: Sequence[FileResult]) -> str:
    """One row per (file, rank); a refused file gets one row with its error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "rank", "class_index", "class", "probability", "error"])
    for r in results:
        name = spreadsheet_safe(r.name)
        if r.topk is None:
            writer.writerow([name, "", "", "", "", spreadsheet_safe(r.error or "")])
            continue
        for rank, (idx, label, p) in enumerate(zip(r.topk.indices, r.topk.labels, r.topk.probs), 1):
            writer.writerow([name, rank, idx, spreadsheet_safe(label), f"{p:.6f}", ""])
    return buffer.getvalue()
