"""What a run records while it trains, on rank 0: log lines, metrics, status and the models it
keeps in the store (job.py maps how the run ends; this file is what it writes on the way)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import torch

from ..common.fileio import append_line, atomic_write_bytes
from ..models import store
from ..models.card import BEST, LAST
from ..runs.layout import RunPaths, write_status
from .config import TrainConfig
from .loop import Trainer
from .verdict import NOT_LEARNED_ADVICE, chance_warning

__all__ = ["RunLog", "RunRecorder", "model_names"]


def model_names(run_id: str) -> tuple[str, str]:
    """(best, last) model names in the store for a run."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip(".-")[:70] or "run"
    return f"{stem}-best", f"{stem}-last"


class RunLog:
    """Timestamped lines into log.txt (and stdout unless the supervisor already captures it)."""

    def __init__(self, paths: RunPaths, enabled: bool, echo: bool):
        self.paths, self.enabled, self.echo = paths, enabled, echo

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        try:
            append_line(self.paths.log, line)
        except OSError:  # e.g. a full disk: the run's next write fails and reports it; a lost
            pass  # log line must not stop the run from recording how it ended
        if self.echo:
            print(line, flush=True)


class RunRecorder:
    """Trainer callbacks on rank 0: metrics, status, model files, cancel and time budget."""

    def __init__(self, paths: RunPaths, cfg: TrainConfig, weights_dir: Path | None, log: RunLog,
                 trainer: Trainer):
        self.paths, self.cfg, self.weights_dir, self.log = paths, cfg, weights_dir, log
        self.best_name, self.last_name = model_names(paths.run_id)
        self.start_step, self.start_time = trainer.step, time.monotonic()
        self.total_steps = trainer.total_steps

    def should_stop(self) -> str | None:
        if self.paths.cancel.exists():
            return "cancel"
        if self.cfg.time_budget_s and time.monotonic() - self.start_time >= self.cfg.time_budget_s:
            return "time"
        return None

    def on_step(self, record: dict[str, Any]) -> None:
        append_line(self.paths.metrics, json.dumps(record))
        done = record["step"] - self.start_step
        rate = done / max(time.monotonic() - self.start_time, 1e-9)
        eta = (self.total_steps - record["step"]) / rate if rate > 0 else None
        write_status(self.paths, durable=False, step=record["step"], epoch=record["epoch"],
                     loss=record["loss"], images_per_s=record["images_per_s"], eta_s=eta,
                     message=f"training: epoch {record['epoch']:.2f} of {self.cfg.epochs}")

    def on_epoch(self, record: dict[str, Any], trainer: Trainer) -> None:
        append_line(self.paths.metrics, json.dumps(record))
        parts = [f"epoch {record['epoch']}/{self.cfg.epochs}",
                 f"train loss {record['train_loss']:.4f} acc {record['train_acc']:.2%}"]
        if "val_acc" in record:
            parts.append(f"val loss {record['val_loss']:.4f} acc {record['val_acc']:.2%}")
        parts.append(f"{record['images_per_s']:.0f} img/s")
        self.log(", ".join(parts))
        # Best model before the checkpoint: a kill between the two replays this epoch on
        # resume, which re-saves the same best model.
        if "val_acc" in record and trainer.best_epoch == trainer.epoch:
            self.save(trainer, self.best_name, record, BEST)
        atomic_write_bytes(self.paths.checkpoint, trainer.checkpoint_bytes())
        write_status(self.paths, durable=False, best_val_acc=trainer.best_val_acc,
                     best_epoch=trainer.best_epoch, epoch=record["epoch"], step=record["step"],
                     best_model=self.best_name if trainer.best_epoch else None,
                     train_loss=record["train_loss"], elapsed_s=record["elapsed_s"])

    def save(self, trainer: Trainer, name: str, record: dict[str, Any], role: str) -> None:
        """Store the current weights as `name`; `role` (BEST or LAST) and the epoch's own
        figures go into the sidecar, so the model's card shows its own accuracy."""
        metrics = {k: record[k] for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                                          "images_per_s", "elapsed_s") if k in record}
        metrics.update(role=role, best_val_acc=trainer.best_val_acc, best_epoch=trainer.best_epoch,
                       dataset=self.cfg.dataset,
                       params=sum(p.numel() for p in trainer.model.parameters()))
        sidecar = {"arch": trainer.arch.to_dict(), "train": self.cfg.to_dict(),
                   "class_names": list(trainer.class_names), **trainer.preprocess.to_sidecar(),
                   "metrics": metrics, "run_id": self.paths.run_id, "source": "trained"}
        store.save_model(trainer.model, sidecar, name, self.weights_dir)
        self.log(f"saved model {name} (val acc {record.get('val_acc', float('nan')):.2%})")

    def keep_models(self, trainer: Trainer, final: dict[str, Any] | None) -> dict[str, Any]:
        """The store rules, applied when the run ends: the best model stays unless it is below
        keep_min_acc; the last is saved only with keep_last, for a run that finished (`final`:
        its last epoch's record; None for one that stopped early), and not below the minimum.
        Returns the status fields saying what was kept and why not."""
        floor, best_acc = self.cfg.keep_min_acc, trainer.best_val_acc
        best: str | None = self.best_name
        kept, notes, warning = [], [], ""  # warning: the status's, a sentence about `best`
        if best_acc is None:
            best = None
            notes.append("no model kept: the run ended before its first validated epoch")
        elif best_acc < floor:
            if store.model_files(best, self.weights_dir)[0].exists():
                store.delete_model(best, self.weights_dir)
            best = None
            notes.append(f"best model not kept: its validation accuracy {best_acc:.2%} is below "
                         f"the minimum of {floor:.2%}")
        elif not store.model_files(best, self.weights_dir)[0].exists():
            best = None
            notes.append("the best model is no longer in the store (deleted meanwhile)")
        else:
            kept.append(best)
            notes.append(f"kept {best} (best epoch {trainer.best_epoch}, validation accuracy "
                         f"{best_acc:.2%})")
            # Kept (the person may want to look at it), but never shown as a result unwarned.
            chance = chance_warning(best_acc, _val_counts(trainer))
            changes = {"warning": chance} if chance else {}  # for its card
            if chance:
                warning = f"{best} is {chance}; {NOT_LEARNED_ADVICE}"
                notes.append(warning)
            if final is not None:  # its card shows how the run ended
                changes.update(last_epoch=final.get("epoch"), last_val_acc=final.get("val_acc"))
            if changes:
                store.update_metrics(best, changes, self.weights_dir)
        last = None
        if self.cfg.keep_last:
            last_acc = final.get("val_acc") if final is not None else None
            if final is None:
                notes.append("no last model: the run did not complete")
            elif last_acc is not None and last_acc < floor:
                notes.append(f"last model not kept: its validation accuracy {last_acc:.2%} is "
                             f"below the minimum of {floor:.2%}")
            else:
                self.save(trainer, self.last_name, final, LAST)
                last = self.last_name
                kept.append(last)
                notes.append(f"kept {last} (the last epoch"
                             + (f", {last_acc:.2%})" if last_acc is not None else ")"))
        if not kept and best_acc is not None:
            notes.append("no model was kept")
        self.log("store: " + "; ".join(notes))
        return {"best_model": best, "last_model": last, "kept_models": kept,
                "store_note": "; ".join(notes), "warning": warning}


def _val_counts(trainer: Trainer) -> list[int]:
    """Validation images per class (what guessing the most common class scores)."""
    labels = trainer.data.val_y.cpu()
    return torch.bincount(labels, minlength=len(trainer.class_names)).tolist()
