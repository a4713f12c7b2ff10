"""torchvision's ImageNet ResNet34 weights: found on disk, or downloaded with a hash check.

Where the checkpoint is looked for, in order:
1. ``weights/<torchvision file name>`` (e.g. ``weights/resnet34-b627a593.pth``), so an
   offline machine only needs that one file copied in (or uploaded on the Models page:
   `install_checkpoint`);
2. torch hub's cache (``$TORCH_HOME/hub/checkpoints``), where torchvision itself keeps it;
3. a download from torchvision's URL into that cache, streamed with a progress callback
   and checked against the SHA-256 prefix torchvision puts in the file name.

Files are read with ``torch.load(weights_only=True)`` only: a checkpoint is data, and
the restricted unpickler refuses anything that would run code. Like torch hub, the hash
is checked when a file is downloaded, and so when one is uploaded; a file a person placed
on disk is trusted to be the one they meant, but it must still load strictly into ResNet34.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.models import ResNet34_Weights

from ..arch.config import BASELINE, ArchConfig
from ..arch.model import ResNet, build_model
from ..arch.weights import TransferReport, transfer_weights
from ..common.errors import ImportRefused, PretrainedUnavailable
from ..common.fileio import TMP_SUFFIX, atomic_write_bytes
from ..common.limits import MODEL_UPLOAD
from ..common.paths import weights_dir as default_weights_dir
from ..datasets.transforms import Preprocess
from .card import FORMAT

__all__ = [
    "PretrainedSpec", "RESNET34_IMAGENET", "ProgressFn",
    "candidate_paths", "find_checkpoint", "checkpoint_fingerprint", "where_to_put",
    "download_checkpoint", "DownloadFailed", "install_checkpoint", "read_checkpoint",
    "imagenet_state_dict", "imagenet_model", "imagenet_sidecar", "transfer_imagenet",
    "offline_message",
]

ProgressFn = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)
MAX_DOWNLOAD_BYTES = 1 << 30  # ResNet34 is 87 MB; a server sending more is not serving it
DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK = 1 << 20
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch.hub.HASH_REGEX: resnet34-<sha256 prefix>.pth


@dataclass(frozen=True)
class PretrainedSpec:
    """Everything used from a torchvision weights enum, so tests can point at their own file."""

    label: str
    url: str
    file_name: str
    hash_prefix: str
    categories: tuple[str, ...]
    preprocess: Preprocess

    @classmethod
    def from_weights(cls, weights: Any, label: str) -> PretrainedSpec:
        t = weights.transforms()  # ImageClassification: resize_size, crop_size, mean, std
        name = weights.url.rsplit("/", 1)[-1]
        match = _HASH_IN_NAME.search(name)
        pre = Preprocess(channels=3, size=int(t.crop_size[0]), resize=int(t.resize_size[0]),
                         mean=tuple(t.mean), std=tuple(t.std))
        return cls(label=label, url=weights.url, file_name=name,
                   hash_prefix=match.group(1) if match else "",
                   categories=tuple(weights.meta["categories"]), preprocess=pre)


RESNET34_IMAGENET = PretrainedSpec.from_weights(
    ResNet34_Weights.IMAGENET1K_V1, "ImageNet ResNet34 (torchvision IMAGENET1K_V1)")


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"  # honours $TORCH_HOME, as torchvision does


def candidate_paths(spec: PretrainedSpec = RESNET34_IMAGENET,
                    weights_dir: Path | None = None) -> list[Path]:
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    return [folder / spec.file_name, hub_checkpoint_dir() / spec.file_name]


def find_checkpoint(spec: PretrainedSpec = RESNET34_IMAGENET,
                    weights_dir: Path | None = None) -> Path | None:
    return next((p for p in candidate_paths(spec, weights_dir) if p.is_file()), None)


def checkpoint_fingerprint(spec: PretrainedSpec = RESNET34_IMAGENET,
                           weights_dir: Path | None = None) -> str | None:
    """Path, size and modification time of the file in use (a cache key), None when absent."""
    path = find_checkpoint(spec, weights_dir)
    if path is None:
        return None
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def where_to_put(spec: PretrainedSpec = RESNET34_IMAGENET, weights_dir: Path | None = None) -> str:
    target, hub = candidate_paths(spec, weights_dir)
    return (f"download {spec.url} on a machine with internet access and put the file, named "
            f"{spec.file_name}, at {target} (or at {hub})")


def offline_message(spec: PretrainedSpec = RESNET34_IMAGENET, weights_dir: Path | None = None,
                    reason: str = "") -> str:
    why = f" ({reason})" if reason else ""
    # On a remote server the upload is the practical route: no shell access needed.
    return (f"The ImageNet weights could not be downloaded{why}. To use them offline, "
            f"{where_to_put(spec, weights_dir)}, or upload that file on the dashboard's Models "
            "page (tab “ImageNet weights”); then reload this page.")


class DownloadFailed(PretrainedUnavailable):
    """A download that did not bring the checkpoint. str() also says how to get the file
    without one; `reason` alone is for a page that already shows those instructions."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.args = (message, reason)  # matches __init__, so the error pickles


