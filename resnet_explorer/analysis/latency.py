"""Measured speed: the real network run on a real device, next to the MACs analyze() counts.

MACs say how much arithmetic a network does, not how long it takes: depthwise-separable
convolutions, squeeze-excitation and per-sample normalisation move many bytes per
multiply-add, so on most hardware memory bandwidth, not arithmetic, sets their speed.
`measure_latency` builds the network (random weights, eval mode, `torch.inference_mode`),
warms it up, and reports the median of several timed forward passes; `ranking_note` says in
one sentence where ranking by MACs and by measured latency disagree, and why.

Run counts adapt to the network: warm-up and timing each run until a small time budget is
spent (at least one warm-up and MIN_REPEATS timed runs), so a tiny test network takes a
fraction of a second and a full ResNet34 at batch 32 on two CPU cores about 10 s.

A measurement holds only for the exact setting it ran in, so results are cached under a
key of everything that changes them: the config's canonical JSON, input size, batch, the
device with its model name, the torch version and torch's CPU thread count. The cache is
one JSON file (home/cache/latency.json) mirrored in memory; it is written atomically, kept
to MAX_ENTRIES, and a damaged or foreign file reads as empty (the cache is expendable).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import platform
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..arch.config import PRESETS, ArchConfig
from ..arch.model import build_model
from ..arch.options import ACTIVATIONS, NORMS
from ..common.devices import describe_devices, resolve_device
from ..common.errors import InputSizeError, UserError
from ..common.fileio import atomic_write_json
from ..common.paths import home_dir
from .summary import Analysis, analyze

__all__ = ["Latency", "measure_latency", "cached_latency", "measured_on", "ranking_note",
           "cache_file", "THROUGHPUT_BATCH", "MAX_ENTRIES"]

# The batch that shows a device's throughput: large enough to keep it busy, small enough to
# measure in seconds on it.
THROUGHPUT_BATCH: dict[str, int] = {"cpu": 32, "cuda": 256, "mps": 64}

# Time budgets per measurement (seconds); the counts bound them for very fast networks.
WARMUP_S, MAX_WARMUP = 0.25, 10
TIMED_S, MIN_REPEATS, MAX_REPEATS = 1.0, 3, 50
# What one measurement may ask of the device: multiply-adds per forward pass (a full
# ResNet34 at 224 px, batch 32, is 1.2e11) and an estimate of the memory an inference holds.
MAX_MACS = {"cpu": 5e11, "cuda": 2e13, "mps": 2e12}
MAX_MEMORY_BYTES = 4 * 2**30

MAX_ENTRIES = 2000  # cache entries kept; the oldest go first
CACHE_FORMAT = "resnet_explorer latency cache v1"
MAX_CACHE_BYTES = 8 * 2**20  # a larger file is not ours (2000 entries take about 0.4 MiB)


@dataclass(frozen=True)
class Latency:
    batch: int
    median_ms: float  # one forward pass of the whole batch
    images_per_s: float
    device: str  # "cpu", "cuda:0", "mps"
    repeats: int  # timed runs the median is taken over


# ----- what a measurement depends on ------------------------------------------------------
def _cpu_model() -> str:  # read once: _hardware caches it
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _device_name(device: torch.device) -> str:
    """'cuda:0' (with its index), 'mps' or 'cpu'."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.current_device() if device.index is None else device.index}"
    return device.type


@functools.cache
def _hardware(name: str) -> str:
    """The model of the chip a device name runs on, from the sidebar's own device lines."""
    if name.startswith("cuda:"):
        prefix = f"CUDA {name.split(':')[1]}: "
        line = next((x for x in describe_devices() if x.startswith(prefix)), prefix + "GPU")
        return line[len(prefix):]
    return "Apple MPS" if name == "mps" else _cpu_model()


def measured_on(device: str = "cpu") -> str:
    """Where a measurement runs, in words: 'cpu (Intel Xeon, 2 threads), torch 2.14.1'."""
    name = _device_name(resolve_device(device))
    threads = torch.get_num_threads()
    return (f"{name} ({_hardware(name)}, {threads} CPU thread{'s' * (threads != 1)}), "
            f"torch {torch.__version__}")


def _key(cfg: ArchConfig, input_size: tuple[int, int, int], batch: int, device: str) -> str:
    name = _device_name(resolve_device(device))
    parts = {"arch": cfg.to_dict(), "input": list(input_size), "batch": batch, "device": name,
             "hardware": _hardware(name), "torch": torch.__version__,
             "threads": torch.get_num_threads()}
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


# ----- the cache --------------------------------------------------------------------------
# Per file: the (mtime, size) it was read at, and its entries. Another process writing the
# file changes the signature, so it is read again; a file that cannot be written keeps the
# new entries here for the life of this process.
_files: dict[Path, tuple[tuple[int, int] | None, dict[str, dict[str, Any]]]] = {}
_files_lock = threading.Lock()  # Streamlit sessions are threads of one process
_measuring = threading.Lock()  # one measurement at a time: two at once would slow each other


