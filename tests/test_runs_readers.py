"""Reading runs never writes: every reader a page uses leaves each file of the home as it was
(dead runs included, which read as interrupted), and works on a disk that is really full,
where the actions that must write say so instead of raising."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from resnet_explorer import runs
from resnet_explorer.common import RunError
from resnet_explorer.experiments import build_table, store_signature, with_live_states
from resnet_explorer.experiments.sweep import list_sweeps, queue_sweep, sweep_runs, sweep_summary
from resnet_explorer.experiments.sweep_spec import SweepSpec
from resnet_explorer.models import disk_used, list_models, metrics_csv, run_files
from resnet_explorer.runs import RunPaths, write_status
from resnet_explorer.runs.queue import join_queue, new_marker
from tests.compare_helpers import make_run
from tests.fault_helpers import fill_disk, tmpfs, tree_record
from tests.train_helpers import TINY_ARCH, TINY_TRAIN


def make_home(home: Path) -> dict[str, str]:
    """Runs in every state a crash leaves (finished, dead while running or queued, damaged),
    a queue marker, a sweep of two runs (one dead while running), a latency cache; the
    states readers must show, by run id."""
    root = home / "runs"
    done = make_run(root, 1, TINY_ARCH)
    runs.write_status(done, best_model="m-best")
    (done.dir / "log.txt").write_text("epoch 1/2\n")
    running = make_run(root, 2, TINY_ARCH, state="running", acc=None, epochs_done=1)
    queued = make_run(root, 3, TINY_ARCH, state="queued", acc=None, epochs_done=0)
    damaged = make_run(root, 4, TINY_ARCH)
    damaged.status.write_bytes(b'{"state": "running", "created": ')
    join_queue(root, "cpu", new_marker(queued.run_id))
    spec = SweepSpec.from_dict({"base_arch": TINY_ARCH.to_dict(), "train": TINY_TRAIN.to_dict(),
                                "modifications": [{"name": "silu", "arch": {"activation": "silu"}}],
                                "seeds": 1})
    sweep = queue_sweep(spec, external=True, runs_dir=root, sweeps_dir=home / "sweeps")
    swept_dead = RunPaths(root / sweep.slots[0].run_id)
    write_status(swept_dead, state="running")
    (home / "weights").mkdir()
    (home / "cache").mkdir()
    (home / "cache" / "latency.json").write_text('{"format": 1, "entries": {"k": 1}}')
    return {done.run_id: "completed", running.run_id: "interrupted",
            queued.run_id: "interrupted", damaged.run_id: "damaged",
            swept_dead.run_id: "interrupted", sweep.slots[1].run_id: "prepared"}


def read_like_the_pages(home: Path) -> dict[str, str]:
    """What the Train, Compare, sweep and Models pages read; the states listed, by run id."""
    root, weights, cache = home / "runs", home / "weights", home / "cache"
    listed = runs.list_runs(root)
    for info in listed:
        assert runs.get_run(info.run_id, root).state == info.state
        runs.read_metrics(info.run_id, root)
        runs.log_tail(info.run_id, root)
        run_files(info.run_id, root, weights)
        metrics_csv(info.run_id, root)
    table = build_table(root, weights, cache)
    assert with_live_states(table, root) is table  # built just now: nothing died since
    states = {row.key: row.status for row in table.rows}
    store_signature(root, weights, cache)
    for record in list_sweeps(home / "sweeps"):
        states.update({r.slot.run_id: r.state for r in sweep_runs(record, root)})
        sweep_summary(record, root)
    list_models(weights)
    disk_used(weights, root)
    assert states == {info.run_id: info.state for info in listed}  # every reader agrees
    return states


def test_every_reader_leaves_every_file_as_it_was_and_shows_dead_runs_interrupted(tmp_path):
    expected = make_home(tmp_path)
    before = tree_record(tmp_path)
    assert read_like_the_pages(tmp_path) == expected
    assert tree_record(tmp_path) == before  # bytes, sizes and modification times


def test_runs_are_listed_on_a_full_disk_and_actions_that_must_write_say_so(tmp_path, monkeypatch):
    home = tmp_path / "home"
    with tmpfs(home, "4m") as refused:
        if refused:  # not root: every write is refused in-process instead (see full_by_patch)
            expected = make_home(home)
            full_by_patch(monkeypatch, home)
        else:
            expected = make_home(home)
            fill_disk(home)
        dead = next(run_id for run_id, state in expected.items() if state == "interrupted")
        with pytest.raises(OSError) as raised:  # the disk is really full
            write_status(RunPaths(home / "runs" / dead), message="x")
        assert raised.value.errno == errno.ENOSPC
        before = tree_record(home)
        assert read_like_the_pages(home) == expected
        assert tree_record(home) == before
        # What must write refuses with the reason, and leaves no half-made run behind.
        with pytest.raises(RunError, match="could not resume run .*: the disk is full"):
            runs.resume_run(dead, home / "runs")
        with pytest.raises(RunError, match="could not start the run: the disk is full"):
            runs.start_run(TINY_ARCH, TINY_TRAIN, device="cpu", runs_dir=home / "runs")
        assert read_like_the_pages(home) == expected


def full_by_patch(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Where a tmpfs cannot be mounted: every call that creates, changes or removes a file
    under `home` raises ENOSPC (os.open with write flags, which mkstemp and append use too,
    and the renames atomic writes end with)."""
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    real_open = os.open

    def refuse(path) -> None:
        if str(os.path.abspath(path)).startswith(str(home)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def open_(path, flags, *args, **kwargs):
        if flags & writing and not (flags & os.O_CREAT and Path(path).name.endswith("lock")):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    for name in ("replace", "rename", "link", "mkdir"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda src, *a, _real=real, **k: (refuse(src),
                                                                        _real(src, *a, **k))[1])
