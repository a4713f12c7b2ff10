"""Checking and importing model files uploaded in the browser.

Accepted:
* ``<name>.safetensors`` with its ``<name>.json`` sidecar: the safetensors header is read
  and compared with the sidecar's architecture (every name, shape and dtype) before any
  tensor is loaded, then every value must be finite;
* ``.pth`` / ``.pt`` in torch.save's zip format, read only with
  ``torch.load(weights_only=True)`` (the restricted unpickler refuses any object that
  would run code), with or without a sidecar. Without one, the current architecture is
  assumed (class count and input channels taken from the tensors) with ImageNet
  preprocessing, and the notes say so.

Refused: anything else (by content, not by file name), pre-1.6 torch files (their
pickle declares storage sizes before any check can run), compressed or oversized zip
members, and any tensor set that does not match the architecture exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors

from ..analysis.summary import analyze
from ..arch.config import ArchConfig
from ..arch.weights import TransferReport, check_state_dict, expected_tensors, require_layout
from ..common.errors import ConfigError, ImportRefused, InputSizeError, UserError
from ..common.limits import MODEL_UPLOAD
from ..common.schema import parse_json_object
from . import store
from .card import (MAX_INFERENCE_ACTIVATION_BYTES, MAX_INFERENCE_MACS, ModelCard,
                   check_model_name, clean_metrics, largest_activation_bytes, size_text)
from .pretrained import RESNET34_IMAGENET, imagenet_sidecar, read_checkpoint, transfer_imagenet

__all__ = ["ImportedModel", "read_safetensors",
           "read_torch_file", "prepare_import", "import_model", "import_imagenet_transfer",
           "check_inference_cost", "MAX_MODEL_BYTES"]

MAX_MODEL_BYTES = MODEL_UPLOAD.max_bytes
MAX_HEADER_BYTES = 16 * 2**20
_DTYPES = ("F64", "F32", "F16", "BF16", "I64", "I32")  # safetensors names; cast on import


@dataclass
class ImportedModel:
    card: ModelCard
    state_dict: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)


def _infer_arch(state: Mapping[str, torch.Tensor], base: ArchConfig) -> ArchConfig:
    """`base` with the class count and input channels the tensors imply."""
    changes: dict[str, int] = {}
    fc = state.get("fc.weight")
    if isinstance(fc, torch.Tensor) and fc.ndim == 2:
        changes["num_classes"] = int(fc.shape[0])
    conv = state.get("conv1.weight", state.get("conv1.0.weight"))
    if isinstance(conv, torch.Tensor) and conv.ndim == 4 and int(conv.shape[1]) in (1, 3):
        changes["in_channels"] = int(conv.shape[1])
    try:
        return dataclasses.replace(base, **changes).check()
    except ConfigError as exc:
        raise ImportRefused(f"the weights imply an invalid architecture: {exc}") from None


# ----- file formats ----------------------------------------------------------------------
def read_safetensors(data: bytes, arch: ArchConfig) -> dict[str, torch.Tensor]:
    """Header checked against `arch` first; tensors are only materialised if it matches."""
    if len(data) < 10:
        raise ImportRefused("the safetensors file is truncated")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise ImportRefused("the safetensors header is damaged (declared size out of range)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ImportRefused("the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ImportRefused("the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    shapes: dict[str, tuple[int, ...]] = {}
    for tname, info in header.items():
        dtype = info.get("dtype") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        if dtype not in _DTYPES or not isinstance(shape, list) or not all(
                isinstance(d, int) and 0 <= d < 2**31 for d in shape):
            raise ImportRefused(f"tensor {str(tname)[:80]!r} has an unsupported dtype or shape")
        shapes[tname] = tuple(shape)
    # Before a single tensor is materialised.
    require_layout(shapes, expected_tensors(arch))
    try:
        state = load_safetensors(bytes(data))  # validates offsets and sizes itself
    except Exception as exc:  # the library's own error types vary by version
        raise ImportRefused(f"the safetensors file is damaged ({str(exc)[:200]})") from None
    return check_state_dict(state, arch)


def read_torch_file(data: bytes) -> dict[str, torch.Tensor]:
    """A torch.save zip archive, via weights_only only; nothing in it can run code."""
    if not data.startswith(b"PK\x03\x04"):
        if data[:1] == b"\x80":  # a bare pickle stream: torch's pre-1.6 format or plain pickle
            raise ImportRefused("this is a bare pickle (PyTorch's pre-1.6 format or "
                                "pickle.dump); re-save it with torch.save in a current PyTorch, "
                                "or use safetensors")
        raise ImportRefused("not a PyTorch weights file (torch.save zip archive expected)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise ImportRefused("the .pth archive is damaged") from None
    if any(m.compress_type != zipfile.ZIP_STORED for m in members):
        raise ImportRefused("the .pth archive has compressed members; torch.save never writes "
                            "those (refused: they could expand without bound)")
    if sum(m.file_size for m in members) > len(data):
        raise ImportRefused("the .pth archive declares more data than it holds")
    if not any(m.filename.endswith("data.pkl") for m in members):
        raise ImportRefused("the zip archive is not a torch.save file (no data.pkl)")
    return read_checkpoint(data)


def _kind(name: str, data: bytes) -> str:
    """'safetensors' | 'torch' | 'json', by content; the extension only breaks ties.

    Order matters: a safetensors header length can start with byte 0x80 (a pickle's first
    byte) and compact JSON can have "{" at offset 8 (where safetensors' header starts).
    """
    if data.startswith(b"PK\x03\x04"):
        return "torch"
    if len(data) > 9 and data[8:9] == b"{":
        # For JSON text these 8 bytes read as an enormous length, so this cannot match it.
        header = int.from_bytes(data[:8], "little")
        if 2 <= header <= min(MAX_HEADER_BYTES, len(data) - 8):
            return "safetensors"
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{" and name.lower().endswith(".json"):
        return "json"
    if name.lower().endswith(".safetensors") and data[8:9] == b"{":
        return "safetensors"  # with a damaged header: read_safetensors says so
    if data[:1] == b"\x80":  # a bare pickle: read_torch_file explains the refusal
        return "torch"
    return "unknown"


# ----- the import itself ---------------------------------------------------------------
def prepare_import(files: Iterable[Any], current_arch: ArchConfig,
                   name: str | None = None) -> ImportedModel:
    """Check uploads (one weights file, optionally one .json sidecar) into an ImportedModel.

    Items are (file name, bytes) pairs or objects with .name and .getvalue().
    """
    weights: tuple[str, bytes, str] | None = None
    sidecar: tuple[str, bytes] | None = None
    for item in files:
        fname, data = item if isinstance(item, tuple) else (item.name, item.getvalue())
        fname, data = str(fname), bytes(data)
        if len(data) > MAX_MODEL_BYTES:
            raise ImportRefused(f"{fname}: {len(data) / 2**20:.0f} MB is over the "
                                f"{MAX_MODEL_BYTES / 2**20:.0f} MB limit")
        kind = _kind(fname, data)
        if kind == "unknown":
            raise ImportRefused(f"{fname}: not a model file; upload a .safetensors file with its "
                                ".json sidecar, or a .pth/.pt saved by torch.save")
        slot = sidecar if kind == "json" else weights
        if slot is not None:
            raise ImportRefused(f"{fname}: upload one weights file and at most one sidecar "
                                "at a time")
        if kind == "json":
            sidecar = (fname, data)
        else:
            weights = (fname, data, kind)
    if weights is None:
        raise ImportRefused("no weights file: upload a .safetensors or .pth/.pt file")
    fname, data, kind = weights
    notes: list[str] = []
    card = _read_sidecar(*sidecar, data) if sidecar else None
    if kind == "safetensors":
        if card is None:
            raise ImportRefused(f"{fname}: a .safetensors file needs its .json sidecar "
                                "(architecture, classes, preprocessing); upload both together")
        check_inference_cost(card)
        state = read_safetensors(data, card.arch)
    else:
        raw = read_torch_file(data)
        if card is None:
            arch = _infer_arch(raw, current_arch)
            stem = Path(fname).stem
            guess = imagenet_sidecar(RESNET34_IMAGENET, arch, name=_safe_stem(stem))
            card = ModelCard.from_sidecar(guess)
            notes.append(f"No sidecar: assumed the current architecture ({arch.short_name()}) with "
                         f"{arch.num_classes} classes and {arch.in_channels} input channel(s), "
                         f"ImageNet preprocessing (resize {card.preprocess.resize}, crop "
                         f"{card.preprocess.size}) and "
                         + ("ImageNet class names." if card.class_names[0] != "class 0"
                            else "numbered class names."))
        check_inference_cost(card)
        state = check_state_dict(raw, card.arch)
    metrics, dropped = clean_metrics(card.metrics)
    if dropped:  # the weights are what matters; a figure no page can show is not kept
        shown = ", ".join(repr(k[:40]) for k in dropped[:8]) + (" …" if len(dropped) > 8 else "")
        notes.append(f"Left out of the sidecar's metrics (not a finite number, or an accuracy "
                     f"outside 0–1): {shown}.")
    final = check_model_name(name) if name else card.name
    card = dataclasses.replace(card, name=final, source="imported", created="", sha256="",
                               metrics=metrics)
    return ImportedModel(card, state, notes)


def check_inference_cost(card: ModelCard) -> None:
    """ImportRefused when classifying one image at the card's input size would hold an
    activation over MAX_INFERENCE_ACTIVATION_BYTES or take over MAX_INFERENCE_MACS."""
    pre = card.preprocess
    try:
        analysis = analyze(card.arch, (pre.channels, pre.size, pre.size))
    except InputSizeError:  # it cannot run at that size at all: nothing to bound
        return
    largest = largest_activation_bytes(analysis)
    side = f"{pre.size}×{pre.size}"
    problems = []
    if largest > MAX_INFERENCE_ACTIVATION_BYTES:
        problems.append(f"classifying one {side} image would hold a {size_text(largest)} "
                        f"activation; the limit is {size_text(MAX_INFERENCE_ACTIVATION_BYTES)}")
    if analysis.macs > MAX_INFERENCE_MACS:
        problems.append(f"classifying one {side} image would take {analysis.macs / 1e9:,.0f} G "
                        f"multiply-adds; the limit is {MAX_INFERENCE_MACS / 1e9:,.0f} G")
    if problems:
        raise ImportRefused(problems[:-1] + [problems[-1] + " (use narrower layers, fewer "
                                             "blocks or a smaller input size)"])


def _read_sidecar(fname: str, raw: bytes, weights: bytes) -> ModelCard:
    try:
        data = parse_json_object(raw, max_bytes=store.MAX_SIDECAR_BYTES)
        card = ModelCard.from_sidecar({**data, "source": data.get("source", "imported")})
    except UserError as exc:  # the JSON itself (ConfigError) or what it says (ModelError)
        raise ImportRefused(f"{fname}: {exc}") from None
    if card.sha256 and hashlib.sha256(weights).hexdigest() != card.sha256:
        raise ImportRefused(f"{fname}: the sidecar's sha256 does not match the weights file "
                            "(it describes a different file)")
    return card


def _safe_stem(stem: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).strip(".-_")[:80]
    return cleaned if cleaned and cleaned[0].isalnum() else "imported-model"


def import_model(files: Iterable[Any], current_arch: ArchConfig, name: str | None = None,
                 weights_dir: Path | None = None) -> tuple[ModelCard, list[str]]:
    """Check and save into the store; refuses to overwrite an existing model."""
    imported = prepare_import(files, current_arch, name)
    card = imported.card
    # Refuses an existing name, even one taken by a concurrent import.
    store.save_model(imported.state_dict, card.to_sidecar(), card.name, weights_dir,
                     overwrite=False)
    saved = store.read_model_card(card.name, weights_dir)
    return saved, imported.notes


def import_imagenet_transfer(cfg: ArchConfig, name: str,
                             weights_dir: Path | None = None) -> tuple[ModelCard, TransferReport]:
    """ImageNet weights already on disk moved into `cfg` (what fits) and saved as a model
    (source "imagenet"); PretrainedUnavailable, saying where to put them, when they are not.

    The report lists what was re-initialised: tensors the variant adds (fresh), and tensors
    whose shape changed (e.g. the classifier when the class count is not 1000).
    """
    if store.model_files(name, weights_dir)[0].exists():  # model_files checks the name too
        raise ImportRefused(f"a model named {name!r} already exists; choose another name")
    model, report = transfer_imagenet(cfg, weights_dir=weights_dir, download=False)
    sidecar = imagenet_sidecar(RESNET34_IMAGENET, cfg, name=name)
    sidecar["metrics"] = {"transferred_tensors": len(report.loaded),
                          "reinitialised_tensors": len(report.fresh) + len(report.shape_mismatch)}
    store.save_model(model, sidecar, name, weights_dir, overwrite=False)
    return store.read_model_card(name, weights_dir), report
