"""The training loop of one process (or one torchrun rank); no files, no run directory.

`Trainer` owns the model, optimizer and in-memory data on the device and runs
epochs. Everything around it (status, metrics files, saving models, what a
failure means) is job.py's job and reaches the loop only through
`Callbacks`, so the loop can be benchmarked and tested on its own.

Per step the host does no synchronising work on an accelerator: losses and
accuracies accumulate on the device and are read only at log points (about
once a second), which is also where a NaN/inf loss is detected. How the run
uses its device (autocast, layout, data placement, torch.compile) is decided in
execution.py.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn
from torch.utils.data import DistributedSampler

from ..arch.config import ArchConfig
from ..arch.model import build_model
from ..common.errors import DataError, RunError
from ..datasets.loading import ImageData
from ..datasets.transforms import BatchTransform
from .config import TrainConfig
from .dist import Dist
from .execution import (COMPILE_BACKEND, LOG, Compiler, autocast_dtype, compile_wanted,
                        configure_backends, holds_data_on_device, use_channels_last)

__all__ = ["Trainer", "Callbacks", "Diverged", "Cancelled", "FitResult", "CHECKPOINT_FORMAT",
           "autocast_dtype", "use_channels_last"]

CHECKPOINT_FORMAT = "resnet-explorer-checkpoint/1"
LOG_INTERVAL_S = 1.0


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


class Cancelled(Exception):
    """A person asked the run to stop."""


class Callbacks(Protocol):  # called on rank 0 only
    def should_stop(self) -> str | None: ...  # None, "cancel" or "time"
    def on_step(self, record: dict[str, Any]) -> None: ...
    def on_epoch(self, record: dict[str, Any], trainer: Trainer) -> None: ...
    def log(self, message: str) -> None: ...  # a line for the run's log


@dataclass
class FitResult:
    last_epoch: dict[str, Any] | None
    stopped_by: str | None  # "time" when the time budget ended the run early


class Trainer:
    def __init__(self, arch: ArchConfig, cfg: TrainConfig, data: ImageData, device: torch.device,
                 dist: Dist | None = None, *, compile_backend: str = COMPILE_BACKEND):
        self.arch, self.cfg, self.device = arch, cfg, device
        self.dist = dist or Dist()
        self.class_names, self.preprocess = data.class_names, data.preprocess
        torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts)
        self.channels_last = use_channels_last(cfg, device)
        model = build_model(arch).to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model: nn.Module = model  # the plain network: state dicts, checkpoints, models
        self.net: nn.Module = self.dist.wrap(model, device)  # DDP wrapper or the model itself
        self.optimizer = make_optimizer(model, cfg)
        self.amp_dtype = autocast_dtype(cfg, device)
        configure_backends(device)
        # Lines for the run's log: the logging module until fit() is given the run's callbacks.
        self.log: Callable[[str], None] = LOG.warning
        # DDP is compiled around (torch's advice: its graph then breaks at bucket boundaries);
        # evaluation runs on rank 0 alone, on the plain model.
        self.compiler = Compiler(compile_wanted(cfg, device), compile_backend,
                                 note=lambda line: self.log(line))
        self.train_net = self.compiler.wrap(self.net, "training")
        self.eval_net = self.compiler.wrap(self.model, "evaluation")
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
        self.data = data.to(device) if holds_data_on_device(data.nbytes, device, free) else data
        self.transform = BatchTransform(data.preprocess, data.augment if cfg.augment else None,
                                        device, self.channels_last)
        self.eval_transform = BatchTransform(data.preprocess, None, device, self.channels_last)
        n_rank = len(data.train_y) // self.dist.world
        self.batch = min(max(2, cfg.batch_size // self.dist.world), n_rank)
        if self.batch < 2:
            raise DataError(f"only {len(data.train_y)} training images: too few for "
                            f"{self.dist.world} process(es)")
        self.steps_per_epoch = n_rank // self.batch
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimizer steps
        self.best_val_acc: float | None = None
        self.best_epoch = 0
        self.last_record: dict[str, Any] | None = None  # the latest epoch record (checkpointed)
        self.elapsed_before = 0.0  # wall time of earlier sessions (resume)
        self._session_start = time.monotonic()

    # ----- the loop --------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self._session_start

    def fit(self, callbacks: Callbacks | None = None) -> FitResult:
        # Restored from the final epoch's checkpoint (the run died after it, e.g. while saving
        # the last model): nothing is left to train; report the epoch the checkpoint recorded.
        last, stopped = self.last_record if self.epoch >= self.cfg.epochs else None, None
        self._log_to(callbacks)
        while self.epoch < self.cfg.epochs and stopped is None:
            stats, stopped = self.train_epoch(callbacks)
            self.epoch += 1
            final = self.epoch == self.cfg.epochs or stopped is not None
            if self.cfg.validate_every_epoch or final:
                val_loss, val_acc = self.evaluate()
                stats.update(val_loss=val_loss, val_acc=val_acc)
                if self.best_val_acc is None or val_acc > self.best_val_acc:
                    self.best_val_acc, self.best_epoch = val_acc, self.epoch
            # A time-budget stop mid-epoch records the fraction trained, not a whole epoch.
            done = self.epoch if stopped is None else self.step / self.steps_per_epoch
            stats.update(kind="epoch", epoch=done, step=self.step, elapsed_s=self.elapsed,
                         best_val_acc=self.best_val_acc, best_epoch=self.best_epoch)
            self.last_record = last = stats
            if callbacks is not None and self.dist.is_main:
                callbacks.on_epoch(stats, self)
        return FitResult(last, stopped)

    def train_epoch(self, callbacks: Callbacks | None = None) -> tuple[dict[str, Any], str | None]:
        """One pass over this rank's shard; returns epoch statistics and why it stopped early."""
        cfg, epoch = self.cfg, self.epoch
        self._log_to(callbacks)
        self.net.train()
        # Seeds derived from (seed, epoch, rank): a resumed run replays the same data order,
        # augmentation and dropout as an uninterrupted one.
        torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + self.dist.rank)
        gen = _generator(self.device, cfg.seed * 7919 + epoch * 104_729 + self.dist.rank)
        order = self._order(epoch)
        # Interval sums stay on the device (no per-step sync); `seen` is known on the host.
        loss_acc = torch.zeros((), dtype=torch.float64, device=self.device)
        correct_acc = torch.zeros((), dtype=torch.float64, device=self.device)
        seen_acc = 0
        epoch_loss = epoch_correct = epoch_seen = 0.0
        t_epoch = t_log = time.monotonic()
        stopped = None
        for b in range(self.steps_per_epoch):
            idx = order[b * self.batch:(b + 1) * self.batch]
            lr = cfg.lr_at(self.step, self.steps_per_epoch)
            loss, correct = self._step(idx, lr, gen)
            n = idx.numel()
            loss_acc.add_(loss, alpha=n)  # one kernel; summed in float64
            correct_acc += correct
            seen_acc += n
            self.step += 1
            reason = callbacks.should_stop() if callbacks is not None and self.dist.is_main else None
            now = time.monotonic()
            log_now = b == self.steps_per_epoch - 1 or now - t_log >= LOG_INTERVAL_S
            stop_code, log_now = self.dist.agree([_STOP_CODES[reason], int(log_now)])
            if stop_code == _STOP_CODES["cancel"]:
                raise Cancelled()
            if log_now or stop_code:
                interval = torch.stack([loss_acc, correct_acc, loss_acc.new_tensor(seen_acc)])
                loss_sum, corr, seen = self.dist.sum(interval).tolist()
                loss_acc.zero_()
                correct_acc.zero_()
                seen_acc = 0
                if not math.isfinite(loss_sum):
                    raise Diverged(f"the training loss became {loss_sum / max(seen, 1)} at step "
                                   f"{self.step} (epoch {epoch + 1}); try a lower learning rate")
                now = time.monotonic()
                epoch_loss, epoch_correct, epoch_seen = (epoch_loss + loss_sum, epoch_correct + corr,
                                                         epoch_seen + seen)
                record = {"kind": "step", "step": self.step,
                          "epoch": epoch + (b + 1) / self.steps_per_epoch,
                          "loss": loss_sum / seen, "lr": lr,
                          "images_per_s": seen / max(now - t_log, 1e-9), "elapsed_s": self.elapsed}
                t_log = now
                if callbacks is not None and self.dist.is_main:
                    callbacks.on_step(record)
            if stop_code:
                stopped = "time"
                break
        seconds = time.monotonic() - t_epoch
        return ({"train_loss": epoch_loss / max(epoch_seen, 1), "train_acc": epoch_correct / max(epoch_seen, 1),
                 "lr": cfg.lr_at(max(self.step - 1, 0), self.steps_per_epoch), "epoch_s": seconds,
                 "images_per_s": epoch_seen / max(seconds, 1e-9)}, stopped)

    def _step(self, idx: torch.Tensor, lr: float, gen: torch.Generator | None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; (loss, correct predictions) as device tensors (no sync)."""
        x = self.data.train_x[idx].to(self.device, non_blocking=True)
        y = self.data.train_y[idx].to(self.device, non_blocking=True)
        x = self.transform.train(x, gen)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, logits = self.train_net.run(self._forward_backward, x, y)
        self.optimizer.step()
        return loss, (logits.argmax(1) == y).sum()

    def _forward_backward(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        # Gradients cleared first: a compile failure in backward repeats this eagerly.
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            logits = net(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        loss.backward()
        return loss.detach(), logits.detach()

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Validation loss and accuracy, computed on rank 0 and shared with every rank."""
        loss = acc = 0.0
        if self.dist.is_main:
            loss, acc = evaluate_split(self.model, self.eval_transform, self.data.val_x,
                                       self.data.val_y, self.batch * 2, self.device,
                                       self._autocast, forward=self._eval_forward)
        loss, acc = self.dist.agree([loss, acc], dtype=torch.float64)
        if not math.isfinite(loss):
            raise Diverged(f"the validation loss became {loss} after epoch {self.epoch}")
        return loss, acc

    def _eval_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_net.run(lambda net, batch: net(batch), x)

    def _log_to(self, callbacks: Callbacks | None) -> None:
        if callbacks is not None and self.dist.is_main:
            self.log = callbacks.log

    def _order(self, epoch: int) -> torch.Tensor:
        # DistributedSampler only needs len(); with one process it is a seeded shuffle.
        sampler = DistributedSampler(range(len(self.data.train_y)), num_replicas=self.dist.world,
                                     rank=self.dist.rank, shuffle=True, seed=self.cfg.seed,
                                     drop_last=True)
        sampler.set_epoch(epoch)
        return torch.tensor(list(sampler), dtype=torch.int64, device=self.data.train_y.device)

    def _autocast(self) -> ContextManager[Any]:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ----- checkpoints -------------------------------------------------------------------
    def checkpoint_bytes(self) -> bytes:
        """Model + optimizer + progress in one safetensors file (one atomic write)."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous().clone()
                   for k, v in self.model.state_dict().items()}
        opt = self.optimizer.state_dict()
        scalars: dict[str, Any] = {}
        for pid, entries in opt["state"].items():
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous().clone()
                else:
                    scalars[f"{pid}.{key}"] = value
        progress = {"epoch": self.epoch, "step": self.step, "best_val_acc": self.best_val_acc,
                    "best_epoch": self.best_epoch, "elapsed_s": self.elapsed,
                    "last_epoch": self.last_record, "param_groups": opt["param_groups"],
                    "optim_scalars": scalars}
        return save_safetensors(tensors, metadata={"format": CHECKPOINT_FORMAT,
                                                   "progress": json.dumps(progress)})

    def restore(self, payload: bytes) -> None:
        meta = _metadata(payload)
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise RunError("the run's checkpoint was not written by this program's trainer; "
                           "start a new run instead of resuming this one")
        tensors = load_safetensors(payload)
        progress = json.loads(meta["progress"])
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value.to(self.device)
        for key, value in progress["optim_scalars"].items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = value
        self.optimizer.load_state_dict({"state": state, "param_groups": progress["param_groups"]})
        self.epoch, self.step = progress["epoch"], progress["step"]
        self.best_val_acc, self.best_epoch = progress["best_val_acc"], progress["best_epoch"]
        self.elapsed_before = progress["elapsed_s"]
        self.last_record = progress.get("last_epoch")  # absent in checkpoints of older versions
        self._session_start = time.monotonic()


_STOP_CODES = {None: 0, "cancel": 1, "time": 2}


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on norm scales/shifts and biases (1-D tensors): decaying them only
    # fights the normalisation (Goyal et al. 2017, "no bias decay").
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def evaluate_split(model: nn.Module, transform: BatchTransform, x_all: torch.Tensor,
                   y_all: torch.Tensor, batch: int, device: torch.device,
                   autocast: Callable[[], ContextManager[Any]] = nullcontext, *,
                   forward: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> tuple[float, float]:
    """Mean cross-entropy (no smoothing) and accuracy of `model` over a whole split.

    `forward` (the compiled model) runs the full batches; the shorter last batch runs on
    `model` itself, so a compiled graph sees one input shape and is never recompiled."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with torch.no_grad():
        for start in range(0, len(y_all), batch):
            x = transform.eval(x_all[start:start + batch].to(device, non_blocking=True))
            y = y_all[start:start + batch].to(device, non_blocking=True)
            with autocast():
                logits = model(x) if forward is None or len(y) < batch else forward(x)
            loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = max(len(y_all), 1)
    return float(loss) / n, float(correct) / n


def _generator(device: torch.device, seed: int) -> torch.Generator | None:
    try:
        gen = torch.Generator(device=device)
    except RuntimeError:  # a backend without device generators: use the global RNG
        return None
    return gen.manual_seed(seed)


def _metadata(payload: bytes) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then the JSON header.
    size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8:8 + size])
    return header.get("__metadata__", {})
