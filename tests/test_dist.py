"""training/dist.py on a real two-process gloo group (127.0.0.1): the control messages agree.

Rank 0 decides (stop, cancel, when to log, validation figures) and every rank acts on its
decision at the same step; metric sums are the sums over ranks. The full torchrun job is
tests/test_train_ddp.py; this drives Dist and the Trainer's use of it directly.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from resnet_explorer.training import Cancelled, Dist, Trainer
from tests.test_compile import tiny_data
from tests.train_helpers import TINY_ARCH, TINY_TRAIN


class StopAt:
    """Rank 0's callbacks: `reason` at the `at`-th check."""

    def __init__(self, at: int, reason: str):
        self.at, self.reason, self.checks = at, reason, 0

    def should_stop(self):
        self.checks += 1
        return self.reason if self.checks == self.at else None

    def on_step(self, record):
        pass

    def on_epoch(self, record, trainer):
        pass

    def log(self, message):
        pass


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    # Loopback: gloo otherwise binds to whatever the host name resolves to, which a CI
    # container may not resolve at all.
    if Path("/sys/class/net/lo").exists():
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist = Dist.from_env(torch.device("cpu"))
    seen = {"rank": dist.rank, "world": dist.world, "main": dist.is_main,
            "agree": dist.agree([rank + 10, -rank]),
            "agree_float": dist.agree([0.25 + rank, 3.0], dtype=torch.float64),
            "sum": dist.sum(torch.tensor([1.0 + rank, 10.0 * rank], dtype=torch.float64)).tolist()}
    trainer = Trainer(TINY_ARCH, TINY_TRAIN, tiny_data(512), torch.device("cpu"), dist)
    stats, stopped = trainer.train_epoch(StopAt(3, "time") if dist.is_main else None)
    seen.update(time_stop=[trainer.step, stopped, stats["train_loss"]])
    try:
        trainer.train_epoch(StopAt(2, "cancel") if dist.is_main else None)
        seen["cancel"] = None
    except Cancelled:
        seen["cancel"] = trainer.step
    seen["val"] = list(trainer.evaluate())
    seen["in_sync"] = dist.params_in_sync(trainer.model)
    if rank == 1:
        with torch.no_grad():
            next(trainer.model.parameters()).add_(1.0)
    seen["after_drift"] = dist.params_in_sync(trainer.model)
    dist.barrier()
    Path(out, f"{rank}.json").write_text(json.dumps(seen))  # before gloo's teardown (below)
    dist.close()
    # Gloo's threads sometimes abort the process at interpreter exit ("terminate called
    # without an active exception"): leave without running C++ destructors twice.
    os._exit(0)


# A gloo collective waits 30 minutes for a peer by default: a rank that dies or a group that
# never forms must fail the test in bounded time, not hang CI.
DEADLINE_S = 180
SOCKET_FAILURES = ("address already in use", "connection reset", "connection refused",
                   "connection closed", "broken pipe")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_ranks(world: int, out: Path) -> None:
    """Run `_worker` on `world` ranks; kill them all if they are not done by the deadline. The
    port is free when chosen but may be taken before rank 0 binds it: one retry on another."""
    for attempt in (1, 2):
        context = mp.spawn(_worker, args=(world, free_port(), str(out)), nprocs=world,
                           join=False)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while not context.join(timeout=5):
                if time.monotonic() > deadline:
                    raise AssertionError(f"the {world} ranks did not finish in {DEADLINE_S} s")
            return
        except mp.ProcessExitedException as exc:
            # A rank aborted by gloo's teardown after both wrote what they saw: the work is
            # done and the assertions judge it. Anything else (no output) fails.
            if exc.signal_name != "SIGABRT" or len(list(out.glob("*.json"))) < world:
                raise
            return
        except mp.ProcessRaisedException as exc:
            # Another process on the machine (a parallel test run) may take the port or talk
            # to it between free_port() and rank 0's bind: retry once on a socket failure only.
            if attempt == 2 or not any(word in str(exc).lower() for word in SOCKET_FAILURES):
                raise
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()


def test_two_gloo_ranks_act_on_rank_zeros_decisions_at_the_same_step(tmp_path):
    spawn_ranks(2, tmp_path)
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world"], r1["world"]) == (0, 1, 2, 2)
    assert r0["main"] and not r1["main"]
    assert r0["agree"] == r1["agree"] == [10, 0]  # rank 0's values on both
    assert r0["agree_float"] == r1["agree_float"] == [0.25, 3.0]
    assert r0["sum"] == r1["sum"] == [3.0, 10.0]
    # Rank 0's time budget ended the epoch after step 3 on both ranks; the epoch's loss is
    # the mean over both ranks' images, the same figure everywhere.
    assert r0["time_stop"][:2] == r1["time_stop"][:2] == [3, "time"]
    assert r0["time_stop"][2] == r1["time_stop"][2]
    # Rank 0's cancel at its second check stopped both ranks at step 3 + 2.
    assert r0["cancel"] == r1["cancel"] == 5
    assert r0["val"] == r1["val"]  # validated on rank 0, shared
    assert r0["in_sync"] and r1["in_sync"]
    assert not r0["after_drift"] and not r1["after_drift"]
