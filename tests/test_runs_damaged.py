"""Run folders that a hand or a crash damaged: status.json of the wrong types or not JSON at all,
metrics.jsonl with bytes that are not UTF-8, and the temporary files of a trainer killed while
writing. Each shows as what it is (a "damaged" row, a skipped line) or is cleaned up; none
raises, hides the run or lets it be resumed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_explorer import runs
from resnet_explorer.common import RunError
from resnet_explorer.common.fileio import TMP_SUFFIX
from resnet_explorer.runs import RunInfo, RunPaths
from resnet_explorer.training import RunRecorder, run_training
from tests.train_helpers import TINY_ARCH, TINY_TRAIN
from ui.state import SELECTED_RUN_KEY

GOOD_ID, BAD_ID = "20260101-000000-good-0a1b", "20260101-000001-bad-0c2d"
GOOD = {"state": "completed", "message": "3 epochs", "created": 1.0, "dataset": "digits",
        "arch_name": "tiny", "device": "cpu", "epoch": 3, "epochs": 3, "step": 30,
        "total_steps": 30, "best_val_acc": 0.5, "best_model": None, "last_model": None}
PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "train.py")


def make_run(root: Path, run_id: str, status_bytes: bytes) -> RunPaths:
    paths = RunPaths(root / run_id)
    paths.dir.mkdir(parents=True)
    paths.status.write_bytes(status_bytes)
    return paths


def as_json(status: dict) -> bytes:
    return json.dumps(status).encode()


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "runs"
    make_run(root, GOOD_ID, as_json(GOOD))
    return root


WRONG_TYPES = [
    ("created", None), ("epoch", "abc"), ("epochs", float("inf")), ("step", 10 ** 400),
    ("dataset", ["digits"]), ("state", {"a": 1}), ("best_val_acc", 7), ("eta_s", True),
    ("message", 3), ("total_steps", -5),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES, ids=[f for f, _ in WRONG_TYPES])
def test_a_field_of_the_wrong_type_lists_the_run_as_damaged_naming_the_field(root, field, value):
    text = json.dumps({**GOOD, field: value})  # inf is written as Infinity: 1e400 reads as it
    make_run(root, BAD_ID, text.replace("Infinity", "1e400").encode())
    listed = {r.run_id: r for r in runs.list_runs(root)}
    assert listed[GOOD_ID].state == "completed"
    bad = listed[BAD_ID]
    assert bad.state == "damaged" and bad.damaged and f"'{field}'" in bad.message, bad.message
    assert not bad.can_resume and not bad.active
    assert len(bad.message) < 200  # a 400-digit integer is cut short, not printed whole


@pytest.mark.parametrize(("content", "why"), [
    (b"{not json", "not JSON"), (b"[1, 2]", "JSON list, not an object"), (b"", "not JSON"),
    (b'{"state": "\xff\xfe"}', "not UTF-8"), (b"1" * 5000, "not JSON"),
])
def test_a_status_that_is_not_a_json_object_is_a_damaged_row_not_a_missing_run(root, content, why):
    paths = make_run(root, BAD_ID, content)
    [bad] = [r for r in runs.list_runs(root) if r.run_id == BAD_ID]
    assert bad.state == "damaged" and why in bad.message, bad.message
    assert paths.status.read_bytes() == content  # reading never rewrites the evidence


def test_a_folder_without_status_yet_is_still_skipped_as_being_created(root):
    (root / BAD_ID).mkdir()
    assert [r.run_id for r in runs.list_runs(root)] == [GOOD_ID]


def test_a_damaged_active_looking_run_is_not_settled_and_cannot_be_resumed(root):
    content = json.dumps({**GOOD, "state": "running", "epoch": "abc"}).encode()
    paths = make_run(root, BAD_ID, content)
    assert runs.get_run(BAD_ID, root).state == "damaged"
    assert paths.status.read_bytes() == content  # not overwritten with "interrupted"
    paths.status.write_bytes(b"{torn")
    paths.lock.touch()  # a run that ever ran has one: resume gets as far as reading the state
    with pytest.raises(RunError, match="cannot be resumed: status.json is not JSON"):
        runs.resume_run(BAD_ID, root)


def test_a_failed_run_whose_status_has_a_wrong_type_is_not_resumed(root):
    paths = make_run(root, BAD_ID, as_json({**GOOD, "state": "failed", "created": None}))
    paths.lock.touch()
    with pytest.raises(RunError, match="is damaged"):
        runs.resume_run(BAD_ID, root)
    assert json.loads(paths.status.read_text())["state"] == "failed"  # nothing was queued


def test_a_damaged_run_can_be_deleted(root):
    make_run(root, BAD_ID, b"{not json")
    assert runs.delete_run(BAD_ID, root) == f"deleted run {BAD_ID}"
    assert [r.run_id for r in runs.list_runs(root)] == [GOOD_ID]


def test_the_train_page_lists_a_damaged_run_without_a_traceback(home):
    root = home / "runs"
    make_run(root, GOOD_ID, as_json(GOOD))
    make_run(root, BAD_ID, as_json({**GOOD, "created": 2.0, "epoch": "abc"}))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["arch"] = TINY_ARCH
    at.run()
    assert not at.exception
    [table] = [d.value for d in at.dataframe if "state" in d.value.columns]
    assert list(table["state"]) == ["damaged", "completed"]
    assert "'epoch'" in table["message"][0]
    at.selectbox(key=SELECTED_RUN_KEY).set_value(BAD_ID).run()
    assert not at.exception
    assert not [b for b in at.button if b.key == "train_resume"]


def test_metrics_with_bytes_that_are_not_utf8_lose_only_their_own_lines(tmp_path):
    root = tmp_path / "runs"
    paths = make_run(root, GOOD_ID, as_json(GOOD))
    paths.metrics.write_bytes(b'{"kind": "step", "step": 1}\n'
                              b'{"kind": "step", "step": 2, "note": "\xff\xfe"}\n'
                              b'\xc3\x28 garbage\n'
                              b'{"kind": "epoch", "step": 3}\n')
    metrics = runs.read_metrics(GOOD_ID, root)
    assert [r["step"] for r in metrics.steps] == [1, 2]  # the bad bytes became U+FFFD
    assert [r["step"] for r in metrics.epochs] == [3]


QUICK = replace(TINY_TRAIN, epochs=1, keep_last=False, train_limit=128, val_limit=64,
                batch_size=32)


def plant_temps(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    stale = [folder / f".checkpoint.safetensors.x1y2z3{TMP_SUFFIX}",
             folder / f".status.json.abcdef{TMP_SUFFIX}"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    return stale


@pytest.mark.usefixtures("one_thread")
def test_a_run_removes_its_own_stale_temporary_files_when_it_starts(tmp_path):
    run_dir, weights = tmp_path / "run", tmp_path / "w"
    stale = plant_temps(run_dir)
    weights.mkdir()
    # Its own models' half-written files in the store too, never another model's.
    stale += [weights / f".run-best.safetensors.k1{TMP_SUFFIX}",
              weights / f".run-last.json.k2{TMP_SUFFIX}"]
    keep = [run_dir / "notes.txt", tmp_path / f"other{TMP_SUFFIX}",
            weights / f".runner-best.safetensors.k3{TMP_SUFFIX}"]
    for path in stale[2:]:
        path.write_bytes(b"half a model")
    for path in keep:
        path.write_text("not the run's leftovers")
    seen_at_start = []
    real_on_step = RunRecorder.on_step

    def on_step(self, record):
        seen_at_start.append([p.exists() for p in stale])
        real_on_step(self, record)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunRecorder, "on_step", on_step)
        status = run_training(TINY_ARCH, QUICK, run_dir, weights_dir=weights, echo=False)
    assert status["state"] == "completed", status["message"]
    assert seen_at_start and seen_at_start[0] == [False] * 4  # gone before the first step
    assert all(p.exists() for p in keep)
    assert not list(run_dir.glob(f"*{TMP_SUFFIX}"))


@pytest.mark.usefixtures("one_thread")
def test_a_run_removes_temporary_files_left_during_it_when_it_ends(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    real_on_epoch = RunRecorder.on_epoch

    def on_epoch(self, record, trainer):  # a checkpoint write that a crash abandoned mid-run
        real_on_epoch(self, record, trainer)
        plant_temps(run_dir)

    monkeypatch.setattr(RunRecorder, "on_epoch", on_epoch)
    status = run_training(TINY_ARCH, QUICK, run_dir, weights_dir=tmp_path / "w", echo=False)
    assert status["state"] == "completed", status["message"]
    assert not list(run_dir.glob(f"*{TMP_SUFFIX}"))


def test_runinfo_from_status_accepts_a_plain_status_and_missing_fields():
    info = RunInfo.from_status(GOOD_ID, {"state": "queued", "created": 5})
    assert (info.state, info.created, info.epoch, info.best_val_acc) == ("queued", 5.0, 0.0, None)
    assert RunInfo.from_status(GOOD_ID, GOOD).state == "completed"
