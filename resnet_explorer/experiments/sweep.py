"""Ablation sweeps in the run store: one ordinary run per configuration × seed, queued with
runs.start_run (labelled with the sweep and the modification), and a record of the sweep in
``sweeps/<id>/``:

* spec.json: the spec as SweepSpec.to_dict() (a valid SPEC.json for the CLI);
* runs.json: {"created", "external", "runs": {run_id: {modification, seed, device, queue}}},
  rewritten atomically after every run it gains, so a crash mid-queueing loses none;
* summary.csv: written by the CLI when the sweep is done (stats.summarize).

Runs go round-robin over the chosen devices, seed by seed (every configuration gets its
first seed before any gets its second), each device being its own queue. Reading sweeps
only reads (runs.get_run shows a dead run as interrupted without writing, as every reader of
the run store does).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..arch.config import ArchConfig
from ..common.devices import device_queue
from ..common.errors import ConfigError, RunError, UserError
from ..common.fileio import atomic_write_json, atomic_write_text, exclusive_lock
from ..common.filevalues import finite_number, fraction
from ..common.paths import data_dir as default_data_dir
from ..common.paths import sweeps_dir as default_sweeps_dir
from ..common.paths import weights_dir as default_weights_dir
from ..runs import (ACTIVE, COMPLETED, RunInfo, RunPaths, cancel_run, get_run, read_status,
                    resume_run, start_run)
from ..runs.layout import PREPARED
from ..runs.reading import is_run_id, runs_root
from . import stats
from .actions import latency_device
from .sweep_spec import SweepSpec

__all__ = ["SweepRun", "RunSlot", "SweepRecord", "queue_sweep", "list_sweeps", "read_sweep",
           "sweep_runs", "cancel_sweep", "resume_sweep", "sweep_summary", "write_summary",
           "trainer_commands", "progress", "is_sweep_id"]

_SWEEP_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{4}")
CANCEL_WAIT_S = 5.0


@dataclass(frozen=True)
class RunSlot:
    """One planned run of a sweep: its configuration, seed and device; the run now doing it."""

    run_id: str
    modification: str
    seed: int
    device: str  # TrainConfig.device of the run
    queue: str  # the queue it waits in (start_run's `device`)


@dataclass(frozen=True)
class SweepRecord:
    sweep_id: str
    folder: Path
    spec: SweepSpec
    created: float
    external: bool  # prepared for a cluster scheduler (--print-commands)
    slots: tuple[RunSlot, ...]

    @property
    def summary_csv(self) -> Path:
        return self.folder / "summary.csv"


@dataclass(frozen=True)
class SweepRun:
    slot: RunSlot
    info: RunInfo | None  # None: removed (a queued run cancelled), or `problem`
    status: dict[str, Any]
    problem: str = ""  # why the run's status.json cannot be read; "" when it can

    @property
    def state(self) -> str:
        if self.info is not None:
            return self.info.state
        return "damaged" if self.problem else "removed"


def is_sweep_id(text: str) -> bool:
    return isinstance(text, str) and bool(_SWEEP_ID.fullmatch(text))


# ----- queueing ----------------------------------------------------------------------------
def queue_sweep(spec: SweepSpec, *, devices: Sequence[str] | None = None, confirmed: bool = False,
                external: bool = False, runs_dir: Path | None = None,
                sweeps_dir: Path | None = None, weights_dir: Path | None = None,
                data_dir: Path | None = None,
                on_queued: Callable[[SweepRecord], None] | None = None) -> SweepRecord:
    """Queue every run of `spec` (or, `external`, prepare them for a cluster scheduler).

    `devices`: the TrainConfig.device of the runs, round-robin ("cuda:0", "cuda:1" spreads
    over two GPUs, one queue each); None keeps the recipe's device. Refuses, before anything
    is written, a device this machine lacks (unless external) and an unconfirmed sweep of
    more than CONFIRM_ABOVE runs. `on_queued` sees the record after each run it gains (so
    a caller interrupted mid-way knows which runs exist).
    """
    spec.check_size(confirmed)
    chosen = list(devices) if devices else [spec.train.device]
    if not 1 <= len(chosen) <= 64 or len(set(chosen)) != len(chosen):
        raise ConfigError("choose 1 to 64 different devices for a sweep")
    for device in chosen:  # TrainConfig's own check of the name, before anything is written
        replace(spec.train, device=device).check()
    queues = [_queue(d, external) for d in chosen]
    folder = _new_folder(Path(sweeps_dir) if sweeps_dir else default_sweeps_dir())
    atomic_write_json(folder / "spec.json", spec.to_dict())
    record = SweepRecord(folder.name, folder, spec, time.time(), external, ())
    _write_runs(record)
    slots: list[RunSlot] = []
    for k, (seed, variant) in enumerate((s, v) for s in spec.seed_values() for v in spec.variants):
        device, queue = chosen[k % len(chosen)], queues[k % len(queues)]
        cfg = replace(variant.train, seed=seed, device=device)
        run_id = start_run(variant.arch, cfg, device=queue, runs_dir=runs_dir,
                           weights_dir=weights_dir, data_dir=data_dir, sweep=record.sweep_id,
                           modification=variant.name, external=external)
        slots.append(RunSlot(run_id, variant.name, seed, device, queue))
        record = replace(record, slots=tuple(slots))
        _write_runs(record, durable=k == spec.n_runs - 1)
        if on_queued is not None:
            on_queued(record)
    return record


def _queue(device: str, external: bool) -> str:
    try:
        return device_queue(device)
    except UserError:
        if external:  # the cluster's nodes have the device, the preparing machine need not
            return device.replace("auto", "cuda")
        raise


def _new_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    while True:
        folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:  # the same second and token: draw again
            continue


def _write_runs(record: SweepRecord, durable: bool = True) -> None:
    runs = {s.run_id: {"modification": s.modification, "seed": s.seed, "device": s.device,
                       "queue": s.queue} for s in record.slots}
    atomic_write_json(record.folder / "runs.json",
                      {"created": record.created, "external": record.external, "runs": runs},
                      fsync=durable)


# ----- reading -----------------------------------------------------------------------------
def list_sweeps(sweeps_dir: Path | None = None) -> list[SweepRecord]:
    """Every readable sweep, newest first (a damaged or half-made record is skipped)."""
    root = Path(sweeps_dir) if sweeps_dir else default_sweeps_dir()
    try:
        folders = list(os.scandir(root))
    except OSError:  # no sweeps yet, or a folder that cannot be read
        return []
    out = []
    for folder in folders:
        if is_sweep_id(folder.name) and folder.is_dir():
            try:
                out.append(read_sweep(folder.name, root))
            except UserError:
                continue
    return sorted(out, key=lambda r: (r.created, r.sweep_id), reverse=True)


def read_sweep(sweep_id: str, sweeps_dir: Path | None = None) -> SweepRecord:
    """The sweep's record; RunError for an unknown id or a damaged record."""
    if not is_sweep_id(sweep_id):
        raise RunError(f"{str(sweep_id)[:80]!r} is not a sweep id (e.g. 20250101-120000-ab12)")
    folder = (Path(sweeps_dir) if sweeps_dir else default_sweeps_dir()) / sweep_id
    try:
        spec = SweepSpec.from_json((folder / "spec.json").read_bytes())
        data = json.loads((folder / "runs.json").read_text(encoding="utf-8"))
        slots = tuple(RunSlot(run_id, str(s["modification"]), int(s["seed"]), str(s["device"]),
                              str(s["queue"])) for run_id, s in data["runs"].items())
        names = {v.name for v in spec.variants}
        for slot in slots:  # what later looks up a run or its configuration by these
            if not is_run_id(slot.run_id) or slot.modification not in names:
                raise ValueError(slot.run_id[:40])
        return SweepRecord(sweep_id, folder, spec, float(data["created"]),
                           bool(data.get("external")), slots)
    except FileNotFoundError:
        raise RunError(f"there is no sweep {sweep_id} in {folder.parent}") from None
    except ConfigError as exc:
        raise RunError(f"sweep {sweep_id} has a spec that no longer loads: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError,
            RecursionError) as exc:
        raise RunError(f"sweep {sweep_id}'s record is damaged ({type(exc).__name__})") from None


