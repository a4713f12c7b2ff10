"""The trainer command line, as a user (or the dashboard's supervisor) runs it."""

from __future__ import annotations

import subprocess
import sys

import torch
from safetensors.torch import load as load_safetensors

from resnet_explorer.models import store
from resnet_explorer.runs import RunPaths, read_status
from resnet_explorer.training.job import main
from tests.train_helpers import ROOT, TINY_ARCH, cli_env, train_cli_args


def test_cli_trains_a_tiny_run_whose_model_reloads_with_identical_outputs(tmp_path):
    run_dir = tmp_path / "runs" / "cli-run"
    result = subprocess.run([sys.executable, *train_cli_args(tmp_path, run_dir)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=cli_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "epoch 3/3" in result.stdout and "completed" in result.stdout
    paths = RunPaths(run_dir)
    assert read_status(paths)["state"] == "completed"
    assert {p.name for p in run_dir.iterdir()} >= {"arch.json", "train.json", "status.json",
                                                   "metrics.jsonl", "log.txt",
                                                   "checkpoint.safetensors"}
    assert paths.log.read_text().count("epoch 3/3") == 1
    model, side = store.load_model("cli-run-last", tmp_path / "weights")
    final = load_safetensors(paths.checkpoint.read_bytes())
    reference = type(model)(model.cfg)
    reference.load_state_dict({k[6:]: v for k, v in final.items() if k.startswith("model.")})
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))
    assert side["metrics"]["epoch"] == 3


def test_cli_reports_a_bad_config_without_a_traceback(tmp_path, capsys):
    (tmp_path / "arch.json").write_text(TINY_ARCH.to_json())
    (tmp_path / "train.json").write_text('{"epochs": 0}')
    code = main(["--arch", str(tmp_path / "arch.json"), "--train", str(tmp_path / "train.json"),
                 "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "epochs must be between 1 and 1000" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()
