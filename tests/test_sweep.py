"""Sweeps without training: statistics against scipy and numpy, spec validation, and how runs
are planned, spread over devices and recorded (prepared runs: no process is started)."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import threading
import time

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from resnet_explorer.analysis import analyze, measure_latency
from resnet_explorer.common import ConfigError, RunError
from resnet_explorer.common.devices import device_queue, resolve_device
from resnet_explorer.experiments import stats
from resnet_explorer.experiments import sweep as sweep_module
from resnet_explorer.experiments.sweep import (list_sweeps, queue_sweep, read_sweep,
                                               resume_sweep, sweep_runs, sweep_summary)
from resnet_explorer.experiments.sweep_spec import (SweepSpec, SweepTooLarge,
                                                    parse_modifications)
from resnet_explorer.runs import RunPaths, get_run, list_runs, read_status, write_status
from resnet_explorer.training import TrainConfig
from tests.train_helpers import TINY_ARCH, TINY_TRAIN

BASE = {"base_arch": TINY_ARCH.to_dict(), "train": TINY_TRAIN.to_dict()}
MODS = [{"name": "silu", "arch": {"activation": "silu"}},
        {"name": "lr 0.2", "train": {"lr": 0.2}}]


def spec(**changes) -> SweepSpec:
    return SweepSpec.from_dict({**BASE, "modifications": MODS, "seeds": 2, **changes})


def problems(**changes) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        spec(**changes)
    return caught.value.problems


# ----- statistics ----------------------------------------------------------------------------
A = [0.912, 0.931, 0.897, 0.944]
B = [0.889, 0.902, 0.921]


def test_describe_is_numpys_mean_and_sample_std():
    assert stats.describe(A) == (4, pytest.approx(np.mean(A)), pytest.approx(np.std(A, ddof=1)))
    n, mean, std = stats.describe([0.5])
    assert (n, mean) == (1, 0.5) and math.isnan(std)
    n, mean, std = stats.describe([])
    assert n == 0 and math.isnan(mean) and math.isnan(std)


def test_welch_matches_scipys_test_interval_and_degrees_of_freedom():
    result = stats.welch(A, B)
    reference = scipy_stats.ttest_ind(A, B, equal_var=False)
    low, high = reference.confidence_interval(0.95)
    assert result.delta == pytest.approx(np.mean(A) - np.mean(B))
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.df == pytest.approx(reference.df)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert result.within_noise == (low <= 0 <= high)
    far = stats.welch([0.95, 0.96, 0.97], [0.80, 0.81, 0.79])  # clearly better
    assert far.ci_low > 0 and not far.within_noise and stats.verdict(far, 0) == "better"
    assert stats.verdict(stats.welch([0.80, 0.81, 0.79], [0.95, 0.96, 0.97]), 0) == "worse"


def test_welch_needs_two_runs_on_each_side():
    for values, baseline in (([0.9], B), (A, [0.9]), ([], B)):
        result = stats.welch(values, baseline)
        assert all(math.isnan(v) for v in (result.delta, result.ci_low, result.ci_high,
                                           result.p_value))
        assert not result.within_noise
        assert stats.verdict(result, pending=1) == "pending"
        assert stats.verdict(result, pending=0) == "too few runs"


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
def test_identical_accuracies_give_an_exact_difference():
    same = stats.welch([0.9, 0.9, 0.9], [0.9, 0.9])
    assert (same.delta, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0) and same.within_noise
    assert stats.verdict(same, 0) == "within seed noise"
    apart = stats.welch([0.875, 0.875], [0.75, 0.75, 0.75])
    assert apart.delta == apart.ci_low == apart.ci_high == 0.125 and not apart.within_noise
    reference = scipy_stats.ttest_ind([0.875, 0.875], [0.75, 0.75, 0.75], equal_var=False)
    assert apart.p_value == reference.pvalue == 0.0


def test_summary_rows_columns_costs_and_latency(home):
    size = (1, 8, 8)
    measured = measure_latency(TINY_ARCH, size, "cpu", 1)  # into home/cache
    silu = TINY_ARCH.__class__(**{**TINY_ARCH.to_dict(), "activation": "silu",
                                 "blocks": (1, 1), "widths": (8, 16),
                                 "depthwise": (False, False)})
    frame = stats.summarize([
        stats.Group("baseline", B, [10.0, 12.0, None], TINY_ARCH, size, pending=1),
        stats.Group("silu", A, [20.0], silu, size),
        stats.Group("late", [0.5], [], TINY_ARCH, size, pending=2, stopped=1)])
    assert tuple(frame.columns[:10]) == stats.SUMMARY_COLUMNS
    base, mod, late = frame.to_dict("records")
    assert base["verdict"] == "baseline" and base["delta_vs_baseline"] == 0.0
    assert math.isnan(base["ci_low"]) and base["pending"] == 1
    assert base["mean_wall_s"] == 11.0 and base["latency_ms"] == measured.median_ms
    assert math.isnan(mod["latency_ms"])  # never measured: not measured here either
    expected = stats.welch(A, B)
    assert (mod["n"], mod["delta_vs_baseline"], mod["ci_low"], mod["p_value"]) == \
        (4, expected.delta, expected.ci_low, expected.p_value)
    assert mod["params"] == analyze(silu, size).params and mod["macs"] == analyze(silu, size).macs
    assert late["verdict"] == "pending" and late["stopped"] == 1
    table = stats.format_table(frame)
    assert table.loc[0, "n"] == "3 (+1 pending)"
    mean, std = 100 * np.mean(A), 100 * np.std(A, ddof=1)
    assert table.loc[1, "best val acc"] == f"{mean:.2f} % ± {std:.2f}"
    assert table.loc[1, "verdict"] == mod["verdict"]


# ----- the spec ------------------------------------------------------------------------------
def test_a_spec_builds_full_configs_and_round_trips():
    s = spec()
    assert [v.name for v in s.variants] == ["baseline", "silu", "lr 0.2"]
    assert s.variants[1].arch.activation == "silu" and s.variants[1].train == TINY_TRAIN
    assert s.variants[2].train.lr == 0.2 and s.variants[2].arch == TINY_ARCH
    assert s.n_runs == 6 and s.seed_values() == [0, 1]
    assert SweepSpec.from_dict(s.to_dict()) == s
    assert SweepSpec.from_json(json.dumps(s.to_dict())) == s
    assert spec(train={**TINY_TRAIN.to_dict(), "seed": 7}).seed_values() == [7, 8]


def test_every_problem_is_listed_with_its_modification_name():
    found = problems(modifications=[
        {"name": "bad act", "arch": {"activation": "nope"}},
        {"name": "bad lr", "train": {"lr": 50.0, "epochs": "many"}},
        {"name": "seeded", "train": {"seed": 3}},
        {"name": "typo", "arch": {"activaton": "silu"}, "extra": 1},
        {"arch": {}}], seeds=0)
    text = "\n".join(found)
    assert "modification 'bad act': arch: activation must be one of" in text
    assert "modification 'bad lr': train: epochs must be a whole number" in text
    assert "modification 'seeded': train.seed is set by the sweep" in text
    assert "modification 'typo': unknown field 'extra'" in text
    assert "modification 5: needs a name" in text
    assert "seeds must be a whole number from 1 to 100 (got 0)" in text
    # Checked by TrainConfig itself once the types are right: its cross-field rule too.
    found = problems(modifications=[{"name": "warm", "train": {"warmup_epochs": 5.0}}])
    assert found == ["modification 'warm': train: warmup_epochs (5.0) cannot exceed epochs (3)"]
    assert problems(modifications=[{"name": "x", "arch": {"activaton": "silu"}}]) == \
        ["modification 'x': arch: unknown field 'activaton'"]


def test_the_base_and_the_spec_itself_are_checked_too():
    found = problems(base_arch={"blocks": [2, 2], "widths": [8]}, train={"lr": 0.0}, seeds=True,
                     extra={})
    text = "\n".join(found)
    assert "sweep spec: unknown field 'extra'" in text
    assert "base_arch: widths must have one entry per stage" in text
    assert "train: lr must be between" in text and "got True" in text
    assert "modifications must be a list" in problems(modifications={"name": "x"})[0]
    assert "seeds must be a whole number" in problems(seeds=101)[0]


def test_duplicate_modifications_are_refused():
    found = problems(modifications=[
        {"name": "silu", "arch": {"activation": "silu"}},
        {"name": "SiLU", "arch": {"activation": "gelu"}},  # the same name
        {"name": "swish", "arch": {"activation": "silu"}},  # the same configuration
        {"name": "nothing"},  # the baseline again
        {"name": "classes", "arch": {"num_classes": 3}},  # the data decides: the baseline
        {"name": "baseline", "arch": {"activation": "gelu"}}])
    assert found == ["modification 'SiLU': the name is used twice",
                     "modification 'swish' gives the same configuration as 'silu'",
                     "modification 'nothing' changes nothing: it is the baseline",
                     "modification 'classes' changes nothing: it is the baseline",
                     "modification 'baseline': the name 'baseline' is the unchanged base's"]


def test_more_than_200_runs_need_confirmation_before_anything_is_written(tmp_path):
    big = spec(modifications=[{"name": f"lr {i}", "train": {"lr": 0.01 * (i + 1)}}
                              for i in range(4)], seeds=41)  # 5 × 41 = 205 runs
    with pytest.raises(SweepTooLarge, match="queues 205 runs .* more than 200 need confirm"):
        queue_sweep(big, runs_dir=tmp_path / "runs", sweeps_dir=tmp_path / "sweeps")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sweeps").exists()
    big.check_size(confirmed=True)
    spec(seeds=66).check_size(confirmed=False)  # 3 × 66 = 198: no question


def test_modifications_typed_as_json():
    one = parse_modifications('{"name": "silu", "arch": {"activation": "silu"}}')
    assert one == [{"name": "silu", "arch": {"activation": "silu"}}]
    assert parse_modifications(json.dumps(MODS)) == MODS
    assert parse_modifications(json.dumps({**BASE, "modifications": MODS, "seeds": 2})) == MODS
    for bad in ("[1, 2]", "nope", '{"modifications": 3}'):
        with pytest.raises(ConfigError):
            parse_modifications(bad)


# ----- devices and the record ----------------------------------------------------------------
def test_one_gpu_of_several_is_a_device_of_its_own(monkeypatch):
    assert TrainConfig(device="cuda:1").check().device == "cuda:1"
    for bad in ("cuda:x", "cuda:1:2", "gpu"):
        with pytest.raises(ConfigError, match="device must be one of"):
            TrainConfig(device=bad).check()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert device_queue("cuda:1") == "cuda:1" and device_queue("cuda") == "cuda"
    with pytest.raises(ConfigError, match="PyTorch sees 2 CUDA GPU"):
        resolve_device("cuda:2")


def test_runs_spread_round_robin_over_gpus_one_queue_each(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks the refusal of a GPU this machine lacks")
    roots = {"runs_dir": tmp_path / "runs", "sweeps_dir": tmp_path / "sweeps"}
    with pytest.raises(ConfigError, match="no CUDA GPU"):  # queued here: refused up front
        queue_sweep(spec(), devices=["cuda:0", "cuda:1"], **roots)
    assert not (tmp_path / "runs").exists()
    # Prepared for a cluster whose nodes have the GPUs: the plan is the same, nothing starts.
    record = queue_sweep(spec(), devices=["cuda:0", "cuda:1"], external=True, **roots)
    plan = [(s.modification, s.seed, s.device, s.queue) for s in record.slots]
    assert plan == [("baseline", 0, "cuda:0", "cuda:0"), ("silu", 0, "cuda:1", "cuda:1"),
                    ("lr 0.2", 0, "cuda:0", "cuda:0"), ("baseline", 1, "cuda:1", "cuda:1"),
                    ("silu", 1, "cuda:0", "cuda:0"), ("lr 0.2", 1, "cuda:1", "cuda:1")]
    root = tmp_path / "runs"
    for slot in record.slots:
        paths = RunPaths(root / slot.run_id)
        train = TrainConfig.from_json(paths.train.read_bytes())
        assert (train.device, train.seed) == (slot.device, slot.seed)
        assert json.loads(paths.launch.read_text())["device"] == slot.queue
        status = read_status(paths)
        assert (status["sweep"], status["modification"]) == (record.sweep_id, slot.modification)
    before = {s.run_id: read_status(RunPaths(root / s.run_id)) for s in record.slots}
    # Readers leave prepared runs alone: nobody holds their lock, yet they are not dead.
    assert {r.state for r in list_runs(root)} == {"prepared"}
    assert {s.run_id: read_status(RunPaths(root / s.run_id)) for s in record.slots} == before
    assert [r.sweep_id for r in list_sweeps(tmp_path / "sweeps")] == [record.sweep_id]
    again = read_sweep(record.sweep_id, tmp_path / "sweeps")
    assert again == record and again.external
    assert json.loads((record.folder / "spec.json").read_text()) == spec().to_dict()
    with pytest.raises(ConfigError, match="device must be one of"):
        queue_sweep(spec(), devices=["../x"], external=True, **roots)
    assert [f.name for f in (tmp_path / "sweeps").iterdir()] == [record.sweep_id]


def test_summary_of_recorded_runs_counts_pending_and_uses_the_trained_network(tmp_path):
    record = queue_sweep(spec(), external=True, runs_dir=tmp_path / "runs",
                         sweeps_dir=tmp_path / "sweeps")
    accuracy = {("baseline", 0): 0.80, ("baseline", 1): 0.84, ("silu", 0): 0.90,
                ("silu", 1): 0.86, ("lr 0.2", 0): 0.5}
    for slot in record.slots:
        key = (slot.modification, slot.seed)
        if key in accuracy:
            trained = {**TINY_ARCH.to_dict(), "num_classes": 10,
                       "activation": "silu" if slot.modification == "silu" else "relu"}
            write_status(RunPaths(tmp_path / "runs" / slot.run_id), state="completed",
                         best_val_acc=accuracy[key], elapsed_s=5.0, arch=trained)
    frame = sweep_summary(record, tmp_path / "runs").set_index("name")
    assert frame.loc["baseline", "mean_best_val_acc"] == pytest.approx(0.82)
    assert frame.loc["silu", "delta_vs_baseline"] == pytest.approx(0.06)
    assert frame.loc["silu", "p_value"] == pytest.approx(
        scipy_stats.ttest_ind([0.90, 0.86], [0.80, 0.84], equal_var=False).pvalue)
    assert frame.loc["lr 0.2", "n"] == 1 and frame.loc["lr 0.2", "pending"] == 1
    assert frame.loc["lr 0.2", "verdict"] == "pending"
    assert frame.loc["baseline", "params"] == analyze(TINY_ARCH, (1, 8, 8)).params
    states = {r.slot.run_id: r.state for r in sweep_runs(record, tmp_path / "runs")}
    assert sorted(states.values()) == ["completed"] * 5 + ["prepared"]
    assert get_run(record.slots[-1].run_id, tmp_path / "runs").state == "prepared"


def test_a_damaged_run_or_record_is_reported_never_raised(tmp_path):
    roots = {"runs_dir": tmp_path / "runs", "sweeps_dir": tmp_path / "sweeps"}
    record = queue_sweep(spec(), external=True, **roots)
    damaged, done = record.slots[0], record.slots[1]
    RunPaths(tmp_path / "runs" / damaged.run_id).status.write_text(
        '{"state": "completed", "created": "yesterday"}')
    done_status = RunPaths(tmp_path / "runs" / done.run_id).status
    text = done_status.read_text().replace('"state": "prepared"', '"state": "completed", '
                                           '"best_val_acc": "high", "elapsed_s": 1e400')
    done_status.write_text(text)  # an accuracy that is not a number, a wall time not finite
    states = {r.slot.run_id: r.state for r in sweep_runs(record, tmp_path / "runs")}
    # A status field of the wrong type makes the run a damaged row (runs/reading.py), never
    # a figure in the summary.
    assert states[damaged.run_id] == states[done.run_id] == "damaged"
    frame = sweep_summary(record, tmp_path / "runs").set_index("name")
    assert frame.loc[done.modification, "n"] == 0  # its accuracy is not a number
    _, message = resume_sweep(record, tmp_path / "runs")
    assert f"run {damaged.run_id} cannot be resumed: status.json holds" in message
    runs_json = record.folder / "runs.json"
    data = json.loads(runs_json.read_text())
    data["runs"][damaged.run_id]["modification"] = "not in the spec"
    runs_json.write_text(json.dumps(data))
    with pytest.raises(RunError, match="record is damaged"):
        read_sweep(record.sweep_id, tmp_path / "sweeps")
    assert list_sweeps(tmp_path / "sweeps") == []  # skipped, not raised


def test_summary_csv_defuses_modification_names_a_spreadsheet_would_run():
    frame = stats.summarize([stats.Group("baseline", B, [], TINY_ARCH, (1, 8, 8)),
                             stats.Group("=1+1", A, [], TINY_ARCH, (1, 8, 8))])
    rows = list(csv.reader(io.StringIO(stats.summary_csv(frame))))
    assert rows[0][:10] == list(stats.SUMMARY_COLUMNS)
    assert [r[0] for r in rows[1:]] == ["baseline", "'=1+1"]
    assert float(rows[2][2]) == pytest.approx(np.mean(A))


def test_two_resumes_at_once_queue_a_removed_run_again_only_once(tmp_path, monkeypatch):
    record = queue_sweep(spec(), external=True, runs_dir=tmp_path / "runs",
                         sweeps_dir=tmp_path / "sweeps")
    shutil.rmtree(tmp_path / "runs" / record.slots[0].run_id)  # a queued run cancelled
    real = sweep_module.start_run

    def slow_start(*args, **kwargs):
        time.sleep(0.3)  # both resumes are past their look at the runs by now
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "start_run", slow_start)
    messages = []
    threads = [threading.Thread(target=lambda: messages.append(
        resume_sweep(record, tmp_path / "runs")[1])) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(messages) == ["nothing to resume: every run is done, queued or running",
                                "resumed 0 run(s), queued 1 removed run(s) again"]
    final = read_sweep(record.sweep_id, tmp_path / "sweeps")
    assert len(list_runs(tmp_path / "runs")) == len(final.slots) == 6
    assert {s.run_id for s in final.slots} == {r.run_id for r in list_runs(tmp_path / "runs")}
