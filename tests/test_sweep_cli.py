"""`python -m resnet_explorer.sweep` for real: a tiny sweep whose summary.csv is numpy's and
scipy's arithmetic over the runs' own status files, trainer commands for a cluster that run,
and Ctrl-C / --resume / --cancel on a sweep of runs that would never end by themselves."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from resnet_explorer import runs
from resnet_explorer.experiments import sweep as sweep_module
from resnet_explorer.experiments.stats import SUMMARY_COLUMNS
from resnet_explorer.experiments.sweep import list_sweeps, read_sweep
from resnet_explorer.experiments.sweep_cli import main
from tests.train_helpers import ROOT, TINY_ARCH, TINY_TRAIN, cli_env, kill_run_processes, wait_for

# ResNet34's layout at 1/8 width with one block per stage, on 8-pixel digits for one epoch:
# about a second of training per run; accuracies land around 30–90 %, seeds visibly matter.
TINY_SPEC = {
    "base_arch": {"stem": "cifar", "width_multiplier": 0.125, "blocks": [1, 1, 1, 1],
                  "in_channels": 1},
    "train": {"image_size": 8, "epochs": 1, "batch_size": 64, "lr": 0.1, "warmup_epochs": 0.5,
              "device": "cpu"},
    "modifications": [{"name": "silu", "arch": {"activation": "silu"}},
                      {"name": "lr 0.2", "train": {"lr": 0.2}}],
    "seeds": 2,
}


def sweep_cli(home: Path, spec: dict) -> subprocess.CompletedProcess[str]:
    (home / "spec.json").write_text(json.dumps(spec))
    env = {**cli_env(home), "RESNET_EXPLORER_RUNS_PER_DEVICE": "2"}  # both cores busy
    return subprocess.run([sys.executable, "-m", "resnet_explorer.sweep", str(home / "spec.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)


def statuses(home: Path, sweep_id: str) -> dict[str, list[dict]]:
    """The sweep's runs' status.json files, read directly, grouped by modification."""
    out: dict[str, list[dict]] = {}
    for status_file in (home / "runs").glob("*/status.json"):
        status = json.loads(status_file.read_text())
        if status.get("sweep") == sweep_id:
            out.setdefault(status["modification"], []).append(status)
    return out


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # equal accuracies
def test_a_tiny_sweep_summary_is_numpy_and_scipy_over_the_runs_status_files(tmp_path):
    try:
        result = sweep_cli(tmp_path, TINY_SPEC)
    finally:
        kill_run_processes(tmp_path / "runs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 runs queued (3 configurations × 2 seeds)" in result.stdout
    assert "6 completed" in result.stdout and "within seed noise" in result.stdout.lower()
    (record,) = list_sweeps(tmp_path / "sweeps")
    summary = pd.read_csv(record.summary_csv, keep_default_na=False, na_values=[""])
    assert tuple(summary.columns[:10]) == SUMMARY_COLUMNS
    assert list(summary["name"]) == ["baseline", "silu", "lr 0.2"]
    found = statuses(tmp_path, record.sweep_id)
    assert sorted(len(v) for v in found.values()) == [2, 2, 2]
    accuracy = {name: [s["best_val_acc"] for s in group] for name, group in found.items()}
    base = accuracy["baseline"]
    for row in summary.to_dict("records"):
        mine = accuracy[row["name"]]
        assert row["n"] == 2
        assert row["mean_best_val_acc"] == pytest.approx(np.mean(mine), rel=1e-12)
        assert row["std_best_val_acc"] == pytest.approx(np.std(mine, ddof=1), rel=1e-12, abs=1e-15)
        walls = [s["elapsed_s"] for s in found[row["name"]]]
        assert row["mean_wall_s"] == pytest.approx(np.mean(walls), rel=1e-12)
        assert row["params"] > 0 and row["macs"] > 0
        assert row["name"] in result.stdout
        if row["name"] == "baseline":
            continue
        assert row["delta_vs_baseline"] == pytest.approx(np.mean(mine) - np.mean(base), abs=1e-12)
        if np.var(mine) + np.var(base) == 0:  # identical accuracies: an exact difference
            assert row["ci_low"] == row["ci_high"] == pytest.approx(row["delta_vs_baseline"])
            continue
        welch = scipy_stats.ttest_ind(mine, base, equal_var=False)
        low, high = welch.confidence_interval(0.95)
        assert row["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
        assert row["verdict"] == ("within seed noise" if low <= 0 <= high
                                  else "better" if low > 0 else "worse")
    # The same run store the dashboard reads, labelled with the sweep.
    listed = runs.list_runs(tmp_path / "runs")
    assert len(listed) == 6 and {r.sweep for r in listed} == {record.sweep_id}
    assert {r.state for r in listed} == {"completed"}


def test_printed_trainer_commands_run_and_fill_the_prepared_runs(home, capsys):
    small = {**TINY_SPEC, "modifications": TINY_SPEC["modifications"][:1], "seeds": 1}
    (home / "spec.json").write_text(json.dumps(small))
    assert main([str(home / "spec.json"), "--print-commands"]) == 0
    printed = capsys.readouterr()
    commands = printed.out.splitlines()
    assert len(commands) == 2
    assert all(c.startswith("python -m resnet_explorer.train --arch ") for c in commands)
    (record,) = list_sweeps(home / "sweeps")
    assert "--summary " + record.sweep_id in printed.err
    root = home / "runs"
    assert [runs.get_run(s.run_id, root).state for s in record.slots] == ["prepared"] * 2
    # As a scheduler's job runs it: a shell, `python` on the PATH, the checkout as cwd.
    env = {**cli_env(home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                    f"{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", commands[0]], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = (runs.get_run(s.run_id, root) for s in record.slots)
    assert first.state == "completed" and first.best_val_acc is not None
    assert second.state == "prepared"  # still waiting for its job, not "interrupted"
    words = shlex.split(commands[0])
    assert words[words.index("--run-dir") + 1] == str(root / first.run_id)
    assert main(["--summary", record.sweep_id]) == 1  # written, but not every run is done
    assert "0 (+1 pending)" in capsys.readouterr().out  # silu
    summary = pd.read_csv(record.summary_csv).set_index("name")
    assert summary.loc["baseline", "n"] == 1 and summary.loc["silu", "pending"] == 1
    assert summary.loc["baseline", "mean_best_val_acc"] == pytest.approx(first.best_val_acc)


def test_ctrl_c_cancels_the_sweep_and_resume_brings_it_back(home):
    endless = {"base_arch": TINY_ARCH.to_dict(),
               "train": replace(TINY_TRAIN, epochs=1000).to_dict(),
               "modifications": [{"name": "silu", "arch": {"activation": "silu"}}], "seeds": 1}
    (home / "spec.json").write_text(json.dumps(endless))
    proc = subprocess.Popen([sys.executable, "-m", "resnet_explorer.sweep",
                             str(home / "spec.json")], cwd=ROOT, env=cli_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        record = wait_for(lambda: next(iter(list_sweeps(home / "sweeps")), None), 60,
                          "the sweep record")
        record = wait_for(lambda: (r := read_sweep(record.sweep_id, home / "sweeps")).slots[1:]
                          and r, 60, "both runs queued")
        first, second = (s.run_id for s in record.slots)
        wait_for(lambda: (runs.get_run(first, home / "runs").step or 0) > 2, 60, "training")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "cancelled 1 run(s), removed 1 queued run(s)" in out and "--resume" in out
    assert runs.get_run(first, home / "runs").state == "cancelled"
    assert runs.get_run(second, home / "runs") is None  # a cancelled queued run is removed

    assert main(["--resume", record.sweep_id, "--no-wait"]) == 0
    resumed = read_sweep(record.sweep_id, home / "sweeps")
    assert resumed.slots[0].run_id == first and resumed.slots[1].run_id != second
    assert resumed.slots[1].modification == "silu" and resumed.slots[1].seed == 0
    assert all(runs.get_run(s.run_id, home / "runs").active for s in resumed.slots)
    assert main(["--cancel", record.sweep_id]) == 0
    wait_for(lambda: not any((i := runs.get_run(s.run_id, home / "runs")) and i.active
                             for s in resumed.slots), 30, "the second cancel")
    assert main(["--summary", "not-a-sweep"]) == 2


def test_device_lists_and_the_confirmation_on_the_command_line(home, capsys):
    (home / "spec.json").write_text(json.dumps(TINY_SPEC))
    assert main([str(home / "spec.json"), "--print-commands", "--device", "cuda:0,cuda:1"]) == 0
    (record,) = list_sweeps(home / "sweeps")
    devices = [json.loads((home / "runs" / s.run_id / "train.json").read_text())["device"]
               for s in record.slots]
    assert devices == ["cuda:0", "cuda:1"] * 3
    capsys.readouterr()
    big = {**TINY_SPEC, "seeds": 67}  # 3 × 67 = 201 runs
    (home / "big.json").write_text(json.dumps(big))
    assert main([str(home / "big.json"), "--print-commands"]) == 2
    err = capsys.readouterr().err
    assert "queues 201 runs" in err and "pass --yes" in err
    assert len(list_sweeps(home / "sweeps")) == 1  # nothing written for the refused one


def test_ctrl_c_while_queueing_takes_back_the_runs_queued_so_far(home, monkeypatch, capsys):
    real_start = sweep_module.start_run
    started: list[str] = []

    def start_then_interrupt(*args, **kwargs):
        if started:
            raise KeyboardInterrupt
        started.append(real_start(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(sweep_module, "start_run", start_then_interrupt)
    endless = {"base_arch": TINY_ARCH.to_dict(),
               "train": replace(TINY_TRAIN, epochs=1000).to_dict(),
               "modifications": TINY_SPEC["modifications"][:1], "seeds": 1}
    (home / "spec.json").write_text(json.dumps(endless))
    assert main([str(home / "spec.json")]) == 130
    assert "interrupted while queueing" in capsys.readouterr().out
    (record,) = list_sweeps(home / "sweeps")
    assert [s.run_id for s in record.slots] == started
    info = runs.get_run(started[0], home / "runs")
    assert info is None or not info.active  # removed while queued, or cancelled
