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
from ..common.errors import ConfigError, DataError, RunError, UserError
from ..common.fileio import TMP_SUFFIX, atomic_write_text, is_disk_full, os_error_text
from ..datasets.loading import load_dataset
from ..models import store
from ..runs.layout import (CANCELLED, COMPLETED, DIVERGED, FAILED, FAILED_ON_CONFIG, FAILED_ON_DATA,
                           FAILED_OTHERWISE, INTERRUPTED, RUNNING, RunPaths, read_jsonl,
                           record_end, reserve_space, try_lock, write_status)
from .config import TrainConfig
from .dist import Dist
from .loop import Cancelled, Diverged, Trainer
from .recorder import RunLog, RunRecorder, model_names

__all__ = ["run_training", "main", "is_out_of_memory"]


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


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
    trainer: Trainer | None = None
    recorder: RunRecorder | None = None
    try:
        if main:  # in the try: a full disk here ends the run as failed, saying so
            reserve_space(paths)  # kept by the supervisor already, unless started without one
            _remove_stale_temps(paths.dir)
            _remove_stale_temps(*_model_files_of(paths, weights_dir))
            atomic_write_text(paths.arch, arch.to_json())
            atomic_write_text(paths.train, cfg.to_json())
            write_status(paths, state=RUNNING, pid=os.getpid(), host=socket.gethostname(),
                         started=time.time(), device=str(device), world_size=dist.world,
                         epochs=cfg.epochs, message="loading data")
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
    except Exception as exc:  # UserError included: its message is for the person already
        if not isinstance(exc, UserError):
            log(traceback.format_exc().rstrip())
        return _finish_early(paths, log, FAILED, _failure(exc, cfg, device), main, recorder,
                             trainer, failure=_failure_kind(exc))
    except BaseException:  # KeyboardInterrupt/SystemExit: the process is being stopped
        _finish(paths, log, INTERRUPTED, "interrupted; resume continues from the last checkpoint",
                main=main)
        raise
    finally:
        dist.close()
        if lock_fd is not None:
            os.close(lock_fd)


def _failure(exc: Exception, cfg: TrainConfig, device: torch.device) -> str:
    """What a run that failed with `exc` says, and what to do about it."""
    if is_disk_full(exc):
        full = os_error_text(exc) if isinstance(exc, OSError) else "the disk is full"
        return (f"{full}: free some space, then resume (the run continues from its last "
                "checkpoint)")
    if isinstance(exc, UserError):
        return str(exc)
    if is_out_of_memory(exc):
        batch = cfg.batch_size
        return (f"ran out of {device.type.upper()} memory at batch size {batch}: try a smaller "
                f"batch (e.g. {max(2, batch // 2)}), a smaller image size or a narrower network")
    return f"failed: {type(exc).__name__}: {exc}"


def _failure_kind(exc: Exception) -> str:
    """What the run failed on, for status.json: a resume cannot fix data or settings that were
    refused (layout.RESUME_CANNOT_FIX), so such a run is not offered one."""
    if is_disk_full(exc):  # also while fetching data: freeing space is the fix, then a resume
        return FAILED_OTHERWISE
    if isinstance(exc, DataError):
        return FAILED_ON_DATA
    if isinstance(exc, ConfigError):
        return FAILED_ON_CONFIG
    return FAILED_OTHERWISE


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
                  recorder: RunRecorder | None, trainer: Trainer | None,
                  **extra: Any) -> dict[str, Any]:
    """A run that stopped before completing: the store rules for what it saved so far (none
    when it stopped before its first epoch), then its final status (with `extra` fields)."""
    if recorder is None or trainer is None:  # not rank 0, or it never started training
        return _finish(paths, log, state, message, main=main, **extra)
    try:
        kept = recorder.keep_models(trainer, None)
    except (OSError, UserError) as exc:  # the store refuses (a full disk may be why it failed)
        log(traceback.format_exc().rstrip())
        kept = {"store_note": f"the model store could not be tidied: {exc}"}
    return _finish(paths, log, state, f"{message}; {kept['store_note']}", main=main, **kept,
                   **extra)


def _finish(paths: RunPaths, log: RunLog, state: str, message: str, main: bool = True,
            **extra: Any) -> dict[str, Any]:
    if not main:
        return {"state": state, "message": message}
    log(f"{state}: {message}")
    status = record_end(paths, state=state, message=message, finished=time.time(), eta_s=0,
                        **extra)
    _remove_stale_temps(paths.dir)
    return status


def _remove_stale_temps(folder: Path, targets: tuple[str, ...] = ()) -> None:
    """Delete what atomic writes left in `folder` when a process was killed mid-write (a
    half-written checkpoint of ResNet34 is 175 MB); with `targets`, only those of files of
    these names. Called holding the run's lock, when no write of this run is in flight, so
    every such file of the run is a leftover."""
    # atomic_write_bytes names its temporary file "." + the target's name + "." + random.
    prefixes = tuple(f".{name}." for name in targets) or ("",)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.name.endswith(TMP_SUFFIX) and entry.name.startswith(prefixes) \
                and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except OSError:
                pass  # gone already, or not ours to delete: never fail the run for it


def _model_files_of(paths: RunPaths, weights_dir: Path | None) -> tuple[Path, tuple[str, ...]]:
    """The store folder and the names of the files this run's models have there."""
    files = [path for name in model_names(paths.run_id)
             for path in store.model_files(name, weights_dir)]
    return files[0].parent, tuple(path.name for path in files)


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


