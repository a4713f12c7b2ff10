"""Synthetic run folders for the Compare tests and bench/compare.py: the files a finished (or
any other) run leaves, written the way the launcher and the trainer write them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from resnet_explorer.arch import ArchConfig
from resnet_explorer.common.fileio import atomic_write_text
from resnet_explorer.runs import COMPLETED, RunPaths, write_status
from resnet_explorer.training import TrainConfig


def run_id(n: int, dataset: str = "digits") -> str:
    """A valid run id, distinct per n and ordered by n."""
    clock = f"{n // 3600 % 24:02d}{n // 60 % 60:02d}{n % 60:02d}"
    return f"20261201-{clock}-{dataset}-{n % 65536:04x}"


def make_run(runs_dir: Path, n: int, cfg: ArchConfig, train: TrainConfig | None = None, *,
             state: str = COMPLETED, acc: float | None = 0.9, epochs_done: int | None = None,
             with_metrics: bool = True, **status: Any) -> RunPaths:
    """A run folder with configs, status and (optionally) metrics.jsonl; returns its paths.

    The status holds what the trainer writes at the end (`final`, `elapsed_s`, the trained
    `arch` = `cfg`); `status` entries override or add fields (arch=None: no trained arch)."""
    train = train or TrainConfig(image_size=8, epochs=2, device="cpu")
    paths = RunPaths(Path(runs_dir) / run_id(n, train.dataset))
    paths.dir.mkdir(parents=True, exist_ok=True)
    paths.lock.touch()  # the launcher creates it; nobody holds it once the run has ended
    atomic_write_text(paths.arch, cfg.to_json())
    atomic_write_text(paths.train, train.to_json())
    done = train.epochs if epochs_done is None else epochs_done
    curve = [{"kind": "epoch", "epoch": e, "step": e * 10, "train_loss": 2.0 / e,
              "train_acc": 0.5, "val_loss": 2.1 / e, "val_acc": (acc or 0) * e / done,
              "lr": 0.1 / e, "elapsed_s": 1.5 * e} for e in range(1, done + 1)]
    if with_metrics:
        steps = [{"kind": "step", "step": s, "epoch": s / 10, "loss": 2.5 - s / 10,
                  "lr": 0.01 * s, "images_per_s": 100.0, "elapsed_s": 0.15 * s}
                 for s in range(1, done * 10 + 1)]
        paths.metrics.write_text("".join(json.dumps(r) + "\n" for r in steps + curve))
    fields: dict[str, Any] = {
        "state": state, "message": f"{state} (synthetic)", "created": 1_700_000_000 + n,
        "device": "cpu", "dataset": train.dataset, "arch_name": cfg.short_name(),
        "epochs": train.epochs, "epoch": done, "best_val_acc": acc,
        "best_epoch": done if acc is not None else 0, "arch": cfg.to_dict(),
        "best_model": None, "last_model": None}
    if curve and state == COMPLETED:
        fields.update(final=curve[-1], elapsed_s=curve[-1]["elapsed_s"],
                      train_loss=curve[-1]["train_loss"], finished=time.time())
    fields.update(status)
    write_status(paths, durable=False, **fields)
    return paths
