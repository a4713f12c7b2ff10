"""Timing shared by the training benchmarks (bench/train.py on the CPU, bench/gpu_bench.py on
a GPU): the bare PyTorch loop the Trainer is measured against, interleaved rounds, synthetic
in-memory data, the quick recipe through the real run job, and inference throughput.

Every figure waits for the device before reading the clock (`sync`), and trainer and bare
loop alternate round by round, so drift on a shared machine (clocks, other processes) hits
both alike; medians are reported.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resnet_explorer.arch import BASELINE, ArchConfig, build_model
from resnet_explorer.datasets import Augment, ImageData, Preprocess
from resnet_explorer.runs import RunPaths, read_jsonl
from resnet_explorer.training import QUICK, TrainConfig, Trainer, run_training
from resnet_explorer.training.execution import COMPILE_BACKEND


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_data(n: int, size: int, classes: int = 10, val: int = 64,
                   device: torch.device | str = "cpu") -> ImageData:
    """Random uint8 RGB images and labels made on `device` (a GPU fills a gigabyte in
    milliseconds), the first `val` of them repeated as the validation split."""
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g, device=device)
    y = torch.randint(0, classes, (n,), generator=g, device=device)
    pre = Preprocess(channels=3, size=size, resize=size, mean=(0.5,) * 3, std=(0.25,) * 3)
    return ImageData("synthetic", [str(i) for i in range(classes)], x, y, x[:val], y[:val], pre,
                     Augment(flip=True, translate=0.1))


def bare_images_per_s(trainer: Trainer, steps: int) -> float:
    """The textbook loop on the trainer's own (compiled, if it is) network, optimizer, data,
    batch transform and autocast: what the trainer's bookkeeping is compared with."""
    net, opt, data, dev = trainer.train_net.module, trainer.optimizer, trainer.data, trainer.device
    gen = torch.Generator(device=dev).manual_seed(0)
    n, b = len(data.train_y), trainer.batch
    net.train()
    sync(dev)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, n, (b,), device=data.train_y.device)
        x = trainer.transform.train(data.train_x[idx].to(dev, non_blocking=True), gen)
        y = data.train_y[idx].to(dev, non_blocking=True)
        with trainer._autocast():
            loss = F.cross_entropy(net(x), y, label_smoothing=trainer.cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(dev)
    return steps * b / (time.perf_counter() - start)


def trainer_images_per_s(trainer: Trainer) -> float:
    """One `Trainer.train_epoch` (no callbacks): lr schedule, device-side sums, log points."""
    sync(trainer.device)
    start = time.perf_counter()
    trainer.train_epoch()
    sync(trainer.device)
    return trainer.steps_per_epoch * trainer.batch / (time.perf_counter() - start)


@dataclass
class Overhead:
    ratio: float  # median over rounds of trainer / bare
    trainer_images_per_s: float  # medians
    bare_images_per_s: float
    rounds: int
    warmup_s: float  # the first trainer epoch: cuDNN autotuning, compilation
    batch: int
    steps: int  # per round, each side
    notes: list[str]  # the trainer's log lines (compilation, fallback)


def overhead(arch: ArchConfig, cfg: TrainConfig, data: ImageData, device: torch.device,
             rounds: int = 3, *, compile_backend: str = COMPILE_BACKEND,
             deadline: float | None = None) -> Overhead:
    """Trainer against the bare loop, rounds interleaved; stops early (after at least one
    round) when `deadline` (time.monotonic()) would be passed by another round."""
    trainer = Trainer(arch, cfg, data, device, compile_backend=compile_backend)
    notes: list[str] = []
    trainer.log = notes.append
    start = time.monotonic()
    trainer_images_per_s(trainer)  # warm-up: allocator, cuDNN autotuning, compilation
    warmup = time.monotonic() - start
    bare_images_per_s(trainer, 2)
    ratios, ours, bare = [], [], []
    while len(ratios) < rounds:
        t = time.monotonic()
        ours.append(trainer_images_per_s(trainer))
        bare.append(bare_images_per_s(trainer, trainer.steps_per_epoch))
        ratios.append(ours[-1] / bare[-1])
        if deadline is not None and time.monotonic() + (time.monotonic() - t) > deadline:
            break
    return Overhead(statistics.median(ratios), statistics.median(ours), statistics.median(bare),
                    len(ratios), warmup, trainer.batch, trainer.steps_per_epoch, notes)


def quick_recipe(arch: ArchConfig = BASELINE, cfg: TrainConfig = QUICK) -> dict[str, Any]:
    """The recipe through the real job (run directory, checkpoints, model files): wall time,
    best accuracy, and when validation accuracy first reached 97 %."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        status = run_training(arch, cfg, Path(tmp) / "run", weights_dir=Path(tmp) / "w",
                              echo=False)
        wall = time.perf_counter() - start
        paths = RunPaths(Path(tmp) / "run")
        epochs = [r for r in read_jsonl(paths.metrics) if r["kind"] == "epoch"]
        log = paths.log.read_text() if paths.log.exists() else ""
    hit = next((r for r in epochs if r.get("val_acc", 0) >= 0.97), None)
    return {"state": status["state"], "message": status.get("message", ""),
            "device": status.get("device"),
            "best_val_acc": status.get("final", {}).get("best_val_acc"), "wall_s": wall,
            "epochs": len(epochs), "epoch_97": hit["epoch"] if hit else None,
            "train_s_97": hit["elapsed_s"] if hit else None,
            "last_epoch_images_per_s": epochs[-1]["images_per_s"] if epochs else None,
            "compile_lines": [line for line in log.splitlines() if "torch.compile" in line]}


def inference_images_per_s(arch: ArchConfig, size: int, batch: int, device: torch.device,
                           dtype: torch.dtype | None, channels_last: bool,
                           compiled: bool = False, seconds: float = 2.0,
                           compile_backend: str = COMPILE_BACKEND) -> tuple[float, float]:
    """(images/s, warm-up s) of eval-mode forward passes on a batch already on the device."""
    torch.manual_seed(0)
    model = build_model(arch).to(device).eval()
    x = torch.randn(batch, arch.in_channels, size, size, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    net = torch.compile(model, backend=compile_backend, dynamic=False) if compiled else model
    cast = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    with torch.inference_mode(), cast:
        start = time.monotonic()
        for _ in range(3):
            net(x)
        sync(device)
        warmup = time.monotonic() - start
        runs, begin = 0, time.perf_counter()
        while runs < 3 or time.perf_counter() - begin < seconds:
            net(x)
            runs += 1
        sync(device)
        elapsed = time.perf_counter() - begin
    return runs * batch / elapsed, warmup
