"""Layer diffs, tables, figures, torchinfo text and the headless command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torchvision

from resnet_explorer.analysis import (analyze, changed_blocks, compare_layers, layer_frame,
                                      stage_frame, text_report, torchinfo_text)
from resnet_explorer.analysis.__main__ import main
from resnet_explorer.analysis.charts import activation_memory, block_macs, diagram, stage_bars
from resnet_explorer.arch import BASELINE, PRESETS, ArchConfig

SIZE = (3, 64, 64)


def _weighted_prefixes(model) -> set[str]:
    return {key.rsplit(".", 1)[0] for key in model.state_dict() if "num_batches" not in key}


def test_diff_resnet18_to_resnet34_removes_exactly_the_layers_torchvision_drops():
    mine, other = analyze(PRESETS["resnet18"], SIZE), analyze(BASELINE, SIZE)
    changes = compare_layers(mine, other)
    assert {c.status for c in changes} == {"removed"}
    removed_with_weights = {c.name for c in changes
                            if next(r for r in other.rows if r.name == c.name).params}
    tv34, tv18 = torchvision.models.resnet34(), torchvision.models.resnet18()
    assert removed_with_weights == _weighted_prefixes(tv34) - _weighted_prefixes(tv18)
    assert changed_blocks(changes) == {f"layer{s}.{b}" for s, n in ((1, 3), (2, 4), (3, 6), (4, 3))
                                       for b in range(2, n)}


def test_diff_of_a_config_with_itself_is_empty():
    assert compare_layers(analyze(BASELINE, SIZE), analyze(BASELINE, SIZE)) == []


def test_diff_names_added_changed_and_removed_layers():
    wide = ArchConfig(widths=(64, 128, 256, 1024))
    changes = {c.name: c for c in compare_layers(analyze(wide, SIZE), analyze(BASELINE, SIZE))}
    assert changes["layer4.0.conv1"].status == "changed"
    assert "output 1×512×2×2 → 1×1024×2×2" in changes["layer4.0.conv1"].detail
    assert changes["fc"].status == "changed"
    assert "params 513,000 → 1,025,000" in changes["fc"].detail
    assert "layer3.0.conv1" not in changes  # untouched stages are not reported
    dw = compare_layers(analyze(PRESETS["resnet34-dw"], SIZE), analyze(BASELINE, SIZE))
    added = {c.name for c in dw if c.status == "added"}
    removed = {c.name for c in dw if c.status == "removed"}
    assert added == {f"{n}.{part}" for n in removed for part in ("conv_dw", "conv_pw")}
    assert not [c for c in dw if c.status == "changed"]  # same shapes everywhere else


def test_frames_are_numeric_and_mark_differences():
    mine, other = analyze(PRESETS["se-resnet34"], SIZE), analyze(BASELINE, SIZE)
    frame = layer_frame(mine, compare_layers(mine, other))
    assert frame["MACs"].sum() == mine.macs and frame["params"].sum() == mine.params
    marked = set(frame.loc[frame["vs comparison"] != "", "layer"])
    assert "layer1.0.se.fc1" in marked and "conv1" not in marked
    stages = stage_frame(mine)
    assert list(stages["stage"]) == ["stem", "stage 1", "stage 2", "stage 3", "stage 4", "head"]
    assert stages["params"].sum() == mine.params


def test_figures_show_both_configs_and_highlight_changed_blocks():
    mine, other = analyze(PRESETS["se-resnet34"], SIZE), analyze(PRESETS["resnet18"], SIZE)
    bars = stage_bars([("se", mine), ("r18", other)])
    assert len(bars.data) == 4
    assert list(bars.data[0].y) == [s.params for s in mine.stages]
    assert list(bars.data[3].y) == [s.macs for s in other.stages]
    assert sum(sum(trace.y) for trace in block_macs(mine).data) == mine.macs
    assert len(activation_memory([("se", mine), ("r18", other)]).data) == 3
    changes = compare_layers(mine, other)
    mark_mine = changed_blocks([c for c in changes if c.status != "removed"])
    fig = diagram(mine, mark_mine, ("r18", other), changed_blocks(
        [c for c in changes if c.status != "added"]))
    top, bottom = fig.data
    assert len(top.x) == len(mine.blocks) and len(bottom.x) == len(other.blocks)
    outlined = {b.name for b, w in zip(mine.blocks, top.marker.line.width) if w > 1}
    assert outlined == {b.name for b in mine.blocks if b.stage.startswith("stage")}
    assert list(top.y) == [b.out_shape[1] for b in mine.blocks]
    assert "16×16 · basic · id" in top.text[2]  # layer1.1 of a 64 px input


def test_torchinfo_text_is_torchinfo_on_the_same_model():
    text = torchinfo_text(BASELINE, (3, 224, 224))
    assert "Total params: 21,797,672" in text and "BasicBlock: 2-16" in text  # 16 blocks


def test_text_report_has_totals_and_one_line_per_layer():
    a = analyze(BASELINE, (3, 224, 224))
    text = text_report(a)
    assert "21,797,672" in text and "3,663,761,408" in text and "multiply-adds" in text
    assert sum(line.lstrip().startswith("layer") for line in text.splitlines()) >= len(
        [r for r in a.rows if r.name.startswith("layer")])


# ----- command line --------------------------------------------------------------------------
def test_cli_prints_totals_and_table(tmp_path, capsys):
    path = tmp_path / "cfg.json"
    path.write_text(ArchConfig(se_reduction=8).to_json())
    assert main(["--config", str(path), "--input", "3x96x128", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "batch 2 × 3×96×128" in out and "layer4.2.se.fc2" in out


@pytest.mark.parametrize("content, args, words", [
    ("{not json", ["--input", "3x64x64"], "not valid JSON"),
    (json.dumps({"blocks": [3, 4], "widths": [64]}), ["--input", "3x64x64"],
     "widths must have one entry"),
    (BASELINE.to_json(), ["--input", "3x64"], "3x224x224"),
    (BASELINE.to_json(), ["--input", "1x64x64"], "3-channel"),
    (ArchConfig(norm="instance").to_json(), ["--input", "3x32x32"], "stage 4 cannot run"),
])
def test_cli_refuses_bad_input_with_exit_code_2(tmp_path, capsys, content, args, words):
    path = tmp_path / "cfg.json"
    path.write_text(content)
    assert main(["--config", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_cli_runs_as_a_module_without_traceback(tmp_path):
    missing = tmp_path / "absent.json"
    proc = subprocess.run([sys.executable, "-m", "resnet_explorer.analysis", "--config",
                           str(missing)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "cannot read" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
