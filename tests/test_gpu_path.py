"""The CUDA path, checked without CUDA: the device choices as functions, the step loop's host
reads counted, and the GPU machine's environment (no Streamlit, plotly or torchinfo)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import replace

import pytest
import torch

from bench.gpu_bench import gpu_test_files
from resnet_explorer.datasets import load_dataset
from resnet_explorer.training import Trainer, loop
from resnet_explorer.training.execution import (DEVICE_DATA_FRACTION, autocast_dtype,
                                                compile_wanted, configure_backends,
                                                holds_data_on_device, use_channels_last)
from tests.train_helpers import ROOT, TINY_ARCH, TINY_TRAIN

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.mark.parametrize("precision, device, native, expected", [
    ("auto", CUDA, True, torch.bfloat16),  # Ampere, Hopper
    ("auto", CUDA, False, None),  # older GPUs: fp32, not fp16 with a per-step sync
    ("auto", CPU, True, None),
    ("auto", MPS, True, None),
    ("bf16", CUDA, True, torch.bfloat16),
    ("bf16", CUDA, False, torch.bfloat16),  # asked for: honoured (emulated)
    ("bf16", CPU, False, torch.bfloat16),
    ("fp32", CUDA, True, None),
    ("fp32", CPU, True, None),
])
def test_autocast_dtype_for_each_precision_and_device(precision, device, native, expected):
    cfg = replace(TINY_TRAIN, precision=precision)
    assert autocast_dtype(cfg, device, bf16_native=native) is expected


def test_auto_precision_asks_cuda_for_native_bf16_only(monkeypatch):
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return including_emulation  # a pre-Ampere GPU: bf16 only emulated

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert autocast_dtype(replace(TINY_TRAIN, precision="auto"), CUDA) is None
    assert asked == [False]
    assert autocast_dtype(replace(TINY_TRAIN, precision="auto"), CPU) is None
    assert asked == [False]  # no CUDA query for a CPU run


@pytest.mark.parametrize("setting, device, expected", [
    ("auto", CUDA, True), ("auto", CPU, False), ("auto", MPS, False),
    ("on", CPU, True), ("on", CUDA, True), ("off", CUDA, False),
])
def test_channels_last_and_compile_resolve_the_same_way(setting, device, expected):
    assert use_channels_last(replace(TINY_TRAIN, channels_last=setting), device) is expected
    assert compile_wanted(replace(TINY_TRAIN, compile=setting), device) is expected


def test_cudnn_benchmark_is_switched_on_for_cuda_runs_only(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    configure_backends(CPU)
    configure_backends(MPS)
    assert torch.backends.cudnn.benchmark is False
    configure_backends(CUDA)
    assert torch.backends.cudnn.benchmark is True


def test_data_is_held_on_the_gpu_while_it_fits_in_its_share_of_free_memory():
    free = 80 * 2**30
    limit = int(DEVICE_DATA_FRACTION * free)
    assert holds_data_on_device(limit, CUDA, free)
    assert not holds_data_on_device(limit + 1, CUDA, free)
    assert not holds_data_on_device(1, CUDA, 0)  # a full GPU
    assert holds_data_on_device(2**40, MPS, None)  # unified memory
    assert not holds_data_on_device(1, CPU, None)  # already there


# ----- host reads in the step loop -----------------------------------------------------------
# Every way Python code turns a tensor into host data; on a GPU each waits for the device.
HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "nonzero",
              "__repr__", "__format__")


def count_host_reads(monkeypatch) -> Counter:
    counts: Counter = Counter()
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


class LogCounter:
    """Callbacks that count the trainer's log points."""

    def __init__(self):
        self.records: list[dict] = []

    def should_stop(self):
        return None

    def on_step(self, record):
        self.records.append(record)

    def on_epoch(self, record, trainer):
        pass

    def log(self, message):
        pass


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("interval_s", [1e9, 0.0])
def test_host_reads_per_epoch_follow_the_log_points_not_the_steps(monkeypatch, interval_s):
    data = load_dataset("digits", channels=1, image_size=8)
    trainer = Trainer(TINY_ARCH, TINY_TRAIN, data, CPU)
    monkeypatch.setattr(loop, "LOG_INTERVAL_S", interval_s)
    callbacks = LogCounter()
    counts = count_host_reads(monkeypatch)
    trainer.train_epoch(callbacks)
    monkeypatch.undo()
    logs, steps = len(callbacks.records), trainer.steps_per_epoch
    assert steps >= 20 and logs == (1 if interval_s else steps)
    # Per log point the interval sums come over once (cpu + tolist); per epoch the sampler's
    # order is read once (a CPU tensor). Nothing per step.
    assert sum(counts.values()) <= 2 * logs + 1, counts


# ----- the GPU machine: torch, no Streamlit, plotly or torchinfo --------------------------------
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("streamlit", "plotly", "torchinfo"):
            raise ModuleNotFoundError(f"No module named {name!r}: not on the GPU machine")
sys.meta_path.insert(0, Block())
"""


def test_the_gpu_check_imports_without_streamlit_plotly_or_torchinfo():
    files = gpu_test_files()  # what bench/gpu.sh hands to pytest
    assert "tests/test_train_gpu.py" in files and "tests/test_gpu_path.py" not in files
    script = BLOCKER + f"""
import pytest
import bench.gpu_bench, bench.train, resnet_explorer.train  # what bench/gpu.sh runs
try:
    import streamlit
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("the blocker does not work")
sys.exit(pytest.main(["--collect-only", "-q", "-m", "gpu", "-p", "no:cacheprovider", *{files!r}]))
"""
    done = subprocess.run([sys.executable, "-c", script], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_train_gpu.py::" in done.stdout
