"""What the Compare page does to the rows a person selected: delete runs with their models,
and measure the latency of their networks (the table then shows it from the cache)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..analysis import THROUGHPUT_BATCH, measure_latency
from ..common.devices import resolve_device
from ..common.errors import RunError, UserError
from ..models.store import delete_models, model_files
from ..runs import delete_run, read_status
from ..runs.reading import run_paths
from ..training.recorder import model_names
from .table import MODEL_KEY_PREFIX, CompareRow, recorded_device_kind

__all__ = ["delete_runs", "delete_rows", "measure_rows", "latency_device"]


def delete_runs(run_ids: Sequence[str], *, runs_dir: Path | None = None,
                weights_dir: Path | None = None) -> list[str]:
    """Delete each run and the models it put in the store; one message per run. An active
    run is refused (cancel it first) and the others go ahead."""
    messages = []
    for run_id in run_ids:
        try:
            status = read_status(run_paths(run_id, runs_dir))
            named = [status.get("best_model"), status.get("last_model")]
            # A status that cannot be read names no models: the trainer's own names then.
            models = [m for m in named if isinstance(m, str) and m] if status \
                else list(model_names(run_id))
            message = delete_run(run_id, runs_dir)
        except RunError as exc:
            messages.append(str(exc))
            continue
        removed, failed = _delete_models(models, weights_dir)
        if removed:
            message += f" and its model{'s' if len(removed) > 1 else ''} {', '.join(removed)}"
        messages.extend([message, *failed])
    return messages


def _delete_models(names: Sequence[str], weights_dir: Path | None) -> tuple[list[str], list[str]]:
    """(deleted, problems) of the models that still exist (deleted or renamed on the Models
    page meanwhile: nothing to do)."""
    there = [n for n in dict.fromkeys(names)
             if any(path.exists() for path in model_files(n, weights_dir))]
    return delete_models(there, weights_dir)


def delete_rows(keys: Sequence[str], *, runs_dir: Path | None = None,
                weights_dir: Path | None = None) -> list[str]:
    """Delete the table rows `keys`: runs with their models, and stored models by name."""
    names = [k[len(MODEL_KEY_PREFIX):] for k in keys if k.startswith(MODEL_KEY_PREFIX)]
    runs = [k for k in keys if not k.startswith(MODEL_KEY_PREFIX)]
    messages = delete_runs(runs, runs_dir=runs_dir, weights_dir=weights_dir) if runs else []
    deleted, problems = delete_models(names, weights_dir)
    return messages + [f"deleted model {name}" for name in deleted] + problems


def latency_device(run_device: str) -> str:
    """The device kind a row's latency is measured on: the run's, when this machine has it,
    else the CPU."""
    kind = recorded_device_kind(run_device)
    try:
        resolve_device(kind)
    except UserError:
        return "cpu"
    return kind


def measure_rows(rows: Sequence[CompareRow], *, latency_dir: Path | None = None) -> list[str]:
    """Measure batch-1 latency and throughput once per distinct (architecture, input, device)
    of `rows`; one message per measurement (a refusal is a message too)."""
    seen: set[tuple[str, tuple[int, int, int], str]] = set()
    messages = []
    for row in rows:
        if row.arch is None or row.input_size is None:
            messages.append(f"{row.label}: nothing to measure ({row.problem or 'no input size'})")
            continue
        device = latency_device(row.device)
        key = (row.arch.to_json(), row.input_size, device)
        if key in seen:
            continue
        seen.add(key)
        batch = THROUGHPUT_BATCH[device]
        try:
            one = measure_latency(row.arch, row.input_size, device, 1, cache_dir=latency_dir)
            many = measure_latency(row.arch, row.input_size, device, batch, cache_dir=latency_dir)
        except UserError as exc:
            messages.append(f"{row.label}: {exc}")
            continue
        except RuntimeError as exc:  # e.g. out of device memory: a message, not a traceback
            messages.append(f"{row.label}: the measurement failed ({str(exc)[:200]})")
            continue
        messages.append(f"{row.label}: {one.median_ms:.2f} ms at batch 1, "
                        f"{many.images_per_s:,.0f} images/s at batch {batch} on {one.device}")
    return messages
