"""TrainConfig: validation, strict JSON, the learning-rate schedules and the quick recipe."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from resnet_explorer.common import ConfigError
from resnet_explorer.training import QUICK, TrainConfig


def test_quick_recipe_is_valid_and_round_trips_through_json():
    assert QUICK.validate() == []
    assert TrainConfig.from_json(QUICK.to_json()) == QUICK
    changed = replace(QUICK, optimizer="adamw", nesterov=False, lr=0.002).check()
    assert TrainConfig.from_dict(json.loads(changed.to_json())) == changed


@pytest.mark.parametrize("raw, fragment", [
    ({"epochs": 0}, "epochs must be between"),
    ({"batch_size": 1}, "batch_size"),
    ({"lr": 0}, "lr must be between"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of"),
    ({"dataset": "folder"}, "needs data_path"),
    ({"warmup_epochs": 9, "epochs": 8}, "cannot exceed epochs"),
    ({"optimizer": "adamw"}, "nesterov needs the sgd optimizer"),
    ({"device": "tpu"}, "device must be one of"),
    ({"epochs": True}, "whole number"),
    ({"lr": "0.1"}, "must be a number"),
    ({"surprise": 1}, "unknown field 'surprise'"),
])
def test_bad_values_are_refused_with_a_sentence(raw, fragment):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({**QUICK.to_dict(), **raw})
    assert fragment in str(info.value)


def test_json_with_nan_is_refused():
    with pytest.raises(ConfigError, match="NaN"):
        TrainConfig.from_json('{"lr": NaN}')


def lrs(cfg: TrainConfig, spe: int = 10) -> list[float]:
    return [cfg.lr_at(s, spe) for s in range(cfg.epochs * spe)]


def test_one_cycle_rises_to_the_peak_then_anneals_towards_zero():
    cfg = TrainConfig(epochs=8, warmup_epochs=2, lr=0.1)
    values = lrs(cfg)
    peak = values.index(max(values))
    assert values[0] == pytest.approx(0.1 / 25)
    assert peak == 20 and values[peak] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(values[:peak], values[1:peak + 1]))
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))
    assert values[-1] < 0.1 / 1000


def test_cosine_warms_up_linearly_and_step_decays_every_n_epochs():
    cos = lrs(TrainConfig(schedule="cosine", epochs=4, warmup_epochs=1, lr=1.0))
    assert cos[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert cos[-1] < 0.01 and all(a >= b for a, b in zip(cos[10:], cos[11:]))
    step = lrs(TrainConfig(schedule="step", epochs=6, warmup_epochs=0, step_every=2,
                           step_gamma=0.1, lr=1.0))
    assert step[0:20] == [1.0] * 20
    assert step[20:40] == pytest.approx([0.1] * 20) and step[40:] == pytest.approx([0.01] * 20)


def test_schedule_is_finite_for_any_step():
    cfg = TrainConfig(epochs=1, warmup_epochs=1)
    assert all(math.isfinite(cfg.lr_at(s, 1)) for s in (-5, 0, 1, 10**6))


def test_warm_up_follows_the_epochs_unless_set():
    # Left empty (null in JSON), it is a quarter of the run, at most two epochs.
    assert QUICK.warmup_epochs is None
    assert [TrainConfig(epochs=n).warmup for n in (1, 2, 4, 8, 100)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert TrainConfig(epochs=1, warmup_epochs=0.0).warmup == 0.0  # set: kept, zero included
    # The CLI with {"epochs": 1} and the rest of the quick recipe trains instead of refusing.
    short = TrainConfig.from_dict({**QUICK.to_dict(), "epochs": 1})
    assert short.warmup == 0.25 and json.loads(short.to_json())["warmup_epochs"] is None
    assert TrainConfig.from_json(short.to_json()) == short
    values = lrs(short)  # the peak rate is reached after a quarter of the run
    assert values.index(max(values)) == 2 and values[-1] < short.lr / 10
    with pytest.raises(ConfigError, match=r"warmup_epochs \(2.0\) cannot exceed epochs \(1\)"):
        TrainConfig.from_dict({"epochs": 1, "warmup_epochs": 2})  # typed by a person: refused
