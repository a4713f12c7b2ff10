"""What app.py does around every page: the sidebar and the URL, before and after the page.

Both are drawn once before the page runs and again after it. The second drawing is the one a
person sees normally, and it shows what the page just chose (a preset picked on the
Architecture page is in the sidebar and the URL in the same run). The first one is what stays
when the page ends early: st.stop() (and a switch to another page) allows no further output,
while a page that raises still gets the second drawing before the error is shown.
"""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.navigation.page import StreamlitPage

from ui.sidebar import render_sidebar
from ui.state import current_arch, write_arch_to_url


def run_page(page: StreamlitPage) -> None:
    slot = st.sidebar.empty()
    _frame(slot)
    try:
        page.run()
    except Exception:  # the page's own error: frame it, then let Streamlit show it
        _frame(slot)
        raise
    _frame(slot)  # st.stop() and st.rerun() are BaseExceptions and pass straight through


def _frame(slot: DeltaGenerator) -> None:
    cfg = current_arch()  # also reads the URL when this session starts, on any page
    write_arch_to_url(cfg)
    with slot.container():
        render_sidebar(cfg)
