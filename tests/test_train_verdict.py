"""What a finished run says about itself: a model at chance level is flagged wherever it is
shown, and a run that failed on its data is not offered a resume that would fail the same way."""

from __future__ import annotations

from dataclasses import replace

import pytest

from resnet_explorer.common import DataError, RunError
from resnet_explorer.models import store
from resnet_explorer.models.card import ModelCard, render_card
from resnet_explorer.runs import RunInfo, RunPaths, get_run, read_status, resume_run
from resnet_explorer.runs.layout import FAILED_ON_DATA, FAILED_OTHERWISE, write_status
from resnet_explorer.training import job, run_training
from resnet_explorer.training.verdict import chance_bar, chance_warning
from tests.train_helpers import TINY_ARCH, TINY_TRAIN

pytestmark = pytest.mark.usefixtures("one_thread")
DIGITS_VAL = [36, 37, 35, 36, 36, 36, 36, 35, 36, 36]  # the default split's 359 images


def test_chance_is_guessing_the_most_common_class_plus_three_standard_errors():
    guess, bar = chance_bar(DIGITS_VAL)
    assert guess == pytest.approx(37 / 359) and bar == pytest.approx(0.151, abs=0.001)
    assert "at chance level: validation accuracy 10.3%" in chance_warning(0.103, DIGITS_VAL)
    assert chance_warning(0.16, DIGITS_VAL) == "" and chance_warning(None, DIGITS_VAL) == ""
    _, big = chance_bar([1000] * 10)  # many validation images: a narrow band
    assert big == pytest.approx(0.109, abs=0.001)
    assert chance_bar([90, 10])[0] == 0.9  # unbalanced: guessing "the big class" scores 90 %


def test_a_run_that_ends_at_chance_says_so_in_its_status_and_its_models_card(tmp_path):
    # A learning rate of 1e-6 for one epoch leaves the network where it started.
    cfg = replace(TINY_TRAIN, epochs=1, lr=1e-6, train_limit=64, keep_last=False)
    status = run_training(TINY_ARCH, cfg, tmp_path / "run", weights_dir=tmp_path / "w",
                          echo=False)
    assert status["state"] == "completed" and status["best_model"] == "run-best"
    assert "run-best is at chance level" in status["message"]
    assert "train for more epochs" in status["warning"]
    info = RunInfo.from_status("r", read_status(RunPaths(tmp_path / "run")))
    assert info.warning == status["warning"]
    sidecar = store.read_sidecar("run-best", tmp_path / "w")
    assert sidecar["metrics"]["warning"].startswith("at chance level")
    card = ModelCard.from_sidecar(sidecar)
    assert "| Warning | **at chance level" in render_card(card)
    assert card.summary().endswith("at chance level: it has not learned")  # the model pickers


def test_a_run_that_could_not_get_its_data_fails_without_an_offer_to_resume(home, monkeypatch):
    def offline(*args, **kwargs):
        raise DataError("CIFAR-10 is not in data/ and could not be downloaded (URLError)")

    monkeypatch.setattr(job, "load_dataset", offline)
    run_id = "20250101-000000-cifar10-0001"
    paths = RunPaths(home / "runs" / run_id)
    status = run_training(TINY_ARCH, replace(TINY_TRAIN, dataset="cifar10"), paths.dir,
                          echo=False)
    assert status["state"] == "failed" and status["failure"] == FAILED_ON_DATA
    info = get_run(run_id, home / "runs")
    assert info.state == "failed" and not info.can_resume
    with pytest.raises(RunError, match="failed on its data"):
        resume_run(run_id, home / "runs")
    # Any other failure (a crash, a full disk) may pass on a second try: resumable.
    write_status(paths, failure=FAILED_OTHERWISE)
    assert get_run(run_id, home / "runs").can_resume
