"""The Compare table (experiments.table), its actions and chart data, ArchConfig.short_diff."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import replace

import pandas as pd
import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from hypothesis import given, settings
from hypothesis import strategies as hs

from resnet_explorer.analysis import latency
from resnet_explorer.arch import (ACTIVATIONS, BASELINE, PRESETS, SIZED_BY_DATA, ArchConfig,
                                   build_model)
from resnet_explorer.experiments import (build_table, delete_rows, delete_runs, legend_names,
                                         measure_rows, pareto_front, shared_parts,
                                         store_signature, table_csv, with_live_states)
from resnet_explorer.experiments import table as table_module
from resnet_explorer.experiments.actions import latency_device
from resnet_explorer.experiments.charts import (accuracy_cost_figure, curve_figures,
                                                sweep_deltas_figure)
from resnet_explorer.models import list_models, save_model
from resnet_explorer.runs import RUNNING, read_metrics, write_status
from resnet_explorer.runs.layout import try_lock
from resnet_explorer.training import TrainConfig
from tests.compare_helpers import make_run, run_id
from tests.inference_helpers import TINY, sidecar_for
from tests.train_helpers import TINY_ARCH

SILU = replace(TINY_ARCH, activation="silu")
SE = replace(TINY_ARCH, se_reduction=4)


@pytest.fixture
def store(tmp_path):
    """(runs, weights, latency cache) folders of an empty temporary home."""
    return tmp_path / "runs", tmp_path / "weights", tmp_path / "cache"


def _build(store):
    runs, weights, cache = store
    return build_table(runs, weights, cache)


def _by_key(table):
    return {r.key: r for r in table.rows}


# ----- ArchConfig.short_diff -------------------------------------------------------------------
@pytest.mark.parametrize("cfg, text", [
    (BASELINE, "resnet34"),
    (ArchConfig(num_classes=10), "resnet34"),  # sized by the data: not a design change
    (ArchConfig(activation="silu", depthwise=(False, False, True, False)), "silu, dw stage 3"),
    (PRESETS["se-resnet34"], "se r16"),
    (PRESETS["resnet18"], "blocks 2-2-2-2"),
    (PRESETS["resnet34-dw"], "dw all"),
    (PRESETS["resnet34-d"], "shortcut D, deep stem"),
    (ArchConfig(depthwise=(True, False, True, False)), "dw stages 1+3"),
    (ArchConfig(norm="none"), "no norm"),
    (ArchConfig(norm="group", norm_groups=16), "norm gn, 16 groups"),
    (ArchConfig(block="bottleneck", width_multiplier=0.5), "bottleneck, width ×0.5"),
    (ArchConfig(dropout=0.2, zero_init_last=True, head_hidden=256),
     "dropout 0.2, zero-init last, head 256"),
])
def test_short_diff_names_what_differs_from_resnet34(cfg, text):
    assert cfg.short_diff() == text


def test_short_diff_uses_each_option_tables_short_label():
    for name, option in ACTIVATIONS.items():
        if name != BASELINE.activation:
            assert ArchConfig(activation=name).short_diff() == option.short


def test_short_diff_against_another_config():
    resnet18 = PRESETS["resnet18"]
    assert replace(resnet18, activation="gelu").short_diff(resnet18) == "gelu"
    assert BASELINE.short_diff(resnet18) == "blocks 3-4-6-3"
    cifar = PRESETS["resnet34-cifar"]
    assert replace(cifar, num_classes=100).short_diff(cifar) == "resnet34-cifar"
    assert TINY_ARCH.short_diff(TINY_ARCH) == "base"  # no preset to name it by
    # A three-stage network has no fourth stage to be depthwise in: blocks says it all.
    assert ArchConfig(blocks=(3, 4, 6), widths=(64, 128, 256),
                      depthwise=(False,) * 3).short_diff() == "blocks 3-4-6, widths 64-128-256"


# ----- rows and columns ------------------------------------------------------------------------
def test_rows_show_each_runs_differences_results_and_cost(store):
    runs, weights, _ = store
    make_run(runs, 1, SILU, acc=0.8, sweep="sw1", modification="silu")
    make_run(runs, 2, SE, acc=0.75)
    make_run(runs, 3, ArchConfig(num_classes=10), TrainConfig(image_size=32, epochs=3), acc=0.5)
    table = _build(store)
    rows = _by_key(table)
    assert [r.key for r in table.rows] == [run_id(3), run_id(2), run_id(1)]  # newest first
    frame = table.frame()
    changed = ["activation", "se_reduction", "depthwise", "stem", "stem_width", "blocks",
               "widths", "in_channels"]
    first = list(frame.columns).index("epochs") + 1  # after what each run reached and cost
    assert sorted(frame.columns[first:first + len(changed)]) == sorted(changed)
    assert not set(SIZED_BY_DATA) & set(frame.columns) and "norm" not in frame.columns
    silu = rows[run_id(1)]
    assert silu.label == "silu, cifar stem, stem 8, blocks 1-1, widths 8-16, 1 channel"
    assert (silu.best_val_acc, silu.best_epoch, silu.final_train_loss, silu.wall_s) == \
        (0.8, 2, 1.0, 3.0)
    assert (silu.sweep, silu.modification, silu.status, silu.image_size) == \
        ("sw1", "silu", "completed", 8)
    record = frame.set_index("run or model").loc[run_id(1)]
    assert record["activation"] == "silu" and record["blocks"] == "1-1"
    assert record["depthwise"] == "off-off" and record["se_reduction"] == 0

    # Parameters and MACs at the run's input size, against torchvision and FlopCounterMode.
    resnet = rows[run_id(3)]
    assert resnet.label == "resnet34" and resnet.is_baseline
    reference = torchvision.models.resnet34(num_classes=10).eval()
    assert resnet.params == sum(p.numel() for p in reference.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        reference(torch.zeros(1, 3, 32, 32))
    assert resnet.macs == counter.get_total_flops() // 2
    assert frame["params"].dtype == "Int64" and frame["image size"].tolist() == [32, 8, 8]


def test_a_stored_model_with_metrics_is_a_row_unless_its_run_is_listed(store):
    runs, weights, _ = store
    listed = make_run(runs, 1, SILU).run_id
    torch.manual_seed(0)
    model = build_model(TINY)
    save_model(model, sidecar_for(name="own", run_id=listed, metrics={"best_val_acc": 0.9}),
               "own", weights)
    save_model(model, sidecar_for(name="orphan", run_id="20200101-000000-digits-beef",
                                  metrics={"best_val_acc": 0.6, "dataset": "digits",
                                           "train_loss": 0.7}), "orphan", weights)
    save_model(model, sidecar_for(name="imported"), "imported", weights)  # no metrics
    keys = [r.key for r in _build(store).rows]
    assert keys == [listed, "model:orphan"]
    orphan = _by_key(_build(store))["model:orphan"]
    assert (orphan.best_val_acc, orphan.dataset, orphan.final_train_loss, orphan.image_size) == \
        (0.6, "digits", 0.7, 32)
    assert orphan.params == sum(p.numel() for p in model.parameters())
    assert orphan.models == ("orphan",) and not orphan.is_run


def test_damaged_files_become_rows_that_say_what_is_wrong(store):
    runs, _, _ = store
    garbage = make_run(runs, 1, SILU)
    garbage.status.write_text("{torn")
    wrong_type = make_run(runs, 2, SILU, created="yesterday")
    no_arch = make_run(runs, 3, SE, state="cancelled", arch=None)
    no_arch.arch.write_bytes(b"\xff\xfe not json")
    bad_train = make_run(runs, 4, SE, best_val_acc="high")
    bad_train.train.write_text('{"image_size": "big"')
    (runs / "not-a-run").mkdir()
    rows = _by_key(_build(store))
    assert len(rows) == 4
    assert rows[garbage.run_id].status == "damaged"
    assert "status.json is unreadable" in rows[garbage.run_id].problem
    assert "wrong type" in rows[wrong_type.run_id].problem
    assert rows[no_arch.run_id].label == "(architecture unreadable)"
    assert "arch.json" in rows[no_arch.run_id].problem and rows[no_arch.run_id].params is None
    broken = rows[bad_train.run_id]
    assert "train.json" in broken.problem and broken.image_size is None
    assert broken.best_val_acc is None and broken.params is not None and broken.macs is None
    assert table_csv(_build(store).frame())  # every row renders


def test_the_table_reads_no_metrics_file_unless_status_lacks_the_figures(store, monkeypatch):
    runs, _, _ = store
    make_run(runs, 1, SILU)
    old = make_run(runs, 2, SE, state="cancelled", train_loss=None, elapsed_s=None)
    read = []
    real = table_module.read_jsonl
    monkeypatch.setattr(table_module, "read_jsonl", lambda p: read.append(p) or real(p))
    first = _by_key(_build(store))[old.run_id]
    assert (first.final_train_loss, first.wall_s) == (1.0, 3.0)  # the last epoch record
    assert read == [old.metrics]
    _build(store)
    assert read == [old.metrics]  # once per file version
    with open(old.metrics, "a") as handle:
        handle.write(json.dumps({"kind": "epoch", "epoch": 3, "train_loss": 0.5,
                                 "elapsed_s": 9.0}) + "\n")
    assert _by_key(_build(store))[old.run_id].final_train_loss == 0.5


def test_a_live_run_is_listed_as_running(store):
    runs, _, _ = store
    live = make_run(runs, 1, SILU, state=RUNNING, acc=None, epochs_done=1,
                    train_loss=0.9, elapsed_s=2.0)
    fd = try_lock(live.lock)
    try:
        row = _by_key(_build(store))[live.run_id]
        assert (row.status, row.best_val_acc, row.final_train_loss) == ("running", None, 0.9)
    finally:
        os.close(fd)
    assert _by_key(_build(store))[live.run_id].status == "interrupted"  # nobody holds it now


def test_signature_follows_the_files_without_reading_them(store, monkeypatch):
    runs, weights, cache = store
    paths = make_run(runs, 1, SILU)
    first = store_signature(*store)
    assert store_signature(*store) == first
    with open(paths.metrics, "a") as handle:  # metrics are not what the table is made of
        handle.write("{}\n")
    assert store_signature(*store) == first
    write_status(paths, best_val_acc=0.95)
    second = store_signature(*store)
    assert second != first
    save_model(build_model(TINY), sidecar_for(name="m"), "m", weights)
    third = store_signature(*store)
    assert third != second
    cache.mkdir()
    (cache / "latency.json").write_text("{}")
    assert store_signature(*store) != third

    def no_reads(*args, **kwargs):
        raise AssertionError("store_signature read a file")

    monkeypatch.setattr("builtins.open", no_reads)
    monkeypatch.setattr("pathlib.Path.read_bytes", no_reads)
    store_signature(*store)


def test_csv_holds_the_table_and_defuses_formulas(store):
    runs, _, _ = store
    make_run(runs, 1, SILU, sweep="=HYPERLINK(1)", modification="@cmd")
    make_run(runs, 2, SE, acc=None)
    frame = _build(store).frame()
    rows = list(csv.reader(io.StringIO(table_csv(frame))))
    assert rows[0] == list(frame.columns) and len(rows) == 3
    record = dict(zip(rows[0], rows[2]))
    assert record["sweep"] == "'=HYPERLINK(1)" and record["modification"] == "'@cmd"
    assert float(record["best val acc"]) == 0.9 and record["activation"] == "silu"
    missing = dict(zip(rows[0], rows[1]))
    assert missing["best val acc"] == missing["best epoch"] == ""  # not "nan" or "<NA>"


# ----- legends and the Pareto front ------------------------------------------------------------
def test_legend_names_drop_shared_parts_and_tell_twins_apart(store):
    runs, _, _ = store
    for n, (arch, seed) in enumerate([(SILU, 1), (SILU, 2), (TINY_ARCH, 0), (SE, 0)], start=1):
        make_run(runs, n, arch, TrainConfig(image_size=8, epochs=2, seed=seed), modification=(
            "baseline" if arch == TINY_ARCH else ""))
    rows = sorted(_build(store).rows, key=lambda r: r.key)
    assert shared_parts(rows) == ["cifar stem", "stem 8", "blocks 1-1", "widths 8-16",
                                  "1 channel"]
    assert legend_names(rows) == ["silu (seed 1)", "silu (seed 2)", "baseline", "se r4"]
    twins = [replace(rows[0], key=run_id(7)), replace(rows[0], key=run_id(8))]
    label = rows[0].label  # all the same: nothing is stripped, the run id tells them apart
    assert legend_names(twins) == [f"{label} (run …0007)", f"{label} (run …0008)"]
    assert legend_names(rows[:1]) == [rows[0].label]  # alone: nothing to share


@settings(max_examples=200, deadline=None)
@given(hs.lists(hs.tuples(hs.integers(0, 6) | hs.none(), hs.integers(0, 6)), max_size=12))
def test_pareto_front_matches_the_brute_force_definition(points):
    costs = [c for c, _ in points]
    accs = [a / 6 for _, a in points]
    usable = [i for i, c in enumerate(costs) if c is not None]
    expected = {i for i in usable
                if not any(costs[j] <= costs[i] and accs[j] >= accs[i]
                           and (costs[j] < costs[i] or accs[j] > accs[i]) for j in usable)}
    front = pareto_front(costs, accs)
    assert set(front) == expected and len(front) == len(expected)
    assert [costs[i] for i in front] == sorted(costs[i] for i in front)


def test_pareto_front_skips_missing_and_non_finite_values():
    assert pareto_front([1, None, 3, math.nan, 2], [0.5, 0.9, 0.8, 0.99, None]) == [0, 2]


# ----- deleting and measuring ------------------------------------------------------------------
def _run_with_models(runs, weights, n, arch=SILU):
    paths = make_run(runs, n, arch, best_model=f"r{n}-best", last_model=f"r{n}-last")
    torch.manual_seed(n)
    for name in (f"r{n}-best", f"r{n}-last"):
        save_model(build_model(TINY), sidecar_for(name=name, run_id=paths.run_id,
                                                  metrics={"best_val_acc": 0.5}), name, weights)
    return paths


def test_delete_runs_removes_runs_and_their_models_and_refuses_active_ones(store):
    runs, weights, _ = store
    done = _run_with_models(runs, weights, 1)
    kept = _run_with_models(runs, weights, 2)
    live = make_run(runs, 3, SE, state=RUNNING)
    fd = try_lock(live.lock)
    try:
        messages = delete_runs([done.run_id, live.run_id, run_id(9), "../etc"],
                               runs_dir=runs, weights_dir=weights)
    finally:
        os.close(fd)
    assert messages[0] == f"deleted run {done.run_id} and its models r1-best, r1-last"
    assert "running: cancel it before deleting it" in messages[1]
    assert "already removed" in messages[2] and "is not a run id" in messages[3]
    assert not done.dir.exists() and live.dir.is_dir() and kept.dir.is_dir()
    assert sorted(m.name for m in list_models(weights)) == ["r2-best", "r2-last"]
    assert not list(runs.glob(".removed-*"))
    save_model(build_model(TINY), sidecar_for(name="solo", metrics={"best_val_acc": 0.4}),
               "solo", weights)
    assert delete_rows([kept.run_id, "model:solo"], runs_dir=runs, weights_dir=weights) == [
        f"deleted run {kept.run_id} and its models r2-best, r2-last", "deleted model solo"]
    assert list_models(weights) == [] and [r.key for r in _build(store).rows] == [live.run_id]


def test_measured_latency_shows_in_the_table(store, monkeypatch):
    runs, weights, cache = store
    monkeypatch.setattr(latency, "WARMUP_S", 0.0)  # tiny nets: a few runs are enough here
    monkeypatch.setattr(latency, "TIMED_S", 0.0)
    make_run(runs, 1, SILU)
    make_run(runs, 2, SILU, device="cuda:0")  # no GPU here: measured on the CPU instead
    table = _build(store)
    assert all(r.latency_ms is None for r in table.rows)  # never measured implicitly
    assert latency_device("cuda:0") == ("cuda" if torch.cuda.is_available() else "cpu")
    messages = measure_rows(table.rows, latency_dir=cache)
    assert len(messages) == (2 if torch.cuda.is_available() else 1)
    assert "ms at batch 1" in messages[0] and "images/s at batch 32" in messages[0]
    rows = build_table(runs, weights, cache).rows
    assert all(r.latency_ms > 0 and r.images_per_s > 0 for r in rows)
    assert {r.throughput_batch for r in rows if r.latency_device == "cpu"} == {32}


# ----- charts ----------------------------------------------------------------------------------
def test_curve_figures_overlay_one_colour_per_run_named_by_its_legend(store):
    runs, _, _ = store
    for n, arch in enumerate((SILU, SE), start=1):
        make_run(runs, n, arch)
    rows = _build(store).rows
    names = legend_names(rows)
    figures = curve_figures([(n, read_metrics(r.key, runs)) for n, r in zip(names, rows)],
                            x="wall time")
    loss, acc, lr = figures["loss"], figures["accuracy"], figures["lr"]
    assert [t.name for t in acc.data] == ["se r4", "silu"]
    assert [t.name for t in loss.data if t.showlegend] == ["se r4", "silu"]  # validation: dotted
    assert len({t.line.color for t in acc.data}) == 2
    assert [t.line.color for t in loss.data[::2]] == [t.line.color for t in acc.data]
    assert list(acc.data[0].x) == [1.5, 3.0] and list(acc.data[0].y) == [0.45, 0.9]  # x: wall s
    assert len(lr.data[0].x) == 20  # the step records


def test_scatter_marks_the_baseline_and_draws_the_pareto_front(store):
    runs, _, _ = store
    make_run(runs, 1, SILU, acc=0.6)
    make_run(runs, 2, SE, acc=0.5)  # more MACs, less accurate: not on the front
    make_run(runs, 3, ArchConfig(num_classes=10), acc=0.95)
    make_run(runs, 4, TINY_ARCH, acc=None)  # no accuracy yet: no point
    rows = _build(store).rows
    fig = accuracy_cost_figure(rows, [r.label for r in rows], "MACs")
    traces = {t.name: t for t in fig.data}
    assert len(traces["runs and models"].x) == 2 and traces["resnet34 (baseline)"].y == (0.95,)
    by_key = _by_key(_build(store))
    front = traces["Pareto front"]
    assert list(front.y) == [0.6, 0.95]
    assert list(front.x) == [by_key[run_id(1)].macs, by_key[run_id(3)].macs]
    assert fig.layout.xaxis.type == "log"  # tiny and full ResNet34 in one chart
    assert len(accuracy_cost_figure(rows, [r.label for r in rows], "latency").data) == 0


def test_sweep_deltas_figure_has_a_bar_per_modification_with_its_interval():
    summary = pd.DataFrame({
        "name": ["baseline", "silu", "gelu", "mish"], "n": [3, 3, 3, 1],
        "mean_best_val_acc": [0.9, 0.93, 0.85, 0.9], "std_best_val_acc": [0.01] * 4,
        "delta_vs_baseline": [0.0, 0.03, -0.05, math.nan],
        "ci_low": [math.nan, -0.01, -0.08, math.nan],
        "ci_high": [math.nan, 0.07, -0.02, math.nan], "pending": [0, 0, 0, 2]})
    fig = sweep_deltas_figure(summary)
    bars, pending = fig.data
    assert list(bars.x) == ["silu", "gelu"] and list(bars.y) == [0.03, -0.05]
    assert list(bars.error_y.array) == pytest.approx([0.04, 0.03])
    assert list(bars.error_y.arrayminus) == pytest.approx([0.04, 0.03])
    assert list(bars.marker.color) == ["darkgrey", "indianred"]  # within noise; worse
    assert list(pending.x) == ["mish"] and "2 run(s) still pending" in pending.text[0]
    assert sweep_deltas_figure(summary.iloc[:1]).data == ()  # the baseline alone: no bars


def test_a_run_that_dies_while_listed_shows_interrupted_although_no_file_changed(store):
    runs, weights, cache = store
    live = make_run(runs, 1, SILU, state=RUNNING, acc=None, epochs_done=1)
    make_run(runs, 2, SE)
    fd = try_lock(live.lock)
    try:
        cached = _build(store)
        signature = store_signature(*store)
        assert with_live_states(cached, runs) is cached  # alive: nothing changes
    finally:
        os.close(fd)  # the trainer dies: a lock is released, no file changes
    live_table = with_live_states(cached, runs)  # what a page keyed by files shows
    assert _by_key(live_table)[live.run_id].status == "interrupted"
    assert "stopped without reporting" in _by_key(live_table)[live.run_id].message
    assert store_signature(*store) == signature  # read, never written
    assert _by_key(_build(store))[live.run_id].status == "interrupted"


def test_numbers_too_large_for_a_float_make_a_damaged_row_not_an_exception(store):
    runs, _, _ = store
    huge = make_run(runs, 1, SILU)
    # JSON reads 1e400 as inf and a 401-digit integer as an int: int() and float() overflow.
    huge.status.write_text('{"state": "completed", "epochs": 1e400, "created": 1' + "0" * 400
                           + "}")
    row = _by_key(_build(store))[huge.run_id]
    assert row.status == "damaged" and "wrong type" in row.problem
