"""TrainConfig.compile: torch.compile trains like eager, keeps the plain state dict, and falls
back to eager with a line in the run's log wherever compiling fails.

The compiled runs use the "aot_eager" backend: the same Dynamo capture and AOTAutograd
forward/backward split as inductor, without code generation. Inductor works on this machine
(gcc is there) but builds C++ for a ~3 k-parameter network in about 33 s on two cores; the GPU
tests (tests/test_train_gpu.py) compile with inductor for real.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from resnet_explorer.datasets import Augment, ImageData, Preprocess
from resnet_explorer.models import store
from resnet_explorer.runs import RunPaths, read_jsonl
from resnet_explorer.training import Trainer, run_training
from resnet_explorer.training.execution import Compiler
from tests.train_helpers import TINY_ARCH, TINY_TRAIN

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def tiny_data(n: int = 256, side: int = 8) -> ImageData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, side, side), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    pre = Preprocess(channels=1, size=side, resize=side, mean=(0.5,), std=(0.25,))
    return ImageData("tiny", [str(i) for i in range(10)], x, y, x[:72], y[:72], pre,
                     Augment(flip=True, translate=0.1))


def test_compiled_training_matches_eager_and_keeps_the_plain_state_dict():
    cfg = replace(TINY_TRAIN, epochs=2, warmup_epochs=0)
    eager = Trainer(TINY_ARCH, replace(cfg, compile="off"), tiny_data(), CPU)
    compiled = Trainer(TINY_ARCH, replace(cfg, compile="on"), tiny_data(), CPU,
                       compile_backend="aot_eager")
    for _ in range(2):  # 4 steps each, then validation (a 72-image split: 64 compiled + 8 eager)
        (a, _), (b, _) = eager.train_epoch(), compiled.train_epoch()
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert compiled.evaluate() == pytest.approx(eager.evaluate(), rel=1e-4)
    assert compiled.compiler.active and compiled.compiler.failure is None
    assert isinstance(compiled.train_net.module, torch._dynamo.eval_frame.OptimizedModule)
    for p, q in zip(eager.model.parameters(), compiled.model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())
    # The wrapper's own keys are prefixed; what is saved is the plain model's.
    assert all(k.startswith("_orig_mod.") for k in compiled.train_net.module.state_dict())
    keys = set(load_safetensors(compiled.checkpoint_bytes()))
    assert keys == set(load_safetensors(eager.checkpoint_bytes()))
    assert not any("_orig_mod" in k for k in keys)


def run(tmp_path, name: str, **changes):
    cfg = replace(TINY_TRAIN, epochs=1, **changes)
    status = run_training(TINY_ARCH, cfg, tmp_path / name, weights_dir=tmp_path / "w",
                          echo=False)
    paths = RunPaths(tmp_path / name)
    epochs = [r for r in read_jsonl(paths.metrics) if r["kind"] == "epoch"]
    return status, epochs[-1], paths.log.read_text()


def test_torch_compile_raising_falls_back_to_eager_with_the_reason_in_the_run_log(
        tmp_path, monkeypatch):
    _, eager, _ = run(tmp_path, "eager", compile="off")

    def no_compiler(module, **kwargs):
        raise RuntimeError("no C++ compiler found\nlong details")

    monkeypatch.setattr(torch, "compile", no_compiler)
    status, record, log = run(tmp_path, "fallback", compile="on")
    assert status["state"] == "completed", status["message"]
    assert ("torch.compile failed for training (RuntimeError: no C++ compiler found); "
            "training and evaluation continue without compiling") in log
    assert log.count("torch.compile failed") == 1  # evaluation did not try again
    # Eager from the first step on: the same numbers as a run that never compiled.
    assert record["train_loss"] == eager["train_loss"] and record["val_acc"] == eager["val_acc"]


class FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward graph: code generation failed")


class CompilesLazily(nn.Module):
    """What torch.compile returns: fine to build, failing when first run (the training forward
    or backward, or the evaluation forward)."""

    calls = 0

    def __init__(self, module: nn.Module, where: str):
        super().__init__()
        self.inner, self.where = module, where

    def forward(self, x):
        type(self).calls += 1
        if self.where == "forward":
            raise RuntimeError("dynamo: unsupported operation")
        if self.where == "evaluation":
            if not self.inner.training:
                raise RuntimeError("inductor: no kernel for the eval graph")
            return self.inner(x)
        return FailingBackward.apply(self.inner(x))


FAILURES = {"forward": "training (RuntimeError: dynamo: unsupported operation)",
            "backward": "training (RuntimeError: backward graph: code generation failed)",
            "evaluation": "evaluation (RuntimeError: inductor: no kernel for the eval graph)"}


@pytest.mark.parametrize("where", FAILURES)
def test_a_compiled_model_failing_at_its_first_use_falls_back_to_eager(tmp_path, monkeypatch,
                                                                       where):
    _, eager, _ = run(tmp_path, "eager", compile="off")
    monkeypatch.setattr(CompilesLazily, "calls", 0)
    monkeypatch.setattr(torch, "compile", lambda module, **kw: CompilesLazily(module, where))
    status, record, log = run(tmp_path, "run", compile="on")
    assert status["state"] == "completed", status["message"]
    assert f"torch.compile failed for {FAILURES[where]}" in log
    assert log.count("torch.compile failed") == 1
    # Never again after the failure: one call, or (evaluation) every training step and one.
    steps = record["step"]
    assert CompilesLazily.calls == (steps + 1 if where == "evaluation" else 1)
    if where == "backward":  # the repeated forward gave batch norm that batch twice
        assert record["val_acc"] > 0.1
    else:  # the eager retry's figures, as if compiling had never been tried
        assert record["val_acc"] == eager["val_acc"]
        assert record["train_loss"] == eager["train_loss"]
    model, _ = store.load_model("run-last", tmp_path / "w")  # plain keys: loads strictly
    assert not any("inner" in k or "_orig_mod" in k for k in model.state_dict())


def test_out_of_memory_is_raised_and_compiling_is_not_given_up():
    notes: list[str] = []
    compiled = Compiler(True, "aot_eager", note=notes.append).wrap(nn.Linear(2, 2), "training")

    def oom(module, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        compiled.run(oom, torch.zeros(1, 2))
    assert compiled.compiler.active and notes == []
    out = compiled.run(lambda module, x: module(x), torch.zeros(1, 2))
    assert out.shape == (1, 2) and notes[0].startswith("torch.compile (aot_eager): compiled")


def test_a_run_that_is_not_compiled_never_calls_torch_compile(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile called")

    monkeypatch.setattr(torch, "compile", refuse)
    status, _, log = run(tmp_path, "cpu-auto", compile="auto")  # auto on the CPU: eager
    assert status["state"] == "completed" and "torch.compile" not in log
