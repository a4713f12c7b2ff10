"""Files of one run directory, its status, and the locks that tell who is alive.

Shared by the dashboard (launch.py, reading.py), the per-run supervisor
(supervisor.py) and the trainer (training/job.py). Deliberately free of torch so
that a queued run waiting for its turn is a small process.

Liveness never relies on a PID (PIDs are reused, and a container restart
makes every stored PID meaningless). Instead the process that owns a run
holds an exclusive `flock` on ``<run>/.lock`` for as long as it lives; the
kernel drops the lock when the process dies, however it dies (kill -9 too).
So "status says running but nobody holds the lock" means interrupted: readers derive
that (reading.py) and never write it; the writers record it when they next act on the run.

A run keeps a small reserve file (``<run>/.reserve``) while it is queued or running, so that
it can record how it ended even when the disk filled up under it (`record_end`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common.errors import RunError
from ..common.fileio import atomic_write_json, is_disk_full

try:  # POSIX only; on other systems runs work but liveness cannot be detected
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "QUEUED", "RUNNING", "PREPARED", "COMPLETED", "FAILED", "CANCELLED", "DIVERGED", "INTERRUPTED",
    "DAMAGED", "ACTIVE", "FINISHED", "FAILED_ON_DATA", "FAILED_ON_CONFIG", "FAILED_OTHERWISE",
    "RESUME_CANNOT_FIX", "RunPaths", "DamagedStatus", "load_status", "read_launch",
    "read_status", "write_status", "record_end", "reserve_space", "try_lock",
    "lock_is_held", "read_jsonl", "remove_run_dir", "sweep_tombstones",
    "TOMBSTONE_PREFIX",
]

QUEUED, RUNNING = "queued", "running"
# Prepared for a trainer a cluster scheduler starts: neither active (nobody holds its lock
# yet, and readers must not settle it as interrupted) nor finished.
PREPARED = "prepared"
COMPLETED, FAILED, CANCELLED, DIVERGED, INTERRUPTED = (
    "completed", "failed", "cancelled", "diverged", "interrupted")
# Shown for a run whose status.json is there but unusable (not a JSON object, or fields of
# the wrong type): listed so that it can be deleted, never resumed or settled.
DAMAGED = "damaged"
ACTIVE = (QUEUED, RUNNING)
FINISHED = (COMPLETED, FAILED, CANCELLED, DIVERGED, INTERRUPTED)
# What a failed run failed on (status.json's "failure", written by the trainer). A resume
# loads the same data with the same configs, so it cannot help a run whose data could not be
# had (e.g. not downloadable offline) or whose settings were refused: that run is not resumed.
FAILED_ON_DATA, FAILED_ON_CONFIG, FAILED_OTHERWISE = "data", "config", "error"
RESUME_CANNOT_FIX = (FAILED_ON_DATA, FAILED_ON_CONFIG)
TOMBSTONE_PREFIX = ".removed-"  # a run folder being deleted (hidden: listings skip it)
# Room for the final status.json (a few kB) and a last log line, on any file system block size.
RESERVE_BYTES = 64 * 1024


@dataclass(frozen=True)
class RunPaths:
    dir: Path

    @property
    def run_id(self) -> str:
        return self.dir.name

    arch = property(lambda self: self.dir / "arch.json")
    train = property(lambda self: self.dir / "train.json")
    launch = property(lambda self: self.dir / "launch.json")  # where weights/data live, nproc
    status = property(lambda self: self.dir / "status.json")
    metrics = property(lambda self: self.dir / "metrics.jsonl")
    log = property(lambda self: self.dir / "log.txt")
    checkpoint = property(lambda self: self.dir / "checkpoint.safetensors")
    cancel = property(lambda self: self.dir / "cancel")  # exists = cancellation requested
    lock = property(lambda self: self.dir / ".lock")
    reserve = property(lambda self: self.dir / ".reserve")  # disk space kept for the last word


class DamagedStatus(Exception):
    """status.json is present but is not a readable JSON object; the text says why."""


def load_status(paths: RunPaths) -> dict[str, Any] | None:
    """status.json as a dict; None when there is none (a run being created or removed).

    Every write of status.json is atomic (common/fileio.py), so a file that is there is
    complete: one that is not a JSON object was damaged, not caught mid-write, and raises
    DamagedStatus rather than passing for missing.
    """
    try:
        text = paths.status.read_bytes().decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise DamagedStatus(f"status.json cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise DamagedStatus("status.json is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError as exc:  # also a number of more digits than int() accepts
        raise DamagedStatus(f"status.json is not JSON ({str(exc)[:80]})") from None
    if not isinstance(data, dict):
        raise DamagedStatus(f"status.json holds a JSON {type(data).__name__}, not an object")
    return data


def read_status(paths: RunPaths) -> dict[str, Any]:
    """status.json as a dict; {} when missing or damaged (for writers merging into it)."""
    try:
        return load_status(paths) or {}
    except DamagedStatus:
        return {}


def read_launch(paths: RunPaths) -> dict[str, Any]:
    """launch.json: where the run's weights and data live, its device queue and processes.
    Written (atomically) by the launcher before anyone else looks; one that a hand damaged
    raises RunError, which says so."""
    try:
        data = json.loads(paths.launch.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("device"), str) \
                and isinstance(data.get("marker"), str):
            return data
    except FileNotFoundError:
        raise RunError(f"run {paths.run_id} has no launch.json (removed?)") from None
    except (OSError, ValueError, RecursionError):  # ValueError: not UTF-8 or not JSON
        pass
    raise RunError(f"run {paths.run_id}'s launch.json is damaged: delete the run and start it "
                   "again")


def write_status(paths: RunPaths, durable: bool = True, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into status.json (atomically) and return the new status.

    Only one process writes a run's status at a time by construction: the
    launcher before the supervisor starts, the supervisor while queued and
    after the trainer ends, the trainer (rank 0) in between.
    """
    status = read_status(paths)
    status.update(changes)
    status["updated"] = time.time()
    atomic_write_json(paths.status, status, fsync=durable)
    return status


