"""Starting, resuming and cancelling runs: the only code that changes what a run will do.

Starting a run writes its configs and a "queued" status into ``runs/<id>/`` (layout.py),
puts it in its device's queue (queue.py) and launches a detached supervisor
(supervisor.py) that waits for the device, runs the trainer and records the end. The
dashboard itself only reads run directories (reading.py), so a page reload, a second
browser or a restarted server all see the same runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..common.errors import ConfigError, RunError
from ..common.fileio import (atomic_write_json, atomic_write_text, exclusive_lock, os_error_text,
                             os_errors_as)
from ..common.filevalues import non_negative
from .layout import (ACTIVE, FAILED, FINISHED, INTERRUPTED, PREPARED, QUEUED, DamagedStatus,
                     RunPaths, load_status, read_launch, read_status, record_end, remove_run_dir,
                     sweep_tombstones, try_lock, write_status)
from .queue import drop_markers, join_queue, new_marker, queue_root, slots_from_env
from .reading import DEAD_MESSAGE, RESUMABLE, RunInfo, get_run, is_run_id, run_paths, runs_root
from .supervisor import launch_supervisor

if TYPE_CHECKING:  # only annotations: the configs bring torch, and this room never imports it
    from ..arch.config import ArchConfig
    from ..training.config import TrainConfig

__all__ = ["start_run", "resume_run", "cancel_run", "delete_run"]

CLAIM_RETRY_S = 0.2  # how long a run's lock is retried before it counts as held by a live process
DEDUPE_WINDOW_S = 10.0  # a second Start with the same key this soon returns the first run
EXTERNAL_MESSAGE = "waiting for an external scheduler to run its trainer command"


def start_run(arch: ArchConfig, cfg: TrainConfig, *, device: str, runs_dir: Path | None = None,
              weights_dir: Path | None = None, data_dir: Path | None = None, nproc: int = 1,
              dedupe_key: str | None = None, sweep: str = "", modification: str = "",
              external: bool = False) -> str:
    """Queue a run and launch its supervisor; returns the run id.

    `external=True` only prepares the run folder, in state "prepared", for a trainer someone
    else starts (a cluster scheduler running `python -m resnet_explorer.train --run-dir …`
    with the same RESNET_EXPLORER_HOME); no supervisor, and readers leave it as it is.

    `sweep` and `modification` label a run that belongs to an ablation sweep (its id and
    the modification's name); they are kept in status.json for the pages to group by.

    `device` is the queue the run waits in: the kind `cfg.device` resolves to ("cuda",
    "mps", "cpu"), or "cuda:N" for one given GPU (common.devices.device_queue), resolved by
    the caller, which has torch.

    The same `dedupe_key` within DEDUPE_WINDOW_S returns the run already
    started instead of a second one (a double click on Start), as long as that
    run still exists and is active; otherwise a new run starts.
    """
    arch.check()
    cfg.check()
    if not 1 <= nproc <= 64:
        raise ConfigError(f"processes must be between 1 and 64 (got {nproc})")
    if not re.fullmatch(r"[a-z]{1,16}(:[0-9]{1,2})?", device):
        raise ConfigError(f"device queue {device[:40]!r} is not a device such as cpu, cuda or "
                          "cuda:1")
    root = runs_root(runs_dir)
    with _launch_lock(root):
        _sweep(root)
        marker_file = queue_root(root) / f"dedupe-{_digest(dedupe_key)}" if dedupe_key else None
        earlier = _deduped_run(marker_file, root) if marker_file is not None else None
        if earlier is not None:
            return earlier
        run_id = _new_run_id(cfg.dataset)
        paths = RunPaths(root / run_id)
        fd = _new_run_folder(paths)
        try:
            try:
                atomic_write_text(paths.arch, arch.to_json())
                atomic_write_text(paths.train, cfg.to_json())
                now = time.time()
                launch = {"device": device, "nproc": nproc, "slots": slots_from_env(),
                          "weights_dir": str(weights_dir) if weights_dir else "",
                          "data_dir": str(data_dir) if data_dir else "",
                          "marker": new_marker(run_id)}
                atomic_write_json(paths.launch, launch)
                state, message = (PREPARED, EXTERNAL_MESSAGE) if external else (QUEUED, "queued")
                write_status(paths, state=state, message=message, created=now, queued_at=now,
                             device=device, dataset=cfg.dataset, arch_name=arch.short_name(),
                             epochs=cfg.epochs, sweep=sweep, modification=modification)
            except OSError as exc:  # e.g. a full disk: a half-made run is no run (none knows it)
                remove_run_dir(paths)
                raise RunError(f"could not start the run: {os_error_text(exc)}") from exc
            if not external:
                _enqueue_and_launch(paths, launch, fd, resume=False)
        finally:
            os.close(fd)  # the supervisor holds its inherited copy of the lock
        if marker_file is not None:
            try:
                atomic_write_text(marker_file, run_id)
            except OSError:  # the run started; only a repeated click would start a second one
                pass
        return run_id


def resume_run(run_id: str, runs_dir: Path | None = None) -> None:
    """Queue an interrupted, cancelled or failed run again; it continues from its checkpoint."""
    paths = run_paths(run_id, runs_dir)
    try:
        # A run that just ended still holds its lock while its supervisor exits: give it a moment.
        fd = _claim(paths, ending_wait_s=2.0)
    except FileNotFoundError:
        raise RunError(f"run {run_id} was removed") from None
    if fd is None:
        raise _held(paths, "resume it", "still active")
    try:
        with os_errors_as(RunError, f"could not resume run {run_id}"):
            try:
                settled = _settle(paths)
            except DamagedStatus as exc:
                raise RunError(f"run {run_id} cannot be resumed: {exc}") from None
            if settled is None:
                raise RunError(f"run {run_id} was removed")
            info = RunInfo.from_status(run_id, settled)  # "damaged": fields of wrong type
            if info.state not in RESUMABLE:
                raise RunError(f"run {run_id} is {info.state}; only {', '.join(RESUMABLE)} runs "
                               "resume")
            if not info.can_resume:
                raise RunError(f"run {run_id} failed on its {info.failure}, which a resume would "
                               "load again unchanged: start a new run once that is fixed")
            launch = read_launch(paths)
            drop_markers(paths.dir.parent, run_id)  # e.g. of a supervisor killed while waiting
            launch["marker"] = new_marker(run_id)
            atomic_write_json(paths.launch, launch)
            paths.cancel.unlink(missing_ok=True)
            resumes = int(non_negative(settled.get("resumes")) or 0) + 1  # hand-edited: 0
            write_status(paths, state=QUEUED, message="queued to resume", queued_at=time.time(),
                         resumes=resumes, finished=None, warning="")  # judged again at its end
        _enqueue_and_launch(paths, launch, fd, resume=True)
    finally:
        os.close(fd)


def _claim(paths: RunPaths, ending_wait_s: float = 0.0) -> int | None:
    """The run's lock (an fd) when no live process holds it, else None; FileNotFoundError when
    the run is gone. Tried for a moment: a reader's probe holds the lock for microseconds
    (reading.observed_status), and a run that has just ended (its status says so) holds it
    for up to `ending_wait_s` while its supervisor exits."""
    start = time.monotonic()
    while True:
        fd = try_lock(paths.lock, create=False)
        waited = time.monotonic() - start
        if fd is not None or waited >= max(CLAIM_RETRY_S, ending_wait_s
                                          if read_status(paths).get("state") in FINISHED else 0):
            return fd
        time.sleep(0.02)


def _held(paths: RunPaths, action: str, active: str) -> RunError:
    """Why `action` cannot happen while a live process holds the run: it is `active`, or it has
    ended and its processes are still exiting (a trainer's exit can take seconds)."""
    if read_status(paths).get("state") in FINISHED:
        return RunError(f"run {paths.run_id} is just finishing: {action} again in a moment")
    return RunError(f"run {paths.run_id} is {active}")


def _settle(paths: RunPaths) -> dict[str, Any] | None:
    """Record "interrupted" for a run whose status still says active although nobody works on
    it: what every reader already shows (reading.observed_status). Call holding the run's lock
    (so nobody else can be alive). The status after; None when there is none."""
    status = load_status(paths)
    if status and status.get("state") in ACTIVE:
        status = record_end(paths, state=INTERRUPTED, message=DEAD_MESSAGE, finished=time.time())
    return status


def _enqueue_and_launch(paths: RunPaths, launch: dict[str, Any], lock_fd: int, resume: bool) -> None:
    """Join the device's queue and start the supervisor, which inherits the run's lock. A run
    that cannot start ends as failed; an OSError (e.g. a full disk) raises RunError too."""
    marker = None
    try:
        marker = join_queue(paths.dir.parent, launch["device"], launch["marker"])
        code = launch_supervisor(paths, lock_fd, resume)
    except OSError as exc:
        problem: OSError | None = exc
        failure = f"could not start the run: {os_error_text(exc)}"
    else:
        if not code:
            return
        problem = None
        failure = f"could not start the run supervisor (exit code {code}; see the log)"
    if marker is not None:
        marker.unlink(missing_ok=True)
    try:
        record_end(paths, state=FAILED, finished=time.time(), message=failure)
    except OSError:  # nothing recorded: with its lock released, readers show it interrupted
        pass
    if problem is not None:
        raise RunError(failure) from problem


def cancel_run(run_id: str, runs_dir: Path | None = None, wait_s: float = 2.0) -> str:
    """Ask a run to stop. A running run ends as cancelled at its next step; a queued one
    disappears. Returns what happened, for the page to show."""
    paths = run_paths(run_id, runs_dir)
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
    except OSError as exc:
        raise RunError(f"could not cancel run {run_id}: {os_error_text(exc)}") from exc
    try:
        fd = _claim(paths)
    except FileNotFoundError:  # its waiting supervisor saw the request and removed it
        return f"removed queued run {run_id}"
    if fd is not None:  # nobody alive to act on the request: act here
        try:
            status = read_status(paths)
            if status.get("state") == QUEUED:
                remove_run_dir(paths)
                return f"removed queued run {run_id}"
            with os_errors_as(RunError, f"could not cancel run {run_id}"):
                settled = _settle(paths)
            return removed if settled is None else f"run {run_id} was no longer running"
        except DamagedStatus as exc:
            return f"run {run_id} cannot be cancelled: {exc}"
        finally:
            os.close(fd)
    # Else a live process holds the run (its trainer, or a resume just now): wait for it.
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:  # usually done in well under a second
        current = read_status(paths)
        if not current and not paths.dir.exists():
            return f"removed queued run {run_id}"
        if current and current.get("state") not in ACTIVE:
            return f"cancelled run {run_id}"
        time.sleep(0.05)
    return f"cancelling run {run_id}…"


def delete_run(run_id: str, runs_dir: Path | None = None) -> str:
    """Delete a finished run's folder (its models in the store are the caller's to delete).
    Refuses a queued or running run with RunError: cancel it first. Returns what happened."""
    paths = run_paths(run_id, runs_dir)
    if not paths.dir.is_dir():
        raise RunError(f"run {run_id} was already removed")
    try:
        fd = _claim(paths, ending_wait_s=0.0)
    except FileNotFoundError:  # no lock file: no process ever ran it, so none can hold it
        fd = -1
    if fd is None:
        state = read_status(paths).get("state")
        raise _held(paths, "delete it", f"{state or 'active'}: cancel it before deleting it")
    try:
        remove_run_dir(paths)  # under the run's lock: no resume can start meanwhile
    finally:
        if fd >= 0:
            os.close(fd)
    drop_markers(paths.dir.parent, run_id)
    return f"deleted run {run_id}"


def _new_run_folder(paths: RunPaths) -> int:
    """Create the folder of a new run and take its lock: the fd (RunError if the disk refuses)."""
    try:
        paths.dir.mkdir(parents=True)
        fd = try_lock(paths.lock)
    except OSError as exc:
        remove_run_dir(paths)
        raise RunError(f"could not start the run: {os_error_text(exc)}") from exc
    if fd is None:  # cannot happen for a folder mkdir just created; never run unlocked
        raise RuntimeError(f"{paths.lock} is locked by another process")
    return fd


def _deduped_run(marker_file: Path, root: Path) -> str | None:
    """The run a recent identical start created, if that run still exists and is active."""
    try:
        run_id = marker_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):  # none, or damaged: start a new run
        return None
    if not is_run_id(run_id):
        return None
    info = get_run(run_id, root)  # gone (a cancelled queued run) or finished: start anew
    return run_id if info is not None and info.active else None


def _sweep(root: Path) -> None:
    """Forget de-duplication markers older than the window; finish interrupted deletions."""
    now = time.time()
    for marker in queue_root(root).glob("dedupe-*"):
        try:
            if now - marker.stat().st_mtime >= DEDUPE_WINDOW_S:
                marker.unlink()
        except FileNotFoundError:
            pass
    sweep_tombstones(root)


def _new_run_id(dataset: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{re.sub('[^a-z0-9]', '', dataset.lower()) or 'data'}-" \
           f"{secrets.token_hex(2)}"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24]


@contextmanager
def _launch_lock(root: Path) -> Iterator[None]:
    """Serialises starts (id creation, de-duplication) between sessions and processes."""
    queue_root(root).mkdir(parents=True, exist_ok=True)
    with exclusive_lock(queue_root(root) / "launch.lock"):
        yield

