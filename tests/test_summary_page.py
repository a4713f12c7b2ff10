"""AppTest: the Summary & FLOPs page reacts to the architecture, the input and the comparison."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from resnet_explorer.arch import ArchConfig
from tests.page_helpers import open_page_at



def _page(arch: ArchConfig | None = None) -> AppTest:
    return open_page_at("../app_pages/summary.py", arch)


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


@pytest.fixture(scope="module")
def baseline() -> AppTest:
    return _page()


def test_baseline_totals_and_the_meaning_of_macs(baseline):
    assert _metric(baseline, "Parameters") == "21.8 M"
    assert _metric(baseline, "MACs") == "3.66 G"
    assert _metric(baseline, "FLOPs") == "7.34 G"
    caption = " ".join(c.value for c in baseline.caption)
    assert "multiply-accumulates" in caption and "FLOPs = 2 × MACs" in caption
    layers = baseline.dataframe[0].value
    assert len(layers) == 124 and layers["MACs"].sum() == 3_663_761_408


def test_switching_depthwise_or_activation_changes_the_totals_shown(baseline):
    at = _page(ArchConfig(depthwise=(True, True, True, True)))
    assert _metric(at, "MACs") != _metric(baseline, "MACs")
    delta = next(m.delta for m in at.metric if m.label.startswith("MACs"))
    assert delta.startswith("-")  # fewer multiply-adds than the baseline
    at.session_state["arch"] = ArchConfig(activation="gelu")
    at.run()
    assert _metric(at, "MACs") == _metric(baseline, "MACs")  # gelu costs no multiply-adds …
    assert _metric(at, "FLOPs") != _metric(baseline, "FLOPs")  # … but more other FLOPs


def test_comparing_with_a_preset_shows_the_layer_diff():
    at = _page()
    at.selectbox(key="summary_compare").set_value("resnet18").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "layers added" in text and "stage 1: 2 → 3 blocks" in text
    diff = next(df.value for df in at.dataframe if "change" in df.value.columns)
    assert set(diff["change"]) == {"added"} and "layer1.2.conv1" in set(diff["layer"])
    layers = at.dataframe[0].value
    assert (layers.set_index("layer").loc["layer3.5.bn2", "vs comparison"]) == "added"
    assert len(at.get("plotly_chart")) == 4  # stage bars, block MACs, memory, diagram


def test_pasted_json_is_compared_or_its_problems_shown():
    at = _page(ArchConfig(se_reduction=16))
    at.selectbox(key="summary_compare").set_value("pasted JSON…").run()
    assert "Layer by layer identical" not in " ".join(s.value for s in at.success)
    at.text_area(key="summary_compare_json").set_value(ArchConfig(se_reduction=16).to_json()).run()
    assert "Layer by layer identical" in " ".join(s.value for s in at.success)
    at.text_area(key="summary_compare_json").set_value('{"blocks": [1, 2]').run()
    assert not at.exception
    assert any("not valid" in e.value for e in at.error)


def test_an_impossible_input_size_gives_a_message_not_an_exception():
    at = _page(ArchConfig(norm="instance"))
    at.number_input(key="summary_height").set_value(32)
    at.number_input(key="summary_width").set_value(32).run()
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "stage 4 cannot run on a 32×32 input" in message
    assert not at.metric  # no totals for a network that cannot run


def test_training_limits_are_warned_and_torchinfo_is_on_demand():
    at = _page()
    at.number_input(key="summary_height").set_value(32)
    at.number_input(key="summary_width").set_value(32).run()
    assert any("cannot train" in w.value for w in at.warning)  # BatchNorm on 1×1 at batch 1
    assert not at.code
    at.toggle(key="summary_torchinfo").set_value(True).run()
    assert "Total params: 21,797,672" in at.code[0].value
