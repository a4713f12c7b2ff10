"""Train: pick data and hyper-parameters (or load a train.json), queue a run, watch it learn,
try the model, download what it made."""

import streamlit as st

from resnet_explorer.training import QUICK
from ui import train_form as form
from ui.access import write_button
from ui.flash import show as show_message
from ui.runs_view import runs_section

st.title("Train")
show_message()

st.subheader("Architecture")
arch = form.network()
st.caption(f"{arch.in_channels} input channel(s); the output layer is sized to the dataset's "
           "classes when training starts.")

st.subheader("Data")
dataset, data_path = form.data_source()
form.preview(dataset, data_path, arch.in_channels)

st.subheader("Hyper-parameters")
st.caption(f"Pre-filled with the quick recipe: full-width ResNet34 at {QUICK.image_size} px "
           f"reaches ≥ 97 % on digits within {QUICK.epochs} epochs, with images large enough "
           "for Grad-CAM to show where it looks; a few minutes on a laptop CPU, seconds on a "
           "GPU.")
form.load_recipe()
cfg, problems, nproc = form.recipe(dataset, data_path)
form.feature_map_note(arch, cfg.image_size)
if problems:
    st.error("Fix these settings to start a run:\n\n" + "\n".join(f"- {p}" for p in problems))
if write_button("Start training", type="primary", key=form.START_KEY, disabled=bool(problems)):
    form.start(arch, cfg, nproc)

st.subheader("Runs")
runs_section()
