"""Shared pieces of the training tests: a tiny network, short runs, process hygiene."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable

from resnet_explorer.arch import ArchConfig
from resnet_explorer.runs import RunPaths, read_status
from resnet_explorer.training import TrainConfig

# Two stages of one block, 8 and 16 channels, on 8-pixel digits: ~3 k parameters, an epoch of
# digits in well under a second on one core, and it still learns (> 50 % in a few epochs).
TINY_ARCH = ArchConfig(stem="cifar", stem_width=8, blocks=(1, 1), widths=(8, 16),
                       depthwise=(False, False), in_channels=1, num_classes=10)
# keep_last: the training tests check the last epoch's model too (the default keeps the best).
TINY_TRAIN = TrainConfig(image_size=8, epochs=3, batch_size=64, lr=0.1, warmup_epochs=1,
                         device="cpu", keep_last=True)
ROOT = Path(__file__).resolve().parent.parent  # cwd for `python -m resnet_explorer.train`


def train_cli_args(tmp_path: Path, run_dir: Path) -> list[str]:
    """`-m resnet_explorer.train ...` for TINY_ARCH and TINY_TRAIN (written into `tmp_path`)."""
    arch, train = tmp_path / "arch.json", tmp_path / "train.json"
    arch.write_text(TINY_ARCH.to_json())
    train.write_text(TINY_TRAIN.to_json())
    return ["-m", "resnet_explorer.train", "--arch", str(arch), "--train", str(train),
            "--run-dir", str(run_dir), "--weights-dir", str(tmp_path / "weights")]


def cli_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a trainer subprocess: one thread, `tmp_path` as the home."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "RESNET_EXPLORER_HOME": str(tmp_path)}


def kill_run_processes(runs_dir: Path) -> None:
    """SIGKILL every supervisor/trainer a test left behind (only processes of these runs)."""
    if not runs_dir.is_dir():
        return
    for folder in runs_dir.iterdir():
        for pid in run_pids(folder).values():
            try:
                os.killpg(pid, signal.SIGKILL)  # both run in their own session
            except (ProcessLookupError, PermissionError):
                pass


def run_pids(folder: Path) -> dict[str, int]:
    """The run's processes that are alive, by their status key ("supervisor_pid", "pid")."""
    status = read_status(RunPaths(folder))
    return {key: pid for key in ("supervisor_pid", "pid")
            if isinstance(pid := status.get(key), int) and _belongs_to(pid, folder)}


def _belongs_to(pid: int, folder: Path) -> bool:
    # PIDs are reused: only kill a process whose command line names this run directory.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return folder.name in cmdline


def wait_for(predicate: Callable[[], object], timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
