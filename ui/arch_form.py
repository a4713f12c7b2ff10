"""Glue between the Architecture page's widgets and ArchConfig.

Widgets are keyed "aw_<field>" (per-stage ones "aw_<field>_<i>") and always rendered, so
Streamlit never drops their state; presets and imports write into these keys from callbacks,
the only place Streamlit allows changing a widget's value.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from resnet_explorer.arch import MAX_WIDTH, PRESETS, ArchConfig
from resnet_explorer.common import ConfigError

STAGE_FIELDS = ("blocks", "widths", "depthwise")
SCALAR_FIELDS = (
    "stem", "stem_width", "width_multiplier", "block", "shortcut", "activation", "leaky_slope",
    "norm", "norm_groups", "se_reduction", "dropout", "drop_path", "zero_init_last",
    "head_hidden", "in_channels", "num_classes",
)
STAGES_KEY = "aw_stages"
IMPORT_MESSAGE_KEY = "arch_import_message"


def key(field: str, stage: int | None = None) -> str:
    return f"aw_{field}" if stage is None else f"aw_{field}_{stage}"


def load(cfg: ArchConfig) -> None:
    """Put every value of `cfg` into the widgets (call before they render, or from a callback)."""
    for name in SCALAR_FIELDS:
        st.session_state[key(name)] = getattr(cfg, name)
    st.session_state[STAGES_KEY] = cfg.num_stages
    for name in STAGE_FIELDS:
        for i, value in enumerate(getattr(cfg, name)):
            st.session_state[key(name, i)] = value


def init(cfg: ArchConfig) -> None:
    if STAGES_KEY not in st.session_state:
        load(cfg)


def ensure_stage(i: int) -> None:
    """A stage added with the stage counter starts as a copy of the previous one, twice as wide."""
    if key("blocks", i) in st.session_state:
        return
    prev_blocks = st.session_state.get(key("blocks", i - 1), 2)
    prev_width = st.session_state.get(key("widths", i - 1), 64)
    st.session_state[key("blocks", i)] = prev_blocks
    st.session_state[key("widths", i)] = min(MAX_WIDTH, prev_width * 2)
    st.session_state[key("depthwise", i)] = st.session_state.get(key("depthwise", i - 1), False)


def read() -> tuple[ArchConfig | None, list[str]]:
    """The config the widgets describe, or the problems that stop it from being one."""
    data: dict[str, Any] = {name: st.session_state[key(name)] for name in SCALAR_FIELDS}
    n = st.session_state[STAGES_KEY]
    for name in STAGE_FIELDS:
        data[name] = [st.session_state[key(name, i)] for i in range(n)]
    try:
        return ArchConfig.from_dict(data), []
    except ConfigError as exc:
        return None, exc.problems


def apply_preset() -> None:
    name = st.session_state.get("arch_preset")
    if name in PRESETS:
        load(PRESETS[name])


def import_json(raw: bytes | str, source: str) -> None:
    """Load a config from an uploaded or pasted JSON document; the message says what happened."""
    try:
        cfg = ArchConfig.from_json(raw)
    except ConfigError as exc:
        st.session_state[IMPORT_MESSAGE_KEY] = ("error", f"{source} was not loaded: {exc}")
        return
    load(cfg)
    st.session_state[IMPORT_MESSAGE_KEY] = ("success", f"Loaded the architecture from {source}.")


def on_upload() -> None:
    uploaded = st.session_state.get("arch_upload")
    if uploaded is not None:
        import_json(uploaded.getvalue(), f"“{uploaded.name}”")


def on_paste() -> None:
    import_json(st.session_state.get("arch_paste", ""), "the pasted JSON")
