"""AppTest of the Compare page: an empty store, the table with its filters and damaged runs,
selected runs' curves, the scatter, latency measurement and deletion with a confirmation."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from streamlit.testing.v1 import AppTest

from resnet_explorer.analysis import Latency, latency
from resnet_explorer.arch import ArchConfig, build_model
from resnet_explorer.experiments import table as table_module
from resnet_explorer.models import list_models, save_model
from resnet_explorer.runs import RunPaths, write_status
from resnet_explorer.training import TrainConfig
from tests.compare_helpers import make_run, run_id
from tests.inference_helpers import TINY, sidecar_for
from tests.page_helpers import TIMEOUT, open_page_at, texts
from tests.train_helpers import TINY_ARCH

PAGE = "../app_pages/compare.py"
SILU = replace(TINY_ARCH, activation="silu")
SE = replace(TINY_ARCH, se_reduction=4)


def _table(at: AppTest):
    return at.dataframe[0]


def _select(at: AppTest, *positions: int) -> AppTest:
    at.session_state[_table(at).key] = {"selection": {"rows": list(positions), "columns": [],
                                                      "cells": []}}
    at.run()
    assert not at.exception
    return at


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


@pytest.fixture
def runs(home):
    folder = home / "runs"
    make_run(folder, 1, SILU, acc=0.8, sweep="sweep-a", modification="silu")
    make_run(folder, 2, SE, acc=0.7, sweep="sweep-a", modification="se")
    make_run(folder, 3, TINY_ARCH, TrainConfig(dataset="mnist", image_size=8, epochs=2), acc=0.6)
    make_run(folder, 4, SILU).status.write_text("{torn")
    return folder


def test_an_empty_store_points_to_the_train_page(home):
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    assert "No runs yet" in texts(at.info)
    assert any("train" in link.proto.page for link in at.get("page_link"))
    assert not at.dataframe


def test_the_table_lists_runs_with_filters_and_says_what_is_damaged(runs):
    at = open_page_at(PAGE)
    frame = _table(at).value
    assert len(frame) == 4 and "activation" in frame.columns and "num_classes" not in frame
    damaged = frame.set_index("run or model").loc[run_id(4)]
    assert damaged["status"] == "damaged" and "unreadable" in damaged["message"]
    at.multiselect(key="cmp_f_dataset").select("mnist").run()
    assert list(_table(at).value["run or model"]) == [run_id(3, "mnist")]
    at.multiselect(key="cmp_f_dataset").unselect("mnist").run()
    at.multiselect(key="cmp_f_sweep").select("sweep-a").run()
    assert set(_table(at).value["modification"]) == {"silu", "se"}
    at.multiselect(key="cmp_f_status").select("damaged").run()
    assert _table(at).value.empty and not at.exception
    assert "0 of 4 row(s) shown" in texts(at.caption)


def test_selected_runs_overlay_their_curves_and_every_row_is_in_the_scatter(runs):
    at = open_page_at(PAGE)
    assert "Tick runs in the table" in texts(at.caption)
    scatter, = _charts(at)
    assert len(scatter["data"][0]["x"]) == 3  # the damaged run has no accuracy
    order = list(_table(at).value["run or model"])
    _select(at, order.index(run_id(1)), order.index(run_id(2)))
    loss, accuracy, lr, scatter = _charts(at)
    assert [t["name"] for t in accuracy["data"]] == ["se r4", "silu"]  # shared parts left out
    assert "Every plotted run has: cifar stem" in texts(at.caption)
    assert accuracy["layout"]["xaxis"]["title"]["text"] == "epoch"
    at.radio(key="cmp_curve_x").set_value("wall time").run()
    assert _charts(at)[0]["layout"]["xaxis"]["title"]["text"] == "wall time (s)"
    at.radio(key="cmp_cost").set_value("parameters").run()
    assert _charts(at)[-1]["layout"]["xaxis"]["title"]["text"] == "parameters"


def test_deleting_needs_a_second_click_and_takes_the_runs_models(runs):
    name = f"{run_id(2)}-best"
    save_model(build_model(TINY), sidecar_for(name=name, run_id=run_id(2),
                                              metrics={"best_val_acc": 0.7}), name)
    write_status(RunPaths(runs / run_id(2)), best_model=name)
    at = open_page_at(PAGE)
    order = list(_table(at).value["run or model"])
    _select(at, order.index(run_id(2)))
    at.button(key="cmp_delete").click().run()
    assert "Delete 1 row(s) for good" in texts(at.warning)
    assert (runs / run_id(2)).is_dir()  # nothing happens before the confirmation
    at.button(key="cmp_delete_no").click().run()
    assert not at.warning and (runs / run_id(2)).is_dir()
    at.button(key="cmp_delete").click().run()
    at.button(key="cmp_delete_yes").click().run()
    assert not at.exception
    assert f"deleted run {run_id(2)} and its model {name}" in texts(at.success)
    assert not (runs / run_id(2)).exists() and len(_table(at).value) == 3
    assert list_models() == []


def test_measure_latency_fills_the_table(runs, monkeypatch):
    monkeypatch.setattr(latency, "WARMUP_S", 0.0)  # tiny networks: a few runs suffice here
    monkeypatch.setattr(latency, "TIMED_S", 0.0)
    at = open_page_at(PAGE)
    assert at.button(key="cmp_measure").disabled  # nothing selected
    order = list(_table(at).value["run or model"])
    _select(at, order.index(run_id(1)))
    at.button(key="cmp_measure").click().run()
    assert not at.exception
    assert "ms at batch 1" in texts(at.info)
    row = _table(at).value.set_index("run or model").loc[run_id(1)]
    assert row["latency b1 (ms)"] > 0 and row["at batch"] == 32 and row["measured on"] == "cpu"


def test_the_page_says_where_macs_and_latency_rank_networks_differently(home, monkeypatch):
    big = ArchConfig(num_classes=10)
    make_run(home / "runs", 1, TINY_ARCH, acc=0.6)
    make_run(home / "runs", 2, big, TrainConfig(image_size=32, epochs=2), acc=0.9)

    def measured(cfg, input_size, device, batch, *, cache_dir=None):  # the tiny one is slower
        ms = 5.0 if cfg == TINY_ARCH else 1.0
        return Latency(batch, ms * batch, 1000 / ms, "cpu", 3) if device == "cpu" else None

    monkeypatch.setattr(table_module, "cached_latency", measured)
    at = open_page_at(PAGE)
    assert "fewer MACs" in texts(at.info) and "slower" in texts(at.info)
    at.radio(key="cmp_cost").set_value("latency").run()
    assert len(_charts(at)[-1]["data"][0]["x"]) == 1 and not at.exception
