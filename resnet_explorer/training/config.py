"""TrainConfig: every knob of one training run, validated, JSON round-trippable.

It is saved as train.json in the run directory and copied into the sidecar of
every model the run produces, so a model file always says how it was made.
Each field is declared once with its label and bounds (`setting`): validation and the
Train page's form both read that declaration. Checking and JSON come from
common.schema's ConfigBase, so architecture and training JSON obey the same rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ..common.devices import DEVICE_CHOICES
from ..common.schema import ConfigBase, setting
from ..datasets.catalogue import SOURCES
from ..models.card import MAX_MODEL_SIDE

__all__ = ["TrainConfig", "QUICK", "OPTIMIZERS", "SCHEDULES", "PRECISIONS", "CHANNELS_LAST",
           "COMPILE", "AUTO_WARMUP_SHARE", "AUTO_WARMUP_MAX", "auto_warmup"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "step")
PRECISIONS = ("auto", "bf16", "fp32")  # auto: bf16 autocast on CUDA, fp32 elsewhere
CHANNELS_LAST = ("auto", "on", "off")  # auto: on for CUDA
COMPILE = ("auto", "on", "off")  # auto: on for CUDA
# The auto warm-up (warmup_epochs None): a share of the run, capped. Two of eight epochs is
# what the quick recipe was tuned with; a 1-epoch run warms up for a quarter of it instead of
# ending at chance with the whole run spent climbing to the peak rate.
AUTO_WARMUP_SHARE, AUTO_WARMUP_MAX = 0.25, 2.0


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    WHERE: ClassVar[str] = "training config"
    # data
    dataset: str = setting("digits", "Dataset", choices=SOURCES)
    data_path: str = setting("", "Folder or upload",
                             help="the folder (dataset 'folder') or upload name ('upload')")
    # 72 px: the smallest size at which ResNet34's last stage is 3×3, not 1×1, so Grad-CAM
    # of the quick recipe's model shows where it looks (the Train page says the size).
    image_size: int = setting(72, "Image size (px)", 8, MAX_MODEL_SIDE)
    val_fraction: float = setting(0.2, "Validation fraction", 0.05, 0.5, step=0.05,
                                  help="for sources without their own validation split")
    train_limit: int = setting(0, "Max training images (0 = all)", 0, 10_000_000)
    val_limit: int = setting(0, "Max validation images (0 = all)", 0, 10_000_000)
    augment: bool = setting(True, "Augmentation")
    # optimisation
    epochs: int = setting(8, "Epochs", 1, 1000)
    batch_size: int = setting(64, "Batch size", 2, 4096,  # batch norm needs two samples
                              help="images per optimizer step (split over the processes)")
    optimizer: str = setting("sgd", "Optimizer", choices=OPTIMIZERS)
    lr: float = setting(0.05, "Learning rate", 1e-6, 10.0, format="%.5f",
                        help="peak learning rate (after warm-up)")
    momentum: float = setting(0.9, "Momentum (SGD)", 0.0, 0.999)
    nesterov: bool = setting(True, "Nesterov (SGD)", help="needs SGD with momentum above 0")
    weight_decay: float = setting(5e-4, "Weight decay", 0.0, 1.0, format="%.5f",
                                  help="not applied to norm parameters and biases")
    schedule: str = setting("onecycle", "Schedule", choices=SCHEDULES)
    warmup_epochs: float | None = setting(
        None, "Warm-up epochs", 0.0, 1000.0, step=0.5,
        help=f"empty (null in JSON) = auto: {AUTO_WARMUP_SHARE:.0%} of the epochs, at most "
             f"{AUTO_WARMUP_MAX:g}, so a short run is never all warm-up")
    step_every: int = setting(3, "Step every (epochs)", 1, 1000,
                              help="'step' schedule: multiply the rate by the factor this often")
    step_gamma: float = setting(0.1, "Step factor", 0.0001, 1.0)
    label_smoothing: float = setting(0.1, "Label smoothing", 0.0, 0.5)
    # execution
    precision: str = setting("auto", "Precision", choices=PRECISIONS,
                             help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    channels_last: str = setting("auto", "Channels-last", choices=CHANNELS_LAST,
                                 help="memory layout; auto: on for CUDA")
    compile: str = setting("auto", "Compile", choices=COMPILE,
                           help="torch.compile, eager if it fails; auto: on for CUDA (on the "
                                "CPU compiling takes longer than it saves on short runs)")
    seed: int = setting(0, "Seed", 0, 2**31 - 1)
    device: str = setting("auto", "Device", choices=DEVICE_CHOICES,
                          help="auto: CUDA if there is a GPU, then Apple MPS, then the CPU")
    time_budget_s: float = setting(0.0, "Time budget (s, 0 = none)", 0.0, 7 * 24 * 3600.0,
                                   help="stop after this long and keep the model")
    validate_every_epoch: bool = setting(True, "Validate every epoch")
    # the model store (training/job.py applies the rules when the run ends)
    keep_last: bool = setting(False, "Also keep the last epoch's model",
                              help="besides the best epoch's (skipped when they are the same)")
    keep_min_acc: float = setting(0.0, "Keep no model below this validation accuracy", 0.0, 1.0,
                                  step=0.05, help="a fraction: 0.9 keeps models of 90 % or more")

    # ----- validation --------------------------------------------------------------------
    def validate(self) -> list[str]:
        p = super().validate()
        if self.dataset in SOURCES and SOURCES[self.dataset].needs_path and not self.data_path:
            p.append(f"dataset {self.dataset!r} needs data_path (the folder or upload name)")
        if self.warmup_epochs is not None and self.warmup_epochs > self.epochs:
            p.append(f"warmup_epochs ({self.warmup_epochs}) cannot exceed epochs ({self.epochs})")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            p.append("nesterov needs the sgd optimizer with momentum above 0")
        return p

    # ----- learning-rate schedule -------------------------------------------------------------
    @property
    def warmup(self) -> float:
        """The warm-up in epochs: warmup_epochs as set, else the auto share of the epochs."""
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return auto_warmup(self.epochs)

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate for optimizer step `step` (0-based); a pure function so resume is exact."""
        total = max(1, self.epochs * steps_per_epoch)
        warm = min(total, round(self.warmup * steps_per_epoch))
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


def auto_warmup(epochs: int) -> float:
    """The warm-up of a run of `epochs` that leaves warmup_epochs empty."""
    return min(AUTO_WARMUP_MAX, AUTO_WARMUP_SHARE * epochs)


def _cosine_fraction(done: int, span: int) -> float:
    """1 → 0 along half a cosine over `span` steps."""
    return 0.5 * (1 + math.cos(math.pi * done / max(1, span)))


# The defaults are the quick recipe: full-width ResNet34 at 72 px ≥ 97% on digits within 8
# epochs (bench/train.py measures it; the README's benchmark table has the figures).
QUICK = TrainConfig()
