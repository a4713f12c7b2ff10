"""Fault drills for training through the runner (start_run: queue, detached supervisor,
trainer), with real processes and a real full disk:

* kill -9 at random moments of 20 tiny runs, hitting the waiting or supervising process, the
  trainer or the whole tree; meanwhile a page keeps listing. Then every run is listed,
  resumable or completed; resumed, every run completes, its curves hold each epoch once,
  and no temporary file, reserve or place in line is left.
* the disk fills up while a run trains: the run ends as failed saying the disk is full, the
  runs stay listed on the full disk, and once space is freed the run resumes.

The randomness is seeded and the seed printed (FAULT_DRILL_SEED=<seed> repeats a drill).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from resnet_explorer import runs
from resnet_explorer.common import UserError
from resnet_explorer.models import store
from resnet_explorer.runs import COMPLETED, RESUMABLE, RunInfo, RunPaths
from resnet_explorer.runs.layout import lock_is_held
from resnet_explorer.runs.queue import SLOTS_ENV, queue_root
from tests.fault_helpers import fill_disk, leftovers, on_ci, tmpfs
from tests.train_helpers import TINY_ARCH, TINY_TRAIN, kill_run_processes, run_pids, wait_for

SEED_ENV = "FAULT_DRILL_SEED"
RUNS = 20
# Two short epochs of 4 steps: a run lives a few seconds, most of them the trainer's imports.
DRILL = replace(TINY_TRAIN, epochs=2, train_limit=256, val_limit=128)
STEPS = 8
VICTIMS = {"supervisor": ("supervisor_pid",), "trainer": ("pid",),
           "tree": ("supervisor_pid", "pid")}


def drill_seed() -> int:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2 ** 31))
    print(f"fault drill seed {seed} (repeat it with {SEED_ENV}={seed})")
    return seed


@dataclass(frozen=True)
class Kill:
    """When to kill a run and what: while it waits in line (its supervisor, all there is), or
    once its trainer has reached `step` (0: still starting), its supervisor, trainer or both;
    `delay_s` later still, so the moment falls anywhere, mid-write included."""

    queued: bool
    step: int
    victim: str
    delay_s: float

    @classmethod
    def draw(cls, rng: random.Random) -> Kill:
        queued = rng.random() < 0.3
        return cls(queued, rng.randint(0, STEPS), "supervisor" if queued
                   else rng.choice(sorted(VICTIMS)), rng.uniform(0.0, 0.5))

    def due(self, info: RunInfo, pids: dict[str, int]) -> bool:
        if self.queued:
            return info.state == "queued" and "supervisor_pid" in pids
        return "pid" in pids and info.state == "running" and info.step >= self.step

    def strike(self, folder: Path, pids: dict[str, int]) -> str:
        """SIGKILL the chosen processes (each leads its own process group); what was hit."""
        time.sleep(self.delay_s)
        now = run_pids(folder)  # the same processes still (PIDs are reused)
        hit = [key for key in VICTIMS[self.victim] if key in pids and now.get(key) == pids[key]]
        for key in hit:
            try:
                os.killpg(pids[key], signal.SIGKILL)
            except ProcessLookupError:
                pass
        moment = "queued" if self.queued else f"at step {self.step}+"
        return f"{'+'.join(hit) or 'nothing (ended meanwhile)'} {moment}"


def kill_as_planned(root: Path, plan: dict[str, Kill], timeout_s: float) -> Counter:
    """Watch every run and strike each at its moment; a tally of what was hit."""
    pending, tally = dict(plan), Counter()
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for run_id, kill in list(pending.items()):
            info = runs.get_run(run_id, root)
            pids = run_pids(root / run_id)
            if info is None or not info.active:
                tally[f"ended before its kill ({info.state if info else 'gone'})"] += 1
            elif kill.due(info, pids):
                tally[kill.strike(root / run_id, pids)] += 1
            else:
                continue
            del pending[run_id]
        time.sleep(0.05)
    assert not pending, f"runs never reached their kill: {sorted(pending)}"
    return tally


class PageReader(threading.Thread):
    """What the Train page does on every rerun, until stopped; any exception is a failure."""

    def __init__(self, root: Path):
        super().__init__(daemon=True)
        self.root, self.stop, self.errors, self.reads = root, threading.Event(), [], 0

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                for info in runs.list_runs(self.root):
                    runs.read_metrics(info.run_id, self.root)
                self.reads += 1
            except Exception as exc:  # noqa: BLE001 - any exception here is the failure
                self.errors.append(repr(exc))


def test_kill_9_at_random_points_of_twenty_runs_then_all_resume_and_complete(home, monkeypatch):
    rng = random.Random(drill_seed())
    monkeypatch.setenv(SLOTS_ENV, "2")  # two runs train at a time on the 2 cores
    root, weights = home / "runs", home / "weights"
    began = time.monotonic()
    reader = PageReader(root)
    reader.start()
    try:
        ids = [runs.start_run(TINY_ARCH, replace(DRILL, seed=n), device="cpu", runs_dir=root,
                              weights_dir=weights) for n in range(RUNS)]
        plan = {run_id: Kill.draw(rng) for run_id in ids}
        print("kills:", dict(kill_as_planned(root, plan, 300)))
        wait_for(lambda: not any(i.active for i in runs.list_runs(root)), 240,
                 "every run to end or die")
        listed = {i.run_id: i for i in runs.list_runs(root)}
        assert set(listed) == set(ids)  # none vanished, none damaged, none running forever
        assert all(i.state in (*RESUMABLE, COMPLETED) for i in listed.values()), \
            {i.run_id: (i.state, i.message) for i in listed.values()}
        resumed = [run_id for run_id, info in listed.items() if info.can_resume]
        print(f"after the kills: {len(ids) - len(resumed)} completed, {len(resumed)} to resume")
        for run_id in resumed:
            runs.resume_run(run_id, root)
        wait_for(lambda: all(i.state == COMPLETED for i in runs.list_runs(root)), 300,
                 "every resumed run to complete")
    finally:
        reader.stop.set()
        reader.join()
    assert reader.errors == [] and reader.reads > 0
    for run_id in ids:
        info = runs.get_run(run_id, root)
        assert store.model_files(info.best_model, weights)[0].is_file()
        epochs = [r["epoch"] for r in runs.read_metrics(run_id, root).epochs]
        assert epochs == [1, 2], (run_id, epochs)  # replayed epochs are logged once
    assert leftovers(home) == []
    assert not [m for m in queue_root(root).glob("*/*")]  # no place in line left
    print(f"drill: {RUNS} runs, {len(resumed)} resumed, {time.monotonic() - began:.1f} s")


def test_a_disk_that_fills_during_a_run_fails_it_saying_so_and_runs_stay_listed(tmp_path,
                                                                                monkeypatch):
    home = tmp_path / "home"
    with tmpfs(home, "16m") as refused:
        if refused:  # a real full disk needs root to mount one; CI runs as root
            if on_ci():
                pytest.fail(f"the full-disk drill needs a tmpfs and CI provides one: {refused}")
            pytest.skip(f"needs root to mount a small tmpfs ({refused})")
        monkeypatch.setenv("RESNET_EXPLORER_HOME", str(home))
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        root = home / "runs"
        try:
            _fill_the_disk_under_a_run(home, root)
        finally:
            kill_run_processes(root)


def _fill_the_disk_under_a_run(home: Path, root: Path) -> None:
    run_id = runs.start_run(TINY_ARCH, replace(DRILL, epochs=1000), device="cpu", runs_dir=root,
                            weights_dir=home / "weights")
    paths = RunPaths(root / run_id)
    wait_for(lambda: paths.checkpoint.exists() and runs.get_run(run_id, root).epoch > 1.2, 120,
             "the run to train past its first checkpoint")
    ballast = fill_disk(home)
    info = wait_for(lambda: (i := runs.get_run(run_id, root)) and not i.active and i, 60,
                    "the run to end")
    assert info.state == "failed" and info.can_resume, (info.state, info.message)
    assert info.message.startswith("the disk is full") and "then resume" in info.message
    assert [i.run_id for i in runs.list_runs(root)] == [run_id]  # listed on the full disk
    wait_for(lambda: not lock_is_held(paths.lock), 60, "the run's processes to exit")
    fill_disk(home)  # again: the run's reserve, given up to record its end, was free space
    with pytest.raises(UserError, match="the disk is full"):
        runs.resume_run(run_id, root)

    ballast.unlink()  # space freed: the run continues from its checkpoint
    runs.resume_run(run_id, root)
    wait_for(lambda: "resumed from the checkpoint" in paths.log.read_text(), 120, "the resume")
    runs.cancel_run(run_id, root, wait_s=30)
    wait_for(lambda: runs.get_run(run_id, root).state == "cancelled", 30, "the cancel")
    assert leftovers(home) == []
