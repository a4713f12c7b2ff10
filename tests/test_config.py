"""ArchConfig: validation messages, JSON and URL round-trips, hostile input, diffs."""

import json

import pytest
from hypothesis import given, settings

from resnet_explorer.arch import BASELINE, MAX_PARAMS, PRESETS, ArchConfig
from resnet_explorer.common import MAX_CONFIG_BYTES, ConfigError, parse_json_object
from tests.strategies import small_configs


def test_defaults_are_resnet34():
    assert ArchConfig() == PRESETS["resnet34"] == BASELINE
    assert BASELINE.validate() == []
    assert BASELINE.describe_diff(ArchConfig()) == []


@pytest.mark.parametrize("changes, expected", [
    ({"blocks": (3, 0, 6, 3), "dropout": -0.1},
     ["stage 2: blocks must be between 1 and 64 (got 0)", "dropout must be between 0.0 and 0.95"]),
    ({"norm": "group", "norm_groups": 24}, ["norm_groups=24 must divide", "64, 128, 256, 512"]),
    ({"drop_path": -1.0}, ["drop_path must be between 0.0 and 0.95 (got -1.0)"]),
    ({"widths": (64, 128)}, ["widths must have one entry per stage (4), got 2"]),
    ({"blocks": (1,) * 7, "widths": (8,) * 7, "depthwise": (False,) * 7},
     ["blocks must list 1 to 6 stages (got 7)"]),
    ({"widths": (64, 128, 256, 9999)}, ["stage 4: width must be between 1 and 4096 (got 9999)"]),
    ({"activation": "tanh"}, ["activation must be one of relu, leaky_relu"]),
    ({"shortcut": "A", "widths": (64, 32, 256, 512)},
     ["stage 2", "shortcut A", "cannot reduce channels 64 → 32"]),
    ({"in_channels": 4}, ["in_channels must be one of 3, 1 (got 4)"]),
])
def test_validate_names_field_and_range(changes, expected):
    cfg = ArchConfig(**changes)
    text = " | ".join(cfg.validate())
    for fragment in expected:
        assert fragment in text
    with pytest.raises(ConfigError) as info:
        cfg.check()
    assert isinstance(info.value, ConfigError) and info.value.problems == cfg.validate()


def test_every_problem_is_reported_at_once():
    problems = ArchConfig(blocks=(0, 4, 6, 3), dropout=2.0, drop_path=-1.0, stem="x").validate()
    assert len(problems) == 4


def test_parameter_ceiling_stops_huge_networks_before_they_are_built(monkeypatch):
    from resnet_explorer.arch import model

    built = []
    real = model.meta_model.__wrapped__
    monkeypatch.setattr(model, "meta_model", lambda cfg: built.append(cfg) or real(cfg))
    # A crafted link: refused by a bound, without a multi-second build.
    (problem,) = ArchConfig(widths=(4096,) * 4, blocks=(64,) * 4).validate()
    assert f"{MAX_PARAMS:,}" in problem and "over" in problem and not built
    # Under the bound but over the ceiling: the exact count (one meta build) decides.
    (problem,) = ArchConfig(widths=(1024,) * 4, blocks=(64,) * 4).validate()
    assert f"{MAX_PARAMS:,}" in problem and len(built) == 1


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_json_and_url(name):
    cfg = PRESETS[name]
    assert cfg.validate() == []
    assert ArchConfig.from_json(cfg.to_json()) == cfg
    assert ArchConfig.from_query(cfg.to_query()) == cfg


@settings(max_examples=40, deadline=None)
@given(small_configs())
def test_random_configs_round_trip(cfg):
    assert ArchConfig.from_json(cfg.to_json()) == cfg
    assert ArchConfig.from_query(cfg.to_query()) == cfg


@pytest.mark.parametrize("text, fragment", [
    ('{"activation": NaN}', "NaN is not allowed"),
    ('{"dropout": Infinity}', "Infinity is not allowed"),
    ('{"num_classes": 1' + "0" * 5000 + "}", "not valid JSON"),
    ('{"num_classes": 100000000000000000000}', "far too large"),
    ('{"blocks": [3, 4, "6", 3]}', "blocks[2] must be a whole number"),
    ('{"zero_init_last": 1}', "zero_init_last must be true or false"),
    ('{"num_classes": true}', "num_classes must be a whole number"),
    ('{"blocks": 3}', "blocks must be a list"),
    ('{"colour": "red"}', "unknown field 'colour'"),
    ("[1, 2]", "must be a JSON object"),
    ("{not json", "not valid JSON"),
    ("[" * MAX_CONFIG_BYTES + "]", f"limit is {MAX_CONFIG_BYTES:,}"),
    ("[" * 20_000 + "]" * 20_000, "nested too deeply"),
    ('{"blocks": [' + ",".join(["1"] * 100) + "]}", "at most 64"),
])
def test_hostile_json_is_rejected_with_a_message(text, fragment):
    with pytest.raises(ConfigError) as info:
        ArchConfig.from_json(text)
    assert fragment in str(info.value)


def test_non_utf8_bytes_are_rejected():
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_json_object(b"\xff\xfe{\x00")


def test_valid_json_with_invalid_values_reports_validation():
    with pytest.raises(ConfigError, match="stage 1: blocks must be between 1 and 64"):
        ArchConfig.from_json(json.dumps({"blocks": [0, 4, 6, 3]}))


def test_a_per_stage_list_left_out_follows_the_stage_count_of_the_ones_given():
    three = ArchConfig.from_json(json.dumps({"blocks": [2, 2, 2], "widths": [32, 64, 128]}))
    assert three.depthwise == (False, False, False)
    assert ArchConfig.from_json('{"blocks": [2, 2]}').widths == (64, 128)
    # Grown as the Architecture page's stage counter grows a network: twice as wide.
    five = ArchConfig.from_query({"blocks": "2,2,2,2,2"})
    assert five.widths == (64, 128, 256, 512, 1024) and len(five.depthwise) == 5
    # Lists the person wrote are still held to each other, and only they are blamed.
    with pytest.raises(ConfigError) as info:
        ArchConfig.from_json('{"blocks": [2, 2, 2], "widths": [64, 128]}')
    assert info.value.problems == ["widths must have one entry per stage (3), got 2"]


def test_describe_diff_in_words():
    cfg = ArchConfig(activation="silu", blocks=(3, 4, 4, 3), depthwise=(False, False, True, False))
    assert cfg.describe_diff(BASELINE) == [
        "stage 3: 6 → 4 blocks",
        "stage 3: depthwise-separable convs on",
        "activation: relu → silu",
    ]
    assert PRESETS["resnet34-d"].describe_diff(BASELINE) == ["stem: imagenet → deep", "shortcut: B → D"]
    fewer = ArchConfig(blocks=(2, 2), widths=(64, 128), depthwise=(False, False))
    assert "blocks: [3, 4, 6, 3] → [2, 2]" in fewer.describe_diff(BASELINE)


def test_url_parameters_are_checked():
    with pytest.raises(ConfigError, match="unknown URL parameter"):
        ArchConfig.from_query({"evil": "1"})
    with pytest.raises(ConfigError, match="blocks=.*not a valid int"):
        ArchConfig.from_query({"blocks": "3,x,6,3"})
    assert ArchConfig.from_query({"activation": "gelu", "zero_init_last": "1"}) == ArchConfig(
        activation="gelu", zero_init_last=True)


def test_short_name_names_presets():
    assert PRESETS["resnet26"].short_name() == "resnet26"
    assert "custom" in ArchConfig(dropout=0.2).short_name()
