"""The current architecture lives in st.session_state so every page reads the same one."""

from __future__ import annotations

from dataclasses import fields

import streamlit as st

from resnet_explorer.arch import BASELINE, ArchConfig
from resnet_explorer.common import ConfigError

ARCH_KEY = "arch"
_ARCH_FIELDS = {f.name for f in fields(ArchConfig)}


def current_arch() -> ArchConfig:
    """The architecture chosen on the Architecture page (or from the URL), default resnet34."""
    if ARCH_KEY not in st.session_state:
        st.session_state[ARCH_KEY] = arch_from_url() or BASELINE
    return st.session_state[ARCH_KEY]


def set_arch(cfg: ArchConfig) -> None:
    st.session_state[ARCH_KEY] = cfg


def arch_from_url() -> ArchConfig | None:
    """A shared link carries the config as query parameters; a bad link falls back with a warning."""
    params = {k: st.query_params[k] for k in st.query_params if k in _ARCH_FIELDS}
    if not params:
        return None
    try:
        return ArchConfig.from_query(params)
    except ConfigError as exc:
        st.warning(f"The architecture in this link was ignored: {exc}")
        return None


def write_arch_to_url(cfg: ArchConfig) -> None:
    """Keep the address bar in step so a copied link reopens this architecture."""
    query = cfg.to_query()
    for key in [k for k in st.query_params if k in _ARCH_FIELDS and k not in query]:
        del st.query_params[key]
    for key, value in query.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value
