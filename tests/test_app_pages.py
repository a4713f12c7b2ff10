"""AppTest: the shell (home + sidebar) and the Architecture page."""

import pytest
from streamlit.testing.v1 import AppTest

from resnet_explorer.arch import (ACTIVATIONS, MAX_WIDTH, NORMS, PRESETS, SHORTCUTS, ArchConfig,
                                   count_parameters)
from tests.page_helpers import TIMEOUT



@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def _architecture(at: AppTest) -> AppTest:
    at.switch_page("app_pages/architecture.py").run()
    assert not at.exception
    return at


def _param_metric(at: AppTest) -> str:
    return next(m.value for m in at.metric if m.label == "Trainable parameters")


def test_home_page_explains_the_tool_and_sidebar_shows_config_and_device(app):
    text = " ".join(m.value for m in app.markdown)
    assert "ResNet34" in text and "Architecture" in text
    sidebar = " ".join(c.value for c in app.sidebar.caption)
    assert "21,797,672 parameters" in sidebar and "CPU" in sidebar


def test_changing_a_widget_updates_parameters_diff_and_url(app):
    at = _architecture(app)
    assert _param_metric(at) == "21,797,672"
    at.selectbox(key="aw_activation").set_value("prelu").run()
    at.number_input(key="aw_blocks_2").set_value(4).run()
    assert not at.exception
    expected = ArchConfig(activation="prelu", blocks=(3, 4, 4, 3))
    assert at.session_state["arch"] == expected
    assert _param_metric(at) == f"{count_parameters(expected):,}"
    diff = " ".join(m.value for m in at.markdown)
    assert "activation: relu → prelu" in diff and "stage 3: 6 → 4 blocks" in diff
    assert at.query_params["activation"] == "prelu" and at.query_params["blocks"] == "3,4,4,3"


def test_preset_fills_every_widget(app):
    at = _architecture(app)
    at.selectbox(key="arch_preset").set_value("resnet26").run()
    assert at.session_state["arch"] == PRESETS["resnet26"]
    assert _param_metric(at) == "15,995,176"


def test_reset_and_edits_leave_no_stale_preset_name_in_the_box(app):
    at = _architecture(app)
    assert at.selectbox(key="arch_preset").value == "resnet34"  # what the config is
    at.selectbox(key="arch_preset").set_value("resnet26").run()
    next(b for b in at.button if b.label == "Reset to ResNet34").click().run()
    assert at.session_state["arch"] == PRESETS["resnet34"]
    assert at.selectbox(key="arch_preset").value == "resnet34"
    at.selectbox(key="aw_activation").set_value("gelu").run()
    assert at.selectbox(key="arch_preset").value is None  # a custom config: no preset's name
    at.selectbox(key="arch_preset").set_value("resnet34").run()  # picking it again reloads it
    assert at.session_state["arch"] == PRESETS["resnet34"]


def test_pasted_json_with_fewer_stages_needs_no_other_per_stage_list(app):
    at = _architecture(app)
    at.text_area(key="arch_paste").set_value('{"blocks": [2, 2, 2], "widths": [64, 128, 256]}')
    at.button[1].click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["arch"] == ArchConfig(blocks=(2, 2, 2), widths=(64, 128, 256),
                                                  depthwise=(False, False, False))


def test_choices_read_as_names_and_an_unchanged_count_has_no_arrow(app):
    from streamlit.proto.Metric_pb2 import Metric

    at = _architecture(app)
    metric = next(m for m in at.metric if m.label == "Trainable parameters")
    assert metric.delta == "same as ResNet34" and metric.proto.direction == Metric.NONE
    at.selectbox(key="aw_activation").set_value("leaky_relu").run()
    summary = at.sidebar.caption[0].value
    assert f"{ACTIVATIONS['leaky_relu'].label} · {NORMS['batch'].label} ·" in summary
    assert "leaky_relu" not in summary


def test_adding_a_stage_extends_the_network(app):
    at = _architecture(app)
    at.number_input(key="aw_stages").set_value(5).run()
    cfg = at.session_state["arch"]
    assert cfg.blocks == (3, 4, 6, 3, 3) and cfg.widths[-1] == 1024


def test_invalid_combination_shows_error_and_keeps_last_valid_config(app):
    at = _architecture(app)
    at.selectbox(key="aw_norm").set_value("group").run()
    at.number_input(key="aw_norm_groups").set_value(24).run()
    assert not at.exception
    assert any("norm_groups=24 must divide" in e.value for e in at.error)
    assert at.session_state["arch"] == ArchConfig(norm="group", norm_groups=32)


@pytest.mark.parametrize("payload, fragment", [
    (b"{not json", "not valid JSON"),
    (b'{"blocks": [3, 0]}', "stage 2: blocks must be between 1 and 64"),
    (b'{"activation": NaN}', "NaN is not allowed"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "not UTF-8"),
])
def test_bad_json_upload_shows_message_without_exception(app, payload, fragment):
    at = _architecture(app)
    at.file_uploader(key="arch_upload").set_value(("arch.json", payload, "application/json")).run()
    assert not at.exception
    assert any(fragment in e.value for e in at.error)
    assert _param_metric(at) == "21,797,672"


