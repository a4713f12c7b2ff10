"""The model store: weights/<name>.safetensors plus a weights/<name>.json sidecar.

The sidecar says how to rebuild and feed the network (schema in card.py);
the safetensors file holds only tensors, so loading a model never runs code
from the file. Both files are written atomically; the sidecar carries the
weights' SHA-256, so a pair that does not belong together (a copy gone wrong,
an edit by hand) is refused on load rather than silently mixed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from ..arch.config import ArchConfig
from ..arch.model import build_model
from ..arch.weights import check_state_dict
from ..common.errors import ModelError, UserError, WeightsMismatch
from ..common.fileio import atomic_write_bytes, atomic_write_json, os_errors_as
from ..common.paths import runs_dir as default_runs_dir
from ..common.paths import weights_dir as default_weights_dir
from ..common.schema import parse_json_object
from .card import FORMAT, ModelCard, check_model_name, render_card, size_text

__all__ = ["save_model", "load_model", "model_files", "read_sidecar", "MAX_SIDECAR_BYTES",
           "ModelInfo", "list_models", "read_model_card", "rename_model", "delete_model",
           "delete_models", "update_metrics", "weights_sha256", "card_markdown", "folder_usage",
           "disk_used", "MODEL_SORTS", "sort_models"]

MAX_SIDECAR_BYTES = 4 * 2**20  # 1000 ImageNet class names are ~30 kB; anything near this is wrong


def model_files(name: str, weights_dir: Path | None = None) -> tuple[Path, Path]:
    """(weights, sidecar) paths for a checked model name: a name is never a path."""
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    name = check_model_name(name)
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def save_model(model_or_state_dict: nn.Module | Mapping[str, torch.Tensor], sidecar: dict[str, Any],
               name: str, weights_dir: Path | None = None, *, overwrite: bool = True) -> Path:
    """Write both files atomically (weights first) and return the weights' path.

    `name`, `format`, `sha256` and (if absent) `created` are filled in here, so
    callers cannot get them wrong; the rest of the sidecar is validated
    against the weights before anything is written. With overwrite=False an existing
    model of that name is never replaced, even by a concurrent save (ModelError).
    """
    weights_path, sidecar_path = model_files(name, weights_dir)
    state = (model_or_state_dict.state_dict() if isinstance(model_or_state_dict, nn.Module)
             else dict(model_or_state_dict))
    # The sidecar and the tensors are checked against each other before anything is written.
    card = ModelCard.from_sidecar({**sidecar, "format": FORMAT, "name": name})
    tensors = _checked(_plain_tensors(state), card.arch, name)
    payload = save_safetensors(tensors, metadata={"format": FORMAT})
    full = {**sidecar, "format": FORMAT, "name": name,
            "created": sidecar.get("created") or utc_now(),
            "sha256": hashlib.sha256(payload).hexdigest()}
    try:
        atomic_write_bytes(weights_path, payload, exclusive=not overwrite)
    except FileExistsError:
        raise ModelError(f"a model named {name!r} already exists; choose another name") from None
    atomic_write_json(sidecar_path, full)
    return weights_path


def read_sidecar(name: str, weights_dir: Path | None = None) -> dict[str, Any]:
    """The validated sidecar dict of a stored model (no tensors read)."""
    return _read_sidecar(name, weights_dir)[0]


def _read_sidecar(name: str, weights_dir: Path | None) -> tuple[dict[str, Any], ModelCard]:
    """The sidecar dict and its card, validated once."""
    _, sidecar_path = model_files(name, weights_dir)
    data = parse_json_object(_read_file(name, sidecar_path, "sidecar"), max_bytes=MAX_SIDECAR_BYTES)
    card = ModelCard.from_sidecar(data)
    if card.name != name:
        raise ModelError(f"model {name!r}: its sidecar names it {card.name!r}")
    return data, card


def load_model(name: str, weights_dir: Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a stored model in eval mode on the CPU; every check happens before the weights
    are used."""
    weights_path, _ = model_files(name, weights_dir)
    sidecar, card = _read_sidecar(name, weights_dir)
    payload = _read_file(name, weights_path, "weights file")
    if card.sha256 and hashlib.sha256(payload).hexdigest() != card.sha256:
        raise ModelError(f"model {name!r}: the weights file does not match its sidecar "
                          "(changed or replaced after saving)")
    try:
        tensors = load_safetensors(payload)
    except (SafetensorError, ValueError) as exc:
        raise ModelError(f"model {name!r}: the weights file is damaged ({exc})") from None
    tensors = _checked(tensors, card.arch, name)
    model = build_model(card.arch)
    model.load_state_dict(tensors, strict=True)
    return model.eval(), sidecar


