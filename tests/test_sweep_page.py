"""AppTest of the Sweeps page: modifications from widgets and JSON, every problem listed with
its modification's name, the confirmation above 200 runs, a recorded sweep's results, and a
sweep queued, cancelled and resumed from the page."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from resnet_explorer import runs
from resnet_explorer.experiments import stats
from resnet_explorer.experiments.sweep import cancel_sweep, list_sweeps, queue_sweep, sweep_runs
from resnet_explorer.experiments.sweep_spec import SweepSpec
from resnet_explorer.runs import RunPaths, write_status
from resnet_explorer.training import TrainConfig
from tests.page_helpers import open_page_at
from tests.train_helpers import TINY_ARCH, TINY_TRAIN, wait_for

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "sweeps.py")
MODS = [{"name": "silu", "arch": {"activation": "silu"}},
        {"name": "lr 0.2", "train": {"lr": 0.2}}]


def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["arch"] = TINY_ARCH  # what the Architecture page would have chosen
    at.run()
    assert not at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "success", "info", "warning", "error")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def add_json(at: AppTest, mods) -> AppTest:
    at.text_area(key="sw_mod_json").input(json.dumps(mods)).run()
    button(at, "Add from JSON").click().run()
    assert not at.exception
    return at


def test_an_empty_store_offers_the_baseline_over_three_seeds(store_home):
    at = page()
    assert "No sweeps yet" in texts(at)
    assert "**1 configuration(s)** (the baseline included) × **3 seeds** = **3 runs**" in texts(at)
    queue = at.button(key="sw_queue")
    assert not queue.disabled and queue.label == "Queue 3 runs"


def test_json_modifications_are_checked_and_every_problem_names_its_modification(store_home):
    at = add_json(page(), [*MODS, {"name": "bad act", "arch": {"activation": "nope"}},
                           {"name": "SILU", "arch": {"activation": "gelu"}},
                           {"name": "swish", "arch": {"activation": "silu"}}])
    assert "Added 5 modification(s)" in texts(at)
    [error] = at.error
    assert "modification 'bad act': arch: activation must be one of" in error.value
    assert "modification 'SILU': the name is used twice" in error.value
    assert "modification 'swish' gives the same configuration as 'silu'" in error.value
    assert at.button(key="sw_queue").disabled
    at.multiselect(key="sw_remove").set_value(["bad act", "SILU", "swish"])
    button(at, "Remove selected").click().run()
    assert not at.error and at.session_state["sw_mods"] == MODS
    assert at.button(key="sw_queue").label == "Queue 9 runs"
    at.text_area(key="sw_mod_json").input("[{oops").run()
    button(at, "Add from JSON").click().run()
    assert "The JSON was not added: config is not valid JSON" in texts(at)


def test_widgets_add_a_modification_of_the_architecture_and_the_recipe(store_home):
    at = page()
    at.multiselect(key="sw_mod_fields").set_value(["arch.activation", "arch.depthwise",
                                                   "train.lr"]).run()
    assert at.selectbox(key="sw_mod_arch_activation").value == "relu"  # the base's value
    at.selectbox(key="sw_mod_arch_activation").set_value("silu")
    at.checkbox(key="sw_mod_arch_depthwise_1").check()
    at.number_input(key="sw_mod_train_lr").set_value(0.1)
    at.text_input(key="sw_mod_name").input("silu, dw 2, lr 0.1").run()
    button(at, "Add modification").click().run()
    assert not at.exception and not at.error, texts(at)
    assert at.session_state["sw_mods"] == [{"name": "silu, dw 2, lr 0.1",
                                            "arch": {"activation": "silu",
                                                     "depthwise": [False, True]},
                                            "train": {"lr": 0.1}}]
    assert at.button(key="sw_queue").label == "Queue 6 runs"
    # Unnamed: named after its changes.
    at.multiselect(key="sw_mod_fields").set_value(["arch.dropout"]).run()
    at.number_input(key="sw_mod_arch_dropout").set_value(0.2)
    button(at, "Add modification").click().run()
    assert at.session_state["sw_mods"][-1]["name"] == "dropout=0.2"


def test_more_than_200_runs_ask_for_confirmation(store_home):
    at = add_json(page(), MODS)
    at.number_input(key="sw_seeds").set_value(100).run()
    assert "= **300 runs**" in texts(at)
    assert at.button(key="sw_queue").disabled
    at.checkbox(key="sw_confirm").check().run()
    assert not at.button(key="sw_queue").disabled


def test_a_recorded_sweep_shows_its_results_pending_runs_chart_and_csv(store_home):
    spec = SweepSpec.from_dict({"base_arch": TINY_ARCH.to_dict(), "train": TINY_TRAIN.to_dict(),
                                "modifications": MODS, "seeds": 2})
    record = queue_sweep(spec, external=True)  # prepared runs: no process starts
    accuracy = {("baseline", 0): 0.80, ("baseline", 1): 0.84, ("silu", 0): 0.90,
                ("silu", 1): 0.88, ("lr 0.2", 0): 0.70}
    for slot in record.slots:
        if (slot.modification, slot.seed) in accuracy:
            write_status(RunPaths(store_home / "runs" / slot.run_id), state="completed",
                         best_val_acc=accuracy[slot.modification, slot.seed], elapsed_s=3.0)
    at = page()
    table = at.dataframe[0].value.set_index("modification")
    assert list(table.index) == ["baseline", "silu", "lr 0.2"]
    std = 100 * np.std([0.90, 0.88], ddof=1)
    assert table.loc["silu", "best val acc"] == f"89.00 % ± {std:.2f}"
    assert table.loc["silu", "Δ vs baseline, pt [95 % CI]"].startswith("+7.00 [")
    assert table.loc["lr 0.2", "n"] == "1 (+1 pending)"
    assert table.loc["lr 0.2", "verdict"] == "pending"
    assert "**5** completed · **1** prepared" in texts(at) and stats.NOISE_NOTE in texts(at)
    assert len(at.get("plotly_chart")) == 1
    assert [b.label for b in at.get("download_button")] == ["Download summary.csv"]
    assert at.button(key="sweep_cancel").disabled and at.button(key="sweep_resume").disabled
    assert any("--run-dir" in c.value for c in at.code)  # the cluster's trainer commands


def test_queue_cancel_and_resume_a_sweep_from_the_page(home):
    at = page()
    for name, value in (("image_size", 8), ("epochs", 1000), ("batch_size", 64)):
        at.number_input(key=f"sw_hp_{name}").set_value(value)
    at.selectbox(key="sw_hp_device").set_value("cpu")
    at.number_input(key="sw_seeds").set_value(2).run()
    assert not at.error, texts(at)
    at.button(key="sw_queue").click().run()
    assert not at.exception and not at.error, texts(at)
    [record] = list_sweeps(home / "sweeps")
    assert f"Queued sweep {record.sweep_id}: 2 runs." in texts(at)
    at.button(key="sw_queue").click().run()  # a double click queues nothing more
    assert len(list_sweeps(home / "sweeps")) == 1
    first = record.slots[0].run_id
    wait_for(lambda: runs.get_run(first, home / "runs").state == "running", 60, "training")
    at.run()
    at.button(key="sweep_cancel").click().run()
    assert "cancelled 1 run(s), removed 1 queued run(s)" in texts(at), texts(at)
    assert [r.state for r in sweep_runs(record, home / "runs")] == ["cancelled", "removed"]
    at.button(key="sweep_resume").click().run()
    assert "resumed 1 run(s), queued 1 removed run(s) again" in texts(at), texts(at)
    [record] = list_sweeps(home / "sweeps")
    assert all(r.info is not None and r.info.active for r in sweep_runs(record, home / "runs"))
    cancel_sweep(record, home / "runs")


def test_the_page_is_reached_from_the_navigation(store_home):
    at = open_page_at("../app.py")
    at.switch_page("app_pages/sweeps.py").run()
    assert not at.exception and at.title[0].value == "Ablation sweeps"
    assert "No sweeps yet" in texts(at)


def test_the_recipe_has_a_widget_for_every_train_field(store_home):
    at = page()
    keys = {w.key for kind in ("selectbox", "number_input", "checkbox", "toggle", "text_input",
                               "radio", "segmented_control") for w in at.get(kind)}
    # data_path only for the sources that need one (the default dataset does not).
    expected = {f"sw_hp_{f.name}" for f in fields(TrainConfig) if f.name != "data_path"}
    assert expected <= keys, expected - keys
