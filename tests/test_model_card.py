"""The model card: what it says about a trained model, a "-last" model's own accuracy, the hash
of an older sidecar computed on demand (and never written), and hostile sidecar values."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from resnet_explorer.arch import PRESETS, ArchConfig, build_model
from resnet_explorer.models import ModelCard, card_markdown, render_card, store
from tests.inference_helpers import TINY, sidecar_for

DIGITS_34 = ArchConfig(num_classes=10)  # resnet34 sized for digits
TRAINED = {"role": "best", "epoch": 6, "val_acc": 0.975, "best_val_acc": 0.975, "best_epoch": 6,
           "last_epoch": 8, "last_val_acc": 0.9722, "dataset": "digits", "params": 21_279_882}


def card_of(cfg: ArchConfig = TINY, **changes) -> ModelCard:
    return ModelCard.from_sidecar({**sidecar_for(cfg, name="m", **changes),
                                   "format": "resnet-explorer/1"})


def rows(markdown: str) -> dict[str, str]:
    """The card's table as {label: value}."""
    out = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| |"):
            label, value = line[2:-2].split(" | ", 1)
            out[label] = value
    return out


def test_a_trained_models_card_says_what_it_is_in_words():
    card = card_of(PRESETS["resnet18"], metrics=TRAINED, train={"epochs": 8, "dataset": "digits"},
                   run_id="20250101-120000-digits-ab12", created="2025-01-01T12:00:00+00:00")
    text = rows(render_card(card, sha256="ab" * 32, size_bytes=44 * 2**20))
    assert text["Architecture"] == "resnet18"
    assert text["Differences from resnet18"] == "none"
    assert text["Dataset"] == "digits" and text["Parameters"] == "21,279,882"
    assert text["Classes"] == ("1,000: k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, "
                               "… (988 more)")
    assert text["Input"].startswith(
        "3×32×32 RGB; shorter side resized to 36 px, centre crop 32×32")
    assert "mean (0.485, 0.456, 0.406)" in text["Input"]
    assert text["Validation accuracy (this model)"] == "97.50% (epoch 6)"
    assert text["Best validation accuracy"] == "97.50% (epoch 6)"
    assert text["Last validation accuracy"] == "97.22% (epoch 8)"
    assert text["Epochs trained"] == "8 of 8" and text["Model"] == "`m` — the run's best epoch"
    assert text["Weights file"] == "`m.safetensors`, 44.0 MB"
    assert text["SHA-256"] == f"`{'ab' * 32}`" and "Created" in text
    assert text["Source"] == "trained · run 20250101-120000-digits-ab12"


def test_a_last_models_card_shows_its_own_accuracy_not_the_best_epochs():
    metrics = {"role": "last", "epoch": 8, "val_acc": 0.9722, "best_val_acc": 0.975,
               "best_epoch": 6}
    card = card_of(metrics=metrics, train={"epochs": 8})
    text = rows(render_card(card))
    assert card.accuracy == 0.9722 and "val acc 97.2%" in card.summary()
    assert text["Validation accuracy (this model)"] == "97.22% (epoch 8)"
    assert text["Last validation accuracy"] == "97.22% (epoch 8)"
    assert text["Best validation accuracy"] == "97.50% (epoch 6)"
    assert text["Model"].endswith("the run's last epoch") and text["Epochs trained"] == "8 of 8"


def test_differences_are_counted_from_the_closest_preset_without_the_class_count():
    cfg = ArchConfig(blocks=(2, 2, 2, 2), activation="gelu", num_classes=10)
    text = rows(render_card(card_of(cfg)))
    assert text["Architecture"] == "custom (1 change from resnet18)"
    assert text["Differences from resnet18"] == "activation: relu → gelu"
    assert rows(render_card(card_of(DIGITS_34)))["Architecture"] == "resnet34 · 10 classes"


@pytest.mark.parametrize("hostile", [10**400, float("nan"), float("inf"), "98%", True, [1], None,
                                     {"a": 1}, -3, 1e300])
def test_hostile_metric_values_render_as_a_dash_never_a_crash(hostile):
    metrics = {k: hostile for k in ("epoch", "val_acc", "best_val_acc", "best_epoch",
                                    "last_epoch", "last_val_acc", "params", "dataset", "role")}
    card = card_of(metrics=metrics, train={"epochs": hostile, "dataset": hostile},
                   created="x" * 5000)
    text = rows(render_card(card, sha256=""))
    for label in ("Parameters", "Validation accuracy (this model)", "Best validation accuracy",
                  "Last validation accuracy", "SHA-256"):
        assert text[label] == "—", label
    assert text["Epochs trained"] == "—" and len(text["Created"]) < 60
    as_text = hostile if isinstance(hostile, str) else ""  # any text may name a dataset
    assert card.accuracy is None and card.dataset == as_text
    assert text["Dataset"] == (as_text or "—")
    card.summary()  # no crash either


def test_untrusted_texts_cannot_break_the_table_or_inject_markup():
    names = ["a|b", "<script>alert(1)</script>", "[x](javascript:alert(1))", "line\nbreak"]
    cfg = ArchConfig(stem="cifar", stem_width=8, blocks=(1,), widths=(8,), depthwise=(False,),
                     num_classes=4)
    card = card_of(cfg, class_names=names, metrics={"dataset": "*bold* `code` $x$"})
    markdown = render_card(card)
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert all(line.count("|") - line.count("\\|") == 3 for line in table)  # two cells each
    text = rows(markdown)
    assert "<script>" not in markdown and "\\<script\\>" in text["Classes"]
    assert "\\[x\\](javascript:alert(1))" in text["Classes"] and "line break" in text["Classes"]
    assert text["Dataset"] == "\\*bold\\* \\`code\\` \\$x\\$"


def test_an_older_sidecar_without_a_hash_gets_one_computed_when_the_card_is_opened(tmp_path):
    torch.manual_seed(0)
    store.save_model(build_model(TINY), sidecar_for(name="old"), "old", tmp_path)
    sidecar = tmp_path / "old.json"
    data = json.loads(sidecar.read_text())
    del data["sha256"]  # as an older version wrote it
    sidecar.write_text(json.dumps(data))
    before = sidecar.read_bytes()
    expected = hashlib.sha256((tmp_path / "old.safetensors").read_bytes()).hexdigest()
    text = rows(card_markdown("old", tmp_path))
    assert text["SHA-256"] == f"`{expected}` (computed now: the sidecar records none)"
    assert sidecar.read_bytes() == before  # reading never writes
    saved = json.loads((tmp_path / "old.json").read_text())
    assert "sha256" not in saved
    store.save_model(build_model(TINY), sidecar_for(name="new"), "new", tmp_path)
    recorded = json.loads((tmp_path / "new.json").read_text())["sha256"]
    assert rows(card_markdown("new", tmp_path))["SHA-256"] == f"`{recorded}`"  # as saved
