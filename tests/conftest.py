"""Fixtures shared across test modules."""

import pytest
import torch

from resnet_explorer.arch import build_model
from resnet_explorer.models import save_model
from tests.inference_helpers import TINY, sidecar_for
from tests.train_helpers import kill_run_processes


@pytest.fixture
def one_thread():
    # Small convolutions on a shared 2-core machine: OpenMP synchronisation between two
    # threads costs far more than the arithmetic (measured 0.75 s vs 0.02 s per step).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """runs/, weights/ and data/ under tmp_path; child processes run single-threaded."""
    monkeypatch.setenv("RESNET_EXPLORER_HOME", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield tmp_path
    kill_run_processes(tmp_path / "runs")


@pytest.fixture
def store_home(tmp_path, monkeypatch):
    """An empty model store and torch hub cache (no runs) for the model pages."""
    monkeypatch.setenv("RESNET_EXPLORER_HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "weights").mkdir()
    return tmp_path


@pytest.fixture
def with_tiny(store_home):
    """The empty store with one tiny trained-looking model named "tiny"."""
    torch.manual_seed(0)
    save_model(build_model(TINY), sidecar_for(name="tiny"), "tiny", store_home / "weights")
    return store_home