def cache_file(cache_dir: Path | None = None) -> Path:
    """The cache's JSON file (home/cache/latency.json unless `cache_dir` says where)."""
    return Path(cache_dir if cache_dir is not None else home_dir() / "cache") / "latency.json"


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    numbers = [entry.get(k) for k in ("median_ms", "images_per_s", "measured_at")]
    counts = [entry.get(k) for k in ("batch", "repeats")]
    return (all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and v > 0 for v in numbers)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in counts)
            and isinstance(entry.get("device"), str))


def _read_file(path: Path) -> dict[str, dict[str, Any]]:
    """The file's valid entries; anything unreadable, damaged or not ours reads as none."""
    try:
        if path.stat().st_size > MAX_CACHE_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: bad JSON or UTF-8
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return {}
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return {}
    return {k: v for k, v in entries.items() if isinstance(k, str) and _valid_entry(v)}


def _entries(path: Path) -> dict[str, dict[str, Any]]:
    signature = _signature(path)
    with _files_lock:
        known = _files.get(path)
    if known is not None and known[0] == signature:
        return known[1]
    entries = _read_file(path) if signature is not None else {}
    with _files_lock:
        _files[path] = (signature, entries)
    return entries


def _store(path: Path, key: str, latency: Latency) -> None:
    entries = dict(_entries(path))  # re-read: another process may have added entries
    entries[key] = {**asdict(latency), "measured_at": time.time()}
    if len(entries) > MAX_ENTRIES:
        newest = sorted(entries, key=lambda k: entries[k]["measured_at"])[-MAX_ENTRIES:]
        entries = {k: entries[k] for k in newest}
    try:
        atomic_write_json(path, {"format": CACHE_FORMAT, "entries": entries}, fsync=False)
    except OSError:
        pass  # a read-only home: the figures still hold for this process
    with _files_lock:
        _files[path] = (_signature(path), entries)


def _from_entry(entry: Mapping[str, Any]) -> Latency:
    return Latency(int(entry["batch"]), float(entry["median_ms"]),
                   float(entry["images_per_s"]), str(entry["device"]), int(entry["repeats"]))


def cached_latency(cfg: ArchConfig, input_size: tuple[int, int, int] | None = None,
                   device: str = "cpu", batch: int = 1, *,
                   cache_dir: Path | None = None) -> Latency | None:
    """What measure_latency stored for exactly this setting, or None; never runs a model and
    never writes (a setting measure_latency would refuse has nothing stored: None too)."""
    try:
        size = (cfg.in_channels, 224, 224) if input_size is None else tuple(input_size)
        key = _key(cfg, size, batch, device)
    except (UserError, TypeError, ValueError):  # a device not here, a malformed input size
        return None
    entry = _entries(cache_file(cache_dir)).get(key)
    return None if entry is None else _from_entry(entry)


# ----- measuring --------------------------------------------------------------------------
def _check_affordable(analysis: Analysis, kind: str) -> None:
    """Refuse a measurement that would take minutes or exhaust the device's memory."""
    largest = max(math.prod(r.out_shape) for r in analysis.rows)
    # Input, output and a block's identity branch can be alive at once.
    memory = 4 * (3 * largest + analysis.params)
    problems = []
    if analysis.macs > MAX_MACS[kind]:
        problems.append(f"measuring this on the {kind} would take too long "
                        f"({analysis.macs:.2g} multiply-adds per pass, the limit is "
                        f"{MAX_MACS[kind]:.2g}); use a smaller batch or input")
    if memory > MAX_MEMORY_BYTES:
        problems.append(f"measuring this would need about {memory / 2**30:.1f} GiB, the limit "
                        f"is {MAX_MEMORY_BYTES / 2**30:.0f} GiB; use a smaller batch or input")
    if problems:
        raise InputSizeError(problems)


def _timed_runs(step: Callable[[], None], sync: Callable[[], None]) -> list[float]:
    """Warm up, then time runs until the budgets are spent; seconds per timed run."""
    def once() -> float:
        sync()
        start = time.perf_counter()
        step()
        sync()
        return time.perf_counter() - start

    spent, warmups = 0.0, 0
    while warmups == 0 or (spent < WARMUP_S and warmups < MAX_WARMUP):
        spent += once()
        warmups += 1
    times: list[float] = []
    while len(times) < MIN_REPEATS or (sum(times) < TIMED_S and len(times) < MAX_REPEATS):
        times.append(once())
    return times


