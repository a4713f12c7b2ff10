"""One training run, start to finish: `python -m resnet_explorer.train`.

    python -m resnet_explorer.train --arch arch.json --train train.json --run-dir runs/<id>
    torchrun --nproc_per_node=2 -m resnet_explorer.train --arch ... --train ... --run-dir ...

The run directory is the whole interface to the dashboard: configs, status.json
(state + human message + progress), metrics.jsonl (per logged step and per
epoch), log.txt and the resumable checkpoint. Models go to the weights store:
<run>-best after each epoch that improves on the best validation accuracy, and
<run>-last at the end only with keep_last. When the run ends, a model below
keep_min_acc is removed (or never written), and status.json says which models
were kept and why not. Only rank 0 writes anything. Every way a run can end is
mapped to one state here, with a message that says what to do next.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..arch.config import ArchConfig
from ..common.devices import resolve_device
from ..common.errors import RunError, UserError
from ..common.fileio import TMP_SUFFIX, append_line, atomic_write_bytes, atomic_write_text
from ..datasets.loading import load_dataset
from ..models import store
from ..models.card import BEST, LAST
from ..runs.layout import (CANCELLED, COMPLETED, DIVERGED, FAILED, INTERRUPTED, RUNNING, RunPaths,
                           read_jsonl, try_lock, write_status)
from .config import TrainConfig
from .dist import Dist
from .loop import Cancelled, Diverged, Trainer

__all__ = ["run_training", "main", "model_names", "is_out_of_memory"]


def model_names(run_id: str) -> tuple[str, str]:
    """(best, last) model names in the store for a run."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip(".-")[:70] or "run"
    return f"{stem}-best", f"{stem}-last"


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class RunLog:
    """Timestamped lines into log.txt (and stdout unless the supervisor already captures it)."""

    def __init__(self, paths: RunPaths, enabled: bool, echo: bool):
        self.paths, self.enabled, self.echo = paths, enabled, echo

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        append_line(self.paths.log, line)
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
        kept, notes = [], []
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
            if final is not None:  # its card shows how the run ended
                store.update_metrics(best, {"last_epoch": final.get("epoch"),
                                            "last_val_acc": final.get("val_acc")}, self.weights_dir)
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
                "store_note": "; ".join(notes)}


