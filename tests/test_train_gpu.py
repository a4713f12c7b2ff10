"""Training on CUDA: bf16 + channels_last throughput of full ResNet34, torch.compile with
inductor, no host synchronisation per step, and a real run.

Skipped without CUDA; bench/gpu.sh runs these first on the GPU machine. Timing assertions
are ratios against a baseline measured in the same process, never absolute numbers.
Imports nothing the GPU machine lacks (no Streamlit, plotly or torchinfo:
tests/test_gpu_path.py checks it).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
import torch

from bench.measure import overhead, synthetic_data
from resnet_explorer.arch import BASELINE
from resnet_explorer.models import store
from resnet_explorer.training import TrainConfig, Trainer, loop, run_training
from tests.test_compile import tiny_data
from tests.train_helpers import TINY_ARCH, TINY_TRAIN

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")


def test_a_tiny_run_on_cuda_completes_in_bf16_and_reloads(tmp_path):
    cfg = replace(TINY_TRAIN, device="cuda", precision="auto", channels_last="auto",
                  compile="off")  # compiling is the last test; this is the run job
    status = run_training(TINY_ARCH, cfg, tmp_path / "run", weights_dir=tmp_path / "w", echo=False)
    assert status["state"] == "completed" and status["device"].startswith("cuda")
    model, side = store.load_model("run-last", tmp_path / "w")
    assert next(model.parameters()).dtype == torch.float32  # autocast never changes weights
    assert side["train"]["precision"] == "auto"


def test_resnet34_224_bf16_channels_last_trainer_matches_a_bare_loop():
    data = synthetic_data(16 * 128, 224, device=CUDA)
    arch = replace(BASELINE, num_classes=10)
    fast = TrainConfig(batch_size=128, precision="bf16", channels_last="on", compile="off",
                       epochs=1, warmup_epochs=0)
    o = overhead(arch, fast, data, CUDA, rounds=3)
    fp32 = overhead(arch, replace(fast, precision="fp32", channels_last="off"), data, CUDA, 1)
    print(o, fp32)
    assert o.ratio >= 0.95  # bench target 0.97; a little slack for a shared GPU
    # bf16 + channels_last must actually pay off against fp32 (TF32 convolutions).
    assert o.trainer_images_per_s > 1.2 * fp32.trainer_images_per_s


def test_the_step_loop_never_waits_for_the_gpu_between_log_points(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    trainer = Trainer(TINY_ARCH, replace(TINY_TRAIN, device="cuda", compile="off"),
                      tiny_data(1024), CUDA)
    assert trainer.amp_dtype is torch.bfloat16 and trainer.channels_last  # auto on CUDA
    assert torch.backends.cudnn.benchmark is True
    assert trainer.data.train_x.device.type == "cuda"  # held on the GPU: it fits
    trainer.train_epoch()  # warm-up: cuDNN autotuning may synchronise
    monkeypatch.setattr(loop, "LOG_INTERVAL_S", 1e9)  # one log point: the epoch's end
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.train_epoch()
            probe = len(caught)
            torch.ones(1, device=CUDA).item()  # the mode does report a sync
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught[:probe] if "synchroniz" in str(w.message)]
    assert len(caught) > probe
    assert trainer.steps_per_epoch >= 16
    # The order of the epoch (one upload) and the log point's read-back: not per step.
    assert len(syncs) <= 3, syncs


# Last: a cold inductor compile is the slowest test, and the GPU check time-boxes this file.
def test_inductor_compiled_training_matches_eager_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # fp32 on both sides
    cfg = replace(TINY_TRAIN, device="cuda", precision="fp32", warmup_epochs=0)
    eager = Trainer(TINY_ARCH, replace(cfg, compile="off"), tiny_data(), CUDA)
    compiled = Trainer(TINY_ARCH, replace(cfg, compile="on"), tiny_data(), CUDA)
    notes: list[str] = []
    compiled.log = notes.append
    (a, _), (b, _) = eager.train_epoch(), compiled.train_epoch()  # 4 steps
    assert compiled.compiler.failure is None, notes
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-3)
    (loss_a, acc_a), (loss_b, acc_b) = eager.evaluate(), compiled.evaluate()
    assert loss_b == pytest.approx(loss_a, rel=2e-3)
    assert abs(acc_b - acc_a) <= 1 / 72 + 1e-9  # one of the 72 images may flip
    assert any("torch.compile (inductor): compiled the model for training" in n for n in notes)
    assert any("for evaluation" in n for n in notes)
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())
