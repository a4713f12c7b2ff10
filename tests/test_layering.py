"""Layering (README, "Layout"): import-linter's contracts hold, a broken one fails, every
module imports on its own, runs/ stays torch-free and training runs without the dashboard's
packages.

import-linter reads the static import graph (every import statement, at any level, except
`if TYPE_CHECKING:` ones). The runtime checks here catch what a static graph does not: import
cycles, and a package `__init__` that pulls in more than its modules import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from resnet_explorer.runs import RunPaths, read_status
from tests.train_helpers import ROOT, TINY_TRAIN, cli_env, train_cli_args

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGE = ROOT / "resnet_explorer"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    # --no-cache: no .import_linter_cache/ in the checkout or the copies.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(cwd)}, capture_output=True,
                          text=True, timeout=120)


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " broken" in result.stdout and "0 broken" in result.stdout


@pytest.fixture(scope="module")
def checkout_copy(tmp_path_factory) -> Path:
    """The three root packages and the contracts, in a folder of their own."""
    copy = tmp_path_factory.mktemp("copy")
    for name in ("resnet_explorer", "ui", "app_pages"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


# (module of the copy, the line added to it, the contract that must break)
VIOLATIONS = {
    "streamlit-in-the-package": ("resnet_explorer/common/paths.py", "import streamlit",
                                 "The package never imports Streamlit"),
    "torch-in-runs": ("resnet_explorer/runs/reading.py", "import torch",
                      "runs/ never imports torch"),
    "torch-through-arch-in-runs": ("resnet_explorer/runs/queue.py",
                                   "from ..arch.model import ResNet",
                                   "runs/ never imports torch"),
    "arch-importing-a-room-above": ("resnet_explorer/arch/config.py",
                                    "from ..models import card",
                                    "Rooms are layered"),
    "numpy-in-a-page": ("app_pages/home.py", "import numpy",
                        "Pages import only resnet_explorer, ui, Streamlit"),
    "charts-in-training": ("resnet_explorer/training/job.py", "from ..runs import charts",
                           "Training runs on a machine without plotly"),
}


@pytest.mark.parametrize("case", VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_a_forbidden_import_breaks_its_contract(checkout_copy, tmp_path, case):
    module, line, contract = case
    copy = tmp_path / "checkout"
    shutil.copytree(checkout_copy, copy)
    target = copy / module
    # After the module docstring and `from __future__`, where an import can legally go.
    source = target.read_text()
    head, sep, rest = source.partition("from __future__ import annotations\n")
    target.write_text(head + sep + line + "\n" + rest if sep else line + "\n" + source)
    result = lint_imports(copy)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.endswith(" BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout


# ----- runtime -------------------------------------------------------------------------------
def package_modules() -> list[str]:
    """Every module of the package, found on disk (importing would defeat the test)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


# Each module is imported by a forked child of a process that has imported the third-party
# libraries but nothing of this package: per module, a fresh start of the package (an import
# cycle fails there) without paying torch's import once per module. Two children at a time.
FORKED_IMPORTS = textwrap.dedent("""
    import importlib, json, os, sys, traceback
    from pathlib import Path
    import numpy, pandas, PIL.Image, plotly.graph_objects, safetensors.torch, torch, torchvision
    assert not any(m.split(".")[0] == "resnet_explorer" for m in sys.modules)
    modules, errors = json.loads(sys.argv[1]), Path(sys.argv[2])
    running, failures = {}, {}

    def reap():
        pid, status = os.wait()
        name = running.pop(pid)
        if status:
            log = errors / name
            failures[name] = log.read_text() if log.exists() else f"exit status {status}"

    for name in modules:
        if len(running) == 2:
            reap()
        pid = os.fork()
        if pid == 0:
            try:
                importlib.import_module(name)
            except BaseException:
                (errors / name).write_text(traceback.format_exc())
                os._exit(1)
            os._exit(0)
        running[pid] = name
    while running:
        reap()
    print(json.dumps(failures))
""")


def test_every_module_imports_on_its_own(tmp_path):
    modules = package_modules()
    assert "resnet_explorer.runs.supervisor" in modules and len(modules) > 40
    result = subprocess.run([sys.executable, "-c", FORKED_IMPORTS, json.dumps(modules),
                             str(tmp_path)], cwd=ROOT, env=cli_env(ROOT), capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    failures = json.loads(result.stdout.splitlines()[-1])
    assert failures == {}, "\n".join(f"{name}:\n{error}" for name, error in failures.items())


def test_the_run_store_and_its_supervisor_import_without_torch():
    code = ("import sys\n"
            "import resnet_explorer.runs, resnet_explorer.runs.supervisor\n"
            "heavy = sorted(m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules)\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# A finder first on sys.meta_path: these packages cannot be imported, as on the GPU machine.
WITHOUT_DASHBOARD_PACKAGES = textwrap.dedent("""
    import runpy, sys
    from importlib.abc import MetaPathFinder

    ABSENT = ("plotly", "streamlit", "torchinfo")

    class Absent(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ABSENT:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Absent())
    sys.argv = ["resnet_explorer.train", *sys.argv[1:]]
    try:
        runpy.run_module("resnet_explorer.train", run_name="__main__")
    except SystemExit as exit:
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ABSENT)
        assert not loaded, loaded
        raise
""")


def test_training_runs_without_plotly_streamlit_or_torchinfo(tmp_path):
    run_dir = tmp_path / "run"
    args = train_cli_args(tmp_path, run_dir)[2:]  # without "-m resnet_explorer.train"
    (tmp_path / "train.json").write_text(replace(TINY_TRAIN, epochs=1).to_json())
    result = subprocess.run([sys.executable, "-c", WITHOUT_DASHBOARD_PACKAGES, *args, "--quiet"],
                            cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    status = read_status(RunPaths(run_dir))
    assert status["state"] == "completed", status
    assert (tmp_path / "weights" / "run-last.safetensors").is_file()
