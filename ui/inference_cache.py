"""Predictors shared by every session: one per model file, reloaded when the file changes."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from resnet_explorer.common.devices import resolve_device
from resnet_explorer.inference import Predictor


# The fingerprint (sha256, size, mtime of the file in use) is part of the key, so a model
# replaced on disk under the same name loads afresh; max_entries bounds memory (a ResNet34
# is ~90 MB). Predictors are immutable, so sharing them between sessions is safe. Errors
# (a damaged file: ModelError) are not cached, so a repaired file loads on the next try.
@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def stored_predictor(name: str, fingerprint: str, folder: str) -> Predictor:
    return Predictor.from_store(name, weights_dir=Path(folder), device=resolve_device("auto"))


@st.cache_resource(max_entries=2, show_spinner="Loading the ImageNet weights…")
def imagenet_predictor(fingerprint: str, folder: str) -> Predictor:
    return Predictor.imagenet(weights_dir=Path(folder), download=False,
                              device=resolve_device("auto"))
