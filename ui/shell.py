"""What app.py does around every page: the sidebar and the URL, before and after the page,
and in demo mode the operator's unlock box (ui/access.py) below the sidebar.

Both are drawn before the page runs, so they stand when the page ends early (st.stop() and
a switch to another page allow no further output). A page that changes the architecture
(a preset picked on the Architecture page) gets them drawn again after it, in the same run,
so the sidebar and the URL show what the page just chose; a page that raises gets that too
before Streamlit shows its error. Other pages leave the first drawing as it is.
"""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.navigation.page import StreamlitPage

from resnet_explorer.arch import ArchConfig
from ui.access import unlock_box
from ui.sidebar import render_sidebar
from ui.state import current_arch, write_arch_to_url


def run_page(page: StreamlitPage) -> None:
    slot = st.sidebar.empty()
    drawn = _frame(slot)
    unlock_box()  # before the page, like the sidebar: it stands when the page stops early
    try:
        page.run()
    except Exception:  # the page's own error: frame it, then let Streamlit show it
        _refresh(slot, drawn)
        raise
    _refresh(slot, drawn)  # st.stop() and st.rerun() are BaseExceptions and pass straight through


def _refresh(slot: DeltaGenerator, drawn: ArchConfig) -> None:
    if current_arch() != drawn:
        _frame(slot)


def _frame(slot: DeltaGenerator) -> ArchConfig:
    cfg = current_arch()  # also reads the URL when this session starts, on any page
    write_arch_to_url(cfg)
    with slot.container():
        render_sidebar(cfg)
    return cfg
