"""The sidebar every page shares: the current architecture at a glance and the compute device."""

from __future__ import annotations

import streamlit as st

from resnet_explorer.arch import ArchConfig, count_parameters
from resnet_explorer.common import spec_of
from resnet_explorer.common.devices import describe_devices


@st.cache_resource
def _device_lines() -> list[str]:
    return describe_devices()  # probing CUDA once per server is enough


def _named(cfg: ArchConfig, field: str) -> str:
    """The option table's label of the field's choice ("Leaky ReLU", not "leaky_relu")."""
    return spec_of(ArchConfig, field).choice_label(getattr(cfg, field))


def render_sidebar(cfg: ArchConfig) -> None:
    """Draw into the current container (the shell puts it in the sidebar, below the pages)."""
    st.subheader("Current architecture")
    st.markdown(f"**{cfg.short_name()}**")
    st.caption(
        f"{cfg.block} blocks {list(cfg.blocks)} · widths {list(cfg.stage_widths)} · "
        f"{_named(cfg, 'activation')} · {_named(cfg, 'norm')} · "
        f"{count_parameters(cfg):,} parameters"
    )
    preset, diff = cfg.closest_preset()  # as the name counts them: the class count is none
    if diff:
        more = " …" if len(diff) > 6 else ""
        st.caption(f"Changes from {preset}: " + "; ".join(diff[:6]) + more)
    st.subheader("Compute")
    for line in _device_lines():
        st.caption(line)
