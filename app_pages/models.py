"""Models: the store (weights/) with sizes, accuracy and disk used, model cards and downloads,
imports, torchvision's ImageNet weights, rename and delete."""

import streamlit as st

from resnet_explorer.common import runs_dir, weights_dir
from resnet_explorer.models import disk_used, list_models
from ui import models_view as view
from ui.flash import show as show_message

st.title("Models")
show_message()
folder = weights_dir()  # per run: $RESNET_EXPLORER_HOME may differ between tests
models = list_models(folder)
st.caption(disk_used(folder, runs_dir()))
models = view.store_table(models)
view.model_section(models, folder)

imp, imagenet, manage = st.tabs(["Import a model file", "ImageNet weights", "Rename or delete"])
with imp:
    view.import_section(folder)
with imagenet:
    view.imagenet_section(folder)
with manage:
    view.manage_section(models, folder)
