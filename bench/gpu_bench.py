"""The GPU check's Python side: bench/gpu.sh runs each phase in its own process, time-boxed.

    python bench/gpu_bench.py PHASE --out OUT_DIR [--smoke] [--budget SECONDS]

Phases: info, tests (pytest -m gpu -x on the files that hold GPU tests), train (ResNet34 at
224 px on synthetic data held on the GPU, batch 256: fp32, bf16 autocast, bf16 +
channels_last; the Trainer against a bare loop, medians of interleaved rounds),
train-compile (the same with torch.compile), inference (batch 256, bf16 + channels_last,
eager and compiled), profile (where a trainer epoch's time goes: device busy share, top
operators), recipe (the quick recipe on digits through the real run job), cifar
(resnet34-cifar at 32 px, batch 512, 50,000 synthetic images, a fixed number of steps) and
report (OUT_DIR/gpu_bench.md from everything measured).

Each measurement is appended to OUT_DIR/rows.jsonl as soon as it is taken, so a phase stopped
at its time limit keeps what it measured. --smoke runs every phase on the CPU at tiny sizes
(compiling with the aot_eager backend): a check of the script, not a measurement.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gpu_report import TRAIN_SETTINGS, write_report
from bench.measure import (inference_images_per_s, overhead, quick_recipe, sync,
                           synthetic_data)
from resnet_explorer.arch import BASELINE, PRESETS, ArchConfig
from resnet_explorer.common.fileio import append_line
from resnet_explorer.runs import read_jsonl
from resnet_explorer.training import QUICK, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parent.parent
ROWS = "rows.jsonl"
UNFINISHED = "did not finish within its time box"  # a start row's state until its end row
# A test module holds GPU tests when it marks them so at the top level or per test.
GPU_MARK = re.compile(r"^(pytestmark\b.*|@)pytest\.mark\.gpu\b", re.MULTILINE)


@dataclass(frozen=True)
class Sizes:
    device: str
    arch: ArchConfig  # the 224-px network (1000 classes, as ResNet34's FLOP count assumes)
    size: int
    batch: int
    steps: int  # per trainer epoch, and per bare round
    rounds: int
    infer_batch: int
    cifar_arch: ArchConfig
    cifar_size: int
    cifar_batch: int
    cifar_train: int
    cifar_val: int
    cifar_epochs: int
    recipe_arch: ArchConfig
    recipe: TrainConfig
    backend: str  # torch.compile backend
    smoke: bool = False  # toy sizes on the CPU: a check of the script, not a measurement


FULL = Sizes("cuda", BASELINE, 224, 256, 24, 5, 256, PRESETS["resnet34-cifar"], 32, 512,
             50_000, 10_000, 3, BASELINE, replace(QUICK, device="cuda"), "inductor")
_TINY = replace(BASELINE, width_multiplier=0.125, num_classes=10)
SMOKE = Sizes("cpu", _TINY, 32, 8, 3, 2, 8, replace(PRESETS["resnet34-cifar"],
              width_multiplier=0.125), 16, 16, 96, 32, 1, _TINY,
              replace(QUICK, device="cpu", epochs=1, warmup_epochs=0, image_size=16,
                      train_limit=128, val_limit=64), "aot_eager", smoke=True)


# ----- rows ------------------------------------------------------------------------------------
def add_row(out: Path, row: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    append_line(out / ROWS, json.dumps(row))  # one write: a killed phase tears no earlier row
    print(json.dumps(row), flush=True)


def read_rows(out: Path) -> list[dict[str, Any]]:
    # read_jsonl skips the torn last line of a phase stopped mid-write.
    return [row for row in read_jsonl(out / ROWS) if "kind" in row]


# ----- phases ----------------------------------------------------------------------------------
def info(sizes: Sizes, out: Path, deadline: float) -> None:
    row: dict[str, Any] = {"kind": "info", "torch": torch.__version__,
                           "python": platform.python_version(), "cuda": torch.version.cuda,
                           "smoke": sizes.smoke}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        row.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                   memory_gib=round(props.total_memory / 2**30, 1),
                   multiprocessors=props.multi_processor_count,
                   cudnn=torch.backends.cudnn.version(),
                   bf16_native=torch.cuda.is_bf16_supported(including_emulation=False))
        print(f"GPU: {props.name} (compute capability {row['capability']}, "
              f"{row['memory_gib']} GiB), torch {torch.__version__}, CUDA {torch.version.cuda}",
              flush=True)
    else:
        row.update(gpu=None, cpu_threads=torch.get_num_threads())
        print(f"no GPU: CPU, torch {torch.__version__}", flush=True)
    add_row(out, row)


def gpu_test_files() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").glob("test_*.py"))
            if GPU_MARK.search(p.read_text(encoding="utf-8"))]


def tests(sizes: Sizes, out: Path, deadline: float) -> None:
    files = gpu_test_files()
    if importlib.util.find_spec("pytest") is None:
        add_row(out, {"kind": "tests", "rc": None, "files": files,
                      "summary": "pytest is not installed: the GPU tests did not run"})
        return
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-x", "-q", "-p", "no:cacheprovider",
           *files]
    # Replaced by the result row; left as it is when the time box stops pytest.
    add_row(out, {"kind": "tests", "rc": None, "files": files, "summary": UNFINISHED})
    # Output passed on as it comes: if the phase's time box stops pytest, the log has it.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.strip():
            lines.append(line.strip())
    add_row(out, {"kind": "tests", "rc": proc.wait(), "files": files,
                  "summary": lines[-1] if lines else "no output"})


def _train(sizes: Sizes, out: Path, deadline: float, names: list[str]) -> None:
    device = torch.device(sizes.device)
    data = synthetic_data(sizes.steps * sizes.batch, sizes.size, sizes.arch.num_classes,
                          device=device)
    base = TrainConfig(image_size=sizes.size, batch_size=sizes.batch, epochs=1,
                       warmup_epochs=0, device=sizes.device)
    for i, name in enumerate(names):
        # Share what is left evenly among the settings still to run.
        share = (deadline - time.monotonic()) / (len(names) - i)
        cfg = replace(base, **TRAIN_SETTINGS[name])
        o = overhead(sizes.arch, cfg, data, device, sizes.rounds, compile_backend=sizes.backend,
                     deadline=time.monotonic() + share)
        add_row(out, {"kind": "train", "setting": name, "size": sizes.size, **asdict(o)})
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the next setting starts from a clean allocator


def train(sizes: Sizes, out: Path, deadline: float) -> None:
    # The setting the targets are about first, then fp32 (the speed-up's baseline): a phase
    # stopped at its time box loses the least important row. The report orders them.
    _train(sizes, out, deadline, ["bf16 + channels_last", "fp32", "bf16"])


def train_compile(sizes: Sizes, out: Path, deadline: float) -> None:
    _train(sizes, out, deadline, [n for n, s in TRAIN_SETTINGS.items() if s["compile"] == "on"])


def inference(sizes: Sizes, out: Path, deadline: float) -> None:
    device = torch.device(sizes.device)
    for compiled in (False, True):
        ips, warm = inference_images_per_s(sizes.arch, sizes.size, sizes.infer_batch, device,
                                           torch.bfloat16, True, compiled,
                                           compile_backend=sizes.backend)
        add_row(out, {"kind": "inference", "batch": sizes.infer_batch, "size": sizes.size,
                      "setting": "bf16 + channels_last" + (" + compile" if compiled else ""),
                      "images_per_s": ips, "warmup_s": warm})


def profile(sizes: Sizes, out: Path, deadline: float) -> None:
    """Where one trainer epoch's time goes (bf16 + channels_last, eager): how busy the device
    was over the wall time (the rest is host overhead or waiting for data) and the
    operators that took the most device (or, on the CPU, host) time."""
    device = torch.device(sizes.device)
    data = synthetic_data(sizes.steps * sizes.batch, sizes.size, sizes.arch.num_classes,
                          device=device)
    cfg = TrainConfig(image_size=sizes.size, batch_size=sizes.batch, epochs=1, warmup_epochs=0,
                      device=sizes.device, **TRAIN_SETTINGS["bf16 + channels_last"])
    trainer = Trainer(sizes.arch, cfg, data, device, compile_backend=sizes.backend)
    trainer.train_epoch()  # warm-up: cuDNN autotuning
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    sync(device)
    start = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        trainer.train_epoch()
        sync(device)
    wall_us = (time.perf_counter() - start) * 1e6
    field = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    ops = sorted(prof.key_averages(), key=lambda e: getattr(e, field), reverse=True)
    busy_us = sum(getattr(e, field) for e in ops)
    add_row(out, {"kind": "profile", "setting": "bf16 + channels_last", "size": sizes.size,
                  "batch": trainer.batch, "steps": trainer.steps_per_epoch,
                  "measured": "device" if device.type == "cuda" else "host",
                  "wall_s": wall_us / 1e6, "busy_fraction": busy_us / wall_us,
                  "top": [[e.key, getattr(e, field) / 1e6, e.count] for e in ops[:10]]})


# The short runs twice: eager first (its figure survives a slow compile), then as a person
# gets them (compile "auto": on for CUDA), which shows what compiling costs a short run.
RUN_SETTINGS = {"compile off": {"compile": "off"}, "default (compile auto)": {}}


def recipe(sizes: Sizes, out: Path, deadline: float) -> None:
    for name, changes in RUN_SETTINGS.items():
        cfg = replace(sizes.recipe, **changes)
        row = {"kind": "recipe", "setting": name, "batch": cfg.batch_size,
               "size": cfg.image_size, "epochs": cfg.epochs}
        add_row(out, {**row, "state": UNFINISHED})  # replaced by the next row for it
        add_row(out, {**row, **quick_recipe(sizes.recipe_arch, cfg)})


def cifar(sizes: Sizes, out: Path, deadline: float) -> None:
    device = torch.device(sizes.device)
    data = synthetic_data(sizes.cifar_train, sizes.cifar_size, 10, val=sizes.cifar_val,
                          device=device)
    base = TrainConfig(image_size=sizes.cifar_size, batch_size=sizes.cifar_batch,
                       epochs=sizes.cifar_epochs, warmup_epochs=0, device=sizes.device)
    for name, changes in RUN_SETTINGS.items():
        row = {"kind": "cifar", "setting": name, "size": sizes.cifar_size,
               "batch": sizes.cifar_batch}
        add_row(out, {**row, "state": UNFINISHED})
        add_row(out, {**row, **fixed_steps_run(sizes, replace(base, **changes), data, device)})


def fixed_steps_run(sizes: Sizes, cfg: TrainConfig, data: Any, device: torch.device
                    ) -> dict[str, Any]:
    """Trainer.fit from construction to the last validation: wall time and epoch times."""
    start = time.perf_counter()
    trainer = Trainer(sizes.cifar_arch, cfg, data, device, compile_backend=sizes.backend)
    epochs: list[dict[str, Any]] = []
    notes: list[str] = []

    class Record:  # Trainer callbacks: keep the epoch records and log lines, never stop
        def should_stop(self) -> None:
            return None

        def on_step(self, record: dict[str, Any]) -> None:
            pass

        def on_epoch(self, record: dict[str, Any], trainer: Trainer) -> None:
            epochs.append(record)

        def log(self, message: str) -> None:
            notes.append(message)

    trainer.fit(Record())
    sync(device)
    return {"state": "completed", "steps": trainer.step, "images": trainer.step * trainer.batch,
            "wall_s": time.perf_counter() - start, "epoch_s": [r["epoch_s"] for r in epochs],
            "last_epoch_images_per_s": epochs[-1]["images_per_s"], "notes": notes}


PHASES = {"info": info, "tests": tests, "train": train, "train-compile": train_compile,
          "inference": inference, "profile": profile, "recipe": recipe, "cifar": cifar}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=[*PHASES, "report"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds this phase may use")
    parser.add_argument("--phases", type=Path, default=None,
                        help="report: gpu.sh's phase log (name, exit code, seconds, limit)")
    args = parser.parse_args(argv)
    if args.phase == "report":
        print(write_report(args.out, read_rows(args.out), args.phases).read_text())
        return 0
    sizes = SMOKE if args.smoke else FULL
    # info runs anyway: the report then names the machine that had no GPU.
    if sizes.device == "cuda" and not torch.cuda.is_available() and args.phase != "info":
        why = "no CUDA GPU visible to PyTorch: run with --smoke on the CPU"
        add_row(args.out, {"kind": "error", "phase": args.phase, "error": why})
        print(why, file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        PHASES[args.phase](sizes, args.out, started + args.budget)
    except Exception as exc:  # recorded for the report, then the phase fails
        add_row(args.out, {"kind": "error", "phase": args.phase,
                           "error": f"{type(exc).__name__}: {str(exc)[:500]}"})
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