def reserve_space(paths: RunPaths) -> None:
    """Set aside RESERVE_BYTES in the run folder for `record_end` (best effort: a disk that is
    already full fails the run's next write, which then says so)."""
    try:
        fd = os.open(paths.reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:  # FileExistsError: kept from an earlier start of this run
        return
    try:
        os.write(fd, bytes(RESERVE_BYTES))  # real bytes: a sparse file would free nothing
    except OSError:
        paths.reserve.unlink(missing_ok=True)
    finally:
        os.close(fd)


def record_end(paths: RunPaths, **changes: Any) -> dict[str, Any]:
    """write_status for the state a run ended in, which must land even on a full disk: then
    the run's reserve is given up to make room. The reserve goes in any case (the run is over;
    a resume sets one aside again)."""
    try:
        status = write_status(paths, **changes)
    except OSError as exc:
        if not is_disk_full(exc) or not paths.reserve.exists():
            raise
        paths.reserve.unlink(missing_ok=True)
        status = write_status(paths, **changes)
    paths.reserve.unlink(missing_ok=True)
    return status


def try_lock(path: Path, create: bool = True) -> int | None:
    """Open and exclusively lock `path` without waiting: the fd, or None if someone holds it.

    Readers that only probe a run pass ``create=False``: creating the file would put a
    fresh ``.lock`` into a folder that is being removed, leaving it behind half-deleted.
    Then a missing file raises FileNotFoundError, which callers read as "the run is gone".
    """
    # A probe opens read-only, so it works on a read-only or full disk; a writer opens for
    # writing, which flock emulated over NFS needs for an exclusive lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT if create else os.O_RDONLY, 0o644)
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # EWOULDBLOCK: someone holds it
        os.close(fd)
        return None
    except OSError:  # not "held": a failure the caller must hear about
        os.close(fd)
        raise
    return fd


def lock_is_held(path: Path, missing_ok: bool = True) -> bool:
    """True while some live process holds the lock on `path`. A missing lock file: False, or
    FileNotFoundError when not `missing_ok`. A lock file that cannot be opened (permissions)
    tells nothing, and counts as held: the run then shows as its status says."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = try_lock(path, create=False)
    except FileNotFoundError:
        if not missing_ok:
            raise
        return False
    except OSError:
        return True
    if fd is None:
        return True
    os.close(fd)  # closing releases our probe lock
    return False


def remove_run_dir(paths: RunPaths) -> None:
    """Delete a run folder so that no reader ever sees it half-deleted.

    The folder is first renamed to a hidden tombstone (one atomic step: readers see the
    whole run or nothing), then deleted. Call it while holding the run's lock.
    """
    tomb = paths.dir.parent / f"{TOMBSTONE_PREFIX}{paths.run_id}-{os.getpid()}"
    try:
        os.rename(paths.dir, tomb)
    except FileNotFoundError:
        return  # someone else removed it already
    except OSError:  # a leftover tombstone of the same name: delete in place instead
        tomb = paths.dir
    shutil.rmtree(tomb, ignore_errors=True)


def sweep_tombstones(runs_dir: Path) -> None:
    """Finish deletions a killed process left half done (harmless if one is in progress)."""
    for tomb in runs_dir.glob(f"{TOMBSTONE_PREFIX}*"):
        shutil.rmtree(tomb, ignore_errors=True)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn last line (writer killed mid-append) is skipped."""
    try:
        # errors="replace": a damaged byte spoils its own line (skipped below), not the file.
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out
