"""Measured latency: the timing loop against a known delay, the cache (hits never run a model,
every part of the key matters, damaged files are ignored, the file stays bounded), the
refusals, and the note where MACs and measured speed rank networks differently."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import torch
from torch import nn

from resnet_explorer.analysis import (THROUGHPUT_BATCH, Latency, analyze, cached_latency,
                                      latency, measure_latency, measured_on, ranking_note)
from resnet_explorer.arch import BASELINE, PRESETS, ArchConfig
from resnet_explorer.common import ConfigError, InputSizeError
from tests.inference_helpers import TINY

SIZE = (3, 16, 16)


@pytest.fixture
def quick(monkeypatch, one_thread):
    """Small time budgets: the loop's logic is the same, the test takes milliseconds."""
    monkeypatch.setattr(latency, "WARMUP_S", 0.005)
    monkeypatch.setattr(latency, "TIMED_S", 0.01)


@pytest.fixture
def builds(monkeypatch):
    """Counts the networks measure_latency builds (every real measurement builds one)."""
    count = {"n": 0}
    real = latency.build_model

    def counting(cfg, device=None):
        count["n"] += 1
        return real(cfg, device=device)

    monkeypatch.setattr(latency, "build_model", counting)
    return count


class Sleeper(nn.Module):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.calls = seconds, 0

    def forward(self, x):
        self.calls += 1
        time.sleep(self.seconds)
        return x


def test_the_median_is_the_time_of_one_forward_pass(tmp_path, monkeypatch, quick):
    sleeper = Sleeper(0.02)
    monkeypatch.setattr(latency, "build_model", lambda cfg, device=None: sleeper)
    result = measure_latency(TINY, (3, 32, 32), batch=4, cache_dir=tmp_path)
    assert 20 <= result.median_ms < 35  # time.sleep is the reference; a loaded machine adds a bit
    assert result.images_per_s == pytest.approx(4 / (result.median_ms / 1000))
    assert result.repeats >= latency.MIN_REPEATS and result.device == "cpu"
    assert sleeper.calls == result.repeats + 1  # one warm-up: it alone outlasts the budget


def test_budgets_bound_the_runs_of_a_fast_network(tmp_path, monkeypatch, one_thread):
    sleeper = Sleeper(0.0)
    monkeypatch.setattr(latency, "build_model", lambda cfg, device=None: sleeper)
    start = time.perf_counter()
    result = measure_latency(TINY, (3, 32, 32), cache_dir=tmp_path)
    assert time.perf_counter() - start < 1.0
    assert result.repeats == latency.MAX_REPEATS
    assert sleeper.calls == latency.MAX_WARMUP + latency.MAX_REPEATS


def test_a_second_call_comes_from_the_cache_in_memory_and_on_disk(tmp_path, quick, builds):
    assert cached_latency(TINY, SIZE, cache_dir=tmp_path) is None
    assert not (tmp_path / "latency.json").exists()  # reading never writes
    first = measure_latency(TINY, SIZE, cache_dir=tmp_path)
    assert builds["n"] == 1 and isinstance(first, Latency)
    assert measure_latency(TINY, SIZE, cache_dir=tmp_path) == first
    assert cached_latency(TINY, SIZE, cache_dir=tmp_path) == first
    latency._files.clear()  # a new process: only the file is left
    assert measure_latency(TINY, list(SIZE), "cpu", 1, cache_dir=tmp_path) == first
    assert builds["n"] == 1


def test_every_part_of_the_key_matters(tmp_path, monkeypatch, quick, builds):
    measure_latency(TINY, SIZE, batch=2, cache_dir=tmp_path)
    assert cached_latency(TINY, SIZE, batch=2, cache_dir=tmp_path) is not None
    misses = [
        (TINY, SIZE, 3),  # batch
        (TINY, (3, 16, 24), 2),  # input
        (replace(TINY, activation="silu"), SIZE, 2),  # config
    ]
    for cfg, size, batch in misses:
        assert cached_latency(cfg, size, batch=batch, cache_dir=tmp_path) is None
    assert cached_latency(TINY, SIZE, batch=2, cache_dir=tmp_path / "other") is None
    torch.set_num_threads(2)  # one_thread restores it
    assert cached_latency(TINY, SIZE, batch=2, cache_dir=tmp_path) is None
    torch.set_num_threads(1)
    monkeypatch.setattr(torch, "__version__", "0.0.1-other")
    assert cached_latency(TINY, SIZE, batch=2, cache_dir=tmp_path) is None
    assert "torch 0.0.1-other" in measured_on("cpu")
    measure_latency(TINY, SIZE, batch=2, cache_dir=tmp_path)
    assert builds["n"] == 2  # measured again under the other torch


@pytest.mark.parametrize("content", [
    b"\x00\xff not json", b'{"format": "resnet_explorer latency cache v1", "entries": [1, 2]}',
    b'["a list"]', b'{"format": "someone else", "entries": {}}', b"[" * 100_000,
])
def test_a_damaged_or_foreign_cache_file_is_ignored(tmp_path, quick, builds, content):
    path = tmp_path / "latency.json"
    path.write_bytes(content)
    assert cached_latency(TINY, SIZE, cache_dir=tmp_path) is None
    result = measure_latency(TINY, SIZE, cache_dir=tmp_path)
    assert builds["n"] == 1
    data = json.loads(path.read_text())  # replaced by a good file
    assert data["format"] == latency.CACHE_FORMAT and len(data["entries"]) == 1
    latency._files.clear()
    assert cached_latency(TINY, SIZE, cache_dir=tmp_path) == result


