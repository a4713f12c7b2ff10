"""Run store and queue with real detached processes: FIFO, double click, cancel, kill -9, resume."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace

import pytest

from resnet_explorer import runs
from resnet_explorer.common import RunError
from resnet_explorer.models import store
from resnet_explorer.runs import RunPaths, read_jsonl, read_status, write_status
from resnet_explorer.runs.layout import try_lock
from resnet_explorer.runs.queue import queue_dir, runs_ahead
from resnet_explorer.runs.supervisor import outcome_after_exit
from tests.train_helpers import TINY_ARCH, TINY_TRAIN, wait_for

LONG = replace(TINY_TRAIN, epochs=1000)  # runs until cancelled


def state(run_id, root):
    info = runs.get_run(run_id, root)
    return info.state if info else None


def test_queue_runs_one_at_a_time_first_in_first_out_and_cancels_promptly(home):
    root, w = home / "runs", home / "weights"
    first = runs.start_run(TINY_ARCH, LONG, device="cpu", runs_dir=root, weights_dir=w, dedupe_key="click")
    again = runs.start_run(TINY_ARCH, LONG, device="cpu", runs_dir=root, weights_dir=w, dedupe_key="click")
    assert again == first  # a double click starts one run
    second = runs.start_run(TINY_ARCH, LONG, device="cpu", runs_dir=root, weights_dir=w)
    third = runs.start_run(TINY_ARCH, TINY_TRAIN, device="cpu", runs_dir=root, weights_dir=w)
    assert len(runs.list_runs(root)) == 3
    wait_for(lambda: (runs.get_run(first, root).step or 0) > 5, 60, "the first run to train")
    assert state(second, root) == state(third, root) == "queued"
    assert "1 run(s) ahead" in runs.get_run(third, root).message

    assert runs.cancel_run(second, root) == f"removed queued run {second}"  # queued: removed
    assert not (root / second).exists() and state(second, root) is None

    asked = time.monotonic()
    runs.cancel_run(first, root)
    wait_for(lambda: state(first, root) == "cancelled", 10, "the cancel")
    assert time.monotonic() - asked < 2.5  # stopped at the next step boundary
    assert "cancelled" in runs.get_run(first, root).message

    # The device is free: the next run in line starts by itself and completes.
    wait_for(lambda: state(third, root) == "completed", 60, "the third run")
    info = runs.get_run(third, root)
    assert info.best_model and info.last_model and info.progress == 1.0
    store.load_model(info.last_model, w)
    assert not list(queue_dir(root, "cpu").iterdir())  # the line is empty again
    metrics = runs.read_metrics(third, root)
    assert [r["epoch"] for r in metrics.epochs] == [1, 2, 3] and metrics.steps
    assert "epoch 3/3" in runs.log_tail(third, root)


def test_killed_run_shows_interrupted_and_resumes_from_its_checkpoint(home):
    root, w = home / "runs", home / "weights"
    cfg = replace(TINY_TRAIN, epochs=12)
    run_id = runs.start_run(TINY_ARCH, cfg, device="cpu", runs_dir=root, weights_dir=w)
    paths = RunPaths(root / run_id)
    wait_for(lambda: paths.checkpoint.exists() and (runs.get_run(run_id, root).epoch >= 2), 60,
             "a checkpoint")
    status = read_status(paths)
    os.kill(status["pid"], signal.SIGKILL)  # the trainer; its supervisor notices
    wait_for(lambda: state(run_id, root) == "interrupted", 10, "interrupted")
    info = runs.get_run(run_id, root)
    assert "SIGKILL" in info.message and "resume continues from the last checkpoint" in info.message
    assert info.can_resume

    runs.resume_run(run_id, root)
    wait_for(lambda: "resumed from the checkpoint" in paths.log.read_text(), 60, "the resumed run")
    # Now kill both processes at once, as a server restart would: nobody is left to write
    # the status, yet the run must not be shown as running forever.
    status = read_status(paths)
    for pid in (status["supervisor_pid"], status["pid"]):
        os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: state(run_id, root) == "interrupted", 10, "interrupted after restart")
    assert "machine restarted" in runs.get_run(run_id, root).message

    with pytest.raises(RunError, match="only interrupted, cancelled, failed runs resume"):
        write_status(paths, state="completed")
        runs.resume_run(run_id, root)
    write_status(paths, state="interrupted")
    resumed_at = read_status(paths)["resumes"]
    runs.resume_run(run_id, root)
    assert read_status(paths)["resumes"] == resumed_at + 1
    wait_for(lambda: state(run_id, root) == "completed", 90, "completion after resume")
    log = paths.log.read_text()
    assert log.count("resumed from the checkpoint") == 2 and "epoch 12/12" in log
    steps = [r["step"] for r in read_jsonl(paths.metrics) if r["kind"] == "step"]
    assert steps == sorted(set(steps))  # steps replayed after the checkpoint are logged once
    epochs = [r["epoch"] for r in read_jsonl(paths.metrics) if r["kind"] == "epoch"]
    assert epochs == list(range(1, 13))


def test_a_dead_run_found_by_a_reader_shows_interrupted_and_a_writer_records_it(tmp_path):
    # No process at all: the state a server restart leaves behind.
    run_id = "20250101-000000-digits-abcd"
    paths = RunPaths(tmp_path / run_id)
    paths.dir.mkdir()
    paths.lock.touch()  # every run has one from its start (a folder without one is being deleted)
    write_status(paths, state="running", created=1.0, epoch=3.5, epochs=10)
    assert runs.list_runs(tmp_path)[0].state == "interrupted"
    assert read_status(paths)["state"] == "running"  # shown, not written: readers never write
    assert runs.cancel_run(run_id, tmp_path) == f"run {run_id} was no longer running"
    assert read_status(paths)["state"] == "interrupted"  # a writer acting on it records it
    # While a process holds the run's lock it is alive, whatever the status says.
    write_status(paths, state="running")
    fd = try_lock(paths.lock)
    try:
        assert runs.get_run(run_id, tmp_path).state == "running"
        with pytest.raises(RunError, match="still active"):
            runs.resume_run(run_id, tmp_path)
    finally:
        os.close(fd)


def test_stale_queue_markers_of_dead_waiters_are_skipped(tmp_path):
    line = queue_dir(tmp_path, "cpu")
    line.mkdir(parents=True)
    for n, run_id in enumerate(["20250101-000000-digits-0001", "20250101-000000-digits-0002"]):
        (tmp_path / run_id).mkdir()
        (line / f"{n:020d}-{run_id}").touch()
    alive = try_lock(tmp_path / "20250101-000000-digits-0002" / ".lock")
    try:
        assert runs_ahead(tmp_path, "cpu", f"{9:020d}-me") == 1  # only the live one counts
        assert len(list(line.iterdir())) == 1  # the dead one's marker was removed
    finally:
        os.close(alive)


def test_outcome_of_a_trainer_that_ended_without_reporting():
    state, message = outcome_after_exit(-9, False, {"epoch": 2.5}, checkpoint_exists=True)
    assert state == "interrupted" and "SIGKILL" in message and "during epoch 3" in message
    state, message = outcome_after_exit(-15, False, {}, checkpoint_exists=False)
    assert state == "interrupted" and "starts it again" in message
    assert outcome_after_exit(1, False, {}, False)[0] == "failed"
    assert outcome_after_exit(-9, True, {}, True)[0] == "cancelled"


def test_run_ids_are_never_paths(tmp_path):
    for bad in ("../x", "/etc", "20250101-000000-digits-abcd/../../x"):
        with pytest.raises(RunError, match="not a run id"):
            runs.get_run(bad, tmp_path)
    assert runs.list_runs(tmp_path / "missing") == []


def test_deleting_a_run_whose_supervisor_is_still_exiting_says_to_try_again(tmp_path):
    paths = RunPaths(tmp_path / "20250101-120000-digits-ab12")
    paths.dir.mkdir()
    write_status(paths, state="running")
    fd = try_lock(paths.lock)
    try:
        with pytest.raises(RunError, match="is running: cancel it before deleting it"):
            runs.delete_run(paths.run_id, tmp_path)
        write_status(paths, state="completed")  # the trainer is done, its process not yet
        with pytest.raises(RunError, match="just finishing: delete it again in a moment"):
            runs.delete_run(paths.run_id, tmp_path)
    finally:
        os.close(fd)
    assert runs.delete_run(paths.run_id, tmp_path) == f"deleted run {paths.run_id}"
    assert not paths.dir.exists()