def _read_file(name: str, path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model {name!r}: the {what} {path.name} is missing") from None


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _plain_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, each owning its memory (safetensors refuses shared storage)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"{key} is not a tensor")
        t = value.detach().to("cpu").contiguous()
        ident = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if ident in seen or t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone()  # tied weights or a view into a larger buffer
        seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        out[key] = t
    return out


def _checked(tensors: Mapping[str, torch.Tensor], arch: ArchConfig,
             name: str) -> dict[str, torch.Tensor]:
    try:
        return check_state_dict(tensors, arch)
    except WeightsMismatch as exc:
        raise WeightsMismatch([f"model {name!r}: {p}" for p in exc.problems]) from None


# ----- listing, renaming, deleting ----------------------------------------------------------
# The .safetensors file anchors a model; one whose sidecar is missing or broken is still
# listed, with the reason, so a person can see it and delete it.


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path  # the .safetensors file
    card: ModelCard | None  # None when the sidecar is missing or unreadable
    problem: str = ""  # why card is None
    size_bytes: int = 0
    modified_ns: int = 0

    @property
    def fingerprint(self) -> str:
        """Changes whenever the file is replaced: part of the Predictor cache key."""
        sha = self.card.sha256 if self.card else ""
        return f"{sha}:{self.size_bytes}:{self.modified_ns}"

    @property
    def summary(self) -> str:
        return self.card.summary() if self.card else f"unreadable: {self.problem}"


def read_model_card(name: str, weights_dir: Path | None = None) -> ModelCard:
    """The checked sidecar of a stored model, typed; ModelError if missing or invalid."""
    return _read_sidecar(name, weights_dir)[1]


def list_models(weights_dir: Path | None = None) -> list[ModelInfo]:
    """Every model in the folder, newest first."""
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    found: list[ModelInfo] = []
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        name = path.name[: -len(".safetensors")]
        try:
            check_model_name(name)  # also skips hidden temporary files (".x.tmp")
            stat = path.stat()
        except (UserError, OSError):
            continue
        card, problem = None, ""
        try:
            card = read_model_card(name, folder)
        except (UserError, OSError) as exc:
            problem = str(exc)
        found.append(ModelInfo(name, path, card, problem, stat.st_size, stat.st_mtime_ns))
    return sorted(found, key=lambda m: (-m.modified_ns, m.name))


# How the Models page can order the store. Unknown values (no card, no accuracy) sort lowest;
# a date that is not ISO-8601 falls back to the file's.
MODEL_SORTS = ("date", "accuracy", "size", "name", "dataset", "run")


def sort_models(models: list[ModelInfo], by: str = "date",
                descending: bool = True) -> list[ModelInfo]:
    """The models ordered by one of MODEL_SORTS (ties by name); ValueError for another key."""
    if by not in MODEL_SORTS:
        raise ValueError(f"unknown sort key {by!r}")

    def key(m: ModelInfo) -> tuple[Any, ...]:
        card = m.card
        value: Any = {
            "date": _date_key(m),
            "accuracy": card.accuracy if card and card.accuracy is not None else -1.0,
            "size": m.size_bytes,
            "name": m.name.lower(),
            "dataset": card.dataset.lower() if card else "",
            "run": (card.run_id or "") if card else "",
        }[by]
        return (value,)

    ordered = sorted(models, key=lambda m: m.name.lower())  # stable: ties stay by name
    return sorted(ordered, key=key, reverse=descending)


def _date_key(m: ModelInfo) -> float:
    """When the model was made: the sidecar's date, else the file's."""
    try:
        created = _dt.datetime.fromisoformat(m.card.created) if m.card else None
    except ValueError:
        created = None
    if created is not None:
        if created.tzinfo is None:
            created = created.replace(tzinfo=_dt.timezone.utc)
        return created.timestamp()
    return m.modified_ns / 1e9


