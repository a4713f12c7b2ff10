"""Hostile inputs from issue 11: sidecar metrics no page can format (#1), a tiny file of a
network too costly to run (#2), zip class folders that would merge (#5) and typed folder
paths the OS refuses (#8). Each is refused with a message or made harmless, never a crash."""

from __future__ import annotations

import errno
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save as save_safetensors

from resnet_explorer.arch import PRESETS, ArchConfig, build_model
from resnet_explorer.common import DataError, ImportRefused, UserError
from resnet_explorer.datasets import extract_zip
from resnet_explorer.datasets.folders import resolve_folder
from resnet_explorer.models import (MODEL_SORTS, ModelCard, card_markdown, import_model,
                                    list_models, prepare_import, render_card, save_model,
                                    sort_models)
from resnet_explorer.models.card import MAX_MODEL_SIDE, clean_metrics
from resnet_explorer.models.importing import check_inference_cost
from resnet_explorer.training import TrainConfig
from tests.inference_helpers import TINY, encode, sidecar_for, torch_bytes
from tests.page_helpers import open_page_at, texts

# ----- #1: sidecar metrics that cannot be formatted ------------------------------------------
# As JSON text. NaN and Infinity are refused by the JSON reader itself; 1e400 reads as inf.
UNSHOWABLE = {"400-digit integer": "1" * 400, "1e400": "1e400", "text": '"0.93"',
              "a list": "[0.9]", "true": "true"}


@pytest.fixture(scope="module")
def tiny_file() -> bytes:
    torch.manual_seed(0)
    return save_safetensors(build_model(TINY).state_dict())


@pytest.mark.parametrize("value", UNSHOWABLE.values(), ids=UNSHOWABLE.keys())
def test_an_import_leaves_out_sidecar_metrics_no_page_can_show(store_home, tiny_file, value):
    metrics = {"best_val_acc": "@", "epoch": "@", "val_acc": 0.5, "dataset": "digits",
               "role": "best"}
    side = json.dumps(sidecar_for(metrics=metrics)).replace('"@"', value).encode()
    files = [("tiny.safetensors", tiny_file), ("tiny.json", side)]
    card, notes = import_model(files, TINY, weights_dir=store_home / "weights")
    assert card.metrics == {"val_acc": 0.5, "dataset": "digits", "role": "best"}
    assert "'best_val_acc'" in notes[-1] and "'epoch'" in notes[-1]
    on_disk = json.loads((store_home / "weights" / "tiny.json").read_text())
    assert on_disk["metrics"] == card.metrics


def test_an_accuracy_must_be_a_fraction_and_text_is_kept_only_where_text_belongs():
    kept, dropped = clean_metrics({"val_acc": 93.0, "best_val_acc": -0.1, "epoch": 93.0,
                                   "dataset": "digits", "role": 1, "note": "hello"})
    assert kept == {"epoch": 93.0, "dataset": "digits"}
    assert dropped == ["val_acc", "best_val_acc", "role", "note"]


def test_stored_sidecar_numbers_that_cannot_be_formatted_show_as_missing(store_home):
    # Written straight into the store (by hand, or by an older import): every display copes.
    weights = store_home / "weights"
    save_model(build_model(TINY), sidecar_for(name="damaged"), "damaged", weights)
    side = json.loads((weights / "damaged.json").read_text())
    side["metrics"] = {"best_val_acc": "@big", "val_acc": "@inf", "epoch": "@big",
                       "params": "@inf", "last_val_acc": "high", "best_epoch": "@-big"}
    text = json.dumps(side).replace('"@-big"', "-" + "9" * 400)
    (weights / "damaged.json").write_text(
        text.replace('"@big"', "9" * 400).replace('"@inf"', "1e400"))
    save_model(build_model(TINY), sidecar_for(name="fine", metrics={"val_acc": 0.5}), "fine",
               weights)
    card = ModelCard.from_sidecar(json.loads((weights / "damaged.json").read_text()))
    assert card.accuracy is None and "val acc" not in card.summary()
    assert "Best validation accuracy | —" in render_card(card)
    assert "Parameters | —" in card_markdown("damaged", weights)
    models = list_models(weights)
    for by in MODEL_SORTS:  # what the Models page's table sorts and shows
        for descending in (True, False):
            assert {m.name for m in sort_models(models, by, descending)} == {"damaged", "fine"}
    at = open_page_at("../app_pages/inference.py")
    at.selectbox(key="inf_model").set_value("damaged").run()
    assert not at.exception and "3 classes · 3×32×32" in texts(at.caption)
    assert not open_page_at("../app_pages/models.py").exception


@pytest.mark.parametrize("where", ["arch dropout", "train lr", "normalization mean"])
def test_a_400_digit_number_in_any_config_field_is_a_message_not_an_overflow(store_home, where):
    # json.loads makes an int of 400 digits; float() of it raises OverflowError, not a
    # UserError, so every page listing the file (Models, Inference, Compare) would fail.
    huge = int("9" * 400)
    side = sidecar_for(name="huge")
    if where == "arch dropout":
        side["arch"] = {**side["arch"], "dropout": huge}
    elif where == "train lr":
        side["train"] = {"lr": huge}
    else:
        side["normalization"] = {**side["normalization"], "mean": [huge] * 3}
    with pytest.raises(UserError, match="finite"):
        if where == "train lr":  # a train.json upload, a run's train.json
            TrainConfig.from_dict(side["train"])
        else:  # a sidecar, a run's arch.json, pasted JSON
            ModelCard.from_sidecar(side)
    weights = store_home / "weights"
    save_model(build_model(TINY), sidecar_for(name="fine"), "fine", weights)
    (weights / "huge.json").write_text(json.dumps(side))
    (weights / "huge.safetensors").write_bytes((weights / "fine.safetensors").read_bytes())
    assert {m.name for m in list_models(weights)} == {"huge", "fine"}
    assert not open_page_at("../app_pages/models.py").exception
    assert not open_page_at("../app_pages/inference.py").exception


