"""Where runs, models and datasets live.

Everything hangs off one home folder: ``$RESNET_EXPLORER_HOME`` when set,
otherwise the repository root (which ships empty ``runs/`` and ``weights/``
folders). Functions that touch these folders take an explicit directory
argument too, so tests point them at ``tmp_path`` instead of the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home_dir", "runs_dir", "weights_dir", "data_dir", "sweeps_dir", "HOME_ENV", "REPO_ROOT"]

HOME_ENV = "RESNET_EXPLORER_HOME"
# The checkout: the default home, and the working directory of `python -m resnet_explorer…`
# child processes (supervisor, trainer), whatever the dashboard's own cwd.
REPO_ROOT = Path(__file__).resolve().parents[2]


def home_dir() -> Path:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else REPO_ROOT


def runs_dir() -> Path:
    return home_dir() / "runs"


def weights_dir() -> Path:
    return home_dir() / "weights"


def data_dir() -> Path:
    return home_dir() / "data"


def sweeps_dir() -> Path:
    return home_dir() / "sweeps"
