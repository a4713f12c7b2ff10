"""A message shown once on the next run: for actions that rerun the page (or run in a callback).

One key for the whole app: whatever a page or a widget callback leaves here, the page that
runs next shows where it calls `show()`, then it is gone.
"""

from __future__ import annotations

from typing import Literal, NoReturn

import streamlit as st

FLASH_KEY = "ui_flash"
Kind = Literal["success", "info", "warning", "error"]


def remember(kind: Kind, text: str) -> None:
    """Keep a message for the next run (from a callback, which runs before the page)."""
    st.session_state[FLASH_KEY] = (kind, text)


def flash(kind: Kind, text: str) -> NoReturn:
    """Keep a message and rerun now, so the page redraws with the action's result."""
    remember(kind, text)
    st.rerun()


def show() -> None:
    """The waiting message, if any, here and only once."""
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        kind, text = message
        getattr(st, kind)(text)
