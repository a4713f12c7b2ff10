"""Session state every page shares: the current architecture (kept in the URL too), the
keys one page sets for another, and widget values that outlive a visit to another page.

The architecture lives in st.session_state under ARCH_KEY. A session that starts on any page
reads it from the URL once; after every page run the shell writes it back, because
st.navigation clears the query string whenever the page changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import streamlit as st

from resnet_explorer.arch import BASELINE, ArchConfig
from resnet_explorer.common import UserError

ARCH_KEY = "arch"
# The Inference page's model picker; the Train page's "Try it" button preselects a model in it.
MODEL_PICK_KEY = "inf_model"
# The run shown on the Train page; starting a run selects it.
SELECTED_RUN_KEY = "train_run"

_ARCH_FIELDS = frozenset(f.name for f in fields(ArchConfig))
# Prefix of the plain (non-widget) keys that keep widget values between page visits.
_KEPT = "kept:"


def drop_stale_choice(key: str, options: Sequence[Any]) -> None:
    """Forget a picker's choice that is no longer offered (a model or run removed meanwhile),
    so the widget falls back to its first option instead of failing."""
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)


def kept(key: str, default: Any = None) -> str:
    """`key`, for a widget whose value should outlive a visit to another page; call it just
    before drawing the widget, and pass the widget no default value of its own.

    Streamlit deletes a widget's state in any run that does not draw it, so leaving the page
    forgets the value. A plain key is never deleted: each run copies the widget's value there
    and, when the widget's own state is gone, puts it back (`default` the first time)."""
    if key in st.session_state:
        st.session_state[_KEPT + key] = st.session_state[key]
    elif _KEPT + key in st.session_state:
        st.session_state[key] = st.session_state[_KEPT + key]
    elif default is not None:
        st.session_state[key] = default
    return key


def current_arch() -> ArchConfig:
    """The architecture chosen on the Architecture page (or from the URL), default resnet34."""
    if ARCH_KEY not in st.session_state:
        st.session_state[ARCH_KEY] = arch_from_url() or BASELINE
    return st.session_state[ARCH_KEY]


def set_arch(cfg: ArchConfig) -> None:
    st.session_state[ARCH_KEY] = cfg


def arch_from_url() -> ArchConfig | None:
    """A shared link carries the config as query parameters; a bad link is ignored (warned)."""
    params = {k: st.query_params[k] for k in st.query_params if k in _ARCH_FIELDS}
    if not params:
        return None
    try:
        return ArchConfig.from_query(params)
    except UserError as exc:
        st.warning(f"The architecture in this link was ignored: {exc}")
        return None


def write_arch_to_url(cfg: ArchConfig) -> None:
    """Keep the address bar in step so a copied link (or a reload) reopens this architecture."""
    query = cfg.to_query()
    for key in [k for k in st.query_params if k in _ARCH_FIELDS and k not in query]:
        del st.query_params[key]
    for key, value in query.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value
