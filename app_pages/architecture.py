"""Architecture: every option of ArchConfig as a widget, validated live."""

from functools import partial

import streamlit as st

from resnet_explorer.arch import BASELINE, PRESETS, SIZED_BY_DATA, count_parameters
from resnet_explorer.common import CONFIG_UPLOAD
from resnet_explorer.inference import export_onnx
from ui import arch_form as form
from ui.flash import show as show_message
from ui.state import current_arch, set_arch

st.title("Architecture")
form.init(current_arch())
form.sync_preset()

top = st.columns([3, 1, 1], vertical_alignment="bottom")
top[0].selectbox("Start from a preset", list(PRESETS), index=None, key=form.PRESET_KEY,
                 placeholder="Choose a preset…", on_change=form.apply_preset)
top[1].button("Reset to ResNet34", on_click=form.load, args=(BASELINE,), width="stretch")

controls, results = st.columns([3, 2], gap="large")
with controls:
    stem_tab, stage_tab, block_tab, layer_tab, head_tab = st.tabs(
        ["Stem", "Stages", "Blocks & shortcuts", "Activation, norm, attention", "Head & regularisation"])
    with stem_tab:
        form.widget("stem")
        form.widget("stem_width")
        form.widget("in_channels", kind="radio", horizontal=True)
        form.widget("num_classes")
    with stage_tab:
        n = form.stages_widget()
        form.widget("width_multiplier")
        for i in range(n):
            form.stage_widgets(i)
    with block_tab:
        form.widget("block", kind="radio")
        form.widget("shortcut", kind="radio")
    with layer_tab:
        for field in ("activation", "leaky_slope", "norm", "norm_groups", "se_reduction"):
            form.widget(field)
    with head_tab:
        form.widget("head_hidden")
        form.widget("dropout", kind="slider")
        form.widget("drop_path", kind="slider")
        form.widget("zero_init_last")

cfg, problems = form.read()
with results:
    if problems:
        st.error("This combination cannot be built:\n\n" + "\n".join(f"- {p}" for p in problems))
        cfg = current_arch()
        st.caption(f"Other pages keep using the last valid architecture ({cfg.short_name()}).")
    else:
        set_arch(cfg)  # the shell puts it in the sidebar and the URL after this page
    params, base = count_parameters(cfg), count_parameters(BASELINE)
    st.metric("Trainable parameters", f"{params:,}",
              delta=f"{params - base:+,} vs ResNet34" if params != base else "same as ResNet34",
              delta_color="off", delta_arrow="auto" if params != base else "off")
    st.subheader("Differences from ResNet34")
    diff = cfg.describe_diff(BASELINE, ignore=SIZED_BY_DATA)  # the class count is no design change
    st.markdown("\n".join(f"- {line}" for line in diff) if diff else "None: this is torchvision's resnet34.")
    if cfg.num_classes != BASELINE.num_classes:
        st.caption(f"Output layer: {cfg.num_classes} classes (training sizes it to the dataset).")

    st.subheader("Share and save")
    st.caption("The address bar holds this architecture: copy the link to share it.")
    buttons = st.columns(2)
    # A callable is exported only when the button is clicked (Streamlit runs it then, off the
    # script thread), never on a rerun; on_click="ignore": the click does not rerun the page.
    # Data given as bytes would become a media file per rerun, which the browser fetches to
    # check and a later rerun deletes: toggling fast, that check (or a click) meets a 404.
    buttons[0].download_button("Download JSON", cfg.to_json, file_name="architecture.json",
                               mime="application/json", disabled=bool(problems),
                               on_click="ignore")
    buttons[1].download_button(
        "Download ONNX (untrained)", partial(export_onnx, cfg),
        file_name="architecture-untrained.onnx", mime="application/octet-stream",
        disabled=bool(problems), on_click="ignore",
        help="Random weights. The graph takes the preprocessed 224×224 tensor; its metadata "
             "holds the ImageNet mean and std, the class names and this architecture.")
    st.file_uploader("Load a JSON config", type=["json"], key=form.UPLOAD_KEY,
                     on_change=form.on_upload, max_upload_size=CONFIG_UPLOAD.megabytes)
    with st.expander("…or paste JSON"):
        st.text_area("Config JSON", key=form.PASTE_KEY, height=150)
        st.button("Load pasted JSON", on_click=form.on_paste)
    show_message()