def test_entries_with_bad_values_are_skipped(tmp_path, quick):
    result = measure_latency(TINY, SIZE, cache_dir=tmp_path)
    path = tmp_path / "latency.json"
    data = json.loads(path.read_text())
    for entry in data["entries"].values():
        entry["median_ms"] = "fast"
    path.write_text(json.dumps(data))
    latency._files.clear()
    assert cached_latency(TINY, SIZE, cache_dir=tmp_path) is None
    assert measure_latency(TINY, SIZE, cache_dir=tmp_path).batch == result.batch


def test_the_cache_file_keeps_the_newest_entries(tmp_path, monkeypatch, quick):
    monkeypatch.setattr(latency, "MAX_ENTRIES", 3)
    for batch in range(1, 6):
        measure_latency(TINY, SIZE, batch=batch, cache_dir=tmp_path)
    entries = json.loads((tmp_path / "latency.json").read_text())["entries"]
    assert sorted(e["batch"] for e in entries.values()) == [3, 4, 5]
    assert cached_latency(TINY, SIZE, batch=1, cache_dir=tmp_path) is None
    assert cached_latency(TINY, SIZE, batch=5, cache_dir=tmp_path).batch == 5


def test_the_default_cache_lives_under_home(home, quick):
    measure_latency(TINY, SIZE)
    assert (home / "cache" / "latency.json").is_file()
    assert cached_latency(TINY, SIZE) is not None


def test_bad_settings_give_analyze_messages_and_build_nothing(tmp_path, builds):
    instance = ArchConfig(norm="instance")  # one value per channel in stage 4 at 32 px
    with pytest.raises(InputSizeError) as refused:
        measure_latency(instance, (3, 32, 32), cache_dir=tmp_path)
    with pytest.raises(InputSizeError) as analysed:
        analyze(instance, (3, 32, 32))
    assert refused.value.problems == analysed.value.problems
    with pytest.raises(InputSizeError, match="between 1 and 4096"):
        measure_latency(TINY, SIZE, batch=0, cache_dir=tmp_path)
    with pytest.raises(InputSizeError, match="too long"):
        measure_latency(BASELINE, (3, 1024, 1024), batch=64, cache_dir=tmp_path)
    with pytest.raises(InputSizeError, match="GiB"):
        measure_latency(TINY, (3, 2048, 2048), batch=256, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="device must be one of"):
        measure_latency(TINY, SIZE, device="gpu", cache_dir=tmp_path)
    with pytest.raises(ConfigError):
        measure_latency(ArchConfig(blocks=(1, 2), widths=(8,)), cache_dir=tmp_path)
    assert builds["n"] == 0
    assert cached_latency(TINY, SIZE, device="gpu", cache_dir=tmp_path) is None
    assert cached_latency(TINY, "3x16", cache_dir=tmp_path) is None


def test_full_resnet34_at_64_px_keeps_the_callers_random_state(tmp_path, quick):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    start = time.perf_counter()
    result = measure_latency(BASELINE, (3, 64, 64), cache_dir=tmp_path)
    assert time.perf_counter() - start < 5
    assert torch.equal(torch.rand(3), expected)
    assert result.batch == 1 and result.median_ms > 0
    assert THROUGHPUT_BATCH["cpu"] == 32 and THROUGHPUT_BATCH["cuda"] == 256


# ----- ranking_note -----------------------------------------------------------------------
def test_rankings_that_agree_give_no_note():
    assert ranking_note([("resnet34", 3.7e9, 50.0), ("resnet18", 1.8e9, 30.0)]) is None
    assert ranking_note([("resnet34", 3.7e9, 50.0), ("resnet18", 1.8e9, 52.0)]) is None  # noise
    assert ranking_note([("a", 1e9, 10.0)]) is None and ranking_note([]) is None


def test_depthwise_slower_despite_fewer_macs_is_named_with_its_reason():
    points = [("resnet34", 3.66e9, 10.0), ("resnet34-dw", 0.5e9, 14.0), ("resnet18", 1.8e9, 6.0)]
    note = ranking_note(points)  # the most reversed pair: 7.3 × 1.4 beats 3.6 × 2.3
    assert note.startswith("resnet34-dw has 7.3× fewer MACs than resnet34 but runs 1.4× slower")
    assert "depthwise-separable" in note and "memory bandwidth" in note
    assert note.endswith(".") and ". " not in note  # one sentence


def test_the_reason_comes_from_the_configs_not_the_labels():
    se = ArchConfig(se_reduction=16, blocks=(2, 2, 2, 2))
    note = ranking_note([("with dw in the name", 1.8e9, 12.0), ("resnet34", 3.7e9, 10.0)],
                        {"with dw in the name": se})
    assert "squeeze-excitation" in note and "depthwise" not in note
    gn = ArchConfig(norm="group", blocks=(2, 2, 2, 2))
    assert "GroupNorm" in ranking_note([("gn", 1.8e9, 12.0), ("resnet34", 3.7e9, 10.0)],
                                       {"gn": gn})
    unknown = ranking_note([("x", 1e9, 20.0), ("y", 2e9, 10.0)])
    assert unknown.startswith("x has 2.0× fewer MACs than y but runs 2.0× slower here: "
                              "MACs count")
    assert PRESETS["resnet34-dw"].depthwise == (True,) * 4
