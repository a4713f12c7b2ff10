"""Measured speed against MACs: resnet34, resnet34-dw and se-resnet34 on one device.

    .venv/bin/python bench/latency.py [--rounds 3] [--size 224] [--device cpu] [--batches 1,32]
                                      [--threads N]

Each round measures every preset at every batch with measure_latency (random weights, eval
mode, warm-up, median of timed runs) into a fresh temporary cache, so nothing comes from an
earlier measurement; the presets alternate within a round so drift on a shared machine hits
them alike. Reported: MACs per image (analyze()), the median over rounds of each median
forward time, images/s from it, and the median over rounds of the ratio to resnet34 measured
in the same round (> 1: slower than resnet34), next to resnet34's MACs over each preset's.
`--threads` sets torch's CPU threads (default: torch's own choice); on a machine other jobs
load, one thread keeps OpenMP from waiting on threads the scheduler has put aside.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from resnet_explorer.analysis import analyze, measure_latency, measured_on, ranking_note, si
from resnet_explorer.arch import PRESETS

NAMES = ("resnet34", "resnet34-dw", "se-resnet34")
BASE = NAMES[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    size = (3, args.size, args.size)
    macs = {n: analyze(PRESETS[n], size).macs for n in NAMES}
    ms: dict[tuple[str, int], list[float]] = {(n, b): [] for n in NAMES for b in batches}
    ratios: dict[tuple[str, int], list[float]] = {(n, b): [] for n in NAMES for b in batches}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as fresh:  # a new cache: every figure is measured
            for batch in batches:
                got = {n: measure_latency(PRESETS[n], size, args.device, batch,
                                          cache_dir=Path(fresh)) for n in NAMES}
                for n in NAMES:
                    ms[n, batch].append(got[n].median_ms)
                    ratios[n, batch].append(got[n].median_ms / got[BASE].median_ms)
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    print(f"{measured_on(args.device)}; input {args.size}×{args.size}; "
          f"median of {args.rounds} rounds\n")
    head = ("| preset | MACs / image | resnet34 MACs ÷ these | batch | median ms | ms / image "
            "| images/s | time ÷ resnet34's |")
    print(head)
    print("|" + "---|" * head.count(" | ") + "---|")
    for batch in batches:
        for n in NAMES:
            median = statistics.median(ms[n, batch])
            print(f"| {n} | {si(macs[n])} | {macs[BASE] / macs[n]:.2f} | {batch} | {median:.1f} "
                  f"| {median / batch:.2f} | {batch * 1000 / median:.1f} "
                  f"| {statistics.median(ratios[n, batch]):.2f} |")
    for batch in batches:
        points = [(n, macs[n], statistics.median(ms[n, batch])) for n in NAMES]
        print(f"\nbatch {batch}: {ranking_note(points) or 'MACs and measured time agree.'}")


if __name__ == "__main__":
    main()
