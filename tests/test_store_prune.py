"""The tidy store: which models a run keeps when it ends, and why not, for every rule.

Runs are tiny and in-process; where a rule depends on accuracy, the validation accuracies are
scripted (Trainer.evaluate), so each case knows its best and last epoch exactly.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from resnet_explorer.models import ModelCard, read_sidecar, store
from resnet_explorer.runs import RunPaths, read_status
from resnet_explorer.training import RunRecorder, Trainer, run_training
from tests.train_helpers import TINY_ARCH, TINY_TRAIN

pytestmark = pytest.mark.usefixtures("one_thread")

# The stores' default rules on a small slice of digits: a few steps per epoch.
QUICK = replace(TINY_TRAIN, keep_last=False, train_limit=256, val_limit=128, batch_size=32)
GONE_MESSAGE = "the best model so far is kept"  # the old message, wrong when nothing is kept


def train(tmp_path, cfg=QUICK, **kwargs):
    status = run_training(TINY_ARCH, cfg, tmp_path / "run", weights_dir=tmp_path / "w",
                          echo=False, **kwargs)
    return status, read_status(RunPaths(tmp_path / "run"))


def stored(tmp_path) -> set[str]:
    return {m.name for m in store.list_models(tmp_path / "w")}


def files(tmp_path) -> set[str]:
    folder = tmp_path / "w"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


@pytest.fixture
def accuracies(monkeypatch):
    """Script the validation accuracy of each epoch: `accuracies([0.5, 0.8, 0.6])`."""
    def script(values):
        it = iter(values)
        monkeypatch.setattr(Trainer, "evaluate", lambda self: (0.5, next(it)))
    return script


def test_by_default_a_run_keeps_only_its_best_model(tmp_path, accuracies):
    accuracies([0.5, 0.8, 0.6])
    status, on_disk = train(tmp_path)
    assert status["state"] == "completed" and on_disk["state"] == "completed"
    assert files(tmp_path) == {"run-best.safetensors", "run-best.json"}
    assert status["best_model"] == "run-best" and status["last_model"] is None
    assert status["kept_models"] == ["run-best"] and on_disk["kept_models"] == ["run-best"]
    assert "kept run-best (best epoch 2, validation accuracy 80.00%)" in status["message"]
    side = read_sidecar("run-best", tmp_path / "w")
    # The best model's sidecar learns how the run ended (for its card).
    assert side["metrics"]["role"] == "best" and side["metrics"]["val_acc"] == 0.8
    assert side["metrics"]["last_epoch"] == 3 and side["metrics"]["last_val_acc"] == 0.6
    store.load_model("run-best", tmp_path / "w")  # the sidecar update kept the pair valid


def test_keep_last_adds_the_last_epochs_model_with_its_own_accuracy(tmp_path, accuracies):
    accuracies([0.5, 0.8, 0.6])
    status, _ = train(tmp_path, replace(QUICK, keep_last=True))
    assert stored(tmp_path) == {"run-best", "run-last"}
    assert status["last_model"] == "run-last" and status["kept_models"] == ["run-best", "run-last"]
    last = ModelCard.from_sidecar(read_sidecar("run-last", tmp_path / "w"))
    assert last.metrics["role"] == "last" and last.metrics["epoch"] == 3
    assert last.accuracy == 0.6 and last.metrics["best_val_acc"] == 0.8  # its own, not the best's
    assert "val acc 60.0%" in last.summary()
    best = ModelCard.from_sidecar(read_sidecar("run-best", tmp_path / "w"))
    assert best.accuracy == 0.8
    # Different weights: the last epoch trained on after the best one was saved.
    a, _ = store.load_model("run-best", tmp_path / "w")
    b, _ = store.load_model("run-last", tmp_path / "w")
    assert not torch.equal(a.fc.weight, b.fc.weight)


def test_a_run_that_ends_below_the_minimum_keeps_no_model(tmp_path, accuracies):
    accuracies([0.5, 0.8, 0.6])
    status, on_disk = train(tmp_path, replace(QUICK, keep_last=True, keep_min_acc=0.9))
    assert status["state"] == "completed" and files(tmp_path) == set()  # written, then removed
    assert status["best_model"] is None and on_disk["best_model"] is None
    assert status["last_model"] is None and status["kept_models"] == []
    message = status["message"]
    assert "best model not kept: its validation accuracy 80.00% is below the minimum of 90.00%" \
        in message
    assert "last model not kept: its validation accuracy 60.00%" in message
    assert "no model was kept" in message and GONE_MESSAGE not in message


def test_the_minimum_applies_to_each_model_on_its_own(tmp_path, accuracies):
    accuracies([0.5, 0.8, 0.6])
    status, _ = train(tmp_path, replace(QUICK, keep_last=True, keep_min_acc=0.7))
    assert stored(tmp_path) == {"run-best"} and status["last_model"] is None
    assert "last model not kept: its validation accuracy 60.00% is below the minimum of 70.00%" \
        in status["message"]
    accuracies([0.5, 0.6, 0.7])  # the last epoch is the best: it passes, both are kept
    status, _ = train(tmp_path / "again", replace(QUICK, keep_last=True, keep_min_acc=0.7))
    assert {m.name for m in store.list_models(tmp_path / "again" / "w")} == {"run-best", "run-last"}


def test_a_run_cancelled_before_its_first_epoch_keeps_no_model(tmp_path, monkeypatch):
    monkeypatch.setattr(RunRecorder, "should_stop", lambda self: "cancel")
    status, _ = train(tmp_path, replace(QUICK, keep_last=True))
    assert status["state"] == "cancelled" and files(tmp_path) == set()
    assert status["kept_models"] == [] and status["best_model"] is None
    assert "no model kept: the run ended before its first validated epoch" in status["message"]
    assert "no last model: the run did not complete" in status["message"]


def test_a_run_that_diverges_before_its_first_epoch_keeps_no_model(tmp_path, monkeypatch):
    real_step = Trainer._step

    def poisoned(self, idx, lr, gen):
        with torch.no_grad():
            self.model.fc.weight.fill_(float("nan"))
        return real_step(self, idx, lr, gen)

    monkeypatch.setattr(Trainer, "_step", poisoned)
    status, _ = train(tmp_path)
    assert status["state"] == "diverged" and files(tmp_path) == set()
    assert "no model kept" in status["message"] and GONE_MESSAGE not in status["message"]


def test_a_cancelled_run_keeps_its_best_model_unless_it_is_below_the_minimum(
        tmp_path, monkeypatch, accuracies):
    accuracies([0.5, 0.8, 0.6])
    real_on_epoch = RunRecorder.on_epoch
    stop = {}

    def cancel_after_second(self, record, trainer):
        real_on_epoch(self, record, trainer)
        if record["epoch"] == 2:
            stop["now"] = True

    monkeypatch.setattr(RunRecorder, "on_epoch", cancel_after_second)
    monkeypatch.setattr(RunRecorder, "should_stop", lambda self: "cancel" if stop else None)
    status, _ = train(tmp_path, replace(QUICK, keep_last=True))
    assert status["state"] == "cancelled" and stored(tmp_path) == {"run-best"}
    assert "kept run-best (best epoch 2" in status["message"]
    assert read_sidecar("run-best", tmp_path / "w")["metrics"]["val_acc"] == 0.8

    stop.clear()
    accuracies([0.5, 0.8, 0.6])
    status, _ = train(tmp_path / "strict", replace(QUICK, keep_min_acc=0.85))
    assert status["state"] == "cancelled" and files(tmp_path / "strict") == set()
    assert "below the minimum of 85.00%" in status["message"]


def test_a_resumed_run_keeps_the_rules_it_was_started_with(tmp_path, monkeypatch, accuracies):
    # Cancelled after epoch 1 below the minimum: nothing kept. Resumed, it reaches it.
    accuracies([0.5, 0.95, 0.9])
    real_on_epoch = RunRecorder.on_epoch
    stop = {}

    def cancel_after_first(self, record, trainer):
        real_on_epoch(self, record, trainer)
        stop["now"] = True

    monkeypatch.setattr(RunRecorder, "on_epoch", cancel_after_first)
    monkeypatch.setattr(RunRecorder, "should_stop", lambda self: "cancel" if stop else None)
    cfg = replace(QUICK, keep_min_acc=0.9)
    status, _ = train(tmp_path, cfg)
    assert status["state"] == "cancelled" and files(tmp_path) == set()
    monkeypatch.setattr(RunRecorder, "on_epoch", real_on_epoch)
    monkeypatch.setattr(RunRecorder, "should_stop", lambda self: None)
    status, _ = train(tmp_path, cfg, resume=True)
    assert status["state"] == "completed" and stored(tmp_path) == {"run-best"}
    assert read_sidecar("run-best", tmp_path / "w")["metrics"]["val_acc"] == 0.95
