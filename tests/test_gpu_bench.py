"""bench/gpu.sh and bench/gpu_bench.py without a GPU: every measuring phase runs at toy sizes on
the CPU and the report holds every table, with each target judged from the figures."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from dataclasses import replace

import pytest

from bench.gpu_bench import PHASES, SMOKE, read_rows
from bench.gpu_report import TARGETS, write_report
from tests.train_helpers import ROOT, TINY_ARCH

pytestmark = pytest.mark.usefixtures("one_thread")

TOY_ARCH = replace(TINY_ARCH, in_channels=3)
TOY = replace(SMOKE, arch=TOY_ARCH, size=8, batch=8, steps=2, rounds=2, infer_batch=4,
              cifar_arch=TOY_ARCH, cifar_size=8, cifar_batch=8, cifar_train=32, cifar_val=16,
              recipe_arch=TOY_ARCH,
              recipe=replace(SMOKE.recipe, image_size=8, train_limit=64, val_limit=32))


def test_every_measuring_phase_runs_on_the_cpu_and_the_report_has_each_table(tmp_path):
    deadline = time.monotonic() + 60
    for name, phase in PHASES.items():
        if name != "tests":  # runs pytest itself; its file choice is tested in test_gpu_path
            phase(TOY, tmp_path, deadline)
    rows = read_rows(tmp_path)
    assert Counter(r["kind"] for r in rows) == {"info": 1, "train": 4, "inference": 2,
                                                "profile": 1, "recipe": 4,
                                                "cifar": 4}  # runs: a start and an end row
    train = {r["setting"]: r for r in rows if r["kind"] == "train"}
    assert all(r["ratio"] > 0 and r["rounds"] >= 1 and r["steps"] == 2 for r in train.values())
    assert any("torch.compile (aot_eager): compiled" in n
               for n in train["bf16 + channels_last + compile"]["notes"])
    (tmp_path / "phases.tsv").write_text("info\t0\t3\t15\ncifar\t124\t80\t80\n")
    text = write_report(tmp_path, rows, tmp_path / "phases.tsv").read_text()
    profile = next(r for r in rows if r["kind"] == "profile")
    assert 0 < profile["busy_fraction"] and len(profile["top"]) == 10
    for heading in ("# GPU check: CPU", "Smoke mode", "## Training throughput", "## Inference",
                    "## Profile", "## Short runs", "## Phases"):
        assert heading in text
    assert "did not finish" not in text  # every run's end row replaced its start row
    assert text.count("| quick recipe") == 2 and text.count("| CIFAR-sized") == 2
    assert "Stopped at their time limits: cifar." in text


def h200_like_rows(train_ips: float, ratio: float, infer_ips: float) -> list[dict]:
    base = {"kind": "train", "size": 224, "batch": 256, "rounds": 5, "steps": 24, "notes": []}
    return [{"kind": "info", "gpu": "NVIDIA H200", "torch": "2.11.0", "cuda": "13.0",
             "cudnn": 91000},
            {**base, "setting": "bf16 + channels_last", "trainer_images_per_s": train_ips * 0.8,
             "bare_images_per_s": train_ips * 0.8, "ratio": 1.0, "warmup_s": 5.0},
            {**base, "setting": "bf16 + channels_last + compile",
             "trainer_images_per_s": train_ips, "bare_images_per_s": train_ips / ratio,
             "ratio": ratio, "warmup_s": 65.0},
            {"kind": "inference", "size": 224, "batch": 256, "setting": "bf16 + channels_last",
             "images_per_s": infer_ips, "warmup_s": 1.0}]


@pytest.mark.parametrize("train_ips, ratio, infer_ips, marks", [
    (7000.0, 0.99, 25000.0, ["met", "met", "met"]),
    (5000.0, 0.95, 15000.0, ["**missed**", "**missed**", "**missed**"]),
])
def test_the_report_judges_each_target_from_the_figures(tmp_path, train_ips, ratio, infer_ips,
                                                        marks):
    text = write_report(tmp_path, h200_like_rows(train_ips, ratio, infer_ips)).read_text()
    assert text.startswith("# GPU check: NVIDIA H200, torch 2.11.0 (CUDA 13.0")
    found = re.findall(r"^\* Target[^:]*: (met|\*\*missed\*\*)", text, re.MULTILINE)
    assert found == marks
    assert f"≥ {TARGETS['train_images_per_s']:,} img/s" in text
    # Compiling costs 60 s more warm-up for 25 % more speed: paid back after
    # 60 / (1/(0.8 x) - 1/x) / 256 steps.
    saved = 1 / (0.8 * train_ips) - 1 / train_ips
    assert f"paid back after ≈ {60 / saved / 256:,.0f} steps" in text


def test_gpu_sh_is_valid_bash_and_names_only_phases_that_exist():
    script = ROOT / "bench" / "gpu.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    named = re.findall(r"^phase (\S+) (\d+)$", script.read_text(), re.MULTILINE)
    assert [n for n, _ in named] == list(PHASES)
    assert sum(int(limit) for _, limit in named) <= 450  # under 8 minutes with the report
