"""Demo mode in the browser: why a control is locked, the operator's unlock box in the
sidebar, and the limits on what one visitor's classifications may cost. The rules are
resnet_explorer.common.access's; this module keeps their state in the session.

The operator password is read with st.secrets from `.streamlit/secrets.toml`
(OPERATOR_PASSWORD_SECRET says where in it). The callback that checks a typed password
empties its box first; only "unlocked" stays in the session. Nothing of it is logged or put
in the URL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import streamlit as st

from resnet_explorer.common import AccessDenied
from resnet_explorer.common.access import (CLASSIFY_PER_MINUTE, OPERATOR_PASSWORD_SECRET,
                                           SERVER_UNLOCK_TRIES_PER_MINUTE,
                                           UNLOCK_TRIES_PER_MINUTE, RateLimiter, WorkerSlots,
                                           demo_mode, password_matches, prediction_workers)

UNLOCKED_KEY = "access_unlocked"
PASSWORD_KEY = "access_password"
UNLOCK_KEY = "access_unlock"
LOCK_KEY = "access_lock"
REFUSAL_KEY = "access_refusal"  # why the last unlock failed, shown once
CLASSIFY_LIMITER_KEY = "access_classify_limiter"
UNLOCK_LIMITER_KEY = "access_unlock_limiter"

NEEDS_PASSWORD = ("training, sweeps, changes to the model store and server folders need the "
                  "operator password")
LOCKED = f"Locked in this demo: {NEEDS_PASSWORD} (sidebar)."
T = TypeVar("T")


def lock_reason() -> str | None:
    """Why this session may not start runs, change the stores or read server folders; None
    when it may (not a demo, or unlocked by the operator)."""
    if not demo_mode() or st.session_state.get(UNLOCKED_KEY):
        return None
    return LOCKED


def write_button(label: str, *, key: str, where: Any = st, disabled: bool = False,
                 help: str | None = None, **options: Any) -> bool:
    """A button that starts runs or changes the stores: in a locked demo it is disabled with
    the reason as its help. True only for a click on an enabled button, so a click sent
    before the lock (or before the button was disabled) acts on nothing."""
    locked = lock_reason()
    off = disabled or locked is not None
    clicked = where.button(label, key=key, disabled=off, help=locked or help, **options)
    return bool(clicked) and not off


def classify_cap() -> int | None:
    """Images a minute this session may classify; None where there is no limit."""
    return CLASSIFY_PER_MINUTE if lock_reason() is not None else None


def unlock_box() -> None:
    """The sidebar's demo-mode box: what is locked, and the password that opens it."""
    if not demo_mode():
        return
    box = st.sidebar.container(border=True)
    if st.session_state.get(UNLOCKED_KEY):
        box.caption("Demo mode, unlocked for this browser session.")
        box.button("Lock again", key=LOCK_KEY, on_click=_lock)
        return
    box.caption(f"Demo mode: exploring, analysing and classifying are open to everyone; "
                f"{NEEDS_PASSWORD}.")
    # Enter in the box or the button: whichever comes first checks the password and
    # empties the box, so the other finds nothing to check.
    box.text_input("Operator password", type="password", key=PASSWORD_KEY, on_change=_unlock)
    box.button("Unlock", key=UNLOCK_KEY, on_click=_unlock)
    refusal = st.session_state.pop(REFUSAL_KEY, None)
    if refusal:
        box.error(refusal)


def _unlock() -> None:
    """A callback (the one place a widget's value may be changed): check the typed password
    and forget it."""
    given = st.session_state.get(PASSWORD_KEY) or ""
    st.session_state[PASSWORD_KEY] = ""
    if not given:
        return
    server = _server_unlock_limiter()
    try:
        _limiter(UNLOCK_LIMITER_KEY, UNLOCK_TRIES_PER_MINUTE, "unlock attempts").take()
        if server.remaining() <= 0:
            server.take()  # refuses, saying when the server takes guesses again
    except AccessDenied as exc:
        st.session_state[REFUSAL_KEY] = str(exc)
        return
    expected = _operator_password()
    if password_matches(given, expected):
        st.session_state[UNLOCKED_KEY] = True
        return
    with contextlib.suppress(AccessDenied):  # only wrong guesses count server-wide
        server.take()
    if not expected:
        st.session_state[REFUSAL_KEY] = ("No operator password is set on this server, so the "
                                         "demo stays locked.")
    else:
        st.session_state[REFUSAL_KEY] = "That is not the operator password."


def _lock() -> None:
    st.session_state.pop(UNLOCKED_KEY, None)


def _operator_password() -> str | None:
    table_name, name = OPERATOR_PASSWORD_SECRET
    try:
        table = st.secrets.get(table_name)
    except FileNotFoundError:  # no secrets file, or one that is not TOML
        return None
    value = table.get(name) if isinstance(table, Mapping) else None
    return None if value is None else str(value)


def _limiter(key: str, limit: int, what: str) -> RateLimiter:
    """This session's limiter under `key` (made on first use)."""
    if key not in st.session_state:
        st.session_state[key] = RateLimiter(limit, what)
    return st.session_state[key]


@st.cache_resource
def _server_unlock_limiter() -> RateLimiter:
    # One for the whole server: a new session (a reload) must not bring new guesses.
    return RateLimiter(SERVER_UNLOCK_TRIES_PER_MINUTE, "unlock attempts",
                       scope="on this server, all visitors together")


@st.cache_resource
def _prediction_slots() -> WorkerSlots:
    return WorkerSlots(prediction_workers())  # one set for the whole server process


def compute_slot() -> AbstractContextManager[None]:
    """One of the server's slots for heavy work (predictions, latency measurements), shared
    by every session; entering it raises AccessDenied when the server stays busy."""
    return _prediction_slots().hold()


def run_prediction(n_images: int, predict: Callable[[], T]) -> T:
    """`predict()` on `n_images` images, within a demo visitor's rate (the operator and a
    dashboard not in demo mode have none) and in one of the server's prediction slots.
    Raises AccessDenied, saying why, when either refuses."""
    if lock_reason() is not None:
        _limiter(CLASSIFY_LIMITER_KEY, CLASSIFY_PER_MINUTE, "images").take(n_images)
    with compute_slot():
        return predict()