def _check_hash(spec: PretrainedSpec, digest: str, what: str) -> None:
    """The SHA-256 prefix torchvision puts in the file name, checked like torch hub does."""
    if spec.hash_prefix and not digest.startswith(spec.hash_prefix):
        raise ImportRefused(
            f"{what} is damaged or not the expected file ({spec.file_name} from {spec.url}): "
            f"its SHA-256 starts {digest[:len(spec.hash_prefix)]}, expected "
            f"{spec.hash_prefix}; nothing was saved")


def install_checkpoint(data: bytes, spec: PretrainedSpec = RESNET34_IMAGENET,
                       weights_dir: Path | None = None, name: str = "") -> Path:
    """An uploaded copy of the checkpoint, saved as weights/<file name> when it is the file
    torchvision publishes (same hash check as a download); ImportRefused otherwise."""
    MODEL_UPLOAD.check(name or spec.file_name, len(data))
    _check_hash(spec, hashlib.sha256(data).hexdigest(), f"the uploaded {name or 'file'}")
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    return atomic_write_bytes(folder / spec.file_name, data)


def download_checkpoint(spec: PretrainedSpec = RESNET34_IMAGENET,
                        progress: ProgressFn | None = None,
                        weights_dir: Path | None = None) -> Path:
    """Stream the checkpoint into torch hub's cache; the file appears only if its hash matches.

    `weights_dir` only names the other place the file may go in messages (where_to_put)."""
    dest_dir = hub_checkpoint_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / spec.file_name
    request = urllib.request.Request(spec.url, headers={"User-Agent": "resnet-explorer"})
    # Streamed to a temporary file in the target folder and renamed at the end (not
    # fileio.atomic_write_bytes: 87 MB need not sit in memory), so an interrupted
    # download never leaves a file that looks complete.
    fd, tmp = tempfile.mkstemp(prefix=f".{spec.file_name}.", suffix=TMP_SUFFIX, dir=dest_dir)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, \
                urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while chunk := resp.read(_CHUNK):
                done += len(chunk)
                if done > MAX_DOWNLOAD_BYTES:
                    reason = f"the download of {spec.url} exceeded {MAX_DOWNLOAD_BYTES:,} bytes"
                    raise DownloadFailed(offline_message(spec, weights_dir, reason), reason)
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(done, total)
        try:
            _check_hash(spec, digest.hexdigest(), f"the downloaded {spec.file_name}")
        except ImportRefused as exc:
            raise DownloadFailed(str(exc), str(exc)) from None
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # offline, DNS, refused, timeout, a connection cut mid-file (IncompleteRead)
        _unlink(tmp)
        reason = str(getattr(exc, "reason", None) or exc)
        raise DownloadFailed(offline_message(spec, weights_dir, reason), reason) from None
    except BaseException:
        _unlink(tmp)
        raise
    return target


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read_checkpoint(source: Path | bytes) -> dict[str, torch.Tensor]:
    """A state dict from a torch checkpoint, via the restricted unpickler only.

    Accepts a bare state dict or one nested under "state_dict"/"model" (common training
    checkpoints). Raises ImportRefused with a readable reason for anything else.
    """
    stream: Any = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        obj = torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as exc:  # any parser failure on these bytes means "not a weights file"
        text = _ANSI.sub("", str(exc)).strip()
        # weights_only refuses any global outside torch's allowlist: that is where a
        # code-running pickle ends up, before anything it names is called.
        refused = isinstance(exc, pickle.UnpicklingError)
        found = _UNSUPPORTED_GLOBAL.search(text) if refused else None
        if found:
            raise ImportRefused(f"the file contains objects other than tensors ({found.group(1)}); "
                                "refused, because loading it could run code") from None
        first = text.splitlines()[0] if text else type(exc).__name__
        raise ImportRefused(f"not a loadable PyTorch weights file ({first[:200]})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise ImportRefused("the file holds no state dict (a mapping of names to tensors)")
    bad = [str(k) for k, v in obj.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ImportRefused("the state dict has entries that are not named tensors: "
                            + ", ".join(bad[:5]))
    for key, tensor in obj.items():
        # Only plain dense CPU tensors that own their data: meta and sparse tensors crash
        # later checks, and a stride-0 view (torch.zeros(1).expand(10**5, 2048)) costs bytes
        # in the file but gigabytes once made contiguous.
        if tensor.layout != torch.strided or tensor.device.type != "cpu":
            raise ImportRefused(f"tensor {key} is not a dense CPU tensor "
                                f"({tensor.layout}, {tensor.device.type})")
        if tensor.untyped_storage().nbytes() < tensor.numel() * tensor.element_size():
            raise ImportRefused(f"tensor {key} is a view larger than its stored data "
                                f"({tuple(tensor.shape)}); save real tensors")
    return dict(obj)


def imagenet_state_dict(spec: PretrainedSpec = RESNET34_IMAGENET, weights_dir: Path | None = None,
                        download: bool = True) -> tuple[dict[str, torch.Tensor], Path]:
    """(state dict, the file it came from); raises PretrainedUnavailable with instructions."""
    path = find_checkpoint(spec, weights_dir)
    if path is None:
        if not download:
            raise PretrainedUnavailable(
                offline_message(spec, weights_dir, "download not attempted"))
        path = download_checkpoint(spec, weights_dir=weights_dir)
    try:
        return read_checkpoint(path), path
    except ImportRefused as exc:
        raise PretrainedUnavailable(f"{path}: {exc}. Replace it with {spec.url}") from None


def imagenet_model(spec: PretrainedSpec = RESNET34_IMAGENET, weights_dir: Path | None = None,
                   download: bool = True) -> ResNet:
    """torchvision's ResNet34 with ImageNet weights, loaded strictly into our ResNet."""
    state, path = imagenet_state_dict(spec, weights_dir, download)
    model = build_model(BASELINE)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise PretrainedUnavailable(
            f"{path} does not hold ResNet34 weights ({str(exc).splitlines()[0]}); "
            f"replace it with {spec.url}") from None
    return model.eval()


def imagenet_sidecar(spec: PretrainedSpec = RESNET34_IMAGENET, cfg: ArchConfig = BASELINE,
                     name: str = "imagenet-resnet34") -> dict[str, Any]:
    """Sidecar fields for a network carrying these weights (class names need 1000 classes)."""
    pre = spec.preprocess
    if cfg.in_channels != pre.channels:  # one grey channel: the average of the RGB statistics
        pre = Preprocess(cfg.in_channels, pre.size, pre.resize,
                         (sum(pre.mean) / 3,), (sum(pre.std) / 3,))
    classes = (list(spec.categories) if cfg.num_classes == len(spec.categories)
               else [f"class {i}" for i in range(cfg.num_classes)])
    return {"format": FORMAT, "name": name, "arch": cfg.to_dict(), "train": None,
            "class_names": classes, **pre.to_sidecar(), "metrics": {}, "run_id": None,
            "source": "imagenet"}


def transfer_imagenet(cfg: ArchConfig, spec: PretrainedSpec = RESNET34_IMAGENET,
                      weights_dir: Path | None = None,
                      download: bool = True) -> tuple[ResNet, TransferReport]:
    """The current architecture with every ImageNet tensor whose name and shape fit."""
    state, _ = imagenet_state_dict(spec, weights_dir, download)
    model = build_model(cfg)
    report = transfer_weights(state, model)
    return model.eval(), report
