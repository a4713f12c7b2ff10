"""The per-device queue of runs: marker files for the order, flocks for the device slots.

The queue needs no daemon:

* A run's place in line is a marker file ``runs/.queue/<device>/<time>-<id>``;
  FIFO is the markers' name order. The supervisor at the head of the line
  takes a device slot: an exclusive ``flock`` on ``<device>.slot<k>.lock``.
* The slot and the run's own liveness lock are inherited by the trainer, so
  they are held exactly as long as someone works on the run, and the kernel
  releases them when the processes die, however they die. A crashed run can
  therefore never block the queue, and nothing has to notice it to unblock
  the next one: the next supervisor simply gets the lock.
* A marker whose run holds no liveness lock belongs to a dead waiter and is
  skipped (and removed) by whoever looks at the line.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .layout import RunPaths, lock_is_held, try_lock, write_status

__all__ = ["SLOTS_ENV", "queue_root", "queue_dir", "slot_lock", "slots_from_env", "new_marker",
           "join_queue", "runs_ahead", "drop_markers", "wait_for_turn"]

SLOTS_ENV = "RESNET_EXPLORER_RUNS_PER_DEVICE"
POLL_S = 0.25


def queue_root(runs_dir: Path) -> Path:
    """The hidden folder of queue markers, device slots and launch bookkeeping."""
    return runs_dir / ".queue"


def queue_dir(runs_dir: Path, device: str) -> Path:
    return queue_root(runs_dir) / device


def slot_lock(runs_dir: Path, device: str, slot: int) -> Path:
    return queue_root(runs_dir) / f"{device}.slot{slot}.lock"


def slots_from_env() -> int:
    """Runs that may share one device at a time (default 1; a bad value counts as 1)."""
    try:
        return max(1, int(os.environ.get(SLOTS_ENV, "1")))
    except ValueError:
        return 1


def new_marker(run_id: str) -> str:
    """A marker name that sorts after every marker made before it: the place in line."""
    return f"{time.time_ns():020d}-{run_id}"


def join_queue(runs_dir: Path, device: str, marker: str) -> Path:
    path = queue_dir(runs_dir, device) / marker
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def runs_ahead(runs_dir: Path, device: str, marker: str) -> int:
    """Live queued runs before `marker` (stale markers of dead waiters are removed).

    Other markers of this marker's own run are removed as well: a supervisor killed while
    waiting leaves its marker, and once the run is resumed the live new supervisor holds the
    run's lock, so that old marker would look alive and the run would wait behind itself.
    """
    own_run = marker.split("-", 1)[-1]
    ahead = 0
    for entry in sorted(queue_dir(runs_dir, device).glob("*-*")):
        run_id = entry.name.split("-", 1)[1]
        if run_id == own_run and entry.name != marker:
            entry.unlink(missing_ok=True)
        elif entry.name < marker:
            if lock_is_held(RunPaths(runs_dir / run_id).lock):
                ahead += 1
            else:
                entry.unlink(missing_ok=True)
    return ahead


def drop_markers(runs_dir: Path, run_id: str) -> None:
    """Remove every place in line `run_id` has, in every device's queue (before a resume)."""
    for marker in queue_root(runs_dir).glob(f"*/*-{run_id}"):
        marker.unlink(missing_ok=True)


def wait_for_turn(paths: RunPaths, launch: dict[str, Any]) -> int | None:
    """Block until this run holds a device slot (its fd), or None if it was cancelled."""
    runs_dir, device = paths.dir.parent, launch["device"]
    marker = queue_dir(runs_dir, device) / launch["marker"]
    reported = -1
    while True:
        if paths.cancel.exists():
            marker.unlink(missing_ok=True)
            return None
        ahead = runs_ahead(runs_dir, device, marker.name)
        if ahead == 0:
            for slot in range(launch.get("slots", 1)):
                fd = try_lock(slot_lock(runs_dir, device, slot))
                if fd is not None:
                    marker.unlink(missing_ok=True)
                    return fd
        if ahead != reported:
            reported = ahead
            what = f"{ahead} run(s) ahead" if ahead else "the current run to finish"
            try:
                write_status(paths, durable=False,
                             message=f"queued: waiting for {what} on {device}")
            except OSError:  # a full disk: the place in line is news, not worth ending the run
                reported = -1
        time.sleep(POLL_S)
