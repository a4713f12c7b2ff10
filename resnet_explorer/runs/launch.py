"""The run store and queue as the dashboard sees it: start, list, cancel, resume, read.

Each run is a directory ``runs/<id>/`` (layout.py). Starting a run
writes its configs and a "queued" status, then launches a detached supervisor
(supervisor.py) that waits for the device, runs the trainer and records the end.
The dashboard itself only reads run directories, so a page reload, a second
browser or a restarted server all see the same runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..common.errors import ConfigError, RunError
from ..common.fileio import atomic_write_json, atomic_write_text
from ..common.paths import REPO_ROOT
from ..common.paths import runs_dir as default_runs_dir
from .layout import (ACTIVE, CANCELLED, FAILED, FINISHED, INTERRUPTED, QUEUED, RunPaths,
                     lock_is_held, read_jsonl, read_status, remove_run_dir, sweep_tombstones,
                     try_lock, write_status)
from .supervisor import drop_markers, launch_supervisor, queue_dir

if TYPE_CHECKING:  # only annotations: the configs bring torch, and this room never imports it
    from ..arch.config import ArchConfig
    from ..training.config import TrainConfig

try:
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunInfo", "RunMetrics", "start_run", "list_runs", "get_run", "cancel_run", "resume_run",
           "read_metrics", "log_tail", "RESUMABLE"]

RESUMABLE = (INTERRUPTED, CANCELLED, FAILED)
SLOTS_ENV = "RESNET_EXPLORER_RUNS_PER_DEVICE"
_RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[a-z0-9]+-[0-9a-f]{4}")
_DEAD = ("the trainer stopped without reporting (killed, crashed or the machine restarted); "
         "resume continues from the last checkpoint")


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

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def can_resume(self) -> bool:
        return self.state in RESUMABLE

    @classmethod
    def from_status(cls, run_id: str, s: dict[str, Any]) -> RunInfo:
        return cls(run_id=run_id, state=s.get("state", "unknown"), message=s.get("message", ""),
                   created=float(s.get("created", 0.0)), dataset=s.get("dataset", ""),
                   arch_name=s.get("arch_name", ""), device=s.get("device", ""),
                   epoch=float(s.get("epoch") or 0), epochs=int(s.get("epochs") or 0),
                   step=int(s.get("step") or 0), total_steps=int(s.get("total_steps") or 0),
                   best_val_acc=s.get("best_val_acc"), images_per_s=s.get("images_per_s"),
                   eta_s=s.get("eta_s"), best_model=s.get("best_model"),
                   last_model=s.get("last_model"))


@dataclass
class RunMetrics:
    steps: list[dict[str, Any]]  # kind "step": step, epoch, loss, lr, images_per_s, elapsed_s
    epochs: list[dict[str, Any]]  # kind "epoch": train/val loss and accuracy, elapsed_s, ...


# ----- starting ---------------------------------------------------------------------------
def start_run(arch: ArchConfig, cfg: TrainConfig, *, device: str, runs_dir: Path | None = None,
              weights_dir: Path | None = None, data_dir: Path | None = None, nproc: int = 1,
              dedupe_key: str | None = None, dedupe_window_s: float = 10.0) -> str:
    """Queue a run and launch its supervisor; returns the run id.

    `device` is the queue the run waits in: the kind `cfg.device` resolves to ("cuda",
    "mps", "cpu"; common.devices.device_kind), resolved by the caller, which has torch.

    The same `dedupe_key` within `dedupe_window_s` returns the run already
    started instead of a second one (a double click on Start), as long as that
    run still exists and is active; otherwise a new run starts.
    """
    arch.check()
    cfg.check()
    if not 1 <= nproc <= 64:
        raise ConfigError(f"processes must be between 1 and 64 (got {nproc})")
    if not re.fullmatch(r"[a-z]{1,16}", device):
        raise ConfigError(f"device queue {device[:40]!r} is not a device kind such as cpu or cuda")
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    with _launch_lock(root):
        _sweep(root, dedupe_window_s)
        marker_file = root / ".queue" / f"dedupe-{_digest(dedupe_key)}" if dedupe_key else None
        earlier = _deduped_run(marker_file, root) if marker_file is not None else None
        if earlier is not None:
            return earlier
        run_id = _new_run_id(cfg.dataset)
        paths = RunPaths(root / run_id)
        paths.dir.mkdir(parents=True)
        fd = try_lock(paths.lock)
        if fd is None:  # cannot happen for a folder mkdir just created; never run unlocked
            raise RuntimeError(f"{paths.lock} is locked by another process")
        try:
            atomic_write_text(paths.arch, arch.to_json())
            atomic_write_text(paths.train, cfg.to_json())
            now = time.time()
            launch = {"device": device, "nproc": nproc, "slots": _slots(),
                      "weights_dir": str(weights_dir) if weights_dir else "",
                      "data_dir": str(data_dir) if data_dir else "",
                      "marker": f"{time.time_ns():020d}-{run_id}"}
            atomic_write_json(paths.launch, launch)
            write_status(paths, state=QUEUED, message="queued", created=now, queued_at=now,
                         device=device, dataset=cfg.dataset, arch_name=arch.short_name(),
                         epochs=cfg.epochs)
            _enqueue_and_launch(paths, launch, fd, resume=False)
        finally:
            os.close(fd)  # the supervisor holds its inherited copy of the lock
        if marker_file is not None:
            atomic_write_text(marker_file, run_id)
        return run_id


def resume_run(run_id: str, runs_dir: Path | None = None) -> None:
    """Queue an interrupted, cancelled or failed run again; it continues from its checkpoint."""
    paths = _paths(run_id, runs_dir)
    try:
        fd = try_lock(paths.lock, create=False)
        # A run that just ended still holds its lock while its supervisor exits: give it a moment.
        deadline = time.monotonic() + 2.0
        while fd is None and read_status(paths).get("state") in FINISHED \
                and time.monotonic() < deadline:
            time.sleep(0.05)
            fd = try_lock(paths.lock, create=False)
    except FileNotFoundError:
        raise RunError(f"run {run_id} was removed") from None
    if fd is None:
        raise RunError(f"run {run_id} is still active")
    try:
        settled = _settle(paths, read_status(paths), fd)
        if settled is None:
            raise RunError(f"run {run_id} was removed")
        state = settled.get("state")
        if state not in RESUMABLE:
            raise RunError(f"run {run_id} is {state}; only {', '.join(RESUMABLE)} runs resume")
        launch = json.loads(paths.launch.read_text())
        drop_markers(paths.dir.parent, run_id)  # e.g. of a supervisor killed while waiting
        launch["marker"] = f"{time.time_ns():020d}-{run_id}"
        atomic_write_json(paths.launch, launch)
        paths.cancel.unlink(missing_ok=True)
        resumes = int(settled.get("resumes", 0)) + 1
        write_status(paths, state=QUEUED, message="queued to resume", queued_at=time.time(),
                     resumes=resumes, finished=None)
        _enqueue_and_launch(paths, launch, fd, resume=True)
    finally:
        os.close(fd)


def _enqueue_and_launch(paths: RunPaths, launch: dict[str, Any], lock_fd: int, resume: bool) -> None:
    marker = queue_dir(paths.dir.parent, launch["device"]) / launch["marker"]
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    try:
        code = launch_supervisor(paths, lock_fd, resume, _pythonpath())
    except OSError as exc:
        marker.unlink(missing_ok=True)
        write_status(paths, state=FAILED, message=f"could not start the run: {exc}")
        raise
    if code:
        marker.unlink(missing_ok=True)
        write_status(paths, state=FAILED, finished=time.time(),
                     message=f"could not start the run supervisor (exit code {code}; see the log)")


# ----- reading ----------------------------------------------------------------------------
def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """Every run, newest first, with dead "running"/"queued" runs shown as interrupted."""
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not root.is_dir():
        return []
    out = []
    for folder in root.iterdir():
        # Run ids only: skips the hidden queue folder and runs being deleted (remove_run_dir).
        if _RUN_ID.fullmatch(folder.name) and folder.is_dir():
            info = get_run(folder.name, root)
            if info is not None:  # else being created, or removed under us
                out.append(info)
    return sorted(out, key=lambda r: (r.created, r.run_id), reverse=True)


def get_run(run_id: str, runs_dir: Path | None = None) -> RunInfo | None:
    paths = _paths(run_id, runs_dir)
    status = read_status(paths)
    settled = _settle(paths, status) if status else None
    return RunInfo.from_status(run_id, settled) if settled else None


def cancel_run(run_id: str, runs_dir: Path | None = None, wait_s: float = 2.0) -> str:
    """Ask a run to stop. A running run ends as cancelled at its next step; a queued one
    disappears. Returns what happened, for the page to show."""
    paths = _paths(run_id, runs_dir)
    removed = f"run {run_id} was removed"  # e.g. a queued run cancelled from another session
    status = read_status(paths)
    if not status:
        return removed
    state = status.get("state")
    if state not in ACTIVE:
        return f"run {run_id} is already {state}"
    try:
        paths.cancel.touch()
    except FileNotFoundError:
        return removed
    if not lock_is_held(paths.lock):  # nobody alive to act on the request: act here
        try:
            fd = try_lock(paths.lock, create=False)
        except FileNotFoundError:
            return removed
        if fd is not None:  # else someone (a resume) took the run just now: wait for it below
            try:
                status = read_status(paths)
                if status.get("state") == QUEUED:
                    remove_run_dir(paths)
                    return f"removed queued run {run_id}"
                return removed if _settle(paths, status, fd) is None \
                    else f"run {run_id} was no longer running"
            finally:
                os.close(fd)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:  # usually done in well under a second
        current = read_status(paths)
        if not current and not paths.dir.exists():
            return f"removed queued run {run_id}"
        if current and current.get("state") not in ACTIVE:
            return f"cancelled run {run_id}"
        time.sleep(0.05)
    return f"cancelling run {run_id}…"


def read_metrics(run_id: str, runs_dir: Path | None = None) -> RunMetrics:
    records = read_jsonl(_paths(run_id, runs_dir).metrics)
    return RunMetrics(steps=[r for r in records if r.get("kind") == "step"],
                      epochs=[r for r in records if r.get("kind") == "epoch"])


def log_tail(run_id: str, runs_dir: Path | None = None, lines: int = 30,
             max_bytes: int = 64 * 1024) -> str:
    path = _paths(run_id, runs_dir).log
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - max_bytes))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    # Progress bars (downloads) rewrite one line with carriage returns: keep the last state.
    rows = [row.rsplit("\r", 1)[-1] for row in text.splitlines()]
    return "\n".join(rows[-lines:])


# ----- helpers -----------------------------------------------------------------------------
def _settle(paths: RunPaths, status: dict[str, Any],
            held_fd: int | None = None) -> dict[str, Any] | None:
    """Record "interrupted" for an active-looking run whose processes are gone.

    None when the run folder is gone: a queued run is deleted when it is cancelled, and
    that can happen between a reader's first look and this one.
    """
    if status.get("state") not in ACTIVE:
        return status
    if held_fd is not None:
        fd: int | None = held_fd
    else:
        try:  # no O_CREAT: never put a new .lock into a folder being deleted
            fd = try_lock(paths.lock, create=False)
        except FileNotFoundError:
            return None
    if fd is None:
        return status  # alive
    try:
        # Re-read under the lock: the run may have finished between the two reads.
        status = read_status(paths)
        if not status:
            return None
        if status.get("state") in ACTIVE:
            try:
                status = write_status(paths, state=INTERRUPTED, message=_DEAD, finished=time.time())
            except FileNotFoundError:
                return None
        return status
    finally:
        if held_fd is None:
            os.close(fd)


def _deduped_run(marker_file: Path, root: Path) -> str | None:
    """The run a recent identical start created, if that run still exists and is active."""
    try:
        run_id = marker_file.read_text().strip()
    except FileNotFoundError:
        return None
    if not _RUN_ID.fullmatch(run_id):
        return None
    info = get_run(run_id, root)  # gone (a cancelled queued run) or finished: start anew
    return run_id if info is not None and info.active else None


def _sweep(root: Path, dedupe_window_s: float) -> None:
    """Forget de-duplication markers older than the window; finish interrupted deletions."""
    now = time.time()
    for marker in (root / ".queue").glob("dedupe-*"):
        try:
            if now - marker.stat().st_mtime >= dedupe_window_s:
                marker.unlink()
        except FileNotFoundError:
            pass
    sweep_tombstones(root)


def _paths(run_id: str, runs_dir: Path | None) -> RunPaths:
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise RunError(f"{str(run_id)[:80]!r} is not a run id")
    return RunPaths((Path(runs_dir) if runs_dir is not None else default_runs_dir()) / run_id)


def _new_run_id(dataset: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{re.sub('[^a-z0-9]', '', dataset.lower()) or 'data'}-" \
           f"{secrets.token_hex(2)}"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _slots() -> int:
    try:
        return max(1, int(os.environ.get(SLOTS_ENV, "1")))
    except ValueError:
        return 1


def _pythonpath() -> str:
    # The supervisor and trainer import this package from its checkout, whatever the cwd.
    current = os.environ.get("PYTHONPATH", "")
    return str(REPO_ROOT) + (os.pathsep + current if current else "")


@contextmanager
def _launch_lock(root: Path) -> Iterator[None]:
    """Serialises starts (id creation, de-duplication) between sessions and processes."""
    (root / ".queue").mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".queue" / "launch.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

