"""AppTest of what the Train page tells a newcomer: a warm-up that follows the epochs, the size
of the last feature maps (with fixes when Grad-CAM would be a flat tint), a runs table that
stays live, a model at chance level flagged, and no resume for a run that failed on its data."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace

from resnet_explorer.arch import BASELINE
from resnet_explorer.runs import RunPaths, write_status
from resnet_explorer.runs.layout import FAILED_ON_DATA, try_lock
from resnet_explorer.training import QUICK
from tests.fragment_helpers import live_fragments, tick  # noqa: F401 (a fixture)
from tests.test_train_page import page, texts
from tests.train_helpers import TINY_ARCH


def fake_run(home, run_id: str, **status) -> RunPaths:
    """A run folder as a trainer leaves it, without any process (status.json only)."""
    paths = RunPaths(home / "runs" / run_id)
    paths.dir.mkdir(parents=True)
    write_status(paths, created=time.time(), dataset="digits", arch_name="tiny", epochs=8,
                 **status)
    return paths


def table(at) -> list[dict]:
    """The runs table's rows (the data preview has a table of classes too)."""
    [runs] = [d.value for d in at.dataframe if "run" in d.value.columns]
    return runs.to_dict("records")


def test_warm_up_follows_the_epochs_until_the_person_sets_it(home):
    at = page()
    warm = at.number_input(key="hp_warmup_epochs")
    assert warm.value is None and warm.proto.placeholder == "auto: 2"
    at.number_input(key="hp_epochs").set_value(1).run()  # the whole run was warm-up before
    assert at.number_input(key="hp_warmup_epochs").proto.placeholder == "auto: 0.25"
    assert not at.error and not at.button(key="train_start").disabled
    at.number_input(key="hp_warmup_epochs").set_value(0.5).run()  # set: kept whatever the epochs
    at.number_input(key="hp_epochs").set_value(4).run()
    assert at.number_input(key="hp_warmup_epochs").value == 0.5
    at.number_input(key="hp_warmup_epochs").set_value(None).run()  # emptied: auto again
    assert at.number_input(key="hp_warmup_epochs").proto.placeholder == "auto: 1"
    assert not at.error


def test_the_last_feature_map_size_is_shown_with_fixes_when_grad_cam_would_be_flat(home):
    at = page(BASELINE)
    assert QUICK.image_size == 72
    assert "At 72 px the last stage's feature maps are 3×3: Grad-CAM" in texts(at)
    assert not at.warning
    at.number_input(key="hp_image_size").set_value(32).run()  # the recipe before: 1×1
    assert "At 32 px the last stage's feature maps are 1×1, so Grad-CAM" in texts(at)
    size = at.button(key="train_fix_size")
    assert size.label == "Train at 72 px"  # the smallest at which the shape walk finds 3×3
    size.click().run()
    assert at.number_input(key="hp_image_size").value == 72 and not at.warning
    at.number_input(key="hp_image_size").set_value(32).run()
    at.button(key="train_fix_stem").click().run()  # or keep 32 px with the CIFAR stem
    assert at.session_state["arch"] == replace(BASELINE, stem="cifar")
    assert "At 32 px the last stage's feature maps are 4×4" in texts(at)
    assert not at.warning


def test_the_runs_table_is_live_with_the_run_panel(home, live_fragments):
    paths = fake_run(home, "20250101-000000-digits-0001", state="queued", message="queued")
    supervisor = try_lock(paths.lock)  # alive: it holds the run's lock
    try:
        at = page(TINY_ARCH)
        assert [r["state"] for r in table(at)] == ["queued"]
        write_status(paths, state="running", epoch=1.5, step=36, total_steps=184,
                     message="training: epoch 1.50 of 8")
        later = tick()  # the browser's timer: only the live parts of the page run again
        [row] = table(later)
        assert row["state"] == "running" and row["epoch"] == "1.5/8"
        assert "epoch 1.50 of 8" in texts(later)  # the panel below says the same
    finally:
        os.close(supervisor)


def test_a_model_at_chance_is_flagged_and_a_data_failure_offers_no_resume(home):
    warning = ("run-best is at chance level: validation accuracy 10.3% is no better than always "
               "answering the most common class (10.3%); it has not learned")
    chance = fake_run(home, "20250101-000000-digits-0001", state="completed", epoch=1,
                      best_val_acc=0.103, message="1 epochs; kept run-best", warning=warning)
    records = [{"kind": "step", "step": 1, "epoch": 0.5, "loss": 2.3, "lr": 0.01},
               {"kind": "epoch", "epoch": 1, "step": 2, "train_loss": 2.2, "val_loss": 521.0,
                "train_acc": 0.2, "val_acc": 0.103}]
    chance.metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    fake_run(home, "20250101-000001-cifar10-0002", state="failed", failure=FAILED_ON_DATA,
             message="CIFAR-10 is not in data/ and could not be downloaded")
    at = page(TINY_ARCH)
    assert [r["best val acc"] for r in table(at)] == ["", "10.3% (chance)"]
    # Newest first: the failed run is shown; resuming would fail on the same download.
    assert "train_resume" not in [b.key for b in at.button]
    assert "Not resumable: a resume would load the same data again" in texts(at)
    at.selectbox(key="train_run").set_value(chance.run_id).run()
    assert f"Model {warning}." in [w.value for w in at.warning]
    at.toggle(key="train_loss_log").set_value(True).run()  # the 521 no longer flattens the rest
    loss = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert loss["layout"]["yaxis"]["type"] == "log"
