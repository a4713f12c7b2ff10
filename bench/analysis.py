"""Time a cold analyze() of ResNet34 at 224×224 against the naive way to get the same table.

Naive: torchvision.models.resnet34() (real weights, initialised) + torchinfo.summary(model,
(1, 3, 224, 224)) (a real forward pass). Ours: analyze(BASELINE, (3, 224, 224)) with every
cache cleared (the shared meta-device build included), so each run builds the model
from scratch. Both run in this process, interleaved, several times;
the median of the per-run ratios is the figure to quote. Each path runs once untimed
first, so the one-time library start-up (printed separately) is in neither.

    .venv/bin/python bench/analysis.py [runs]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torchinfo
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from resnet_explorer.analysis import analyze
from resnet_explorer.arch import BASELINE, meta_model

TARGET = 0.10


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def naive() -> None:
    model = torchvision.models.resnet34()
    torchinfo.summary(model, (1, 3, 224, 224), verbose=0)


def cold_analyze() -> None:
    meta_model.cache_clear()
    analyze(BASELINE, (3, 224, 224))


def meta_build() -> None:
    meta_model.cache_clear()
    BASELINE.check()  # validation builds the shared meta model that analyze then reuses


def main(runs: int = 9) -> float:
    first = timed(cold_analyze)
    naive()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; first analyze in this "
          f"process (one-time meta-device start-up): {first * 1000:.0f} ms")
    print(f"{'run':>3}  {'naive ms':>9}  {'analyze ms':>10}  {'ratio':>6}")
    ratios, ours, theirs = [], [], []
    for i in range(runs):
        t_naive, t_ours = timed(naive), timed(cold_analyze)
        ratios.append(t_ours / t_naive)
        ours.append(t_ours)
        theirs.append(t_naive)
        print(f"{i + 1:>3}  {t_naive * 1000:>9.1f}  {t_ours * 1000:>10.1f}  {ratios[-1]:>6.3f}")
    build = statistics.median(timed(meta_build) for _ in range(runs))
    ratio = statistics.median(ratios)
    print(f"median: naive {statistics.median(theirs) * 1000:.1f} ms, analyze "
          f"{statistics.median(ours) * 1000:.1f} ms (validation + meta build alone: "
          f"{build * 1000:.1f} ms)")
    verdict = "met" if ratio <= TARGET else "missed"
    print(f"median ratio analyze / naive: {ratio:.3f} (target ≤ {TARGET:.2f}: {verdict})")
    return ratio


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