def sweep_runs(record: SweepRecord, runs_dir: Path | None = None) -> list[SweepRun]:
    """Each planned run as it is now; a status.json holding values of the wrong type makes
    that run "damaged" (never an exception)."""
    root = runs_root(runs_dir)
    out = []
    for slot in record.slots:
        info = get_run(slot.run_id, root)
        if info is not None and info.damaged:  # its message says which field is wrong
            out.append(SweepRun(slot, None, {}, info.message))
            continue
        status = read_status(RunPaths(root / slot.run_id)) if info is not None else {}
        out.append(SweepRun(slot, info, status))
    return out


def progress(runs: Sequence[SweepRun]) -> dict[str, int]:
    """How many runs are in each state, in a stable order (for a progress line)."""
    counts = Counter(r.state for r in runs)
    order = (COMPLETED, "running", "queued", PREPARED)
    return dict(sorted(counts.items(), key=lambda kv: (order.index(kv[0])
                                                       if kv[0] in order else 9, kv[0])))


# ----- cancel and resume -------------------------------------------------------------------
def cancel_sweep(record: SweepRecord, runs_dir: Path | None = None) -> str:
    """Cancel the sweep's queued and running runs (queued ones disappear); what happened."""
    runs = [r for r in sweep_runs(record, runs_dir) if r.info is not None and r.info.active]
    if not runs:
        return "no run of this sweep is queued or running"
    # Last in line first: cancelling the running run first would hand the device to the
    # next queued one, which would start training before its own cancel arrived.
    for run in reversed(runs):
        cancel_run(run.slot.run_id, runs_dir, wait_s=0)
    deadline = time.monotonic() + CANCEL_WAIT_S
    while True:
        after = {r.slot.run_id: get_run(r.slot.run_id, runs_dir) for r in runs}
        if not any(i is not None and i.active for i in after.values()) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    removed = sum(i is None for i in after.values())
    stopping = sum(i is not None and i.active for i in after.values())
    text = f"cancelled {len(runs) - removed - stopping} run(s), removed {removed} queued run(s)"
    return text + (f"; {stopping} still stopping" if stopping else "")


