"""The current architecture lives in st.session_state so every page reads the same one."""

from __future__ import annotations

import streamlit as st

from resnet_explorer.config import BASELINE, ArchConfig, ConfigError

ARCH_KEY = "arch"


def current_arch() -> ArchConfig:
    """The architecture chosen on the Architecture page (or from the URL), default resnet34."""
    if ARCH_KEY not in st.session_state:
        st.session_state[ARCH_KEY] = arch_from_url() or BASELINE
    return st.session_state[ARCH_KEY]


def set_arch(cfg: ArchConfig) -> None:
    st.session_state[ARCH_KEY] = cfg


def arch_from_url() -> ArchConfig | None:
    """A shared link carries the config as query parameters; a bad link falls back with a warning."""
    params = {k: st.query_params[k] for k in st.query_params}
    if not params:
        return None
    try:
        return ArchConfig.from_query(params)
    except ConfigError as exc:
        st.warning(f"The architecture in this link was ignored: {exc}")
        return None
