"""ONNX Runtime as the Predictor's engine for top-k, and the on-disk cache of its exports.

A stored model is exported once and kept next to it, in weights/.onnx/ (hidden, so the
store's listing never shows it), as `<weights sha256>-<variant>.<content hash>.onnx`:
* the weights' SHA-256 (the sidecar's, checked against the file when the model loads) ties
  the export to the tensors;
* the variant hashes what else shapes the graph: the architecture (a ReLU and a SiLU
  network have identical tensors), the input's channels and size (fixed in the graph: two
  imports of one file at different sizes share the weights' hash), the opset, the exporter
  and the torch release;
* the content hash is checked on every read, so a truncated or altered file is exported
  afresh instead of trusted; a file ONNX Runtime still refuses is exported afresh too.
An export whose key no stored model has any more (deleted, or exported by an older opset,
exporter or torch release) is pruned, with killed writers' temporary files, after each export
and each deletion. A cache that cannot be written (a read-only disk) costs an export per
process, no more.

Sessions run on the CPU with intra-op threads = torch.get_num_threads() and every graph
optimisation (the exporter has already folded batch norms into the convolutions, as
fold_batch_norms does for PyTorch). Idle worker threads do not spin: on a shared server a
spinning pool takes the cores from other requests and from PyTorch's Grad-CAM.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from ..common.fileio import TMP_SUFFIX, atomic_write_bytes
from ..common.paths import weights_dir as default_weights_dir
from ..models import store
from ..models.card import ModelCard
from .export import DEFAULT_OPSET, EXPORTER, INPUT_NAME, OUTPUT_NAME, export_onnx

__all__ = ["ENGINES", "CACHE_FOLDER", "OnnxRunner", "load_onnxruntime", "onnx_runner",
           "cache_dir_for", "cache_key", "prune_onnx_cache"]

ENGINES = ("auto", "onnx", "torch")  # auto: ONNX Runtime where installed and on the CPU
CACHE_FOLDER = ".onnx"
STALE_TMP_SECONDS = 3600  # a temporary file this old is a killed writer's, not a live one's

log = logging.getLogger(__name__)


def load_onnxruntime() -> tuple[ModuleType | None, str]:
    """(the onnxruntime module, "") or (None, why it cannot be used)."""
    try:
        return importlib.import_module("onnxruntime"), ""
    except ImportError as exc:  # also a broken installation (a missing shared library)
        return None, f"onnxruntime cannot be imported ({exc}); pip install onnxruntime"


class OnnxRunner:
    """One ONNX Runtime session: preprocessed float32 (N, C, H, W) in, logits out.
    InferenceSession.run is thread-safe, so one runner serves every session of a server."""

    def __init__(self, ort: ModuleType, data: bytes, threads: int | None = None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x)})[0]


def cache_dir_for(weights_dir: Path | None) -> Path:
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    return folder / CACHE_FOLDER


def onnx_runner(ort: ModuleType, model: nn.Module, card: ModelCard,
                cache_dir: Path | None = None) -> OnnxRunner:
    """A session for `model`: from the disk cache when a checked export is there, else
    exported (and cached when `cache_dir` is given and the card knows its weights' hash)."""
    key = cache_key(card) if cache_dir is not None else None
    if key is not None:
        for path in sorted(cache_dir.glob(f"{key}.*.onnx")):
            data = _read_checked(path)
            if data is not None:
                try:
                    return OnnxRunner(ort, data)
                except Exception as exc:  # noqa: BLE001 - any refusal: export afresh
                    log.warning("ONNX cache %s cannot be loaded (%s); exporting again", path, exc)
            _unlink(path)
    data = export_onnx(model, None, card=card)
    runner = OnnxRunner(ort, data)  # loads before it is cached: only a working export is kept
    if key is not None:
        _store(cache_dir, key, data)
    return runner


def cache_key(card: ModelCard) -> str | None:
    """The name stem of the model's cached export, `<weights sha256>-<variant>`; None for a
    card without a weights hash (nothing ties an export to those weights)."""
    if not card.sha256:
        return None
    pre = card.preprocess
    variant = json.dumps({"arch": card.arch.to_dict(), "input": [pre.channels, pre.size],
                          "opset": DEFAULT_OPSET, "exporter": EXPORTER,
                          "torch": torch.__version__}, sort_keys=True)
    return f"{card.sha256}-{hashlib.sha256(variant.encode()).hexdigest()[:16]}"


def _read_checked(path: Path) -> bytes | None:
    """The file's bytes if they still hash to the digest in its name, else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    expected = path.name.rsplit(".", 2)[-2]
    if len(expected) != 16 or hashlib.sha256(data).hexdigest()[:16] != expected:
        log.warning("ONNX cache %s does not match its hash; exporting again", path)
        return None
    return data


def _store(cache_dir: Path, key: str, data: bytes) -> None:
    path = cache_dir / f"{key}.{hashlib.sha256(data).hexdigest()[:16]}.onnx"
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        log.warning("ONNX export not cached in %s (%s); kept in memory", cache_dir, exc)
        return
    prune_onnx_cache(cache_dir.parent, keep=path)


def prune_onnx_cache(weights_dir: Path | None = None, *, keep: Path | None = None) -> int:
    """Delete cached exports that no model in the store would read any more (deleted models,
    exports of an older opset, exporter or torch release) and temporary files of killed
    writers; returns how many went."""
    cache_dir = cache_dir_for(weights_dir)
    if not cache_dir.is_dir():
        return 0
    live = {cache_key(info.card) for info in store.list_models(cache_dir.parent)
            if info.card is not None}
    removed = 0
    try:
        entries = list(cache_dir.iterdir())
    except OSError:  # unreadable: pruning is housekeeping, never a reason to fail a request
        return 0
    for path in entries:
        if path.name.endswith(TMP_SUFFIX):
            stale = _age(path) > STALE_TMP_SECONDS
        else:
            stale = path.name.split(".", 1)[0] not in live
        if stale and path != keep:
            removed += _unlink(path)
    return removed


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _unlink(path: Path) -> int:
    try:
        path.unlink(missing_ok=True)
        return 1
    except OSError:  # read-only: leave it, the next export is in memory
        return 0

