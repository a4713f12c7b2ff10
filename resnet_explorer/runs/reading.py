"""What pages read about runs: the list, one run, its metrics and the tail of its log.

Readers never block a run and never see one half-made or half-deleted (layout.py), and never
write: a page lists runs on a full or read-only disk. A run whose status says active but whose
processes are gone reads as interrupted (`observed_status`, the one place that decides it, so
every reader agrees); the writers record that when they next act on the run (launch.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common.errors import RunError
from ..common.filevalues import fraction, non_negative
from ..common.paths import runs_dir as default_runs_dir
from .layout import (ACTIVE, CANCELLED, DAMAGED, FAILED, INTERRUPTED, RESUME_CANNOT_FIX,
                     DamagedStatus, RunPaths, load_status, lock_is_held, read_jsonl)

__all__ = ["RESUMABLE", "DEAD_MESSAGE", "RunInfo", "RunMetrics", "list_runs", "get_run",
           "observed_status", "read_metrics", "log_tail", "run_paths", "runs_root", "is_run_id"]

RESUMABLE = (INTERRUPTED, CANCELLED, FAILED)
LOG_TAIL_LINES = 30
LOG_TAIL_BYTES = 64 * 1024  # a progress bar can make one "line" of megabytes
_RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[a-z0-9]+-[0-9a-f]{4}")
DEAD_MESSAGE = ("the trainer stopped without reporting (killed, crashed or the machine "
                "restarted); resume continues from the last checkpoint")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    state: str
    message: str
    created: float
    dataset: str
    arch_name: str
    device: str
    epoch: float
    epochs: int
    step: int
    total_steps: int
    best_val_acc: float | None
    images_per_s: float | None
    eta_s: float | None
    best_model: str | None
    last_model: str | None
    sweep: str = ""  # the ablation sweep this run belongs to, if any
    modification: str = ""  # that sweep's modification name ("baseline" included)
    failure: str = ""  # what a failed run failed on (layout.FAILED_ON_DATA, ...)
    warning: str = ""  # what its result must not be trusted for (a model at chance level)

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def can_resume(self) -> bool:
        # "failure" only counts while failed: a field left from before a resume says nothing.
        return self.state in RESUMABLE and not (self.state == FAILED
                                                and self.failure in RESUME_CANNOT_FIX)

    @property
    def damaged(self) -> bool:
        return self.state == DAMAGED

    @classmethod
    def from_status(cls, run_id: str, s: dict[str, Any]) -> RunInfo:
        """The run as status.json says; a field of the wrong type (a hand or a crash wrote it)
        makes the run "damaged", with a message naming the field, instead of raising."""
        fields = _StatusFields(s)
        info = cls(run_id=run_id, state=fields.text("state") or "unknown",
                   message=fields.text("message"), created=fields.count("created") or 0.0,
                   dataset=fields.text("dataset"), arch_name=fields.text("arch_name"),
                   device=fields.text("device"), epoch=fields.count("epoch") or 0.0,
                   epochs=int(fields.count("epochs") or 0), step=int(fields.count("step") or 0),
                   total_steps=int(fields.count("total_steps") or 0),
                   best_val_acc=fields.number("best_val_acc", fraction, "a fraction from 0 to 1"),
                   images_per_s=fields.count("images_per_s"), eta_s=fields.count("eta_s"),
                   best_model=fields.text("best_model") or None,
                   last_model=fields.text("last_model") or None, sweep=fields.text("sweep"),
                   modification=fields.text("modification"), failure=fields.text("failure"),
                   warning=fields.text("warning"))
        if fields.problems:
            return cls.damaged_run(run_id, "status.json holds a value of the wrong type: "
                                   + "; ".join(fields.problems),
                                   info.created)
        return info

    @classmethod
    def damaged_run(cls, run_id: str, message: str, created: float = 0.0) -> RunInfo:
        """A row for a run whose status cannot be trusted: it can be deleted, not resumed."""
        return cls(run_id=run_id, state=DAMAGED, message=message, created=created, dataset="",
                   arch_name="", device="", epoch=0.0, epochs=0, step=0, total_steps=0,
                   best_val_acc=None, images_per_s=None, eta_s=None, best_model=None,
                   last_model=None)


class _StatusFields:
    """Fields of a status dict checked by type; what is wrong is collected in `problems`.
    A missing field or null reads as absent, except `created`, which the launcher always
    writes as a time."""

    def __init__(self, status: dict[str, Any]):
        self.status = status
        self.problems: list[str] = []

    def text(self, key: str) -> str:
        value = self.status.get(key)
        if value is None or isinstance(value, str):
            return value or ""
        self.problems.append(f"{key!r} is {_shown(value)}, not text")
        return ""

    def number(self, key: str, check: Any, what: str) -> float | None:
        value = self.status.get(key)
        if value is None and (key != "created" or key not in self.status):
            return None
        number = check(value)
        if number is None:
            self.problems.append(f"{key!r} is {_shown(value)}, not {what}")
        return number

    def count(self, key: str) -> float | None:
        """A count, time or rate: a finite number, not negative."""
        return self.number(key, non_negative, "a finite number of 0 or more")


def _shown(value: Any) -> str:
    """The value as the file has it, cut short (it may be a 400-digit integer)."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


