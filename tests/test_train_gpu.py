"""Training on CUDA: bf16 + channels_last throughput of full ResNet34, and a real run.

Skipped without CUDA. Timing assertions are ratios against a baseline measured in the same
process (bench/train.py), never absolute numbers.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from resnet_explorer.models import store
from resnet_explorer.training import run_training
from tests.train_helpers import TINY_ARCH, TINY_TRAIN

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
BENCH = Path(__file__).resolve().parent.parent / "bench" / "train.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resnet34_224_bf16_channels_last_trainer_matches_a_bare_loop():
    figures = load_bench().gpu_figures()
    print(figures)
    assert figures["ratio"] >= 0.95  # bench target 0.97; a little slack for a shared GPU
    assert figures["speedup_vs_fp32"] > 1.2  # bf16 + channels_last must actually pay off


def test_a_tiny_run_on_cuda_completes_in_bf16_and_reloads(tmp_path):
    cfg = replace(TINY_TRAIN, device="cuda", precision="auto", channels_last="auto")
    status = run_training(TINY_ARCH, cfg, tmp_path / "run", weights_dir=tmp_path / "w", echo=False)
    assert status["state"] == "completed" and status["device"].startswith("cuda")
    model, side = store.load_model("run-last", tmp_path / "w")
    assert next(model.parameters()).dtype == torch.float32  # autocast never changes weights
    assert side["train"]["precision"] == "auto"