def run_training(arch: ArchConfig, cfg: TrainConfig, run_dir: Path, *, weights_dir: Path | None = None,
                 data_root: Path | None = None, resume: bool = False, echo: bool = True,
                 lock_held: bool = False) -> dict[str, Any]:
    """Train; return the final status (also in status.json). Raises only for a programming error."""
    paths = RunPaths(Path(run_dir))
    device = resolve_device(cfg.device)
    dist = Dist.from_env(device)
    device = dist.device_for(device)
    main = dist.is_main
    log = RunLog(paths, enabled=main, echo=echo)
    lock_fd = None
    if main:
        paths.dir.mkdir(parents=True, exist_ok=True)
        if not lock_held:
            lock_fd = try_lock(paths.lock)
            if lock_fd is None:
                raise RunError(f"another process is already training in {paths.dir}")
        _remove_stale_temps(paths)
        atomic_write_text(paths.arch, arch.to_json())
        atomic_write_text(paths.train, cfg.to_json())
        write_status(paths, state=RUNNING, pid=os.getpid(), host=socket.gethostname(),
                     started=time.time(), device=str(device), world_size=dist.world,
                     epochs=cfg.epochs, message="loading data")
    trainer: Trainer | None = None
    recorder: RunRecorder | None = None
    try:
        trainer = _prepare(arch, cfg, paths, device, dist, data_root, resume, log)
        if main:
            write_status(paths, total_steps=trainer.total_steps, arch=trainer.arch.to_dict(),
                         arch_name=trainer.arch.short_name(),  # sized to the data now
                         message=f"training: {trainer.epoch} of {cfg.epochs} epochs done")
        recorder = RunRecorder(paths, cfg, weights_dir, log, trainer) if main else None
        if trainer.epoch >= cfg.epochs:
            log(f"the checkpoint is from after the final epoch ({trainer.epoch}): nothing left to "
                "train, saving the last model from it")
        result = trainer.fit(recorder)
        in_sync = dist.params_in_sync(trainer.model)
        if not in_sync:
            raise RuntimeError("the processes ended with different parameters (DDP out of sync)")
        if recorder is None:  # not rank 0: rank 0 saves and reports
            return {"state": COMPLETED}
        final = result.last_epoch or _final_record(paths, trainer)
        kept = recorder.keep_models(trainer, final)
        if result.stopped_by == "time":
            done = f"{final['epoch']:.2f} of {cfg.epochs} epochs (stopped by the time budget)"
        else:
            done = f"{trainer.epoch} epochs"
        best = (f"{trainer.best_val_acc:.2%} (epoch {trainer.best_epoch})"
                if trainer.best_val_acc is not None else "not measured")
        return _finish(paths, log, COMPLETED, f"{done}, best validation accuracy {best}; "
                       f"{kept['store_note']}", ranks_in_sync=in_sync, elapsed_s=trainer.elapsed,
                       final=final, **kept)
    except Cancelled:
        done = f" after {trainer.epoch} epoch(s)" if trainer else ""
        return _finish_early(paths, log, CANCELLED, f"cancelled{done}", main, recorder, trainer)
    except Diverged as exc:
        return _finish_early(paths, log, DIVERGED, f"diverged: {exc}", main, recorder, trainer)
    except UserError as exc:
        return _finish_early(paths, log, FAILED, str(exc), main, recorder, trainer)
    except Exception as exc:
        log(traceback.format_exc().rstrip())
        if is_out_of_memory(exc):
            batch = cfg.batch_size
            message = (f"ran out of {device.type.upper()} memory at batch size {batch}: try a "
                       f"smaller batch (e.g. {max(2, batch // 2)}), a smaller image size or a "
                       "narrower network")
        else:
            message = f"failed: {type(exc).__name__}: {exc}"
        return _finish_early(paths, log, FAILED, message, main, recorder, trainer)
    except BaseException:  # KeyboardInterrupt/SystemExit: the process is being stopped
        _finish(paths, log, INTERRUPTED, "interrupted; resume continues from the last checkpoint",
                main=main)
        raise
    finally:
        dist.close()
        if lock_fd is not None:
            os.close(lock_fd)


def _prepare(arch: ArchConfig, cfg: TrainConfig, paths: RunPaths, device: torch.device, dist: Dist,
             data_root: Path | None, resume: bool, log: RunLog) -> Trainer:
    log(f"run {paths.run_id}: {arch.short_name()}, dataset {cfg.dataset}, device {device}"
        + (f", {dist.world} processes" if dist.world > 1 else ""))
    if not dist.is_main:
        dist.barrier()  # rank 0 downloads first
    data = load_dataset(cfg.dataset, channels=arch.in_channels, image_size=cfg.image_size,
                        data_path=cfg.data_path, val_fraction=cfg.val_fraction,
                        train_limit=cfg.train_limit, val_limit=cfg.val_limit, root=data_root)
    if dist.is_main:
        dist.barrier()
    log(data.describe())
    for note in data.notes:
        log(note)
    if arch.num_classes != len(data.class_names):
        log(f"output layer set to {len(data.class_names)} classes (the architecture had "
            f"{arch.num_classes})")
        arch = replace(arch, num_classes=len(data.class_names)).check()
    trainer = Trainer(arch, cfg, data, device, dist)
    if resume and paths.checkpoint.exists():
        trainer.restore(paths.checkpoint.read_bytes())
        log(f"resumed from the checkpoint after epoch {trainer.epoch} (step {trainer.step})")
    elif resume:
        log("no checkpoint yet: starting from the beginning")
    if resume and dist.is_main:
        # Always, also without a checkpoint (step 0 clears them): else the replayed steps are
        # logged twice and the curves jump back.
        _truncate_metrics(paths, trainer.step)
    return trainer


