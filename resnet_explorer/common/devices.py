"""Which compute device to use, and how to describe it to a person.

The one module of common/ that imports torch: the rest of the room stays torch-free so the
run store and its supervisor processes (runs/) can use it without loading torch.
"""

from __future__ import annotations

import re

import torch

from .errors import ConfigError

__all__ = ["DEVICE_CHOICES", "resolve_device", "device_kind", "device_queue", "gpu_count",
           "describe_devices"]


class DeviceNames(tuple):
    """The device names a config offers (iterating: what a picker lists) and accepts (`in`):
    those, and "cuda:N", one GPU of several (a sweep spreads its runs over them)."""

    def __contains__(self, name: object) -> bool:
        return tuple.__contains__(self, name) or (
            isinstance(name, str) and re.fullmatch(r"cuda:[0-9]{1,2}", name) is not None)


DEVICE_CHOICES = DeviceNames(("auto", "cuda", "mps", "cpu"))


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' prefers CUDA, then Apple MPS, then the CPU; an unavailable choice is an error."""
    if name not in DEVICE_CHOICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICE_CHOICES)} (got {name!r})")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for, but no CUDA GPU is visible to PyTorch")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} was asked for, but PyTorch sees "
                          f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    if name == "mps" and not mps_available():
        raise ConfigError("device 'mps' was asked for, but Apple MPS is not available")
    return torch.device(name)


def device_kind(name: str = "auto") -> str:
    """"cuda", "mps" or "cpu": the queue a run on device `name` waits in."""
    return resolve_device(name).type


def device_queue(name: str = "auto") -> str:
    """The queue a run on device `name` waits in: its kind, or "cuda:N" for one given GPU."""
    kind = device_kind(name)
    return name if name.startswith("cuda:") else kind


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
