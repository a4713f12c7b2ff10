"""The trainer in-process: a complete run, and each way a run can go wrong."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from resnet_explorer.common import RunError, fileio
from resnet_explorer.datasets import BatchTransform, load_dataset
from resnet_explorer.models import store
from resnet_explorer.runs import RunPaths, read_jsonl, read_status
from resnet_explorer.runs.layout import try_lock
from resnet_explorer.training import RunRecorder, Trainer, run_training
from resnet_explorer.training import loop
from resnet_explorer.training.loop import evaluate_split
from tests.train_helpers import TINY_ARCH, TINY_TRAIN

pytestmark = pytest.mark.usefixtures("one_thread")


def train(tmp_path, cfg=TINY_TRAIN, name="run", **kwargs):
    status = run_training(TINY_ARCH, cfg, tmp_path / name, weights_dir=tmp_path / "w", echo=False,
                          **kwargs)
    return status, RunPaths(tmp_path / name)


def test_a_tiny_run_completes_and_its_models_reload_with_identical_outputs(tmp_path):
    status, paths = train(tmp_path)
    assert status["state"] == "completed" and read_status(paths)["state"] == "completed"
    assert status["best_model"] == "run-best" and status["last_model"] == "run-last"
    records = read_jsonl(paths.metrics)
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert {"loss", "lr", "images_per_s"} <= set(steps[0]) and steps[-1]["step"] == status["total_steps"]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "elapsed_s"} <= set(epochs[-1])
    assert epochs[-1]["val_acc"] > 0.3  # it learned something (chance is 0.1)
    # The saved last model equals the trainer's final weights bit for bit ...
    model, side = store.load_model("run-last", tmp_path / "w")
    final = {k[6:]: v for k, v in load_safetensors(paths.checkpoint.read_bytes()).items()
             if k.startswith("model.")}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in final.items())
    # ... and reproduces the validation figures recorded in its sidecar through the
    # preprocessing the sidecar describes.
    data = load_dataset("digits", channels=1, image_size=side["input_size"][1])
    assert side["normalization"]["mean"] == list(data.preprocess.mean)
    loss, acc = evaluate_split(model, BatchTransform(data.preprocess, None, torch.device("cpu")),
                               data.val_x, data.val_y, 256, torch.device("cpu"))
    assert acc == side["metrics"]["val_acc"] and loss == pytest.approx(side["metrics"]["val_loss"])
    assert side["arch"]["num_classes"] == 10 and side["train"] == TINY_TRAIN.to_dict()
    assert side["run_id"] == "run" and side["source"] == "trained"


def test_nan_loss_stops_the_run_as_diverged_and_keeps_the_best_model(tmp_path, monkeypatch):
    original = Trainer._step
    best = tmp_path / "w" / "run-best.safetensors"
    seen = {}

    def poisoned(self, idx, lr, gen):
        if self.epoch == 1 and "sha" not in seen:  # epoch 1 is done and saved: remember it
            seen["sha"] = hashlib.sha256(best.read_bytes()).hexdigest()
            with torch.no_grad():
                self.model.fc.weight.fill_(float("nan"))
        return original(self, idx, lr, gen)

    monkeypatch.setattr(Trainer, "_step", poisoned)
    status, paths = train(tmp_path)
    assert status["state"] == "diverged" and "lower learning rate" in status["message"]
    assert hashlib.sha256(best.read_bytes()).hexdigest() == seen["sha"]
    store.load_model("run-best", tmp_path / "w")  # still loadable (finite, matching sha)
    assert not (tmp_path / "w" / "run-last.json").exists()
    assert [r["epoch"] for r in read_jsonl(paths.metrics) if r["kind"] == "epoch"] == [1]


def test_out_of_memory_fails_with_a_hint(tmp_path, monkeypatch):
    def oom(self, idx, lr, gen):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "_step", oom)
    status, paths = train(tmp_path)
    assert status["state"] == "failed"
    assert "out of CPU memory at batch size 64" in status["message"]
    assert "smaller batch (e.g. 32)" in status["message"]
    assert "OutOfMemoryError" in paths.log.read_text()  # the traceback is in the log


def test_a_kill_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    real_replace = os.replace
    calls = []

    def dying_replace(src, dst):
        if str(dst).endswith("checkpoint.safetensors"):
            calls.append(dst)
            if len(calls) == 2:  # the second checkpoint's bytes are written, not yet in place
                raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path)
    paths = RunPaths(tmp_path / "run")
    assert read_status(paths)["state"] == "interrupted"
    assert not list(paths.dir.glob("*.tmp"))  # the temporary file was removed
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    data = load_dataset("digits", channels=1, image_size=8)
    trainer = Trainer(replace(TINY_ARCH), TINY_TRAIN, data, torch.device("cpu"))
    trainer.restore(paths.checkpoint.read_bytes())
    assert (trainer.epoch, trainer.step) == (1, trainer.steps_per_epoch)


def test_resume_after_an_interruption_ends_with_the_same_weights(tmp_path, monkeypatch):
    _, straight = train(tmp_path, name="straight")
    real_on_epoch = RunRecorder.on_epoch

    def stop_after_first(self, record, trainer):
        real_on_epoch(self, record, trainer)
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunRecorder, "on_epoch", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, name="resumed")
    monkeypatch.undo()
    status, resumed = train(tmp_path, name="resumed", resume=True)
    assert status["state"] == "completed"
    a = load_safetensors(straight.checkpoint.read_bytes())
    b = load_safetensors(resumed.checkpoint.read_bytes())
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_jsonl(resumed.metrics) if r["kind"] == "step"]
    assert steps == sorted(set(steps))  # no step logged twice


def test_time_budget_stops_early_but_keeps_a_model(tmp_path):
    cfg = replace(TINY_TRAIN, epochs=200, time_budget_s=0.5)
    status, _ = train(tmp_path, cfg)
    assert status["state"] == "completed" and "time budget" in status["message"]
    assert status["final"]["epoch"] < 200 and "val_acc" in status["final"]
    store.load_model("run-last", tmp_path / "w")


def test_a_second_trainer_on_the_same_run_directory_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    fd = try_lock(RunPaths(tmp_path / "run").lock)
    try:
        with pytest.raises(RunError, match="already training"):
            train(tmp_path)
    finally:
        os.close(fd)


def test_bf16_autocast_and_channels_last_paths_train_on_the_cpu_too(tmp_path):
    # The GPU defaults (bf16 autocast, channels_last) forced on the CPU, so this code path
    # is exercised on machines without CUDA.
    cfg = replace(TINY_TRAIN, epochs=1, precision="bf16", channels_last="on")
    status, _ = train(tmp_path, cfg)
    assert status["state"] == "completed"
    model, _ = store.load_model("run-last", tmp_path / "w")
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_resuming_a_run_that_died_after_its_final_checkpoint_just_saves_the_last_model(
        tmp_path, monkeypatch):
    cfg = replace(TINY_TRAIN, epochs=1)
    real_save = store.save_model

    def disk_full_for_last(model, sidecar, name, weights_dir):
        if name.endswith("-last"):
            raise OSError(28, "No space left on device")
        return real_save(model, sidecar, name, weights_dir)

    monkeypatch.setattr(store, "save_model", disk_full_for_last)
    status, paths = train(tmp_path, cfg)
    assert status["state"] == "failed" and status["message"].startswith("the disk is full")
    monkeypatch.undo()
    final = {k[6:]: v for k, v in load_safetensors(paths.checkpoint.read_bytes()).items()
             if k.startswith("model.")}
    status, _ = train(tmp_path, cfg, resume=True)
    assert status["state"] == "completed", status["message"]
    assert status["final"]["epoch"] == 1 and "val_acc" in status["final"]
    model, side = store.load_model("run-last", tmp_path / "w")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in final.items())
    assert side["metrics"]["val_acc"] == status["final"]["val_acc"]
    # A checkpoint written before it carried the last epoch's record: taken from metrics.jsonl.
    payload = paths.checkpoint.read_bytes()
    tensors, meta = load_safetensors(payload), loop._metadata(payload)
    progress = json.loads(meta["progress"])
    del progress["last_epoch"]
    paths.checkpoint.write_bytes(save_safetensors(tensors, {**meta, "progress": json.dumps(progress)}))
    status, _ = train(tmp_path, cfg, resume=True)
    assert status["state"] == "completed" and status["final"]["val_acc"] == side["metrics"]["val_acc"]
    assert [r["epoch"] for r in read_jsonl(paths.metrics) if r["kind"] == "epoch"] == [1]


def test_resuming_without_a_checkpoint_logs_every_step_once(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "LOG_INTERVAL_S", 0.0)  # a record per step
    cfg = replace(TINY_TRAIN, epochs=1, batch_size=16)
    checks = iter(range(1, 10_000))
    monkeypatch.setattr(RunRecorder, "should_stop", lambda self: "cancel" if next(checks) == 20 else None)
    status, paths = train(tmp_path, cfg)
    assert status["state"] == "cancelled" and not paths.checkpoint.exists()
    assert len(read_jsonl(paths.metrics)) == 19
    monkeypatch.setattr(RunRecorder, "should_stop", lambda self: None)
    status, _ = train(tmp_path, cfg, resume=True)
    steps = [r["step"] for r in read_jsonl(paths.metrics) if r["kind"] == "step"]
    assert status["state"] == "completed" and steps == list(range(1, status["total_steps"] + 1))


def test_a_time_budget_stop_mid_epoch_records_the_fraction_of_an_epoch_trained(tmp_path, monkeypatch):
    checks = iter(range(1, 10_000))
    monkeypatch.setattr(RunRecorder, "should_stop", lambda self: "time" if next(checks) == 5 else None)
    status, paths = train(tmp_path)
    per_epoch = status["total_steps"] // TINY_TRAIN.epochs
    assert status["state"] == "completed" and status["final"]["step"] == 5
    assert per_epoch > 5 and status["final"]["epoch"] == pytest.approx(5 / per_epoch)
    assert f"{5 / per_epoch:.2f} of 3 epochs (stopped by the time budget)" in status["message"]
    assert [r["epoch"] for r in read_jsonl(paths.metrics) if r["kind"] == "epoch"] == \
        [status["final"]["epoch"]]