def rename_model(old: str, new: str, weights_dir: Path | None = None) -> None:
    """Rename both files and the name inside the sidecar; never overwrites another model."""
    old_weights, old_sidecar = model_files(old, weights_dir)
    new_weights, new_sidecar = model_files(new, weights_dir)
    if old == new:
        return
    if not old_weights.is_file():
        raise ModelError(f"there is no model named {old!r}")
    sidecar = read_sidecar(old, weights_dir)
    taken = ModelError(f"a model named {new!r} already exists; choose another name")
    with os_errors_as(ModelError, f"model {old!r} could not be renamed"):
        # A hard link claims the new name atomically (it fails if the name exists), so two
        # sessions renaming onto the same name cannot overwrite each other's model.
        try:
            new_weights.hardlink_to(old_weights)
        except FileExistsError:
            raise taken from None
        except OSError:  # a file system without hard links: check, then rename
            if new_weights.exists() or new_sidecar.exists():
                raise taken from None
            old_weights.replace(new_weights)
        atomic_write_json(new_sidecar, {**sidecar, "name": new})
        for path in (old_weights, old_sidecar):
            path.unlink(missing_ok=True)


def delete_model(name: str, weights_dir: Path | None = None) -> None:
    """Remove a model: weights first, so it leaves the listing at once, then its sidecar."""
    weights, sidecar = model_files(name, weights_dir)
    if not weights.exists() and not sidecar.exists():
        raise ModelError(f"there is no model named {name!r}")
    with os_errors_as(ModelError, f"model {name!r} could not be deleted"):
        weights.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)


def delete_models(names: list[str], weights_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """Delete several models: (deleted names, one sentence per model that was not)."""
    deleted, problems = [], []
    for name in names:
        try:
            delete_model(name, weights_dir)
        except UserError as exc:
            problems.append(str(exc))
        else:
            deleted.append(name)
    return deleted, problems


def update_metrics(name: str, changes: Mapping[str, Any], weights_dir: Path | None = None) -> None:
    """Merge `changes` into a stored model's sidecar metrics (the weights are not touched, so
    their hash stays valid): what the run learned after saving it, such as its last epoch."""
    _, sidecar_path = model_files(name, weights_dir)
    data = read_sidecar(name, weights_dir)
    data["metrics"] = {**data.get("metrics", {}), **changes}
    with os_errors_as(ModelError, f"model {name!r} could not be updated"):
        atomic_write_json(sidecar_path, data)


def weights_sha256(name: str, weights_dir: Path | None = None) -> str:
    """The SHA-256 of a stored weights file, read in chunks (for sidecars that record none)."""
    weights, _ = model_files(name, weights_dir)
    try:
        with open(weights, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        raise ModelError(f"model {name!r}: the weights file {weights.name} is missing") from None


def card_markdown(name: str, weights_dir: Path | None = None) -> str:
    """The model card (card.render_card) of a stored model; the hash of an older sidecar
    without one is computed now and not written back (reading never writes)."""
    card = read_model_card(name, weights_dir)
    weights, _ = model_files(name, weights_dir)
    sha = card.sha256 or weights_sha256(name, weights_dir)
    try:
        size: int | None = weights.stat().st_size
    except OSError:
        size = None
    return render_card(card, sha256=sha, size_bytes=size, sha_computed=not card.sha256)


# ----- disk used ----------------------------------------------------------------------------
def folder_usage(folder: Path) -> tuple[int, int]:
    """(bytes, files) under a folder, from directory entries only (no file is read); links
    are not followed, and a folder removed while counting counts as empty."""
    total = files = 0
    pending = [Path(folder)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
                    files += 1
            except OSError:  # removed meanwhile
                continue
    return total, files


def disk_used(weights_dir: Path | None = None, runs_dir: Path | None = None) -> str:
    """One line for the Models page: "Disk used: weights/ 170.3 MB (4 files) · runs/ …"."""
    parts = []
    for label, folder in (("weights/", weights_dir or default_weights_dir()),
                          ("runs/", runs_dir or default_runs_dir())):
        size, files = folder_usage(folder)
        parts.append(f"{label} {size_text(size)} ({files:,} file{'' if files == 1 else 's'})")
    return "Disk used: " + " · ".join(parts)
