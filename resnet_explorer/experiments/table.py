"""The Compare page's table: one row per run, and per stored model with metrics that no listed
run produced.

Built from each run's status.json, arch.json and train.json and each model's sidecar, never
from metrics files (except once, cached by file version, for runs written before the trainer
recorded the final train loss and wall time in status.json). Whatever is damaged in a run's
files becomes that row's `problem`, never an exception. `store_signature` stats the same
files without reading them, so a page rebuilds the table only when one of them changed.
Parameters and MACs come from analyze() at the run's input size (cached per architecture and
input size); latency only from what analysis.measure_latency stored (never measured here).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..analysis import THROUGHPUT_BATCH, analyze, cached_latency
from ..analysis.latency import cache_file as latency_cache_file
from ..arch import BASELINE, SIZED_BY_DATA, ArchConfig, count_parameters
from ..common.csvcells import spreadsheet_safe
from ..common.errors import UserError
from ..common.filevalues import finite_number as number
from ..common.filevalues import fraction
from ..common.paths import weights_dir as default_weights_dir
from ..models.store import ModelInfo, list_models
from ..runs import ACTIVE, RunPaths, get_run, read_jsonl, read_status
from ..runs.reading import is_run_id, runs_root

__all__ = ["CompareRow", "CompareTable", "build_table", "store_signature", "with_live_states",
           "table_csv", "diff_fields", "recorded_device_kind", "number", "BASELINE_LABEL",
           "MODEL_KEY_PREFIX"]

MODEL_KEY_PREFIX = "model:"  # keys of rows that are stored models, not runs
_DIFF_FIELDS = tuple(f.name for f in fields(ArchConfig) if f.name not in SIZED_BY_DATA)
BASELINE_LABEL = BASELINE.short_diff()


@dataclass(frozen=True)
class CompareRow:
    key: str  # the run id, or MODEL_KEY_PREFIX + the model's name
    label: str  # what differs from resnet34 (ArchConfig.short_diff), or what is unreadable
    arch: ArchConfig | None = None  # the architecture as trained; None when unreadable
    input_size: tuple[int, int, int] | None = None
    dataset: str = ""
    epochs: int | None = None
    status: str = ""
    message: str = ""
    best_val_acc: float | None = None
    best_epoch: int | None = None
    final_train_loss: float | None = None
    wall_s: float | None = None
    device: str = ""
    params: int | None = None
    macs: int | None = None
    latency_ms: float | None = None  # batch 1
    images_per_s: float | None = None  # at throughput_batch
    throughput_batch: int | None = None
    latency_device: str = ""  # where those were measured
    sweep: str = ""
    modification: str = ""
    seed: int | None = None
    created: float = 0.0
    models: tuple[str, ...] = ()  # its models in the store (a run's best and last)
    problem: str = ""  # what is damaged in its files; "" when they read fine

    @property
    def is_run(self) -> bool:
        return not self.key.startswith(MODEL_KEY_PREFIX)

    @property
    def image_size(self) -> int | None:
        return self.input_size[1] if self.input_size else None

    @property
    def is_baseline(self) -> bool:
        """A ResNet34 (sized for its data): the reference point of the charts."""
        return self.arch is not None and self.label == BASELINE_LABEL


@dataclass(frozen=True)
class CompareTable:
    rows: tuple[CompareRow, ...]

    def frame(self, rows: Sequence[CompareRow] | None = None) -> pd.DataFrame:
        """The table as people read it: one column per field that differs anywhere."""
        rows = self.rows if rows is None else rows
        changed = diff_fields(self.rows)
        records = []
        for r in rows:
            record: dict[str, Any] = {"label": r.label}
            for name in changed:
                record[name] = _arch_value(getattr(r.arch, name)) if r.arch is not None else None
            record.update({
                "dataset": r.dataset, "image size": r.image_size, "epochs": r.epochs,
                "status": r.status, "best val acc": r.best_val_acc, "best epoch": r.best_epoch,
                "final train loss": r.final_train_loss, "wall time (s)": r.wall_s,
                "device": r.device, "params": r.params, "MACs": r.macs,
                "latency b1 (ms)": r.latency_ms, "images/s": r.images_per_s,
                "at batch": r.throughput_batch, "measured on": r.latency_device,
                "sweep": r.sweep, "modification": r.modification, "seed": r.seed,
                "run or model": r.key, "message": r.problem or r.message})
            records.append(record)
        columns: dict[str, Any] = {}
        for name in ["label", *_RESULT_COLUMNS, *changed, *_CONTEXT_COLUMNS]:
            values = [record[name] for record in records]
            known = [v for v in values if v is not None]
            whole = known and all(isinstance(v, int) and not isinstance(v, bool) for v in known)
            # Whole numbers stay whole (not 8.0) where some rows lack them.
            columns[name] = pd.array(values, dtype="Int64") if whole else values
        return pd.DataFrame(columns, columns=list(columns))


# What a run reached and cost comes first (the label already says what differs), then the
# differing fields one by one, then where and how it ran.
_RESULT_COLUMNS = ("status", "best val acc", "best epoch", "final train loss", "params", "MACs",
                   "latency b1 (ms)", "images/s", "wall time (s)", "dataset", "image size",
                   "epochs")
_CONTEXT_COLUMNS = ("device", "at batch", "measured on", "sweep", "modification", "seed",
                    "run or model", "message")


def diff_fields(rows: Sequence[CompareRow]) -> list[str]:
    """ArchConfig fields (without SIZED_BY_DATA) where some row differs from resnet34."""
    archs = {r.arch for r in rows if r.arch is not None}
    return [n for n in _DIFF_FIELDS if any(getattr(a, n) != getattr(BASELINE, n) for a in archs)]


def _arch_value(value: Any) -> Any:
    """An ArchConfig value as one table cell: "on"/"off", per-stage tuples as "1-1"."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return "-".join(_arch_value(v) if isinstance(v, bool) else f"{v:g}" for v in value)
    return value


