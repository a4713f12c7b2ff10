"""The run queue when things go wrong around it: killed waiters, removals racing readers,
repeated starts, and the dashboard's children. Real detached supervisors; the CPU slot is
held by the test, so runs stay queued and no trainer (no torch import) ever starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

from resnet_explorer import runs
from resnet_explorer.common import RunError
from resnet_explorer.runs import RunPaths, read_status, write_status
from resnet_explorer.runs.layout import try_lock
from resnet_explorer.runs.queue import queue_dir, runs_ahead, slot_lock
from resnet_explorer.runs.reading import observed_status
from tests.train_helpers import TINY_ARCH, TINY_TRAIN, wait_for


@pytest.fixture
def busy_cpu(home):
    """runs/ of the test home, with the only CPU slot taken by "another run"."""
    root = home / "runs"
    (root / ".queue").mkdir(parents=True)
    fd = try_lock(slot_lock(root, "cpu", 0))
    yield root
    os.close(fd)


def supervisor(root: Path, run_id: str) -> int:
    return wait_for(lambda: read_status(RunPaths(root / run_id)).get("supervisor_pid"), 10,
                    "the supervisor to start")


def state(root: Path, run_id: str) -> str | None:
    info = runs.get_run(run_id, root)
    return info.state if info else None


def children_of_this_process(zombies_only: bool) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and (fields[0] == "Z" or not zombies_only):
                found.append(int(entry.name))
    return found


def test_resume_after_a_killed_waiting_supervisor_does_not_wait_behind_itself(busy_cpu):
    root = busy_cpu
    run_id = runs.start_run(TINY_ARCH, TINY_TRAIN, device="cpu", runs_dir=root)
    paths = RunPaths(root / run_id)
    os.kill(supervisor(root, run_id), signal.SIGKILL)  # OOM killer, reboot, ...
    wait_for(lambda: state(root, run_id) == "interrupted", 10, "interrupted")
    line = queue_dir(root, "cpu")
    assert len(list(line.iterdir())) == 1  # the dead waiter's place in line is still there
    runs.resume_run(run_id, root)
    # One place in line, the new one, so the run is not "1 run(s) ahead" of itself.
    assert [m.name for m in line.iterdir()] == [json.loads(paths.launch.read_text())["marker"]]
    wait_for(lambda: "waiting for the current run to finish" in runs.get_run(run_id, root).message,
             10, "the resumed run to wait only for the busy slot")


def test_an_older_marker_of_the_same_run_is_not_counted_ahead_of_it(tmp_path):
    line = queue_dir(tmp_path, "cpu")
    line.mkdir(parents=True)
    run_id = "20250101-000000-digits-0001"
    (tmp_path / run_id).mkdir()
    old, new = f"{1:020d}-{run_id}", f"{2:020d}-{run_id}"
    (line / old).touch()
    (line / new).touch()
    alive = try_lock(tmp_path / run_id / ".lock")  # the resumed supervisor
    try:
        assert runs_ahead(tmp_path, "cpu", new) == 0
        assert [m.name for m in line.iterdir()] == [new]
    finally:
        os.close(alive)


def test_a_repeated_start_reuses_only_a_run_that_is_still_there(busy_cpu):
    root = busy_cpu
    stale = root / ".queue" / "dedupe-0123"
    stale.write_text("20250101-000000-digits-0001")
    os.utime(stale, (1, 1))
    first = runs.start_run(TINY_ARCH, TINY_TRAIN, device="cpu", runs_dir=root, dedupe_key="tab:settings")
    assert not stale.exists()  # markers older than the window are forgotten
    assert runs.start_run(TINY_ARCH, TINY_TRAIN, device="cpu", runs_dir=root, dedupe_key="tab:settings") == first
    supervisor(root, first)
    assert runs.cancel_run(first, root, wait_s=10) == f"removed queued run {first}"
    second = runs.start_run(TINY_ARCH, TINY_TRAIN, device="cpu", runs_dir=root, dedupe_key="tab:settings")
    assert second != first and state(root, second) == "queued"


def test_readers_of_a_run_removed_under_them_see_it_gone_and_never_recreate_it(tmp_path):
    run_id = "20250101-000000-digits-abcd"
    paths = RunPaths(tmp_path / run_id)
    paths.dir.mkdir()
    write_status(paths, state="queued", created=1.0)
    status = read_status(paths)  # a reader's first look, then the folder is deleted
    assert observed_status(paths, status) is None  # no lock file: being deleted; none is made
    assert not paths.lock.exists()
    assert runs.get_run(run_id, tmp_path) is None and runs.list_runs(tmp_path) == []
    shutil.rmtree(paths.dir)
    assert observed_status(paths, status) is None
    assert not paths.dir.exists()
    assert runs.cancel_run(run_id, tmp_path) == f"run {run_id} was removed"
    with pytest.raises(RunError, match="was removed"):
        runs.resume_run(run_id, tmp_path)
    # A deletion that was itself interrupted leaves a hidden tombstone, which is not a run.
    tomb = RunPaths(tmp_path / f".removed-{run_id}-1")
    tomb.dir.mkdir()
    write_status(tomb, state="queued", created=1.0)
    assert runs.list_runs(tmp_path) == []


def test_cancelling_queued_runs_while_pages_read_them_leaves_no_errors_and_no_leftovers(busy_cpu):
    root, errors, stop = busy_cpu, [], threading.Event()
    ids: list[str] = []

    def page_reader():  # what the Train page does on every rerun
        while not stop.is_set():
            try:
                for info in runs.list_runs(root):
                    runs.get_run(info.run_id, root)
                for run_id in list(ids):
                    runs.get_run(run_id, root)
            except Exception as exc:  # noqa: BLE001 - any exception here is the failure
                errors.append(repr(exc))

    reader = threading.Thread(target=page_reader)
    reader.start()
    try:
        for _ in range(3):
            ids.append(runs.start_run(TINY_ARCH, TINY_TRAIN, device="cpu", runs_dir=root))
            supervisor(root, ids[-1])
            assert runs.cancel_run(ids[-1], root, wait_s=10) == f"removed queued run {ids[-1]}"
            assert runs.cancel_run(ids[-1], root) == f"run {ids[-1]} was removed"  # 2nd session
    finally:
        stop.set()
        reader.join()
    assert errors == []
    # The supervisor deletes a cancelled run's tombstone after cancel_run has answered.
    wait_for(lambda: sorted(p.name for p in root.iterdir()) == [".queue"], 10, "no leftovers")


def test_supervisors_leave_the_dashboard_and_no_zombies_behind(busy_cpu):
    root = busy_cpu
    ids = [runs.start_run(TINY_ARCH, TINY_TRAIN, device="cpu", runs_dir=root) for _ in range(2)]
    pids = [supervisor(root, run_id) for run_id in ids]
    assert not set(pids) & set(children_of_this_process(zombies_only=False))
    assert all(os.getpgid(pid) == pid for pid in pids)  # own process group, to signal as one
    for run_id in ids:
        runs.cancel_run(run_id, root, wait_s=10)
    wait_for(lambda: not any((root / run_id).exists() for run_id in ids), 10, "the removals")
    assert children_of_this_process(zombies_only=True) == []


def test_damaged_bookkeeping_files_give_messages_and_never_tracebacks(busy_cpu):
    root = busy_cpu
    run_id = "20250101-000000-digits-0001"
    paths = RunPaths(root / run_id)
    paths.dir.mkdir()
    paths.lock.touch()
    write_status(paths, state="failed", created=1.0, resumes="two")  # a hand edited it
    for damage in (b"\xff{", b"[1, 2]", b'{"device": 3}'):
        paths.launch.write_bytes(damage)
        with pytest.raises(RunError, match="launch.json is damaged"):
            runs.resume_run(run_id, root)
    paths.launch.unlink()
    with pytest.raises(RunError, match="has no launch.json"):
        runs.resume_run(run_id, root)
    paths.launch.write_text(json.dumps({"device": "cpu", "marker": "0-" + run_id}))
    runs.resume_run(run_id, root)  # the unreadable count of resumes counts as none
    assert read_status(paths)["resumes"] == 1 and state(root, run_id) == "queued"
    supervisor(root, run_id)
    assert runs.cancel_run(run_id, root, wait_s=10) == f"removed queued run {run_id}"

    # A double-click marker that is not text starts a new run instead of raising.
    (root / ".queue").mkdir(exist_ok=True)
    first = runs.start_run(TINY_ARCH, TINY_TRAIN, device="cpu", runs_dir=root, dedupe_key="k")
    for marker in (root / ".queue").glob("dedupe-*"):
        marker.write_bytes(b"\xff\xfe")
    second = runs.start_run(TINY_ARCH, TINY_TRAIN, device="cpu", runs_dir=root, dedupe_key="k")
    assert second != first
    for run in (first, second):
        supervisor(root, run)
        runs.cancel_run(run, root, wait_s=10)


def test_a_lock_that_fails_for_another_reason_than_held_is_an_error_not_held(tmp_path,
                                                                             monkeypatch):
    # Over NFS, flock is emulated with fcntl locks: an exclusive lock on a read-only fd fails
    # with EBADF. Read as "held", every dead run looked alive and every start was refused.
    import errno
    import fcntl

    from resnet_explorer.runs import layout

    opened = []
    real_open = os.open
    monkeypatch.setattr(layout.os, "open",
                        lambda path, flags, *a: opened.append(flags) or real_open(path, flags, *a))
    fd = try_lock(tmp_path / "w.lock")  # a writer: opened for writing
    assert opened[-1] & os.O_RDWR and try_lock(tmp_path / "w.lock", create=False) is None
    os.close(fd)

    def flock(fd, op):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(fcntl, "flock", flock)
    with pytest.raises(OSError, match="Bad file descriptor"):
        try_lock(tmp_path / "w.lock")
