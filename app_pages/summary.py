"""Summary & FLOPs: the current architecture layer by layer, what it costs, and how it
differs from ResNet34 or any other configuration."""

from __future__ import annotations

import streamlit as st

from resnet_explorer.analysis import (MAX_BATCH, MAX_INPUT_SIDE, MIN_INPUT_SIDE, Analysis,
                                      compare_layers, mib, other_flops_text, stage_frame)
from resnet_explorer.analysis.charts import activation_memory, block_macs, stage_bars
from resnet_explorer.common import UserError
from ui import summary_view as view
from ui.analysis_cache import cached_analysis, cached_torchinfo
from ui.state import current_arch, kept

st.title("Summary & FLOPs")
cfg = current_arch()
st.caption(f"Architecture: **{cfg.short_name()}** — change it on the Architecture page.")

c_h, c_w, c_batch, c_cmp = st.columns(4)
# kept(): the input and the comparison stay as they were after a visit to another page.
height = int(c_h.number_input("Input height", MIN_INPUT_SIDE, MAX_INPUT_SIDE, step=16,
                              key=kept("summary_height", 224)))
width = int(c_w.number_input("Input width", MIN_INPUT_SIDE, MAX_INPUT_SIDE, step=16,
                             key=kept("summary_width", 224)))
batch = int(c_batch.number_input("Batch (for memory)", 1, MAX_BATCH, key=kept("summary_batch", 1)))
other_cfg = view.comparison(c_cmp)

try:
    mine = cached_analysis(cfg, (cfg.in_channels, height, width), batch)
except UserError as exc:
    st.error("This architecture cannot be analysed at this input size:\n\n- "
             + "\n- ".join(exc.problems))
    st.stop()

other: Analysis | None = None
other_label = "comparison"
if other_cfg is not None:
    other_label = other_cfg.short_name()
    try:
        other = cached_analysis(other_cfg, (other_cfg.in_channels, height, width), batch)
    except UserError as exc:
        st.warning(f"The comparison ({other_label}) cannot run here: " + "; ".join(exc.problems))

if mine.training_error:
    st.warning(mine.training_error)

view.totals(mine, other)
st.caption(
    f"Deltas against **{other_label}**. MACs are the multiply-accumulates of convolutions and "
    "linear layers — the figure torchvision quotes as “GFLOPS” (3.664 for ResNet34 at "
    f"224×224). FLOPs = 2 × MACs + other FLOPs; other FLOPs here: {other_flops_text(mine)}. "
    f"Activation memory is what autograd keeps for one training step at batch {batch} "
    f"(bf16: {mib(mine.activation_bytes_bf16)}).")
view.measured_speed(cfg, height, width)

changes = compare_layers(mine, other) if other is not None else None
t_layers, t_charts, t_diagram, t_diff, t_info = st.tabs(
    ["Layers", "Charts", "Diagram", "Differences", "torchinfo"])

with t_layers:
    view.layer_table(mine, changes)

with t_charts:
    configs = [("this config", mine)] + ([(other_label, other)] if other is not None else [])
    st.plotly_chart(stage_bars(configs), key="summary_stage_bars")
    st.plotly_chart(block_macs(mine), key="summary_block_macs")
    st.plotly_chart(activation_memory(configs), key="summary_activation_memory")
    view.table(stage_frame(mine))

with t_diagram:
    view.diagram_tab(mine, other, other_label, changes)

with t_diff:
    view.differences_tab(cfg, other, other_label, changes)

with t_info:
    st.caption("torchinfo's own summary of the same model (run on the meta device).")
    if st.toggle("Show torchinfo summary", key="summary_torchinfo"):
        st.code(cached_torchinfo(cfg, (cfg.in_channels, height, width)), language="text")