def _truncate_metrics(paths: RunPaths, step: int) -> None:
    """Drop records logged after the checkpoint: the resumed run logs those steps again."""
    kept = [r for r in read_jsonl(paths.metrics) if r.get("step", 0) <= step]
    atomic_write_text(paths.metrics, "".join(json.dumps(r) + "\n" for r in kept))


def _final_record(paths: RunPaths, trainer: Trainer) -> dict[str, Any]:
    """The final epoch's record for a run restored after its last epoch whose checkpoint
    predates `last_epoch` in its progress: from metrics.jsonl, else the bare progress."""
    epochs = [r for r in read_jsonl(paths.metrics) if r.get("kind") == "epoch"]
    if epochs and epochs[-1].get("step") == trainer.step:
        return epochs[-1]
    return {"kind": "epoch", "epoch": trainer.epoch, "step": trainer.step,
            "elapsed_s": trainer.elapsed, "best_val_acc": trainer.best_val_acc,
            "best_epoch": trainer.best_epoch}


def _finish_early(paths: RunPaths, log: RunLog, state: str, message: str, main: bool,
                  recorder: RunRecorder | None, trainer: Trainer | None) -> dict[str, Any]:
    """A run that stopped before completing: the store rules for what it saved so far (none
    when it stopped before its first epoch), then its final status."""
    if recorder is None or trainer is None:  # not rank 0, or it never started training
        return _finish(paths, log, state, message, main=main)
    try:
        kept = recorder.keep_models(trainer, None)
    except (OSError, UserError) as exc:  # the store refuses (a full disk may be why it failed)
        log(traceback.format_exc().rstrip())
        kept = {"store_note": f"the model store could not be tidied: {exc}"}
    return _finish(paths, log, state, f"{message}; {kept['store_note']}", main=main, **kept)


def _finish(paths: RunPaths, log: RunLog, state: str, message: str, main: bool = True,
            **extra: Any) -> dict[str, Any]:
    if not main:
        return {"state": state, "message": message}
    log(f"{state}: {message}")
    status = write_status(paths, state=state, message=message, finished=time.time(), eta_s=0,
                          **extra)
    _remove_stale_temps(paths)
    return status


def _remove_stale_temps(paths: RunPaths) -> None:
    """Delete what atomic writes of this run folder left when a process was killed mid-write
    (a half-written checkpoint of ResNet34 is 175 MB). Called holding the run's lock, when no
    write of this run is in flight, so every such file there is a leftover."""
    try:
        entries = list(os.scandir(paths.dir))
    except OSError:
        return
    for entry in entries:
        if entry.name.endswith(TMP_SUFFIX) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except OSError:
                pass  # gone already, or not ours to delete: never fail the run for it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resnet_explorer.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True, type=Path, help="ArchConfig JSON file")
    parser.add_argument("--train", required=True, type=Path, help="TrainConfig JSON file")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--weights-dir", type=Path, default=None, help="default: weights/ in the home")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: data/ in the home")
    parser.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    parser.add_argument("--quiet", action="store_true", help="log only to the run's log.txt")
    parser.add_argument("--lock-held", action="store_true", help=argparse.SUPPRESS)  # supervisor
    args = parser.parse_args(argv)
    try:
        arch = ArchConfig.from_json(args.arch.read_bytes())
        cfg = TrainConfig.from_json(args.train.read_bytes())
        status = run_training(arch, cfg, args.run_dir, weights_dir=args.weights_dir,
                              data_root=args.data_dir, resume=args.resume, echo=not args.quiet,
                              lock_held=args.lock_held)
    except (OSError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if status.get("state") in (COMPLETED, CANCELLED) else 1


