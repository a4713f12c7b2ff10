"""Summary & FLOPs: the current architecture layer by layer, what it costs, and how it
differs from ResNet34 or any other configuration."""

from __future__ import annotations

import streamlit as st

from resnet_explorer.analysis import (Analysis, changed_blocks, changes_frame, compare_layers,
                                      layer_frame, mib, other_flops_text, si, stage_frame)
from resnet_explorer.analysis.charts import activation_memory, block_macs, diagram, stage_bars
from resnet_explorer.arch import BASELINE, PRESETS, ArchConfig
from resnet_explorer.common import ConfigError
from ui.analysis_cache import cached_analysis, cached_torchinfo
from ui.state import current_arch

PASTED = "pasted JSON…"

st.title("Summary & FLOPs")
cfg = current_arch()
st.caption(f"Architecture: **{cfg.short_name()}** — change it on the Architecture page.")

c_h, c_w, c_batch, c_cmp = st.columns(4)
height = int(c_h.number_input("Input height", 32, 512, 224, step=16, key="summary_height"))
width = int(c_w.number_input("Input width", 32, 512, 224, step=16, key="summary_width"))
batch = int(c_batch.number_input("Batch (for memory)", 1, 1024, 1, key="summary_batch"))
choice = c_cmp.selectbox("Compare with", [*PRESETS, PASTED], key="summary_compare",
                         help="resnet34 is the baseline; paste any exported config as JSON.")

other_cfg: ArchConfig | None = PRESETS.get(choice)
if choice == PASTED:
    text = st.text_area("Configuration to compare (JSON)", BASELINE.to_json(), height=160,
                        key="summary_compare_json")
    try:
        other_cfg = ArchConfig.from_json(text)
    except ConfigError as exc:
        st.error("The pasted configuration is not valid:\n\n- " + "\n- ".join(exc.problems))

try:
    mine = cached_analysis(cfg, (cfg.in_channels, height, width), batch)
except ConfigError as exc:
    st.error("This architecture cannot be analysed at this input size:\n\n- "
             + "\n- ".join(exc.problems))
    st.stop()

other: Analysis | None = None
other_label = "comparison"
if other_cfg is not None:
    other_label = other_cfg.short_name()
    try:
        other = cached_analysis(other_cfg, (other_cfg.in_channels, height, width), batch)
    except ConfigError as exc:
        st.warning(f"The comparison ({other_label}) cannot run here: " + "; ".join(exc.problems))

if mine.training_error:
    st.warning(mine.training_error)


def _delta(value: float, base: float | None, fmt) -> str | None:
    """Signed difference for st.metric, which colours by a leading '-'."""
    if base is None or value == base:
        return None
    return ("+" if value > base else "-") + fmt(abs(value - base))


cards = [("Parameters", "params", si), ("MACs (multiply-adds)", "macs", si), ("FLOPs", "flops", si),
         ("Activation memory (fp32)", "activation_bytes", mib),
         ("Parameter memory (fp32)", "param_bytes", mib)]
for col, (label, attr, fmt) in zip(st.columns(len(cards)), cards):
    value, base = getattr(mine, attr), getattr(other, attr) if other is not None else None
    col.metric(label, fmt(value), _delta(value, base, fmt), delta_color="inverse",
               help=f"{value:,}" + (f" (comparison: {base:,})" if base is not None else ""))
st.caption(
    f"Deltas against **{other_label}**. MACs are the multiply-accumulates of convolutions and "
    "linear layers — the figure torchvision quotes as “GFLOPS” (3.664 for ResNet34 at "
    f"224×224). FLOPs = 2 × MACs + other FLOPs; other FLOPs here: {other_flops_text(mine)}. "
    f"Activation memory is what autograd keeps for one training step at batch {batch} "
    f"(bf16: {mib(mine.activation_bytes_bf16)}).")

changes = compare_layers(mine, other) if other is not None else None
t_layers, t_charts, t_diagram, t_diff, t_info = st.tabs(
    ["Layers", "Charts", "Diagram", "Differences", "torchinfo"])

with t_layers:
    stages = [s.name for s in mine.stages]
    shown = st.multiselect("Stages", stages, default=stages, key="summary_stages")
    frame = layer_frame(mine, changes)
    frame = frame[frame["stage"].isin(shown)]
    if changes is not None:
        marked = frame["vs comparison"] != ""
        styled = frame.style.apply(
            lambda row: ["background-color: rgba(214,39,40,0.15)" if marked[row.name] else ""]
            * len(row), axis=1)
        st.dataframe(styled, hide_index=True, width="stretch")
    else:
        st.dataframe(frame, hide_index=True, width="stretch")

with t_charts:
    configs = [("this config", mine)] + ([(other_label, other)] if other is not None else [])
    st.plotly_chart(stage_bars(configs), key="summary_stage_bars")
    st.plotly_chart(block_macs(mine), key="summary_block_macs")
    st.plotly_chart(activation_memory(configs), key="summary_activation_memory")
    st.dataframe(stage_frame(mine), hide_index=True, width="stretch")

with t_diagram:
    mark_mine = mark_other = set()
    if changes is not None:
        mark_mine = changed_blocks([c for c in changes if c.status != "removed"])
        mark_other = changed_blocks([c for c in changes if c.status != "added"])
    st.plotly_chart(
        diagram(mine, mark_mine, (other_label, other) if other is not None else None, mark_other),
        key="summary_diagram")
    st.caption("Height: output channels (log scale). Label: resolution · block type · shortcut. "
               "Red outline: differs from the comparison.")

with t_diff:
    if changes is None:
        st.info("Choose a valid comparison configuration to see the differences.")
    elif not changes:
        st.success(f"Layer by layer identical to {other_label}.")
    else:
        words = cfg.describe_diff(other.cfg)
        st.markdown(f"**Options changed from {other_label}:** " + ("; ".join(words) or "none"))
        counts = {s: sum(c.status == s for c in changes) for s in ("added", "removed", "changed")}
        st.markdown(", ".join(f"{n} layers {s}" for s, n in counts.items()))
        st.dataframe(changes_frame(changes), hide_index=True, width="stretch")

with t_info:
    st.caption("torchinfo's own summary of the same model (run on the meta device).")
    if st.toggle("Show torchinfo summary", key="summary_torchinfo"):
        st.code(cached_torchinfo(cfg, (cfg.in_channels, height, width)), language="text")
