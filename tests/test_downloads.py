"""The bytes behind the download buttons: byte-identical to the stored files, a zip with safe
names, a run's configs and metrics as CSV; plus disk used and deleting several models."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile

import pytest
import torch

from resnet_explorer.arch import build_model
from resnet_explorer.common import ModelError, RunError
from resnet_explorer.models import (METRIC_COLUMNS, delete_models, disk_used, folder_usage,
                                    metrics_csv, model_file_bytes, model_zip, run_config_bytes,
                                    run_files, store)
from resnet_explorer.runs import read_jsonl, read_metrics
from tests.inference_helpers import TINY, sidecar_for

RUN_ID = "20250101-120000-digits-ab12"


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    store.save_model(build_model(TINY), sidecar_for(name="tiny"), "tiny", tmp_path / "weights")
    return tmp_path / "weights"


def test_model_files_are_the_stored_bytes(folder):
    files = model_file_bytes("tiny", folder)
    assert files.weights == (folder / "tiny.safetensors").read_bytes()
    assert files.sidecar == (folder / "tiny.json").read_bytes()
    assert (files.weights_name, files.sidecar_name) == ("tiny.safetensors", "tiny.json")


def test_the_zip_holds_both_files_byte_for_byte_and_the_card(folder):
    archive = zipfile.ZipFile(io.BytesIO(model_zip("tiny", folder)))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["tiny.json", "tiny.md", "tiny.safetensors"]
    assert archive.read("tiny.safetensors") == (folder / "tiny.safetensors").read_bytes()
    assert archive.read("tiny.json") == (folder / "tiny.json").read_bytes()
    assert archive.getinfo("tiny.safetensors").compress_type == zipfile.ZIP_STORED
    card = archive.read("tiny.md").decode()
    assert card.startswith("# Model card: `tiny`") and json.loads(
        archive.read("tiny.json"))["sha256"] in card
    # What a person downloads imports back as the same model.
    from resnet_explorer.arch import ArchConfig
    from resnet_explorer.models import import_model
    card, _ = import_model([(n, archive.read(n)) for n in ("tiny.safetensors", "tiny.json")],
                           ArchConfig(), name="again", weights_dir=folder)
    assert (folder / "again.safetensors").read_bytes() == (folder / "tiny.safetensors").read_bytes()


def test_a_pair_that_does_not_belong_together_is_not_offered(folder):
    other = build_model(TINY)
    store.save_model(other, sidecar_for(name="other"), "other", folder)
    (folder / "tiny.safetensors").write_bytes((folder / "other.safetensors").read_bytes())
    with pytest.raises(ModelError, match="does not match its sidecar"):
        model_file_bytes("tiny", folder)
    with pytest.raises(ModelError, match="does not match its sidecar"):
        model_zip("tiny", folder)
    with pytest.raises(ModelError, match="no model|missing"):
        model_file_bytes("absent", folder)
    with pytest.raises(ModelError, match="model name"):
        model_zip("../tiny", folder)


def write_run(runs_dir, records):
    run = runs_dir / RUN_ID
    run.mkdir(parents=True)
    (run / "arch.json").write_text(TINY.to_json())
    (run / "train.json").write_text('{"epochs": 3}\n')
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


RECORDS = [
    {"kind": "step", "step": 1, "epoch": 0.5, "loss": 2.3, "lr": 0.01, "images_per_s": 100.0,
     "elapsed_s": 0.1},
    {"kind": "step", "step": 2, "epoch": 1.0, "loss": 2.1, "lr": 0.02, "images_per_s": 110.0,
     "elapsed_s": 0.2},
    {"kind": "epoch", "epoch": 1, "step": 2, "train_loss": 2.2, "train_acc": 0.3, "val_loss": 2.0,
     "val_acc": 0.4, "lr": 0.02, "epoch_s": 0.2, "images_per_s": 105.0, "elapsed_s": 0.25,
     "best_val_acc": 0.4, "best_epoch": 1, "gpu_mem_mb": 12},
    {"kind": "step", "step": 3, "epoch": 1.5, "loss": 1.9, "lr": 0.03, "images_per_s": 120.0,
     "elapsed_s": 0.3},
]


def test_metrics_csv_has_one_row_per_record_and_stable_columns(tmp_path):
    write_run(tmp_path, RECORDS)
    rows = list(csv.reader(io.StringIO(metrics_csv(RUN_ID, tmp_path).decode())))
    header, body = rows[0], rows[1:]
    assert header == [*METRIC_COLUMNS, "gpu_mem_mb"]  # a newer key goes after the fixed ones
    metrics = read_metrics(RUN_ID, tmp_path)
    assert len(body) == len(metrics.steps) + len(metrics.epochs) == 4
    as_dicts = [dict(zip(header, row)) for row in body]
    assert [r["kind"] for r in as_dicts] == ["step", "step", "epoch", "step"]  # the file's order
    for record, row in zip(read_jsonl(tmp_path / RUN_ID / "metrics.jsonl"), as_dicts):
        for column in header:
            value = record.get(column)
            assert row[column] == ("" if value is None else str(value)), column
    assert float(as_dicts[2]["val_acc"]) == 0.4 and as_dicts[0]["val_acc"] == ""
    write_run(tmp_path / "empty", [])  # a run with no records yet: just the header
    assert metrics_csv(RUN_ID, tmp_path / "empty").decode().splitlines() == [
        ",".join(METRIC_COLUMNS)]


def test_run_configs_are_the_stored_bytes_and_nothing_else_is_offered(tmp_path):
    run = write_run(tmp_path, RECORDS)
    assert run_config_bytes(RUN_ID, "arch.json", tmp_path) == (run / "arch.json").read_bytes()
    assert run_config_bytes(RUN_ID, "train.json", tmp_path) == (run / "train.json").read_bytes()
    with pytest.raises(RunError, match="no downloadable file"):
        run_config_bytes(RUN_ID, "status.json", tmp_path)
    with pytest.raises(RunError, match="not a run id"):
        run_config_bytes("../etc", "arch.json", tmp_path)
    (run / "train.json").unlink()
    with pytest.raises(RunError, match="has no train.json"):
        run_config_bytes(RUN_ID, "train.json", tmp_path)


def test_disk_used_counts_sizes_without_reading_files(tmp_path, monkeypatch):
    (tmp_path / "weights" / "sub").mkdir(parents=True)
    (tmp_path / "weights" / "a.bin").write_bytes(b"x" * 3000)
    (tmp_path / "weights" / "sub" / "b.bin").write_bytes(b"y" * 1000)
    os.symlink(tmp_path / "weights" / "a.bin", tmp_path / "weights" / "link")  # not followed
    (tmp_path / "runs").mkdir()

    def no_reads(*args, **kwargs):
        raise AssertionError("a file was opened")

    monkeypatch.setattr("builtins.open", no_reads)
    assert folder_usage(tmp_path / "weights") == (4000, 2)
    assert folder_usage(tmp_path / "absent") == (0, 0)
    line = disk_used(tmp_path / "weights", tmp_path / "runs")
    assert line == "Disk used: weights/ 3.9 kB (2 files) · runs/ 0 bytes (0 files)"


def test_several_models_are_deleted_at_once_and_a_missing_one_is_reported(folder):
    store.save_model(build_model(TINY), sidecar_for(name="second"), "second", folder)
    store.save_model(build_model(TINY), sidecar_for(name="kept"), "kept", folder)
    deleted, problems = delete_models(["tiny", "absent", "second"], folder)
    assert deleted == ["tiny", "second"] and problems == ["there is no model named 'absent'"]
    assert {m.name for m in store.list_models(folder)} == {"kept"}


def test_a_run_offers_only_models_still_in_the_store_and_configs_it_has(tmp_path, folder):
    run = write_run(tmp_path / "runs", RECORDS)
    (run / "status.json").write_text(json.dumps({"state": "completed", "best_model": "tiny",
                                                 "last_model": "../../etc/passwd"}))
    assert run_files(RUN_ID, tmp_path / "runs", folder) == (["tiny"], ["arch.json", "train.json"])
    store.delete_model("tiny", folder)
    (run / "arch.json").unlink()
    assert run_files(RUN_ID, tmp_path / "runs", folder) == ([], ["train.json"])


def test_metrics_csv_defuses_text_a_spreadsheet_would_run_and_keeps_negative_numbers(tmp_path):
    write_run(tmp_path, [{"kind": "epoch", "step": 1, "val_loss": -0.5, "note": "=HYPERLINK(1)",
                          "extra": ["@x"]}])
    header, row = list(csv.reader(io.StringIO(metrics_csv(RUN_ID, tmp_path).decode())))
    record = dict(zip(header, row))
    assert record["note"] == "'=HYPERLINK(1)" and record["val_loss"] == "-0.5"
    assert record["extra"] == '["@x"]'  # JSON starts with "[": nothing to defuse