def _synchroniser(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def measure_latency(cfg: ArchConfig, input_size: tuple[int, int, int] | None = None,
                    device: str = "cpu", batch: int = 1, *,
                    cache_dir: Path | None = None) -> Latency:
    """Median forward time of `cfg` on a (C, H, W) input at `batch` on `device` ("auto",
    "cpu", "cuda", "mps"), from the cache when this exact setting was measured before.

    Raises ConfigError for an invalid config or an unavailable device, InputSizeError for
    an input the network cannot run on or a measurement too large for the device.
    """
    analysis = analyze(cfg, input_size, batch)  # analyze()'s messages for a bad input
    input_size = analysis.input_size  # with analyze()'s default (C, 224, 224)
    target = resolve_device(device)
    _check_affordable(analysis, target.type)
    path, key = cache_file(cache_dir), _key(cfg, input_size, batch, device)
    entry = _entries(path).get(key)
    if entry is not None:
        return _from_entry(entry)
    with _measuring:
        entry = _entries(path).get(key)  # another session may have measured it meanwhile
        if entry is not None:
            return _from_entry(entry)
        # Random weights, without moving the caller's random state.
        forked = [torch.device(_device_name(target)).index] if target.type == "cuda" else []
        with torch.random.fork_rng(devices=forked):
            model = build_model(cfg, device=target).eval()
            images = torch.randn(batch, *input_size, device=target)

        def step() -> None:
            model(images)

        with torch.inference_mode():
            times = _timed_runs(step, _synchroniser(target))
        median = statistics.median(times)
        latency = Latency(batch, median * 1000, batch / median, _device_name(target), len(times))
        _store(path, key, latency)
    return latency


# ----- when MACs and measured speed disagree ----------------------------------------------
MIN_RATIO = 1.1  # differences smaller than 10 % in either ranking are not called a reversal


def _stages(flags: Sequence[bool]) -> int:
    return sum(bool(f) for f in flags)


def _reason(slow: ArchConfig | None, fast: ArchConfig | None) -> str:
    """Why `slow` takes longer than `fast` despite fewer MACs, from the options they differ in."""
    generic = ("MACs count only the arithmetic of convolutions and linear layers, not the "
               "memory traffic and per-layer overhead that set the speed here")
    if slow is None or fast is None:
        return generic
    slow_act, fast_act = ACTIVATIONS[slow.activation], ACTIVATIONS[fast.activation]
    slow_norm, fast_norm = NORMS[slow.norm], NORMS[fast.norm]
    if _stages(slow.depthwise) > _stages(fast.depthwise):
        return ("depthwise-separable convolutions do little arithmetic per byte moved, so "
                "memory bandwidth, not MACs, sets their speed")
    if slow.se_reduction and not fast.se_reduction:
        return ("squeeze-excitation pools and rescales every feature map, passes over memory "
                "that take time but add almost no MACs")
    if slow_norm.flops > fast_norm.flops:
        return (f"{slow_norm.label} computes its statistics per image even at inference "
                f"({fast_norm.label} needs {fast_norm.flops} operations per value), extra "
                "passes over every feature map that MACs do not count")
    if slow_act.flops > fast_act.flops:
        return (f"{slow_act.label} costs {slow_act.flops} operations per value where "
                f"{fast_act.label} costs {fast_act.flops}, work that MACs do not count")
    if slow.block == "bottleneck" and fast.block != "bottleneck":
        return ("bottleneck blocks' 1×1 convolutions read and write feature maps 4× wider for "
                "little arithmetic each, so memory traffic, not MACs, sets their speed")
    if sum(slow.blocks) > sum(fast.blocks):
        return (f"its {sum(slow.blocks)} blocks (against {sum(fast.blocks)}) are more, smaller "
                "layers, and each layer's fixed cost outweighs its arithmetic")
    return generic


def ranking_note(points: Sequence[tuple[str, float, float]],
                 configs: Mapping[str, ArchConfig] | None = None) -> str | None:
    """One sentence when ranking `points` (label, MACs, latency in ms) by MACs and by
    measured latency disagree, naming the most reversed pair and the likely reason; None
    when they agree (within MIN_RATIO). The reason comes from each label's config: from
    `configs`, else the preset of that name; without one it is a general remark."""
    usable = [(str(label), float(macs), float(ms)) for label, macs, ms in points
              if all(math.isfinite(float(v)) and float(v) > 0 for v in (macs, ms))]
    best: tuple[float, str, str, float, float] | None = None
    for a, a_macs, a_ms in usable:
        for b, b_macs, b_ms in usable:
            fewer_macs, slower = b_macs / a_macs, a_ms / b_ms
            if fewer_macs >= MIN_RATIO and slower >= MIN_RATIO:
                score = fewer_macs * slower
                if best is None or score > best[0]:
                    best = (score, a, b, fewer_macs, slower)
    if best is None:
        return None
    _, slow, fast, fewer_macs, slower = best
    known = {**PRESETS, **(configs or {})}
    return (f"{slow} has {fewer_macs:.1f}× fewer MACs than {fast} but runs {slower:.1f}× slower "
            f"here: {_reason(known.get(slow), known.get(fast))}.")
