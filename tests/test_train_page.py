"""AppTest of the Train page: dataset preview, a run started from the page, live view, cancel,
the finished run's downloads, and a train.json loaded back into the recipe."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from streamlit.testing.v1 import AppTest

from resnet_explorer import runs
from resnet_explorer.models import load_model
from resnet_explorer.training import TrainConfig
from tests.train_helpers import TINY_ARCH, TINY_TRAIN, wait_for

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "train.py")


def page(arch=TINY_ARCH) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["arch"] = arch  # what the Architecture page would have chosen
    return at.run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "success", "info", "warning", "error")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_page_previews_the_built_in_digits_with_the_quick_recipe(home):
    at = page()
    assert not at.exception
    assert "**10 classes** · 1,438 training and 359 validation images" in texts(at)
    assert at.number_input(key="hp_epochs").value == 8 and at.number_input(key="hp_lr").value == 0.05
    assert "No runs yet" in texts(at)
    at.selectbox(key="hp_dataset").set_value("cifar10").run()
    assert "not been downloaded" in texts(at) and not at.exception


def _image_rows(at: AppTest) -> list[int]:
    """How many images each row (horizontal block) of the page holds, top to bottom."""
    rows: dict[int, int] = {}

    def walk(node, parent=None):
        for child in getattr(node, "children", {}).values():
            if getattr(child, "type", None) == "image":
                rows[id(parent)] = rows.get(id(parent), 0) + 1
            walk(child, node if getattr(child, "type", None) == "column" else parent)

    walk(at._tree)
    return list(rows.values())


def test_the_digit_samples_form_an_even_grid(home):
    assert _image_rows(page()) == [8, 8]  # not a flowing list that wraps as 14 + 2


def test_start_from_the_page_then_watch_cancel_and_reload(home):
    at = page()
    at.number_input(key="hp_epochs").set_value(TINY_TRAIN.epochs)
    at.number_input(key="hp_image_size").set_value(TINY_TRAIN.image_size)
    at.number_input(key="hp_warmup_epochs").set_value(TINY_TRAIN.warmup_epochs)
    at.selectbox(key="hp_device").set_value("cpu").run()
    assert not at.error and not at.button(key="train_start").disabled, texts(at)
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error, texts(at)
    [run] = runs.list_runs(home / "runs")
    assert f"Started run {run.run_id}" in texts(at)
    # A second click within seconds (same session, same settings) reuses the run.
    at.button(key="train_start").click().run()
    assert len(runs.list_runs(home / "runs")) == 1

    wait_for(lambda: runs.get_run(run.run_id, home / "runs").state == "completed", 60, "the run")
    at.run()
    assert "completed" in texts(at) and f"{run.run_id}-best" in texts(at)
    assert len(at.get("plotly_chart")) == 4  # loss, accuracy, learning rate, images/s
    # Its downloads: the one model the default rules keep, the metrics and both configs.
    buttons = {b.key: b.label for b in at.get("download_button")}
    assert buttons == {f"train_dl_model_{run.run_id}-best": f"{run.run_id}-best (.zip)",
                       "train_dl_metrics": "Metrics (.csv)", "train_dl_arch": "arch.json",
                       "train_dl_train": "train.json"}
    load_model(f"{run.run_id}-best", home / "weights")
    at.button(key="train_try").click().run()
    assert at.session_state["inf_model"] == f"{run.run_id}-best"

    # A long run started elsewhere shows up here, live, and is cancelled from the page.
    other = runs.start_run(TINY_ARCH, replace(TINY_TRAIN, epochs=1000), device="cpu", runs_dir=home / "runs")
    wait_for(lambda: runs.get_run(other, home / "runs").state == "running", 30, "the long run")
    fresh = page()  # a second browser, or a reload
    assert fresh.selectbox(key="train_run").value == other
    assert [r.run_id for r in runs.list_runs(home / "runs")] == [other, run.run_id]
    fresh.button(key="train_cancel").click().run()
    assert not fresh.exception
    wait_for(lambda: runs.get_run(other, home / "runs").state == "cancelled", 5, "the cancel")
    fresh.run()
    assert "cancelled" in texts(fresh) and fresh.button(key="train_resume")


def test_invalid_settings_are_reported_live_and_start_nothing(home):
    at = page()
    assert not at.error and not at.button(key="train_start").disabled
    at.selectbox(key="hp_dataset").set_value("folder").run()  # but no folder given
    assert "needs data_path" in texts(at) and at.button(key="train_start").disabled
    at.selectbox(key="hp_dataset").set_value("digits").run()
    # Nothing is quietly fixed: the validator's own sentences, and no Start.
    at.number_input(key="hp_epochs").set_value(1)
    at.number_input(key="hp_warmup_epochs").set_value(2.0)  # typed: kept as typed
    at.selectbox(key="hp_optimizer").set_value("adamw").run()
    errors = texts(at)
    assert "warmup_epochs (2.0) cannot exceed epochs (1)" in errors
    assert "nesterov needs the sgd optimizer" in errors
    assert at.button(key="train_start").disabled
    assert runs.list_runs(home / "runs") == []
    at.number_input(key="hp_warmup_epochs").set_value(0.5)
    at.checkbox(key="hp_nesterov").uncheck().run()
    assert not at.error and not at.button(key="train_start").disabled


def test_the_form_is_generated_from_the_config_specs(home):
    from resnet_explorer.common import spec_of
    from resnet_explorer.training import TrainConfig
    at = page()
    epochs = at.number_input(key="hp_epochs")
    spec = spec_of(TrainConfig, "epochs")
    assert (epochs.label, epochs.min, epochs.max) == (spec.label, spec.lo, spec.hi)
    lr = at.number_input(key="hp_lr")
    assert lr.help == spec_of(TrainConfig, "lr").help and lr.format == "%.5f"
    assert at.number_input(key="hp_step_every")  # fields the old form left out are there too


def test_the_recipe_survives_a_visit_to_another_page(home):
    at = AppTest.from_file(str(Path(PAGE).parent.parent / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/train.py").run()
    at.number_input(key="hp_epochs").set_value(5).run()
    at.switch_page("app_pages/summary.py").run()
    at.switch_page("app_pages/train.py").run()
    assert at.number_input(key="hp_epochs").value == 5


def test_a_train_json_loads_back_into_the_recipe_and_keeps_what_it_does_not_name(home):
    at = page()
    at.number_input(key="hp_lr").set_value(0.01).run()  # typed by the person
    bad = b'{"epochs": "many", "lr": 0.2}'
    at.file_uploader(key="train_load_recipe").set_value(("bad.json", bad, "application/json"))
    at.run()
    assert not at.exception
    assert "bad.json was not loaded" in texts(at) and "epochs must be a whole number" in texts(at)
    assert at.number_input(key="hp_lr").value == 0.01  # a refused file changes nothing
    unknown = b'{"epochs": 3, "epoch": 4}'
    at.file_uploader(key="train_load_recipe").set_value(("typo.json", unknown, "application/json"))
    at.run()
    assert "unknown field 'epoch'" in texts(at) and at.number_input(key="hp_epochs").value == 8

    partial = b'{"epochs": 3, "optimizer": "adamw", "nesterov": false, "keep_last": true}'
    at.file_uploader(key="train_load_recipe").set_value(("train.json", partial, "application/json"))
    at.run()
    assert not at.exception and "Loaded 4 setting(s) from train.json" in texts(at)
    assert at.number_input(key="hp_epochs").value == 3
    assert at.selectbox(key="hp_optimizer").value == "adamw"
    assert at.checkbox(key="hp_nesterov").value is False and at.checkbox(key="hp_keep_last").value
    assert at.number_input(key="hp_lr").value == 0.01  # not in the file: the typed value stays

    full = replace(TINY_TRAIN, lr=0.3, keep_min_acc=0.5, seed=7)
    at.file_uploader(key="train_load_recipe").set_value(
        ("run-train.json", full.to_json().encode(), "application/json"))
    at.run()
    assert not at.exception and not at.error
    for name, value in full.to_dict().items():
        if name != "data_path":
            assert at.session_state[f"hp_{name}"] == value, name
    assert at.number_input(key="hp_keep_min_acc").value == 0.5


def test_new_train_config_fields_get_widgets_without_a_form_change(home):
    from ui.train_form import MORE, ROWS, unplaced_fields
    at = page()
    assert at.checkbox(key="hp_keep_last").value is False
    assert at.number_input(key="hp_keep_min_acc").max == 1.0
    for name in unplaced_fields():  # e.g. a field added by another part of the project
        assert f"hp_{name}" in at.session_state, name
    placed = {n for row in ROWS for n in row} | set(MORE) | set(unplaced_fields())
    assert placed | {"dataset", "data_path"} == set(TrainConfig().to_dict())
