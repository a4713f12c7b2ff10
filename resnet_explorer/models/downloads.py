"""The bytes behind the download buttons: a stored model's files exactly as stored (or both in
one zip, with its card), and a run's configs and metrics.

Built here rather than in the pages so they are tested without Streamlit, and built only when
asked: a page passes these functions as deferred data, so listing twenty models reads no
weights. A model's two files are read as a pair and checked against each other (the sidecar's
SHA-256), so a download never mixes a model with a sidecar written over it meanwhile.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common.csvcells import spreadsheet_safe
from ..common.errors import ModelError, RunError
from ..runs.layout import read_status
from ..runs.reading import read_metrics, run_paths
from .store import card_markdown, model_files, read_model_card

__all__ = ["ModelFiles", "model_file_bytes", "model_zip", "run_files", "run_config_bytes",
           "metrics_csv", "METRIC_COLUMNS", "RUN_CONFIGS"]

# The columns of metrics.csv, in this order for every run; a key a newer trainer adds goes
# after them (sorted), so tools reading older files by column name keep working.
METRIC_COLUMNS = ("kind", "step", "epoch", "loss", "lr", "images_per_s", "elapsed_s",
                  "train_loss", "train_acc", "val_loss", "val_acc", "epoch_s", "best_val_acc",
                  "best_epoch")
RUN_CONFIGS = ("arch.json", "train.json")


@dataclass(frozen=True)
class ModelFiles:
    name: str
    weights: bytes  # <name>.safetensors, byte for byte
    sidecar: bytes  # <name>.json, byte for byte

    @property
    def weights_name(self) -> str:
        return f"{self.name}.safetensors"

    @property
    def sidecar_name(self) -> str:
        return f"{self.name}.json"


def model_file_bytes(name: str, weights_dir: Path | None = None) -> ModelFiles:
    """Both files of a stored model as they are on disk, checked to belong together."""
    weights_path, sidecar_path = model_files(name, weights_dir)
    card = read_model_card(name, weights_dir)
    try:
        weights, sidecar = weights_path.read_bytes(), sidecar_path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model {name!r} was removed meanwhile") from None
    if card.sha256 and hashlib.sha256(weights).hexdigest() != card.sha256:
        raise ModelError(f"model {name!r}: the weights file does not match its sidecar "
                         "(changed or replaced after saving)")
    return ModelFiles(name, weights, sidecar)


def model_zip(name: str, weights_dir: Path | None = None) -> bytes:
    """<name>.safetensors, <name>.json and the card <name>.md in one zip, made in memory.

    The names inside are the checked model name (letters, digits, '.', '_', '-'), never a
    path. The weights are stored, not deflated: float tensors barely compress, and deflating
    85 MB would cost seconds per click.
    """
    files = model_file_bytes(name, weights_dir)
    card = card_markdown(name, weights_dir).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(files.weights_name, files.weights, compress_type=zipfile.ZIP_STORED)
        archive.writestr(files.sidecar_name, files.sidecar, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(f"{name}.md", card, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def run_files(run_id: str, runs_dir: Path | None = None,
              weights_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """What a run offers for download (by stat, nothing read): (its models in the store,
    the configs it has of RUN_CONFIGS). Model names come from status.json, which a crash or a
    hand may have left wrong: a name that is not a stored model is not offered."""
    paths = run_paths(run_id, runs_dir)
    status = read_status(paths)
    models = []
    for key in ("best_model", "last_model"):
        name = status.get(key)
        try:
            if name and model_files(name, weights_dir)[0].is_file():
                models.append(name)
        except ModelError:
            continue
    return models, [f for f in RUN_CONFIGS if (paths.dir / f).is_file()]


def run_config_bytes(run_id: str, file_name: str, runs_dir: Path | None = None) -> bytes:
    """arch.json or train.json of a run, as written when it started."""
    if file_name not in RUN_CONFIGS:
        raise RunError(f"a run has no downloadable file {file_name!r}")
    path = run_paths(run_id, runs_dir).dir / file_name
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RunError(f"run {run_id} has no {file_name} (removed, or not started yet)") from None


def metrics_csv(run_id: str, runs_dir: Path | None = None) -> bytes:
    """Every record of metrics.jsonl (steps and epochs, in order) as one CSV row each."""
    metrics = read_metrics(run_id, runs_dir)
    records = sorted(metrics.steps + metrics.epochs, key=_order)
    extra = sorted({k for r in records for k in r} - set(METRIC_COLUMNS))
    columns = [*METRIC_COLUMNS, *extra]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(record.get(c)) for c in columns])
    return out.getvalue().encode("utf-8")


def _order(record: dict[str, Any]) -> tuple[float, int]:
    """By step; an epoch's record after the step records of that step."""
    step = record.get("step")
    step = step if isinstance(step, (int, float)) and not isinstance(step, bool) else 0
    return float(step), 1 if record.get("kind") == "epoch" else 0


def _cell(value: Any) -> str:
    """One metric as CSV text: numbers as Python writes them, JSON for anything nested; text
    (and JSON) that a spreadsheet would run as a formula is defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return spreadsheet_safe(value if isinstance(value, str) else json.dumps(value))