# ----- #2: a small file describing a network too costly to run -------------------------------
# The file: 0.87 MiB of weights, but a 2048×512×512 stem activation (2 GiB).
WIDE_STEM = ArchConfig(stem="cifar", stem_width=2048, blocks=(1,), widths=(8,),
                       depthwise=(False,), num_classes=10)


def test_a_tiny_file_of_a_network_needing_gigabytes_per_image_is_refused(store_home):
    data = save_safetensors(build_model(WIDE_STEM).state_dict())
    assert len(data) < 2**20
    side = sidecar_for(WIDE_STEM, name="wide", input_size=[3, 512, 512], resize=512)
    files = [("wide.safetensors", data), ("wide.json", json.dumps(side).encode())]
    with pytest.raises(ImportRefused, match=r"2\.0 GB activation; the limit is 256\.0 MB"):
        import_model(files, WIDE_STEM, weights_dir=store_home / "weights")
    assert list_models(store_home / "weights") == []


def test_a_pth_without_sidecar_is_bounded_at_the_size_it_is_given():
    # No sidecar: the current architecture at ImageNet's 224×224 (2048×224×224 = 392 MiB).
    state = build_model(WIDE_STEM).state_dict()
    with pytest.raises(ImportRefused, match=r"one 224×224 image would hold a 392\.0 MB"):
        prepare_import([("wide.pth", torch_bytes(state))], WIDE_STEM)


def test_a_network_of_too_many_multiply_adds_per_image_is_refused():
    # Activations of 64×512×512 (64 MiB) pass; 24 blocks of them are 464 G multiply-adds.
    deep = ArchConfig(stem="cifar", stem_width=64, blocks=(24,), widths=(64,),
                      depthwise=(False,), num_classes=10)
    card = ModelCard.from_sidecar(sidecar_for(deep, input_size=[3, 512, 512], resize=512))
    with pytest.raises(ImportRefused, match=r"464 G multiply-adds; the limit is 300 G"):
        check_inference_cost(card)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_importable_at_the_largest_input_side(preset):
    cfg = PRESETS[preset]
    side = sidecar_for(cfg, input_size=[cfg.in_channels, MAX_MODEL_SIDE, MAX_MODEL_SIDE],
                       resize=MAX_MODEL_SIDE)
    check_inference_cost(ModelCard.from_sidecar(side))


# ----- #5: zip class folders that would become one class -------------------------------------
def _png() -> bytes:
    return encode(Image.new("RGB", (8, 8), (200, 30, 30)))


def _zip(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in names:
            archive.writestr(name, _png())
    return buf.getvalue()


@pytest.mark.parametrize("first,second", [
    ("ab:c", "ab_c"),  # ':' is stored as '_'
    ("a" * 100 + "-cats", "a" * 100 + "-dogs"),  # names are cut at 100 characters
    ("ab\tc", "ab_c"),  # a control character
], ids=["colon", "long-common-prefix", "control-character"])
def test_class_folders_that_would_be_stored_under_one_name_are_refused(tmp_path, first, second):
    data = _zip([f"{first}/1.png", f"{second}/2.png", "other/3.png"])
    with pytest.raises(DataError) as refused:
        extract_zip(data, "classes.zip", root=tmp_path)
    assert repr(first) in str(refused.value) and repr(second) in str(refused.value)
    assert not list((tmp_path / "uploads").glob("*"))  # nothing published, nothing left over


def test_one_class_folder_in_both_splits_is_still_one_class(tmp_path):
    names = [f"{split}/{c}/{i}.png" for split in ("train", "val") for c in ("ab:c", "d")
             for i in range(2)]
    report = extract_zip(_zip(names), "split.zip", root=tmp_path)
    assert report.has_split and report.classes == {"ab_c": 4, "d": 4}


# ----- #8: typed folder paths the OS refuses -------------------------------------------------
def test_a_path_too_long_for_the_os_is_a_message(tmp_path):
    with pytest.raises(DataError, match="File name too long") as refused:
        resolve_folder("folder", tmp_path, "x" * 300)
    assert len(str(refused.value)) < 300


def test_a_link_loop_is_a_message(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(DataError, match="symbolic links"):
        resolve_folder("folder", tmp_path, "a")


def test_a_folder_the_server_may_not_read_is_a_message(tmp_path, monkeypatch):
    # Root reads any folder, so the refusal the OS gives another user is played by os.stat.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    with pytest.raises(DataError, match="Permission denied"):
        resolve_folder("folder", tmp_path, "locked")


def test_a_nul_character_in_a_typed_path_is_a_message(tmp_path):
    with pytest.raises(DataError, match="NUL") as refused:
        resolve_folder("folder", tmp_path, "data\0set")
    assert "\0" not in str(refused.value)
