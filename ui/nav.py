"""The pages, said once: app.py builds the navigation from this list, pages link by these paths."""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st
from streamlit.errors import StreamlitAPIException


class PageEntry(NamedTuple):
    path: str  # relative to app.py
    title: str
    icon: str


HOME = "app_pages/home.py"
ARCHITECTURE = "app_pages/architecture.py"
SUMMARY = "app_pages/summary.py"
TRAIN = "app_pages/train.py"
COMPARE = "app_pages/compare.py"
SWEEPS = "app_pages/sweeps.py"
INFERENCE = "app_pages/inference.py"
MODELS = "app_pages/models.py"

PAGES = (
    PageEntry(HOME, "Home", ":material/home:"),
    PageEntry(ARCHITECTURE, "Architecture", ":material/tune:"),
    PageEntry(SUMMARY, "Summary & FLOPs", ":material/table_chart:"),
    PageEntry(TRAIN, "Train", ":material/model_training:"),
    PageEntry(COMPARE, "Compare", ":material/compare_arrows:"),
    PageEntry(SWEEPS, "Sweeps", ":material/science:"),
    PageEntry(INFERENCE, "Inference", ":material/image_search:"),
    PageEntry(MODELS, "Models", ":material/inventory_2:"),
)
_BY_PATH = {p.path: p for p in PAGES}


def link(path: str, label: str | None = None) -> None:
    """A link to another page; plain text where the page is not registered (a page run alone)."""
    entry = _BY_PATH[path]
    try:
        st.page_link(path, label=label or entry.title, icon=entry.icon)
    except StreamlitAPIException:
        st.caption(f"Open the {entry.title} page.")


def go(path: str) -> None:
    """Switch to another page (it reruns at once); a note instead where it is not registered."""
    try:
        st.switch_page(path)
    except StreamlitAPIException:
        st.info(f"Open the {_BY_PATH[path].title} page.")