def resume_sweep(record: SweepRecord, runs_dir: Path | None = None, *,
                 weights_dir: Path | None = None, data_dir: Path | None = None
                 ) -> tuple[SweepRecord, str]:
    """Resume the sweep's interrupted, cancelled and failed runs and queue again the ones
    that were removed (cancelled while queued). The updated record and what happened.

    Under the sweep's lock, from the record as it is on disk: two resumes at once (a page
    and the CLI) would otherwise both queue a removed run again, and the runs.json written
    last would drop the other's new run ids."""
    with exclusive_lock(record.folder / ".lock"):
        record = read_sweep(record.sweep_id, record.folder.parent)
        return _resume(record, runs_dir, weights_dir, data_dir)


def _resume(record: SweepRecord, runs_dir: Path | None, weights_dir: Path | None,
            data_dir: Path | None) -> tuple[SweepRecord, str]:
    slots, problems = list(record.slots), []
    resumed = requeued = 0
    for i, run in enumerate(sweep_runs(record, runs_dir)):
        slot = run.slot
        if run.problem:
            problems.append(f"run {slot.run_id} cannot be resumed: {run.problem}")
        elif run.info is None:
            variant = record.spec.variant(slot.modification)
            cfg = replace(variant.train, seed=slot.seed, device=slot.device)
            run_id = start_run(variant.arch, cfg, device=slot.queue, runs_dir=runs_dir,
                               weights_dir=weights_dir, data_dir=data_dir,
                               sweep=record.sweep_id, modification=slot.modification,
                               external=record.external)
            slots[i] = replace(slot, run_id=run_id)
            record = replace(record, slots=tuple(slots))
            _write_runs(record)
            requeued += 1
        elif run.info.can_resume:
            try:
                resume_run(slot.run_id, runs_dir)
                resumed += 1
            except UserError as exc:  # e.g. resumed from elsewhere just now
                problems.append(str(exc))
    if not resumed + requeued + len(problems):
        return record, "nothing to resume: every run is done, queued or running"
    text = f"resumed {resumed} run(s), queued {requeued} removed run(s) again"
    return record, "; ".join([text, *problems])


