"""Analysis results cached per configuration, so moving between pages recomputes nothing.

st.cache_data keys on the arguments, so the config travels as its JSON text; the cached
value is a plain frozen dataclass that pickles cheaply. Errors are not cached (Streamlit
re-raises them), and a failing analysis costs only a few milliseconds to repeat.
"""

from __future__ import annotations

import streamlit as st

from resnet_explorer.analysis import Analysis, analyze, smallest_input_side, torchinfo_text
from resnet_explorer.arch import ArchConfig


@st.cache_data(max_entries=256, show_spinner=False)
def _analysis(cfg_json: str, input_size: tuple[int, int, int], batch: int) -> Analysis:
    return analyze(ArchConfig.from_json(cfg_json), input_size, batch)


@st.cache_data(max_entries=32, show_spinner="Running torchinfo…")
def _torchinfo(cfg_json: str, input_size: tuple[int, int, int]) -> str:
    return torchinfo_text(ArchConfig.from_json(cfg_json), input_size)


@st.cache_data(max_entries=64, show_spinner=False)
def _smallest_input_side(cfg_json: str, last_side: int, upto: int) -> int | None:
    return smallest_input_side(ArchConfig.from_json(cfg_json), last_side, upto=upto)


def cached_analysis(cfg: ArchConfig, input_size: tuple[int, int, int], batch: int) -> Analysis:
    return _analysis(cfg.to_json(), tuple(input_size), int(batch))


def cached_torchinfo(cfg: ArchConfig, input_size: tuple[int, int, int]) -> str:
    return _torchinfo(cfg.to_json(), tuple(input_size))


def cached_smallest_input_side(cfg: ArchConfig, last_side: int, upto: int) -> int | None:
    return _smallest_input_side(cfg.to_json(), int(last_side), int(upto))