@dataclass
class RunMetrics:
    steps: list[dict[str, Any]]  # kind "step": step, epoch, loss, lr, images_per_s, elapsed_s
    epochs: list[dict[str, Any]]  # kind "epoch": train/val loss and accuracy, elapsed_s, ...


def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """Every run, newest first, with dead "running"/"queued" runs shown as interrupted."""
    root = runs_root(runs_dir)
    try:
        folders = list(os.scandir(root))
    except OSError:  # no runs yet, or a folder that cannot be read
        return []
    out = []
    for folder in folders:
        # Run ids only: skips the hidden queue folder and runs being deleted (remove_run_dir).
        if is_run_id(folder.name) and folder.is_dir():
            info = get_run(folder.name, root)
            if info is not None:  # else being created, or removed under us
                out.append(info)
    return sorted(out, key=lambda r: (r.created, r.run_id), reverse=True)


def get_run(run_id: str, runs_dir: Path | None = None) -> RunInfo | None:
    """The run, None while it is being created or once removed; a run with a damaged
    status.json is a "damaged" RunInfo, whatever its processes do."""
    paths = run_paths(run_id, runs_dir)
    try:
        status = load_status(paths)
        if not status:
            return None
        info = RunInfo.from_status(run_id, status)
        if info.damaged:
            return info
        seen = observed_status(paths, status)
    except DamagedStatus as exc:
        return RunInfo.damaged_run(run_id, str(exc))
    if seen is status:  # alive, or finished: as it was read
        return info
    return RunInfo.from_status(run_id, seen) if seen else None


def observed_status(paths: RunPaths, status: dict[str, Any]) -> dict[str, Any] | None:
    """`status` (as read from status.json) as every reader sees it: an active-looking run whose
    processes are gone (nobody holds its lock) reads as interrupted. Nothing is written.

    None when the run is gone (a queued run is deleted when it is cancelled, and that can
    happen between two looks). Raises DamagedStatus.
    """
    if status.get("state") not in ACTIVE:
        return status
    try:
        if lock_is_held(paths.lock, missing_ok=False):
            return status
    except FileNotFoundError:  # every run has one from its start: the folder is being removed
        return None
    # Look again now that the lock was seen free: a run writes its final state before its
    # processes exit, so a run that ended between the two looks shows how it ended.
    status = load_status(paths)
    if not status or status.get("state") not in ACTIVE:
        return status
    return {**status, "state": INTERRUPTED, "message": DEAD_MESSAGE}


def read_metrics(run_id: str, runs_dir: Path | None = None) -> RunMetrics:
    records = read_jsonl(run_paths(run_id, runs_dir).metrics)
    return RunMetrics(steps=[r for r in records if r.get("kind") == "step"],
                      epochs=[r for r in records if r.get("kind") == "epoch"])


def log_tail(run_id: str, runs_dir: Path | None = None) -> str:
    path = run_paths(run_id, runs_dir).log
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    # Progress bars (downloads) rewrite one line with carriage returns: keep the last state.
    rows = [row.rsplit("\r", 1)[-1] for row in text.splitlines()]
    return "\n".join(rows[-LOG_TAIL_LINES:])


def runs_root(runs_dir: Path | None) -> Path:
    return Path(runs_dir) if runs_dir is not None else default_runs_dir()


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID.fullmatch(text))


def run_paths(run_id: str, runs_dir: Path | None) -> RunPaths:
    """The folder of `run_id`; RunError for anything that is not a run id (never a path)."""
    if not isinstance(run_id, str) or not is_run_id(run_id):
        raise RunError(f"{str(run_id)[:80]!r} is not a run id")
    return RunPaths(runs_root(runs_dir) / run_id)
