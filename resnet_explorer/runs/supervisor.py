"""Per-run supervisor: wait for the device, run the trainer, record how it ended.

    python -m resnet_explorer.runs.supervisor --run-dir runs/<id> [--resume]

The start code (launch.py) starts one of these per run with `launch_supervisor`, detached
from the dashboard (its own session, so a Streamlit restart does not take it down). It
waits in the device's queue (queue.py), then runs the trainer with the run's liveness lock
and the device slot inherited, and records an ending the trainer could not write itself.
Waiting costs one small Python process per queued run (no torch imported).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..common.errors import RunError
from ..common.paths import REPO_ROOT
from .layout import (CANCELLED, FAILED, FINISHED, INTERRUPTED, RunPaths, read_launch, read_status,
                     record_end, remove_run_dir, reserve_space, try_lock, write_status)
from .queue import POLL_S, wait_for_turn

__all__ = ["launch_supervisor", "outcome_after_exit", "trainer_command"]

CANCEL_GRACE_S = 2.0  # a step boundary normally comes sooner; then the trainer is stopped
KILL_GRACE_S = 3.0
DETACH_TIMEOUT_S = 60.0  # the supervisor's first process exits after ~0.2 s (a fork)
_slow_starts: list[subprocess.Popen[bytes]] = []


def launch_supervisor(paths: RunPaths, lock_fd: int, resume: bool) -> int | None:
    """Start this module detached for a run; the exit code of its first process (0: started),
    or None if that process is unusually slow to exit. Raises OSError if it cannot start."""
    cmd = [sys.executable, "-m", "resnet_explorer.runs.supervisor", "--run-dir", str(paths.dir),
           "--lock-fd", str(lock_fd), "--detach"] + (["--resume"] if resume else [])
    with open(paths.log, "ab") as log:
        # Own session: closing the dashboard (or its terminal) does not stop training.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                pass_fds=(lock_fd,), start_new_session=True, cwd=REPO_ROOT,
                                env={**os.environ, "PYTHONPATH": _pythonpath()})
    # --detach: the supervisor forks away and this child exits right after starting; waiting
    # for it reaps it, so a long-lived dashboard does not collect one zombie per run.
    _slow_starts[:] = [p for p in _slow_starts if p.poll() is None]  # reap earlier slow ones
    try:
        return proc.wait(timeout=DETACH_TIMEOUT_S)
    except subprocess.TimeoutExpired:  # an overloaded machine: reaped at a later launch
        _slow_starts.append(proc)
        return None


def _pythonpath() -> str:
    # The supervisor and trainer import this package from its checkout, whatever the cwd.
    current = os.environ.get("PYTHONPATH", "")
    return str(REPO_ROOT) + (os.pathsep + current if current else "")


def trainer_command(paths: RunPaths, launch: dict[str, Any], resume: bool) -> list[str]:
    args = ["-m", "resnet_explorer.train", "--arch", str(paths.arch), "--train", str(paths.train),
            "--run-dir", str(paths.dir), "--quiet", "--lock-held"]
    for flag, key in (("--weights-dir", "weights_dir"), ("--data-dir", "data_dir")):
        if launch.get(key):
            args += [flag, launch[key]]
    if resume:
        args.append("--resume")
    nproc = int(launch.get("nproc", 1))
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={nproc}", *args]
    return [sys.executable, *args]


def outcome_after_exit(returncode: int, cancel_requested: bool, status: dict[str, Any],
                       checkpoint_exists: bool) -> tuple[str, str]:
    """State and message for a trainer that ended without writing a final state itself."""
    if cancel_requested:
        return CANCELLED, "cancelled (the trainer was stopped)"
    epoch = status.get("epoch")
    where = f" during epoch {int(epoch) + 1}" if isinstance(epoch, (int, float)) else ""
    next_step = ("resume continues from the last checkpoint" if checkpoint_exists
                 else "no checkpoint was written yet, so resuming starts it again")
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return INTERRUPTED, f"the trainer process was killed ({name}){where}; {next_step}"
    return FAILED, (f"the trainer exited with code {returncode}{where} without reporting a result "
                    f"(see the log); {next_step}")


def supervise(proc: subprocess.Popen[bytes], paths: RunPaths) -> tuple[int, bool]:
    """Wait for the trainer; if a cancel is not honoured promptly, stop it. (returncode, cancelled)."""
    cancel_seen = term_sent = None
    while True:
        try:
            return proc.wait(timeout=POLL_S), cancel_seen is not None
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if cancel_seen is None and paths.cancel.exists():
            cancel_seen = now
        if cancel_seen is not None and term_sent is None and now - cancel_seen > CANCEL_GRACE_S:
            _signal_group(proc.pid, signal.SIGTERM)
            term_sent = now
        if term_sent is not None and now - term_sent > KILL_GRACE_S:
            _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _detach() -> None:
    """Fork; the parent exits at once and the child carries on in a session of its own.

    The dashboard waits for that short-lived parent, so it never keeps a zombie per run,
    and the supervisor itself is adopted (and reaped) by init. It keeps the inherited
    locks: a flock belongs to the open file, which the child shares.
    """
    if os.fork():
        os._exit(0)  # no cleanup: nothing is buffered yet, and the child owns the run now
    os.setsid()  # its own process group too, so the run's processes can be signalled together


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resnet_explorer.runs.supervisor")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--lock-fd", type=int, default=None, help="inherited liveness lock")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--detach", action="store_true", help=argparse.SUPPRESS)  # launch_supervisor
    args = parser.parse_args(argv)
    if args.detach:
        _detach()
    paths = RunPaths(args.run_dir.resolve())
    lock_fd = args.lock_fd if args.lock_fd is not None else try_lock(paths.lock)
    if lock_fd is None:
        print(f"another process owns {paths.dir}", file=sys.stderr)
        return 2
    reserve_space(paths)  # first: the disk may fill while the run waits or trains
    try:
        launch = read_launch(paths)
    except RunError as exc:
        record_end(paths, state=FAILED, message=str(exc), finished=time.time())
        return 1
    write_status(paths, supervisor_pid=os.getpid())
    slot_fd = wait_for_turn(paths, launch)
    if slot_fd is None:  # cancelled while queued: a queued run leaves no trace
        remove_run_dir(paths)  # still holding the run's lock, so nobody else acts on it
        return 0
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(trainer_command(paths, launch, args.resume), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                pass_fds=(lock_fd, slot_fd), start_new_session=True,
                                cwd=REPO_ROOT)
    # From here until the trainer exits only the trainer writes status.json (it records its
    # own pid); a write from here could interleave with its read-modify-write.
    returncode, cancelled = supervise(proc, paths)
    status = read_status(paths)
    if status.get("state") not in FINISHED:
        state, message = outcome_after_exit(returncode, cancelled, status, paths.checkpoint.exists())
        record_end(paths, state=state, message=message, finished=time.time(), exit_code=returncode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
