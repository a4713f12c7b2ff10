"""Labels that tell the truth: a preset sized for other data is named after the preset with
its class count, a custom network counts its changes from the closest preset, and the class
count alone is never a change (while a layer diff still sees the different output layer)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from streamlit.testing.v1 import AppTest

from resnet_explorer.arch import BASELINE, PRESETS, SIZED_BY_DATA, ArchConfig
from resnet_explorer.models import ModelCard
from resnet_explorer.training import run_training
from tests.inference_helpers import sidecar_for
from tests.page_helpers import TIMEOUT
from tests.train_helpers import TINY_TRAIN


@pytest.mark.parametrize("cfg, name", [
    (BASELINE, "resnet34"),
    (ArchConfig(num_classes=10), "resnet34 · 10 classes"),
    (ArchConfig(num_classes=1), "resnet34 · 1 class"),
    (PRESETS["resnet34-cifar"], "resnet34-cifar"),  # its own 10 classes: nothing to add
    (ArchConfig(stem="cifar"), "resnet34-cifar · 1000 classes"),
    (replace(PRESETS["resnet26"], num_classes=100), "resnet26 · 100 classes"),
    (ArchConfig(dropout=0.2), "custom (1 change from resnet34)"),
    (ArchConfig(dropout=0.2, num_classes=10), "custom (1 change from resnet34)"),
    (ArchConfig(dropout=0.2, activation="gelu"), "custom (2 changes from resnet34)"),
    (ArchConfig(blocks=(2, 2, 2, 2), se_reduction=16, num_classes=7),
     "custom (1 change from resnet18)"),
])
def test_short_names(cfg, name):
    assert cfg.short_name() == name


def test_every_preset_is_named_after_itself_whatever_its_class_count():
    for name, preset in PRESETS.items():
        assert preset.short_name() == name
        assert replace(preset, num_classes=3).short_name() == f"{name} · 3 classes"
        assert replace(preset, num_classes=3).closest_preset() == (name, [])


def test_the_class_count_is_a_layer_difference_but_not_a_change_of_design():
    cfg = ArchConfig(num_classes=10)
    assert cfg.describe_diff(BASELINE) == ["num classes: 1000 → 10"]  # the Summary page's diff
    assert cfg.describe_diff(BASELINE, ignore=SIZED_BY_DATA) == []
    assert SIZED_BY_DATA == ("num_classes",)


def test_a_model_cards_one_line_summary_names_the_classes_once():
    card = ModelCard.from_sidecar(sidecar_for(ArchConfig(num_classes=10), name="m",
                                              metrics={"val_acc": 0.9}))
    assert card.summary() == "resnet34 · 10 classes · 3×32×32 · val acc 90.0%"


def test_a_run_names_its_network_as_sized_to_the_data(tmp_path, one_thread):
    # resnet34-cifar asked for 1000 classes; digits sizes it to its own 10: the preset itself.
    # keep_min_acc 1.0: the test keeps no 85 MB model.
    cfg = replace(TINY_TRAIN, epochs=1, warmup_epochs=0, train_limit=32, val_limit=32,
                  batch_size=16, keep_min_acc=1.0)
    status = run_training(ArchConfig(stem="cifar"), cfg, tmp_path / "run",
                          weights_dir=tmp_path / "w", echo=False)
    assert status["state"] == "completed" and status["arch_name"] == "resnet34-cifar"
    assert status["kept_models"] == [] and not list((tmp_path / "w").glob("*.safetensors"))


@pytest.mark.parametrize("cfg, name, changes", [
    (ArchConfig(num_classes=10), "resnet34 · 10 classes", None),
    (ArchConfig(dropout=0.2, num_classes=10), "custom (1 change from resnet34)",
     "Changes from resnet34: dropout: 0.0 → 0.2"),
])
def test_the_sidebar_names_the_network_and_counts_no_class_change(cfg, name, changes):
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.session_state["arch"] = cfg
    at.run()
    assert not at.exception
    assert name in [m.value.strip("*") for m in at.sidebar.markdown]
    captions = [c.value for c in at.sidebar.caption if c.value.startswith("Changes")]
    assert captions == ([changes] if changes else [])
