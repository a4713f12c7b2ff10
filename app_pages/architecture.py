"""Architecture: every option of ArchConfig as a widget, validated live."""

import streamlit as st

from resnet_explorer.arch import (ACTIVATIONS, BASELINE, BLOCKS, MAX_BLOCKS_PER_STAGE, MAX_STAGES,
                                  MAX_WIDTH, NORMS, PRESETS, SHORTCUTS, STEMS, count_parameters)
from ui import arch_form as form
from ui.state import current_arch, set_arch, write_arch_to_url

STEM_LABELS = {
    "imagenet": "ImageNet: 7×7/2 conv + max-pool",
    "deep": "Deep (ResNet-C): three 3×3 convs + max-pool",
    "cifar": "CIFAR: one 3×3/1 conv, no max-pool",
}
BLOCK_LABELS = {
    "basic": "Basic: two 3×3 convs",
    "bottleneck": "Bottleneck: 1×1 → 3×3 → 1×1, expansion 4",
    "preact": "Pre-activation: norm → act → conv",
}
SHORTCUT_LABELS = {
    "A": "A: zero-padded identity (no parameters)",
    "B": "B: 1×1 projection when the shape changes",
    "C": "C: 1×1 projection in every block",
    "D": "D: avg-pool then 1×1 projection (ResNet-D)",
}
NORM_LABELS = {"batch": "BatchNorm", "group": "GroupNorm", "layer": "LayerNorm (GroupNorm, 1 group)",
               "instance": "InstanceNorm", "none": "None"}

st.title("Architecture")
form.init(current_arch())
k = form.key

top = st.columns([3, 1, 1], vertical_alignment="bottom")
top[0].selectbox("Start from a preset", list(PRESETS), index=None, key="arch_preset",
                 placeholder="Choose a preset…", on_change=form.apply_preset)
top[1].button("Reset to ResNet34", on_click=form.load, args=(BASELINE,), width="stretch")

controls, results = st.columns([3, 2], gap="large")
with controls:
    stem_tab, stage_tab, block_tab, layer_tab, head_tab = st.tabs(
        ["Stem", "Stages", "Blocks & shortcuts", "Activation, norm, attention", "Head & regularisation"])
    with stem_tab:
        st.selectbox("Stem", STEMS, key=k("stem"), format_func=STEM_LABELS.get)
        st.number_input("Stem width (channels out of the stem)", 1, MAX_WIDTH, key=k("stem_width"))
        st.radio("Input channels", (3, 1), key=k("in_channels"), horizontal=True,
                 format_func=lambda c: "3 (RGB)" if c == 3 else "1 (grayscale)")
        st.number_input("Classes", 1, 100_000, key=k("num_classes"))
    with stage_tab:
        n = st.number_input("Stages", 1, MAX_STAGES, key=form.STAGES_KEY)
        st.number_input("Width multiplier (applied to every stage width)", 0.0625, 4.0, step=0.25,
                        key=k("width_multiplier"))
        for i in range(n):
            form.ensure_stage(i)
            cols = st.columns(3, vertical_alignment="bottom")
            cols[0].number_input(f"Stage {i + 1} blocks", 1, MAX_BLOCKS_PER_STAGE,
                                 key=k("blocks", i))
            cols[1].number_input(f"Stage {i + 1} width", 1, MAX_WIDTH, key=k("widths", i))
            cols[2].checkbox("Depthwise-separable 3×3", key=k("depthwise", i))
    with block_tab:
        st.radio("Block", BLOCKS, key=k("block"), format_func=BLOCK_LABELS.get)
        st.radio("Shortcut", SHORTCUTS, key=k("shortcut"), format_func=SHORTCUT_LABELS.get)
    with layer_tab:
        act = st.selectbox("Activation", ACTIVATIONS, key=k("activation"))
        st.number_input("Negative slope (leaky ReLU; initial PReLU slope)", 0.0, 1.0, step=0.01,
                        key=k("leaky_slope"), disabled=act not in ("leaky_relu", "prelu"))
        norm = st.selectbox("Normalization", NORMS, key=k("norm"), format_func=NORM_LABELS.get)
        st.number_input("Groups (GroupNorm)", 1, MAX_WIDTH, key=k("norm_groups"),
                        disabled=norm != "group")
        st.number_input("Squeeze-excitation reduction (0 = off, 16 = SENet)", 0, 1024,
                        key=k("se_reduction"))
    with head_tab:
        st.number_input("Head hidden channels (0 = pool + fc; k = pool + 1×1 conv to k + fc)",
                        0, 16384, key=k("head_hidden"))
        st.slider("Dropout before the classifier", 0.0, 0.95, step=0.05, key=k("dropout"))
        st.slider("Stochastic depth rate (last block)", 0.0, 0.95, step=0.05, key=k("drop_path"))
        st.checkbox("Zero-init the last norm of each block", key=k("zero_init_last"))

cfg, problems = form.read()
with results:
    if problems:
        st.error("This combination cannot be built:\n\n" + "\n".join(f"- {p}" for p in problems))
        cfg = current_arch()
        st.caption(f"Other pages keep using the last valid architecture ({cfg.short_name()}).")
    else:
        set_arch(cfg)
        write_arch_to_url(cfg)
    params, base = count_parameters(cfg), count_parameters(BASELINE)
    st.metric("Trainable parameters", f"{params:,}",
              delta=f"{params - base:+,} vs ResNet34" if params != base else "same as ResNet34",
              delta_color="off")
    st.subheader("Differences from ResNet34")
    diff = cfg.describe_diff(BASELINE)
    st.markdown("\n".join(f"- {line}" for line in diff) if diff else "None: this is torchvision's resnet34.")

    st.subheader("Share and save")
    st.caption("The address bar holds this architecture: copy the link to share it.")
    st.download_button("Download JSON", cfg.to_json(), file_name="architecture.json",
                       mime="application/json", disabled=bool(problems))
    st.file_uploader("Load a JSON config", type=["json"], key="arch_upload", on_change=form.on_upload)
    with st.expander("…or paste JSON"):
        st.text_area("Config JSON", key="arch_paste", height=150)
        st.button("Load pasted JSON", on_click=form.on_paste)
    message = st.session_state.pop(form.IMPORT_MESSAGE_KEY, None)
    if message:
        kind, text = message
        (st.error if kind == "error" else st.success)(text)
