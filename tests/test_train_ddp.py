"""The same trainer command under torchrun: two CPU processes (gloo), one set of files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from resnet_explorer.models import store
from resnet_explorer.runs import RunPaths, read_jsonl, read_status
from tests.train_helpers import ROOT, cli_env, train_cli_args


def test_torchrun_two_processes_stay_in_sync_and_only_rank_zero_writes(tmp_path):
    run_dir = tmp_path / "runs" / "ddp"
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         *train_cli_args(tmp_path, run_dir), "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # so the finally can stop torchrun and both workers at once
        env=cli_env(tmp_path))
    try:
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output
    status = read_status(RunPaths(run_dir))
    # The trainer compares every parameter across ranks at the end and fails the run if
    # DDP let them drift apart; "completed" therefore means identical parameters.
    assert status["state"] == "completed" and status["ranks_in_sync"] is True
    assert status["world_size"] == 2
    # One set of files: rank 1 wrote nothing, not even a second log line.
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == [
        "ddp-best.json", "ddp-best.safetensors", "ddp-last.json", "ddp-last.safetensors"]
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob("*rank*"))
    log = (run_dir / "log.txt").read_text()
    assert log.count("epoch 3/3") == 1 and "2 processes" in log
    epochs = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    # Each rank trains on half of the 1,438 images, 32 per step (global batch 64).
    assert status["total_steps"] == 3 * (1438 // 2 // 32)
    store.load_model("ddp-last", tmp_path / "weights")
