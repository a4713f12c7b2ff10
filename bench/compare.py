"""The Compare page with 200 runs: how long the first visit and the later ones take.

    .venv/bin/python bench/compare.py [--runs 200] [--visits 10]

Creates synthetic run folders (the files a finished run leaves: configs, status, metrics) in
a temporary home: a dozen distinct architectures over seeds, two datasets, a few sweeps and
states. Then, in this process, it times the table build alone (cold: every configuration
analysed once; warm: the analysis cached) and a full render of the page through AppTest:
the first visit (it builds the table) and later visits (the table comes from the cache keyed
by the run files' modification times), with and without five runs selected for the curves.
Prints the ratio of a later visit to the first and the absolute milliseconds (medians).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from resnet_explorer.arch import ArchConfig  # noqa: E402
from resnet_explorer.runs import CANCELLED, COMPLETED, FAILED  # noqa: E402
from resnet_explorer.training import TrainConfig  # noqa: E402
from tests.compare_helpers import make_run  # noqa: E402
from tests.train_helpers import TINY_ARCH  # noqa: E402

VARIANTS = [TINY_ARCH, replace(TINY_ARCH, activation="silu"),
            replace(TINY_ARCH, activation="gelu"), replace(TINY_ARCH, activation="leaky_relu"),
            replace(TINY_ARCH, se_reduction=4), replace(TINY_ARCH, depthwise=(False, True)),
            replace(TINY_ARCH, blocks=(2, 2)), replace(TINY_ARCH, norm="group", norm_groups=4),
            replace(TINY_ARCH, block="preact"), replace(TINY_ARCH, shortcut="D"),
            ArchConfig(num_classes=10), ArchConfig(num_classes=10, depthwise=(True,) * 4)]
# A plausible accuracy per variant (the full-size networks learn more), plus seed noise.
ACCURACY = [0.62, 0.66, 0.65, 0.63, 0.67, 0.60, 0.70, 0.64, 0.61, 0.63, 0.92, 0.84]


def populate(runs_dir: Path, count: int) -> None:
    for n in range(count):
        arch = VARIANTS[n % len(VARIANTS)]
        dataset = "mnist" if n % 5 == 4 else "digits"
        size = 32 if arch.stem == "imagenet" else 8
        train = TrainConfig(dataset=dataset, image_size=size, epochs=3, seed=n // len(VARIANTS),
                            device="cpu")
        state = FAILED if n % 17 == 3 else CANCELLED if n % 23 == 5 else COMPLETED
        sweep = f"sweep-{n // 60}" if n < 120 else ""
        acc = ACCURACY[n % len(VARIANTS)] + ((n * 37) % 9 - 4) / 200
        make_run(runs_dir, n, arch, train, state=state, acc=acc,
                 sweep=sweep, modification=arch.short_diff(TINY_ARCH) if sweep else "")


def visit(at) -> float:
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    assert not at.exception, at.exception
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--visits", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="compare-bench-") as folder:
        home = Path(folder)
        os.environ["RESNET_EXPLORER_HOME"] = str(home)
        populate(home / "runs", args.runs)
        measure(home, args.visits)


def measure(home: Path, visits: int) -> None:
    from streamlit.testing.v1 import AppTest

    from resnet_explorer.experiments import build_table, store_signature
    from resnet_explorer.experiments import table as table_module

    # A fresh app: the home page first, so imports Streamlit and torch need are done; the
    # first Compare visit then pays for its own modules, the table build and the figures.
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/compare.py")
    first = visit(at)
    later = [visit(at) for _ in range(visits)]
    frame = at.dataframe[0]
    at.session_state[frame.key] = {"selection": {"rows": [0, 1, 2, 3, 4], "columns": [],
                                                 "cells": []}}
    visit(at)  # the selected runs' metrics are read once
    selected = [visit(at) for _ in range(visits)]

    # The table build alone, as the first visit does it (nothing analysed yet) and again.
    table_module._parse_arch.cache_clear()
    table_module._cost.cache_clear()
    start = time.perf_counter()
    table = build_table(home / "runs", home / "weights")
    cold_build = time.perf_counter() - start
    warm_builds, signatures = [], []
    for _ in range(visits):
        start = time.perf_counter()
        build_table(home / "runs", home / "weights")
        warm_builds.append(time.perf_counter() - start)
        start = time.perf_counter()
        store_signature(home / "runs", home / "weights")
        signatures.append(time.perf_counter() - start)
    distinct = len({r.arch for r in table.rows})

    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    later_median, selected_median = statistics.median(later), statistics.median(selected)
    print(f"{len(table.rows)} runs, {distinct} distinct architectures")
    print(f"table build, cold (every architecture analysed): {ms(cold_build)}")
    print(f"table build, warm (analysis cached), median:     {ms(statistics.median(warm_builds))}")
    print(f"signature (stat of the run files), median:       "
          f"{statistics.median(signatures) * 1000:.1f} ms")
    print(f"page, first visit:                                {ms(first)}")
    print(f"page, later visits, median of {visits}:               {ms(later_median)}")
    print(f"page, later visits with 5 runs' curves, median:   {ms(selected_median)}")
    print(f"ratio later / first visit: {later_median / first:.3f} "
          f"(with curves: {selected_median / first:.3f}); target: later visits < 1 s "
          f"({'met' if selected_median < 1 else 'NOT met'})")


if __name__ == "__main__":
    main()
