"""Live fragments under AppTest, which only ever runs a whole script.

In the browser, a fragment made with st.fragment(run_every=…) reruns on its own every so
often and nothing else on the page does: whatever is drawn outside it stays as the last full
run left it. `live_fragments` (a fixture) records the live fragments a page draws, with their
arguments; `tick()` then runs just those, as one timer tick would, in a session of their own,
and returns what they drew. What a page shows outside its live fragments is absent there.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.page_helpers import TIMEOUT

# The live fragments of the latest page run: qualified name -> (function, args, kwargs).
LIVE: dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = {}


def _recording_fragment(func: Callable[..., Any] | None = None, *, run_every: Any = None,
                        **_: Any) -> Any:
    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(body)
        def call(*args: Any, **kwargs: Any) -> Any:
            if run_every is not None:
                LIVE[body.__qualname__] = (body, args, kwargs)
            return body(*args, **kwargs)
        return call
    return decorate(func) if func is not None else decorate


@pytest.fixture
def live_fragments(monkeypatch):
    """Reimport `ui.runs_view` with its fragments recorded (and restore it afterwards)."""
    import ui.runs_view

    LIVE.clear()
    monkeypatch.setattr(st, "fragment", _recording_fragment)
    importlib.reload(ui.runs_view)
    yield LIVE
    monkeypatch.undo()
    importlib.reload(ui.runs_view)
    LIVE.clear()


def _tick_script() -> None:
    from tests.fragment_helpers import LIVE

    for body, args, kwargs in list(LIVE.values()):
        body(*args, **kwargs)


def tick() -> AppTest:
    """One timer tick: the recorded live fragments alone, and what they drew."""
    at = AppTest.from_function(_tick_script, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at