# ----- results -----------------------------------------------------------------------------
def sweep_summary(record: SweepRecord, runs_dir: Path | None = None) -> pd.DataFrame:
    """stats.summarize over the sweep's runs as they are now (unfinished ones as pending)."""
    runs = sweep_runs(record, runs_dir)
    trained = {r.slot.modification: arch for r in runs
               if (arch := _trained_arch(r.status)) is not None}
    # A configuration none of whose runs has started yet: size its output layer like the
    # other runs on the same data, so its parameters do not jump when it starts.
    classes = {record.spec.variant(m).train.dataset: a.num_classes for m, a in trained.items()}
    groups = []
    for variant in record.spec.variants:
        mine = [r for r in runs if r.slot.modification == variant.name]
        done = [r for r in mine if r.state == COMPLETED and fraction(r.info.best_val_acc)
                is not None]
        arch = trained.get(variant.name) or replace(
            variant.arch, num_classes=classes.get(variant.train.dataset, variant.arch.num_classes))
        groups.append(stats.Group(
            name=variant.name, accuracies=[fraction(r.info.best_val_acc) for r in done],
            wall_s=[finite_number(r.status.get("elapsed_s")) for r in done], arch=arch,
            input_size=(arch.in_channels, variant.train.image_size, variant.train.image_size),
            device=latency_device(next((str(r.status["device"]) for r in mine
                                        if r.status.get("device")), "cpu")),
            pending=sum(r.state in (*ACTIVE, PREPARED) for r in mine),
            stopped=sum(r.state not in (*ACTIVE, PREPARED, COMPLETED) for r in mine)))
    return stats.summarize(groups)


def _trained_arch(status: dict[str, Any]) -> ArchConfig | None:
    """The architecture a run reported training (its output layer sized to the data)."""
    if not isinstance(status.get("arch"), dict):
        return None
    try:
        return ArchConfig.from_dict(status["arch"])
    except UserError:
        return None


def write_summary(record: SweepRecord, summary: pd.DataFrame) -> Path:
    return atomic_write_text(record.summary_csv, stats.summary_csv(summary))


def trainer_commands(record: SweepRecord, runs_dir: Path | None = None, *,
                     weights_dir: Path | None = None, data_dir: Path | None = None) -> list[str]:
    """One `python -m resnet_explorer.train …` line per run, for a cluster scheduler.

    --resume makes a command safe to run again (a preempted job continues from its
    checkpoint; one that already finished trains nothing and ends as completed again).
    """
    root = runs_root(runs_dir)
    weights = Path(weights_dir) if weights_dir else default_weights_dir()
    data = Path(data_dir) if data_dir else default_data_dir()
    out = []
    for slot in record.slots:
        paths = RunPaths(root / slot.run_id)
        out.append(shlex.join(["python", "-m", "resnet_explorer.train", "--arch", str(paths.arch),
                               "--train", str(paths.train), "--run-dir", str(paths.dir),
                               "--weights-dir", str(weights), "--data-dir", str(data),
                               "--resume"]))
    return out
