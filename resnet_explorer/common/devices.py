"""Which compute device to use, and how to describe it to a person.

The one module of common/ that imports torch: the rest of the room stays torch-free so the
run store and its supervisor processes (runs/) can use it without loading torch.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["DEVICE_CHOICES", "resolve_device", "device_kind", "gpu_count", "describe_devices"]

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' prefers CUDA, then Apple MPS, then the CPU; an unavailable choice is an error."""
    if name not in DEVICE_CHOICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICE_CHOICES)} (got {name!r})")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for, but no CUDA GPU is visible to PyTorch")
    if name == "mps" and not mps_available():
        raise ConfigError("device 'mps' was asked for, but Apple MPS is not available")
    return torch.device(name)


def device_kind(name: str = "auto") -> str:
    """"cuda", "mps" or "cpu": the queue a run on device `name` waits in."""
    return resolve_device(name).type


def gpu_count() -> int:
    """CUDA devices a run could spread over with torchrun (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def describe_devices() -> list[str]:
    """One line per usable accelerator, or the CPU, for the sidebar."""
    lines = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(f"CUDA {i}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
    if mps_available():
        lines.append("Apple MPS")
    threads = torch.get_num_threads()
    lines.append(f"CPU ({threads} thread{'s' if threads != 1 else ''})")
    return lines
