"""How one run uses its device: autocast dtype, memory layout, backend flags, where the data
lives, and `torch.compile` with a fallback to eager.

Each choice is a small function of (TrainConfig, device, one fact about the device), so the
CUDA decisions are tested on machines without CUDA; the Trainer only calls them.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import torch
from torch import nn

from .config import TrainConfig

__all__ = ["autocast_dtype", "use_channels_last", "compile_wanted", "configure_backends",
           "holds_data_on_device", "Compiler", "Compiled", "DEVICE_DATA_FRACTION",
           "COMPILE_BACKEND"]

LOG = logging.getLogger("resnet_explorer.training")
# Hold the dataset on the GPU when it takes at most this share of the free memory: the rest
# is for weights, optimizer state and activations (ResNet34 at 224 px, batch 256, bf16 holds
# about 20 GiB of activations; an H200 has 139 GiB, the datasets are capped at 4 GiB).
DEVICE_DATA_FRACTION = 0.25
COMPILE_BACKEND = "inductor"  # torch.compile's default; tests pass "aot_eager" (no C++ build)


def autocast_dtype(cfg: TrainConfig, device: torch.device,
                   bf16_native: bool | None = None) -> torch.dtype | None:
    """bf16 for autocast, or None for plain fp32.

    "bf16" is honoured on every device (CPU autocast has bf16 kernels; a GPU without native
    bf16 emulates it, slowly, as asked). "auto" takes bf16 only on a CUDA device with native
    bf16 (compute capability 8 and up: Ampere, Hopper) and fp32 elsewhere. Older GPUs get
    fp32, not fp16: fp16 needs a GradScaler, whose step reads its found-inf flag on the host
    every step (one synchronisation per step) and whose range can overflow; fp32 keeps the
    loop free of per-step syncs and its numbers those of the CPU. `bf16_native` is
    `torch.cuda.is_bf16_supported(including_emulation=False)` unless given.
    """
    if cfg.precision == "bf16":
        return torch.bfloat16
    if cfg.precision != "auto" or device.type != "cuda":
        return None
    if bf16_native is None:
        bf16_native = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.bfloat16 if bf16_native else None


def use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """NHWC memory layout: cuDNN's tensor-core convolutions read it without transposes."""
    return cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")


def compile_wanted(cfg: TrainConfig, device: torch.device) -> bool:
    """"auto" compiles on CUDA only. On the CPU it costs more than it saves: full ResNet34 at
    32 px, batch 64, on 2 cores took 38.5 s to compile (inductor, cold cache) against 1.2 s
    for a whole eager epoch of 384 images, and its steps then ran 1.4× slower (0.21 s
    against 0.15 s; torch 2.14, 2026-12-01)."""
    return cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")


def configure_backends(device: torch.device) -> None:
    """Process-wide flags a run on `device` wants."""
    if device.type == "cuda":
        # Every step has the same input shape: let cuDNN time its algorithms once and keep
        # the fastest (the first steps pay for the timing).
        torch.backends.cudnn.benchmark = True


def holds_data_on_device(nbytes: int, device: torch.device, free_bytes: int | None) -> bool:
    """Whether a run moves its whole dataset (`nbytes`) onto `device` once, so each batch is
    an on-device gather instead of a host-to-device copy. `free_bytes`: the device's free
    memory (CUDA), None where it does not apply."""
    if device.type == "cpu":
        return False  # already there
    if device.type != "cuda" or free_bytes is None:
        return True  # MPS: unified memory, the move costs nothing extra
    return nbytes <= DEVICE_DATA_FRACTION * free_bytes


class Compiler:
    """torch.compile for the modules of one run, given up for all of them at the first failure
    (a missing compiler or an unsupported operation fails every graph alike). Lines for the
    run's log go to `note`."""

    def __init__(self, enabled: bool, backend: str = COMPILE_BACKEND,
                 note: Callable[[str], None] = LOG.warning):
        self.enabled, self.backend, self.note = enabled, backend, note
        self.failure: str | None = None  # why compiling was given up, once it was

    def wrap(self, module: nn.Module, purpose: str) -> Compiled:
        return Compiled(self, module, purpose)

    @property
    def active(self) -> bool:
        return self.enabled and self.failure is None

    def give_up(self, purpose: str, exc: BaseException) -> None:
        lines = str(exc).strip().splitlines()
        first = lines[0][:300] if lines else ""
        self.failure = f"{type(exc).__name__}: {first}".rstrip(": ")
        self.note(f"torch.compile failed for {purpose} ({self.failure}); training and "
                  "evaluation continue without compiling")


class Compiled:
    """One module (the network for training, or for evaluation) compiled on first use.

    torch.compile fails lazily: tracing and code generation happen at the first call (the
    backward graph at the first backward), and again at a recompilation. So every call goes
    through `run(fn, ...)`, which calls `fn(module, ...)` with the compiled module and, if
    that raises, once more with the eager one. `fn` must be safe to repeat: a failure in a
    training step's backward repeats its forward, so batch-norm running statistics take that
    batch twice; one batch, once in a run. Out-of-memory is not a compile problem and is
    raised as it is. The state dict is never the compiled wrapper's ("_orig_mod." keys):
    checkpoints save `eager`, which shares its parameters.
    """

    def __init__(self, compiler: Compiler, module: nn.Module, purpose: str):
        self.compiler, self.eager, self.purpose = compiler, module, purpose
        self._compiled: nn.Module | None = None
        self._working = False  # a compiled call has succeeded (and was reported)

    @property
    def module(self) -> nn.Module:
        """What runs now: the compiled module (once built), else the eager one."""
        return self._compiled if self.compiler.active and self._compiled is not None else self.eager

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.compiler.active:
            start = time.monotonic()
            try:
                if self._compiled is None:
                    self._compiled = torch.compile(self.eager, backend=self.compiler.backend,
                                                   dynamic=False)
                out = fn(self._compiled, *args)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as exc:  # whatever compiling raised: eager decides
                self.compiler.give_up(self.purpose, exc)
            else:
                if not self._working:  # the first call that worked is the one that compiled
                    self._working = True
                    self.compiler.note(f"torch.compile ({self.compiler.backend}): compiled the "
                                       f"model for {self.purpose} in "
                                       f"{time.monotonic() - start:.1f} s")
                return out
        return fn(self.eager, *args)
