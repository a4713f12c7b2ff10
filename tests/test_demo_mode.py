"""AppTest of demo mode (RESNET_EXPLORER_MODE=demo): every control that writes to the stores
or reads server folders is locked, says why, and opens for the session that types the operator
password (from st.secrets) in the sidebar; a wrong or missing password keeps it locked, the
password never stays in a widget or reaches the URL; a visitor's classifications are
rate-limited with a message. The rules themselves: tests/test_access.py."""

from __future__ import annotations

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from resnet_explorer.common.access import (CLASSIFY_PER_MINUTE, MODE_ENV,
                                           OPERATOR_PASSWORD_SECRET,
                                           SERVER_UNLOCK_TRIES_PER_MINUTE,
                                           UNLOCK_TRIES_PER_MINUTE, RateLimiter)
from resnet_explorer.experiments.sweep import queue_sweep
from resnet_explorer.experiments.sweep_spec import SweepSpec
from resnet_explorer.runs import CANCELLED, RunPaths, write_status
from tests.compare_helpers import make_run, run_id
from tests.inference_helpers import encode
from tests.page_helpers import TIMEOUT, open_page_at, texts
from tests.test_access import Clock
from tests.train_helpers import TINY_ARCH, TINY_TRAIN
from ui import access, nav
from ui.access import CLASSIFY_LIMITER_KEY, LOCK_KEY, LOCKED, PASSWORD_KEY, UNLOCKED_KEY
from ui.compare_view import PENDING_DELETE_KEY
from ui.models_view import IMAGENET_FILE_KEY
from ui.state import SELECTED_RUN_KEY

PASSWORD = "correct horse battery staple"
# What a locked demo disables on each page: (kind of widget, key). Cancelling a run or a
# sweep needs a live process; those buttons take the same `lock_reason()`.
LOCKED_CONTROLS = {
    nav.TRAIN: [("button", "train_start"), ("button", "train_resume")],
    nav.SWEEPS: [("button", "sw_queue"), ("button", "sweep_resume")],
    nav.COMPARE: [("button", "cmp_delete")],
    nav.MODELS: [("file_uploader", "models_import_files"), ("button", "models_import"),
                 ("button", "models_download"), ("file_uploader", IMAGENET_FILE_KEY),
                 ("button", "models_imagenet_save"), ("button", "models_transfer"),
                 ("button", "models_rename"), ("button", "models_delete")],
}


@pytest.fixture
def demo(with_tiny, monkeypatch):
    """Demo mode over a store with one model, one cancelled run and a sweep with another."""
    monkeypatch.setenv(MODE_ENV, "demo")
    access._server_unlock_limiter.clear()  # server-wide: each test starts with a fresh one
    make_run(with_tiny / "runs", 1, TINY_ARCH, state=CANCELLED)  # run_id(1)
    spec = SweepSpec.from_dict({"base_arch": TINY_ARCH.to_dict(), "train": TINY_TRAIN.to_dict(),
                                "modifications": [{"name": "silu", "arch": {"activation": "silu"}}],
                                "seeds": 1})
    record = queue_sweep(spec, external=True)  # prepared runs: no process starts
    write_status(RunPaths(with_tiny / "runs" / record.slots[0].run_id), state=CANCELLED)
    return with_tiny


def open_app(page: str, password: str | None = PASSWORD) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    if password is not None:
        table, name = OPERATOR_PASSWORD_SECRET
        at.secrets[table] = {name: password}
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def prepare(at: AppTest, page: str) -> AppTest:
    """Give every control of the page what it needs besides the lock (a row selected, a
    deletion asked for, a new name, a model picked and confirmed)."""
    if page == nav.TRAIN:
        at.selectbox(key=SELECTED_RUN_KEY).set_value(run_id(1))  # not the sweep's run
    if page == nav.COMPARE:
        at.session_state[at.dataframe[0].key] = {"selection": {"rows": [0], "columns": [],
                                                               "cells": []}}
        at.session_state[PENDING_DELETE_KEY] = [at.dataframe[0].value.iloc[0, 0]]
    if page == nav.MODELS:
        at.text_input(key="models_new_name").input("renamed")
        at.multiselect(key="models_delete_pick").set_value(["tiny"])
    at.run()
    if page == nav.MODELS:
        at.checkbox(key="models_confirm_delete").check().run()
    assert not at.exception
    return at


def control(at: AppTest, kind: str, key: str):
    found = getattr(at, kind)(key=key)
    assert found is not None, key
    return found


def locked(at: AppTest, page: str) -> list[str]:
    """The page's lockable controls that are drawn locked: disabled, saying why."""
    return [key for kind, key in LOCKED_CONTROLS[page]
            if key in _keys(at, kind) and control(at, kind, key).disabled
            and control(at, kind, key).help == LOCKED]


def _keys(at: AppTest, kind: str) -> set[str]:
    return {w.key for w in getattr(at, kind)}


def type_password(at: AppTest, password: str) -> AppTest:
    at.text_input(key=PASSWORD_KEY).input(password).run()  # Enter in the box
    assert not at.exception
    return at