def test_good_json_upload_and_paste_load_the_architecture(app):
    at = _architecture(app)
    cfg = PRESETS["se-resnet34"]
    at.file_uploader(key="arch_upload").set_value(("se.json", cfg.to_json().encode(), "application/json")).run()
    assert at.session_state["arch"] == cfg and any("Loaded" in s.value for s in at.success)
    at.text_area(key="arch_paste").set_value(PRESETS["resnet34-d"].to_json()).run()
    at.button[1].click().run()
    assert at.session_state["arch"] == PRESETS["resnet34-d"]


def test_download_offers_the_current_config(app):
    at = _architecture(app)
    at.selectbox(key="aw_activation").set_value("silu").run()
    assert at.get("download_button")


def test_shared_link_reopens_the_architecture():
    cfg = ArchConfig(stem="deep", shortcut="D", activation="gelu")
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    for key, value in cfg.to_query().items():
        at.query_params[key] = value
    at.run()
    assert at.session_state["arch"] == cfg
    bad = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    bad.query_params["blocks"] = "3,x"
    bad.run()
    assert not bad.exception and any("ignored" in w.value for w in bad.warning)


# ----- the shell: sidebar and URL on every page -------------------------------------------
PAGES = ("app_pages/summary.py", "app_pages/train.py", "app_pages/inference.py",
         "app_pages/models.py")


def _sidebar(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def test_sidebar_shows_the_new_parameter_count_right_after_a_preset(app):
    at = _architecture(app)
    at.selectbox(key="arch_preset").set_value("resnet34-d").run()
    assert _param_metric(at) == "21,816,904"
    assert "21,816,904 parameters" in _sidebar(at)
    assert "resnet34-d" in " ".join(m.value for m in at.sidebar.markdown)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_keeps_the_architecture_in_the_url(home, app, page):
    at = _architecture(app)
    at.selectbox(key="aw_activation").set_value("gelu").run()
    at.query_params.clear()  # what the browser does when st.navigation changes page
    at.switch_page(page).run()
    assert not at.exception
    assert at.query_params["activation"] == "gelu"
    assert "gelu" in _sidebar(at)


def test_a_session_started_on_the_summary_page_reads_the_architecture_from_the_url(home):
    cfg = ArchConfig(stem="deep", shortcut="D", activation="gelu")
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.query_params.update(cfg.to_query())
    at.switch_page("app_pages/summary.py").run()
    assert not at.exception
    assert at.session_state["arch"] == cfg
    assert any(t.value == "Summary & FLOPs" for t in at.title)
    assert f"{count_parameters(cfg):,} parameters" in _sidebar(at)
    assert at.query_params["stem"] == "deep"


def test_the_summary_keeps_its_input_and_comparison_across_page_visits(app):
    at = app.switch_page("app_pages/summary.py").run()
    at.number_input(key="summary_height").set_value(64)
    at.number_input(key="summary_batch").set_value(4)
    at.selectbox(key="summary_compare").set_value("resnet18").run()
    at.switch_page("app_pages/architecture.py").run()
    at.switch_page("app_pages/summary.py").run()
    assert not at.exception and not at.warning
    assert at.number_input(key="summary_height").value == 64
    assert at.number_input(key="summary_width").value == 224
    assert at.number_input(key="summary_batch").value == 4
    assert at.selectbox(key="summary_compare").value == "resnet18"


def test_the_sidebar_is_drawn_when_a_page_stops_early(app):
    app.session_state["arch"] = ArchConfig(norm="instance")
    at = app.switch_page("app_pages/summary.py").run()
    at.number_input(key="summary_height").set_value(32)
    at.number_input(key="summary_width").set_value(32).run()  # the page calls st.stop()
    assert any("cannot run on a 32×32 input" in e.value for e in at.error)
    assert "parameters" in _sidebar(at) and at.query_params["norm"] == "instance"


def test_the_sidebar_is_drawn_when_a_page_fails(app, monkeypatch):
    import resnet_explorer.analysis.charts as charts

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a chart")

    monkeypatch.setattr(charts, "diagram", broken)
    at = app.switch_page("app_pages/summary.py").run()
    assert at.exception and "a bug in a chart" in at.exception[0].message
    assert "21,797,672 parameters" in _sidebar(at)


def test_option_labels_and_dependent_widgets_come_from_the_option_tables(app):
    at = _architecture(app)
    assert at.number_input(key="aw_leaky_slope").disabled  # ReLU reads no slope
    assert at.number_input(key="aw_norm_groups").disabled
    at.selectbox(key="aw_activation").set_value("leaky_relu").run()
    at.selectbox(key="aw_norm").set_value("group").run()
    assert not at.number_input(key="aw_leaky_slope").disabled
    assert not at.number_input(key="aw_norm_groups").disabled
    assert ACTIVATIONS["leaky_relu"].label in at.selectbox(key="aw_activation").options
    assert NORMS["group"].label in at.selectbox(key="aw_norm").options
    assert SHORTCUTS["D"].label in at.radio(key="aw_shortcut").options
    assert at.number_input(key="aw_widths_0").max == MAX_WIDTH
