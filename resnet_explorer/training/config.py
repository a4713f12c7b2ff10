"""TrainConfig: every knob of one training run, validated, JSON round-trippable.

It is saved as train.json in the run directory and copied into the sidecar of
every model the run produces, so a model file always says how it was made.
Parsing reuses config.dataclass_from_dict (strict types, no NaN, no unknown
keys), so architecture and training JSON obey the same rules.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..arch.config import ConfigError, dataclass_from_dict, parse_json_object

__all__ = ["TrainConfig", "QUICK", "DATASETS", "OPTIMIZERS", "SCHEDULES", "PRECISIONS",
           "CHANNELS_LAST", "DEVICES"]

# Kept here rather than imported so this module stays free of torch (the run
# launcher and queue use it); tests check these match data.SOURCES and devices.
DATASETS = ("digits", "mnist", "fashionmnist", "cifar10", "cifar100", "imagenette", "folder", "upload")
DEVICES = ("auto", "cuda", "mps", "cpu")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "step")
PRECISIONS = ("auto", "bf16", "fp32")  # auto: bf16 autocast on CUDA, fp32 elsewhere
CHANNELS_LAST = ("auto", "on", "off")  # auto: on for CUDA


@dataclass(frozen=True)
class TrainConfig:
    # data
    dataset: str = "digits"
    data_path: str = ""  # folder path ("folder") or upload name ("upload")
    image_size: int = 32
    val_fraction: float = 0.2  # for sources without their own validation split
    train_limit: int = 0  # use at most this many training images (0 = all)
    val_limit: int = 0
    augment: bool = True
    # optimisation
    epochs: int = 8
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup_epochs: float = 2.0
    step_every: int = 3  # "step" schedule: multiply by step_gamma every this many epochs
    step_gamma: float = 0.1
    label_smoothing: float = 0.1
    # execution
    precision: str = "auto"
    channels_last: str = "auto"
    seed: int = 0
    device: str = "auto"
    time_budget_s: float = 0.0  # stop (and keep the model) after this long; 0 = no limit
    validate_every_epoch: bool = True

    # ----- validation --------------------------------------------------------------------
    def validate(self) -> list[str]:
        p: list[str] = []

        def choice(name: str, allowed: tuple[str, ...]) -> None:
            if getattr(self, name) not in allowed:
                p.append(f"{name} must be one of {', '.join(allowed)} (got {getattr(self, name)!r})")

        def in_range(name: str, lo: float, hi: float) -> None:
            value = getattr(self, name)
            if not lo <= value <= hi:
                p.append(f"{name} must be between {lo} and {hi} (got {value})")

        choice("dataset", DATASETS)
        choice("optimizer", OPTIMIZERS)
        choice("schedule", SCHEDULES)
        choice("precision", PRECISIONS)
        choice("channels_last", CHANNELS_LAST)
        choice("device", DEVICES)
        if self.dataset in ("folder", "upload") and not self.data_path:
            p.append(f"dataset {self.dataset!r} needs data_path (the folder or upload name)")
        in_range("image_size", 8, 512)
        in_range("val_fraction", 0.05, 0.5)
        in_range("train_limit", 0, 10_000_000)
        in_range("val_limit", 0, 10_000_000)
        in_range("epochs", 1, 1000)
        in_range("batch_size", 2, 4096)  # batch norm needs two samples per batch
        in_range("momentum", 0.0, 0.999)
        in_range("weight_decay", 0.0, 1.0)
        in_range("warmup_epochs", 0.0, 1000.0)
        in_range("step_every", 1, 1000)
        in_range("step_gamma", 0.0001, 1.0)
        in_range("label_smoothing", 0.0, 0.5)
        in_range("seed", 0, 2**31 - 1)
        in_range("time_budget_s", 0.0, 7 * 24 * 3600.0)
        if not 0 < self.lr <= 10:
            p.append(f"lr must be above 0 and at most 10 (got {self.lr})")
        if self.warmup_epochs > self.epochs:
            p.append(f"warmup_epochs ({self.warmup_epochs}) cannot exceed epochs ({self.epochs})")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            p.append("nesterov needs the sgd optimizer with momentum above 0")
        return p

    def check(self) -> TrainConfig:
        problems = self.validate()
        if problems:
            raise ConfigError(problems)
        return self

    # ----- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        return dataclass_from_dict(cls, data, where="training config")

    @classmethod
    def from_json(cls, text: str | bytes) -> TrainConfig:
        return cls.from_dict(parse_json_object(text))

    def updated(self, **changes: Any) -> TrainConfig:
        """A copy with `changes`, checked (for the page's form)."""
        return replace(self, **changes).check()

    # ----- learning-rate schedule -------------------------------------------------------------
    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate for optimizer step `step` (0-based); a pure function so resume is exact."""
        total = max(1, self.epochs * steps_per_epoch)
        warm = min(total, round(self.warmup_epochs * steps_per_epoch))
        step = min(max(step, 0), total - 1)
        if self.schedule == "onecycle":
            # Smith & Topin's one-cycle as torch's OneCycleLR: lr/25 up to lr, then a
            # cosine down to lr/25e4 (momentum is not cycled).
            start, end = self.lr / 25, self.lr / 25e4
            if step < warm:
                return start + (self.lr - start) * step / warm
            return end + (self.lr - end) * _cosine_fraction(step - warm, total - warm)
        if step < warm:  # linear warm-up for cosine and step
            return self.lr * (step + 1) / warm
        if self.schedule == "cosine":
            return self.lr * _cosine_fraction(step - warm, total - warm)
        return self.lr * self.step_gamma ** (step // steps_per_epoch // self.step_every)


def _cosine_fraction(done: int, span: int) -> float:
    """1 → 0 along half a cosine over `span` steps."""
    return 0.5 * (1 + math.cos(math.pi * done / max(1, span)))


# The defaults are the quick recipe: full-width ResNet34 ≥ 97% on digits after 6 of 8 epochs,
# 0.5–1.5 min on 2 CPU cores (bench/train.py measures it).
QUICK = TrainConfig()