@pytest.mark.parametrize("page", list(LOCKED_CONTROLS))
def test_each_locked_control_opens_only_with_the_operator_password(demo, page):
    at = prepare(open_app(page), page)
    assert locked(at, page) == [key for _, key in LOCKED_CONTROLS[page]]
    assert "Demo mode" in texts(at.sidebar.caption)
    # A deletion asked for before the session was locked is dropped, not left to confirm.
    assert "cmp_delete_yes" not in _keys(at, "button")

    type_password(at, "wrong")
    assert "not the operator password" in texts(at.sidebar.error)
    assert locked(at, page) == [key for _, key in LOCKED_CONTROLS[page]]
    assert at.text_input(key=PASSWORD_KEY).value == ""

    type_password(at, PASSWORD)
    assert at.session_state[UNLOCKED_KEY] and not locked(at, page)
    if page == nav.COMPARE:  # ask again, and the confirmation is offered
        prepare(at, page)
        assert not at.button(key="cmp_delete_yes").disabled
    enabled = [key for kind, key in LOCKED_CONTROLS[page]
               if key in _keys(at, kind) and not control(at, kind, key).disabled]
    # Everything whose other conditions hold is now usable (the import and the save need
    # files, the transfer the ImageNet weights).
    assert set(enabled) >= {key for _, key in LOCKED_CONTROLS[page]} - {
        "models_import", "models_imagenet_save", "models_transfer"}
    # The password is in no widget, no session value, no query parameter, no text shown.
    assert PASSWORD_KEY not in _keys(at, "text_input")
    assert PASSWORD not in repr(at.session_state)  # every key and value
    assert all(PASSWORD not in str(v) for v in at.query_params.values())
    assert all(PASSWORD not in str(e.value) for e in [*at.markdown, *at.caption, *at.error])

    at.button(key=LOCK_KEY).click().run()
    assert locked(at, page)


def test_server_folders_and_zips_are_locked_and_a_path_from_a_recipe_is_not_read(demo):
    at = open_app(nav.TRAIN)
    at.selectbox(key="hp_dataset").set_value("folder").run()
    folder = at.text_input(key="train_folder")
    assert folder.disabled and folder.help == LOCKED
    at.session_state["train_folder"] = str(demo)  # as a loaded train.json would set it
    at.run()
    assert not at.exception and "classes" not in texts(at.markdown)  # the folder was not read
    at.selectbox(key="hp_dataset").set_value("upload").run()
    zip_box = at.file_uploader(key="train_zip")
    assert zip_box.disabled and zip_box.help == LOCKED
    type_password(at, PASSWORD)
    assert not at.file_uploader(key="train_zip").disabled


def test_without_an_operator_password_the_demo_stays_locked_for_everyone(demo):
    at = open_app(nav.MODELS, password=None)
    type_password(at, "anything")
    assert "No operator password is set" in texts(at.sidebar.error)
    assert locked(at, nav.MODELS)


def test_unlock_attempts_are_rate_limited_per_session(demo):
    at = open_app(nav.HOME)
    for _ in range(UNLOCK_TRIES_PER_MINUTE):
        type_password(at, "guess")
    type_password(at, PASSWORD)  # even the right one waits now
    assert "5 unlock attempts a minute" in texts(at.sidebar.error)
    assert UNLOCKED_KEY not in at.session_state


def test_new_sessions_bring_no_new_guesses_past_the_server_wide_limit(demo):
    server = access._server_unlock_limiter()  # what every session's callback takes from
    for _ in range(SERVER_UNLOCK_TRIES_PER_MINUTE):
        server.take()  # wrong guesses from other sessions (a script opening new ones)
    at = open_app(nav.HOME)  # a fresh session: its own limiter is untouched
    type_password(at, PASSWORD)
    assert "unlock attempts a minute on this server" in texts(at.sidebar.error)
    assert UNLOCKED_KEY not in at.session_state
    access._server_unlock_limiter.clear()
    type_password(at, PASSWORD)  # the right password is not counted against the server
    assert at.session_state[UNLOCKED_KEY]
    assert access._server_unlock_limiter().remaining() == SERVER_UNLOCK_TRIES_PER_MINUTE


def test_outside_demo_mode_nothing_is_locked_and_there_is_no_password_box(with_tiny):
    at = prepare(open_app(nav.MODELS), nav.MODELS)
    assert not locked(at, nav.MODELS)
    assert PASSWORD_KEY not in _keys(at, "text_input")


def test_a_demo_visitor_classifies_at_most_the_limit_a_minute_then_is_told_when(demo):
    at = open_page_at("../app_pages/inference.py")
    clock = Clock()
    at.session_state[CLASSIFY_LIMITER_KEY] = RateLimiter(3, "images", clock=clock)
    at.selectbox(key="inf_model").set_value("tiny").run()

    def upload(*names: str) -> AppTest:
        files = [(n, encode(Image.new("RGB", (32, 32), (i * 40, 90, 200))), "image/png")
                 for i, n in enumerate(names)]
        at.file_uploader(key="inf_files").set_value(files).run()
        assert not at.exception
        return at

    assert f"{CLASSIFY_PER_MINUTE} a minute in this demo" in at.file_uploader(key="inf_files").label
    upload("a.png", "b.png", "c.png", "d.png")
    assert "4 images at once is more than this demo allows" in texts(at.warning)
    upload("a.png", "b.png")
    assert "2 of 2 image(s) classified" in texts(at.markdown)
    upload("c.png", "d.png")
    assert "try again in 60 s" in texts(at.warning)
    clock.now += 60
    at.run()  # any click after the wait
    assert "2 of 2 image(s) classified" in texts(at.markdown) and not at.warning
