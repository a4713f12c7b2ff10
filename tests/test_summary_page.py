"""AppTest: the Summary & FLOPs page reacts to the architecture, the input and the comparison."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from resnet_explorer.analysis import analyze, charts, latency, si
from resnet_explorer.arch import BASELINE, ArchConfig
from ui.summary_view import LAYER_COLUMNS
from tests.inference_helpers import TINY
from tests.page_helpers import open_page_at, texts


@pytest.fixture(scope="module", autouse=True)
def own_home(tmp_path_factory):
    """The latency cache the page reads and writes lives in a folder of this module's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RESNET_EXPLORER_HOME", str(tmp_path_factory.mktemp("home")))
        yield


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


def _shown(table) -> pd.DataFrame:
    """The table's cells as the browser shows them (the data behind them stays numeric)."""
    return convert_arrow_bytes_to_pandas_df(table.proto.arrow_data.styler.display_values)


def test_the_layer_table_reads_as_figures_and_fits_the_page(baseline):
    table = baseline.dataframe[0]
    conv1 = _shown(table).iloc[0]
    assert (conv1["layer"], conv1["params"], conv1["MACs"]) == ("conv1", "9,408", "118 M")
    assert conv1["activations MiB"] == "0.57"  # not 0.574219
    assert table.value["MACs"][0] == 118_013_952  # sorting stays numeric
    # The columns in view by default, at widths that fit the main column of a 1400 px window.
    assert list(table.proto.column_order) == list(LAYER_COLUMNS)
    assert sum(LAYER_COLUMNS.values()) <= 930
    stages = next(df for df in baseline.dataframe if "receptive field" in df.value.columns)
    assert _shown(stages).iloc[-1]["MACs"] == "512 k"


def test_differences_count_layers_in_the_singular_too():
    at = _page(ArchConfig(head_hidden=256))
    at.selectbox(key="summary_compare").set_value("resnet34").run()
    assert "1 layer changed" in texts(at.markdown)


def test_charts_say_what_their_axes_count_and_label_the_log_axis_in_full(baseline):
    a = analyze(BASELINE, (3, 224, 224))
    bars = charts.stage_bars([("this", a)])
    assert (bars.layout.yaxis.title.text, bars.layout.yaxis2.title.text) == (
        "parameters", "MACs (multiply-adds)")
    assert charts.block_macs(a).layout.yaxis.title.text == "MACs (multiply-adds)"
    assert charts.activation_memory([("this", a)]).layout.yaxis.title.text == "MiB"
    axis = charts.diagram(a).layout.yaxis
    assert list(axis.ticktext) == ["4", "8", "16", "32", "64", "128", "256", "512", "1024"]
    # The 64-channel stem and stage 1 bars are about half the panel high, so their
    # labels have room; labels never shrink below a readable size.
    low, high = axis.range
    assert (math.log10(64) - low) / (high - low) > 0.45
    assert charts.diagram(a).layout.uniformtext.minsize >= 10


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


def _at_64_px(at: AppTest) -> AppTest:
    at.number_input(key="summary_height").set_value(64)
    return at.number_input(key="summary_width").set_value(64).run()


def test_measure_shows_latency_next_to_macs_and_resnet34s(monkeypatch, one_thread):
    monkeypatch.setattr(latency, "WARMUP_S", 0.005)  # the page's logic, in milliseconds
    monkeypatch.setattr(latency, "TIMED_S", 0.01)
    at = _at_64_px(_page(TINY))
    assert "Press Measure" in texts(at.caption) and not at.info
    at.button(key="summary_measure").click().run()
    assert not at.exception
    table = next(df.value for df in at.dataframe if "batch 1: ms / image" in df.value.columns)
    assert list(table["architecture"]) == [TINY.short_name(), "resnet34"]
    assert table["MACs / image"][0] == si(analyze(TINY, (3, 64, 64)).macs)
    assert (table["batch 32: images/s"] > 0).all() and (table["batch 1: ms / image"] > 0).all()
    assert f"torch {torch.__version__}" in texts(at.caption) and "cpu (" in texts(at.caption)

    def no_model(*args, **kwargs):
        raise AssertionError("a rerun ran a model")

    monkeypatch.setattr(latency, "build_model", no_model)
    at.run()  # a rerun (and a page visit) shows the cached figures without measuring
    assert not at.exception
    assert any("batch 1: ms / image" in df.value.columns for df in at.dataframe)


def test_a_measurement_that_is_refused_gives_a_message(monkeypatch):
    monkeypatch.setattr(latency, "MAX_MACS", {"cpu": 1.0, "cuda": 1.0, "mps": 1.0})
    at = _at_64_px(_page(TINY))
    at.button(key="summary_measure").click().run()
    assert not at.exception
    assert "cannot be measured here" in texts(at.error) and "too long" in texts(at.error)
    assert "resnet34 cannot be measured here" in texts(at.warning)