# ----- building ------------------------------------------------------------------------------
def build_table(runs_dir: Path | None = None, weights_dir: Path | None = None,
                latency_dir: Path | None = None) -> CompareTable:
    """Every run (newest first), then every stored model with metrics whose run is not listed."""
    root = runs_root(runs_dir)
    rows = [_run_row(RunPaths(root / name), root, latency_dir) for name in _run_ids(root)]
    runs = [r for r in rows if r is not None]
    runs.sort(key=lambda r: (r.created, r.key), reverse=True)
    listed = {r.key for r in runs}
    models = [_model_row(m, latency_dir) for m in list_models(weights_dir)
              if m.card is not None and m.card.metrics and m.card.run_id not in listed]
    return CompareTable(tuple(runs + models))


def _run_ids(root: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(root) if is_run_id(e.name) and e.is_dir()]
    except OSError:
        return []


def _run_row(paths: RunPaths, root: Path, latency_dir: Path | None) -> CompareRow | None:
    run_id = paths.run_id
    status = read_status(paths)
    if not status:
        if not paths.status.exists():
            return None  # being created, or removed under us
        return _damaged(run_id, "status.json is unreadable (not a JSON object)")
    info = get_run(run_id, root)  # a dead "running" run reads as interrupted
    if info is None:
        return None
    problems: list[str] = [info.message] if info.damaged else []  # which status field is wrong
    arch = _trained_arch(paths, status, problems)
    train = _train_config(paths, problems)
    size = _int(train.get("image_size"))
    input_size = (arch.in_channels, size, size) if arch is not None and size else None
    loss, wall = _final_figures(paths, status)
    models = tuple(dict.fromkeys(m for m in (info.best_model, info.last_model)
                                 if isinstance(m, str) and m))
    return _costed(CompareRow(
        key=run_id, label=arch.short_diff() if arch is not None else "(architecture unreadable)",
        arch=arch, input_size=input_size, dataset=str(info.dataset or train.get("dataset", "")),
        epochs=_int(train.get("epochs")) or _int(status.get("epochs")), status=info.state,
        message=info.message, best_val_acc=fraction(info.best_val_acc),
        best_epoch=_int(status.get("best_epoch")) or None, final_train_loss=loss, wall_s=wall,
        device=str(info.device), sweep=info.sweep, modification=info.modification,
        seed=_int(train.get("seed")), created=number(info.created) or 0.0, models=models,
        problem="; ".join(problems)), latency_dir)


