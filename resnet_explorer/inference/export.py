"""ONNX export of a stored model, of an architecture (untrained), or of a network and its card.

The graph takes the *preprocessed* tensor (N, C, H, W) float32, exactly what the Predictor
feeds the network, and returns logits; its metadata_props say so and carry everything needed
to feed it: mean, std, input size, resize, channels, class names, the architecture JSON and
the source weights' SHA-256. The network is exported in eval mode, so dropout and stochastic
depth are the identity.

Exporter: torch.onnx's TorchScript exporter (`dynamo=False`). On torch 2.14.1 both exporters
export every architecture option within the tests' 1e-4 of PyTorch (tests/test_export_onnx.py),
but the TorchScript one honours each requested opset from 10 to 20 exactly, where the dynamo
exporter silently moves any request below 18 up to 18; it exports faster (0.3 s against
1.7 s for a tiny network, 2.4 s against 4.1 s for ResNet34, which the Predictor exports on
first use and the tests export dozens of times); and it needs no onnxscript. ONNX Runtime
runs both graphs equally fast. It is deprecated upstream: torch is pinned in requirements.txt,
and moving to `dynamo=True` changes `_trace` and the opset range (onnxscript, opset >= 18).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import threading
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..analysis.summary import analyze
from ..arch.config import ArchConfig
from ..arch.model import ResNet, build_model
from ..common.errors import ModelError
from ..common.fileio import atomic_write_bytes
from ..models import store
from ..models.card import ModelCard
from ..models.pretrained import imagenet_sidecar

__all__ = ["export_onnx", "untrained_card", "DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET",
           "INPUT_NAME", "OUTPUT_NAME", "PRODUCER", "EXPORTER"]

# 17 is read by every current runtime (ONNX Runtime >= 1.13, TensorRT 8.6, OpenVINO 2023).
DEFAULT_OPSET = 17
# Shortcut A subsamples with a strided slice, which ONNX's Slice takes from opset 10 on.
MIN_OPSET = 10
MAX_OPSET = 20  # the TorchScript exporter's highest
INPUT_NAME, OUTPUT_NAME = "input", "logits"
PRODUCER = "resnet-explorer"
EXPORTER = "torchscript"  # part of the engine's cache key: another exporter, another graph
# protobuf refuses messages of 2 GiB and more; the graph itself needs a little room too.
MAX_ONNX_BYTES = 2**31 - 2**26

# The TorchScript exporter keeps the opset and other settings in module globals, so two
# exports at once (two sessions downloading, a Predictor's first use) must not overlap.
_EXPORT_LOCK = threading.Lock()

# The exporter's notices: its deprecation, tracer notes on torch's own input-size checks (the
# trace drops them, rightly: a graph keeps no Python control flow), constant-folding and
# instance-norm remarks. Narrow filters installed once; `catch_warnings` around each export
# would swap the process-wide filter list under a concurrent image decode (datasets/imaging.py).
_EXPORTER_MODULES = r"torch\.onnx\._internal\.torchscript_exporter"
warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export",
                        DeprecationWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning, module=_EXPORTER_MODULES)
warnings.filterwarnings("ignore", category=UserWarning, module=_EXPORTER_MODULES)
warnings.filterwarnings("ignore", "Converting a tensor to a Python boolean",
                        torch.jit.TracerWarning, r"torch\.nn\.")

Source = str | ArchConfig | nn.Module


def export_onnx(source: Source, path: str | Path | None = None, *, card: ModelCard | None = None,
                opset: int | None = None, dynamic_batch: bool = True,
                weights_dir: Path | None = None) -> bytes | Path:
    """The network as ONNX: the file's bytes when `path` is None, else the path written.

    `source` is a stored model's name (read from `weights_dir`, default weights/ in the
    home), an ArchConfig (random weights: the untrained architecture), or a network; `card`
    overrides the stored sidecar and is required for a network that is not a ResNet of this
    package. With `dynamic_batch` the batch dimension is free, else it is 1. Raises
    ModelError (a UserError) naming the layer that cannot be exported, and ConfigError for
    an architecture that cannot take the card's input size.
    """
    opset = DEFAULT_OPSET if opset is None else opset
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelError(f"opset must be a whole number from {MIN_OPSET} to {MAX_OPSET} "
                         f"(got {opset!r})")
    model, card = _resolve(source, card, weights_dir)
    data = _exported(model, card, opset, dynamic_batch)
    if path is None:
        return data
    try:
        return atomic_write_bytes(path, data)
    except OSError as exc:
        raise ModelError(f"cannot write {path}: {exc.strerror or exc}") from None


def untrained_card(cfg: ArchConfig, name: str = "untrained") -> ModelCard:
    """A card for a freshly initialised network: ImageNet preprocessing (one channel: the mean
    of the RGB statistics), classes "class 0", "class 1", …"""
    card = ModelCard.from_sidecar(imagenet_sidecar(cfg=cfg, name=name))
    return dataclasses.replace(card, source="untrained",
                               class_names=tuple(f"class {i}" for i in range(cfg.num_classes)))


# ----- what to export ----------------------------------------------------------------------
def _resolve(source: Source, card: ModelCard | None,
             weights_dir: Path | None) -> tuple[nn.Module, ModelCard]:
    if isinstance(source, str):
        model, sidecar = store.load_model(source, weights_dir)
        return model, card or ModelCard.from_sidecar(sidecar)
    if isinstance(source, ArchConfig):
        return build_model(source).eval(), card or untrained_card(source)
    if not isinstance(source, nn.Module):
        raise TypeError(f"cannot export a {type(source).__name__}")
    if card is None:
        if not isinstance(source, ResNet):
            raise ValueError("a network other than this package's ResNet needs its card")
        card = untrained_card(source.cfg)
    if isinstance(source, ResNet) and source.cfg != card.arch:
        raise ValueError("the network's architecture differs from its card's")
    return source, card


def _exported(model: nn.Module, card: ModelCard, opset: int, dynamic_batch: bool) -> bytes:
    pre = card.preprocess
    if isinstance(model, ResNet):  # a clear message for an input the network cannot take
        analyze(card.arch, (pre.channels, pre.size, pre.size))
    tensors = [*model.parameters(), *model.buffers()]
    size = sum(t.numel() * t.element_size() for t in tensors)
    if size > MAX_ONNX_BYTES:
        raise ModelError(f"the network's {size / 2**30:.1f} GiB of weights do not fit in one "
                         "ONNX file (at most 2 GiB)")
    if any(m.training for m in model.modules()):
        model = copy.deepcopy(model).eval()  # never switch a caller's (maybe shared) network
    # Batch 2 when the batch is free, so no size-1 dimension can be specialised into the graph.
    # On the network's device: a Predictor on a GPU exports the network it holds there.
    device = next(iter(tensors), torch.empty(0)).device
    example = torch.zeros(2 if dynamic_batch else 1, pre.channels, pre.size, pre.size,
                          device=device)
    try:
        data = _trace(model, (example,), opset, dynamic_batch)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise _located_failure(model, example, opset, exc) from None
    return _with_metadata(data, card, opset, dynamic_batch)


def _trace(module: nn.Module, args: tuple[Any, ...], opset: int, dynamic_batch: bool) -> bytes:
    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with _EXPORT_LOCK, torch.no_grad():
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, do_constant_folding=True)
    return buffer.getvalue()


# ----- a network that cannot be exported: which layer? ---------------------------------------
def _located_failure(model: nn.Module, example: torch.Tensor, opset: int,
                     error: Exception) -> ModelError:
    """The deepest layer that fails to export on its own, found by exporting submodules with
    the inputs they receive in a forward pass; the whole network when none fails alone."""
    path, reason = _failing_layer(model, example, opset)
    reason = _first_line(reason or error)
    if not path:
        return ModelError(f"the network cannot be exported to ONNX opset {opset}: {reason}")
    kind = type(model.get_submodule(path)).__name__
    return ModelError(f"layer {path} ({kind}) cannot be exported to ONNX opset {opset}: {reason}")


def _failing_layer(model: nn.Module, example: torch.Tensor, opset: int) -> tuple[str, str]:
    model = copy.deepcopy(model)  # hooks go on a private copy: the caller's may be shared
    inputs: dict[str, tuple[torch.Tensor, ...]] = {}
    handles = [module.register_forward_pre_hook(partial(_record, inputs, name))
               for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(example)
    except Exception as exc:  # noqa: BLE001 - the network does not even run: that is the reason
        return "", str(exc)
    finally:
        for handle in handles:
            handle.remove()
    path, reason = "", ""
    while True:
        parent = model.get_submodule(path)
        for name, child in parent.named_children():
            child_path = f"{path}.{name}" if path else name
            if child_path not in inputs:
                continue  # never called, or called with more than tensors
            try:
                _trace(child, inputs[child_path], opset, dynamic_batch=False)
            except (RuntimeError, ValueError, TypeError) as exc:
                path, reason = child_path, str(exc)
                break
        else:
            return path, reason


def _record(inputs: dict[str, tuple[torch.Tensor, ...]], name: str, module: nn.Module,
            args: tuple[Any, ...]) -> None:
    if name not in inputs and args and all(isinstance(a, torch.Tensor) for a in args):
        inputs[name] = tuple(a.detach().clone() for a in args)


def _first_line(error: Exception | str) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# ----- metadata ----------------------------------------------------------------------------
def _metadata(card: ModelCard, opset: int, dynamic_batch: bool) -> dict[str, str]:
    pre = card.preprocess
    colour = "grayscale" if pre.channels == 1 else "RGB"
    batch = "N" if dynamic_batch else "1"
    return {
        "input_preprocessed": "true",
        "input": (f"{INPUT_NAME}: float32 ({batch}, {pre.channels}, {pre.size}, {pre.size}), "
                  f"already preprocessed: {colour} image, shorter side resized to {pre.resize} "
                  f"(bilinear, antialiased), centre {pre.size}x{pre.size} crop, pixels scaled "
                  "to 0..1, then (x - mean) / std per channel"),
        "output": f"{OUTPUT_NAME}: float32 ({batch}, {len(card.class_names)}) logits; softmax "
                  "gives class probabilities in the order of class_names",
        "mean": json.dumps(list(pre.mean)),
        "std": json.dumps(list(pre.std)),
        "input_size": json.dumps([pre.channels, pre.size, pre.size]),
        "resize": str(pre.resize),
        "channels": str(pre.channels),
        "class_names": json.dumps(list(card.class_names), ensure_ascii=False),
        "architecture": card.arch.to_json(),
        "model_name": card.name,
        "source": card.source,
        "source_sha256": card.sha256,
        "opset": str(opset),
    }


def _with_metadata(data: bytes, card: ModelCard, opset: int, dynamic_batch: bool) -> bytes:
    import onnx  # ~1 s to import: only exports pay it, not every page that imports inference

    proto = onnx.load_model_from_string(data)
    for key, value in _metadata(card, opset, dynamic_batch).items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = PRODUCER
    proto.doc_string = (f"{card.name}: {card.arch.short_name()}, {len(card.class_names)} "
                        "classes; the input is the preprocessed tensor (see metadata_props)")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"the exported graph is not valid ONNX: {_first_line(exc)}") from None
    return proto.SerializeToString()