def _damaged(run_id: str, problem: str) -> CompareRow:
    return CompareRow(key=run_id, label="(damaged run)", status="damaged", problem=problem)


def _trained_arch(paths: RunPaths, status: dict[str, Any],
                  problems: list[str]) -> ArchConfig | None:
    """The network as trained (status: with the output sized to the data), else arch.json."""
    if isinstance(status.get("arch"), dict):
        try:
            return _parse_arch(json.dumps(status["arch"], sort_keys=True))
        except UserError:
            pass  # arch.json below says the same thing for a person
    try:
        return _parse_arch(paths.arch.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"arch.json cannot be read ({exc.__class__.__name__})")
    except UserError as exc:
        problems.append(f"arch.json: {exc}")
    return None


def _train_config(paths: RunPaths, problems: list[str]) -> dict[str, Any]:
    """train.json as plain values (what the table shows needs no full validation)."""
    try:
        data = json.loads(paths.train.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        problems.append("train.json is missing or unreadable")
        return {}
    if not isinstance(data, dict):
        problems.append("train.json is not a JSON object")
        return {}
    return data


@functools.lru_cache(maxsize=1024)
def _parse_arch(text: str) -> ArchConfig:
    return ArchConfig.from_json(text)  # validated; an exception is not cached


def _final_figures(paths: RunPaths, status: dict[str, Any]) -> tuple[float | None, float | None]:
    """Final train loss and wall time: status.json (the trainer writes both each epoch), else
    the last epoch record of metrics.jsonl, read once per file version."""
    final = status.get("final") if isinstance(status.get("final"), dict) else {}
    loss = number(status.get("train_loss", final.get("train_loss")))
    wall = number(status.get("elapsed_s", final.get("elapsed_s")))
    if (loss is None or wall is None) and number(status.get("epoch")):
        try:
            st = paths.metrics.stat()
        except OSError:
            return loss, wall
        old_loss, old_wall = _last_epoch_figures(str(paths.metrics), st.st_mtime_ns, st.st_size)
        loss = old_loss if loss is None else loss
        wall = old_wall if wall is None else wall
    return loss, wall


@functools.lru_cache(maxsize=1024)
def _last_epoch_figures(path: str, mtime_ns: int, size: int) -> tuple[float | None, float | None]:
    epochs = [r for r in read_jsonl(Path(path)) if r.get("kind") == "epoch"]
    last = epochs[-1] if epochs else {}
    return number(last.get("train_loss")), number(last.get("elapsed_s"))


def _model_row(info: ModelInfo, latency_dir: Path | None) -> CompareRow:
    card = info.card
    assert card is not None
    train = card.train or {}
    metrics = card.metrics
    size = card.preprocess.size
    dataset = metrics.get("dataset", train.get("dataset", ""))
    return _costed(CompareRow(
        key=MODEL_KEY_PREFIX + info.name, label=card.arch.short_diff(), arch=card.arch,
        input_size=(card.preprocess.channels, size, size),
        dataset=dataset if isinstance(dataset, str) else "", epochs=_int(train.get("epochs")),
        status=f"stored model ({card.source})", message=card.provenance(),
        best_val_acc=card.accuracy, best_epoch=_int(metrics.get("epoch")),
        final_train_loss=number(metrics.get("train_loss")),
        wall_s=number(metrics.get("elapsed_s")), device=str(train.get("device", ""))[:20],
        seed=_int(train.get("seed")), created=info.modified_ns / 1e9, models=(info.name,)),
        latency_dir)


# ----- cost: parameters, MACs, measured latency -----------------------------------------------
def _costed(row: CompareRow, latency_dir: Path | None) -> CompareRow:
    if row.arch is None:
        return row
    params, macs, problem = _cost(row.arch.to_json(), row.input_size)
    extra = {"params": params, "macs": macs}
    if problem:
        extra["problem"] = "; ".join(p for p in (row.problem, problem) if p)
    if row.input_size is not None:
        kind = recorded_device_kind(row.device)
        extra.update(_latency(row.arch, row.input_size, kind, latency_dir))
    return replace(row, **extra)


@functools.lru_cache(maxsize=1024)
def _cost(arch_json: str, input_size: tuple[int, int, int] | None
          ) -> tuple[int | None, int | None, str]:
    """(params, MACs at the input size, why MACs are missing) for one architecture."""
    cfg = ArchConfig.from_json(arch_json)
    if input_size is None:
        return count_parameters(cfg), None, ""
    try:
        analysis = analyze(cfg, input_size)
    except UserError as exc:
        return count_parameters(cfg), None, str(exc)
    return analysis.params, analysis.macs, ""


def recorded_device_kind(device: str) -> str:
    """"cuda" for "cuda:1" (as a run recorded it, whether or not this machine has it): the
    kind a measurement is looked up and taken under; "cpu" for anything unknown."""
    kind = str(device).split(":", 1)[0]
    return kind if kind in THROUGHPUT_BATCH else "cpu"


def _latency(arch: ArchConfig, input_size: tuple[int, int, int], kind: str,
             latency_dir: Path | None) -> dict[str, Any]:
    """Stored measurements on the run's device kind, else on this machine's CPU."""
    for device in dict.fromkeys((kind, "cpu")):
        one = cached_latency(arch, input_size, device, 1, cache_dir=latency_dir)
        if one is None:
            continue
        batch = THROUGHPUT_BATCH[device]
        many = cached_latency(arch, input_size, device, batch, cache_dir=latency_dir)
        return {"latency_ms": one.median_ms, "latency_device": one.device,
                "images_per_s": many.images_per_s if many else None,
                "throughput_batch": batch if many else None}
    return {}


# ----- plain values out of files a person or a crash may have damaged ------------------------
def _int(value: Any) -> int | None:
    x = number(value)
    return int(x) if x is not None and x == int(x) else None


# ----- what pages need besides the rows -------------------------------------------------------
def store_signature(runs_dir: Path | None = None, weights_dir: Path | None = None,
                    latency_dir: Path | None = None) -> str:
    """Changes whenever a file the table is built from changes: the modification times and
    sizes of every run's status/arch/train files, the model store and the latency cache (stat
    only, no reads), so a page can key its cached table by it."""
    root = runs_root(runs_dir)
    parts: list[str] = []
    for run_id in sorted(_run_ids(root)):
        for name in ("status.json", "arch.json", "train.json"):
            parts.append(_stat(root / run_id / name))
    weights = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    try:
        names = sorted(e.name for e in os.scandir(weights) if not e.name.startswith("."))
    except OSError:
        names = []
    parts.extend(_stat(weights / n) for n in names)
    parts.append(_stat(latency_cache_file(latency_dir)))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def with_live_states(table: CompareTable, runs_dir: Path | None = None) -> CompareTable:
    """The table with each run it shows as queued or running as it is now: one whose processes
    died reads as interrupted (runs.get_run), one removed meanwhile is left out. Death releases
    a lock but changes no file, so a table cached by store_signature cannot know it; only the
    active rows are looked at again (a lock probe each), and nothing is written."""
    root = runs_root(runs_dir)
    rows, changed = [], False
    for row in table.rows:
        if row.is_run and row.status in ACTIVE:
            info = get_run(row.key, root)
            if info is None or info.state != row.status:
                changed = True
                if info is None:
                    continue
                row = replace(row, status=info.state, message=info.message)
        rows.append(row)
    return CompareTable(tuple(rows)) if changed else table


def _stat(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}:-"
    return f"{path}:{st.st_mtime_ns}:{st.st_size}"


def table_csv(frame: pd.DataFrame) -> str:
    """The table as CSV; texts that a spreadsheet would run as formulas are quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([spreadsheet_safe(c) for c in frame.columns])
    for values in frame.itertuples(index=False):
        writer.writerow(["" if _missing(v) else spreadsheet_safe(v) for v in values])
    return buffer.getvalue()


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
