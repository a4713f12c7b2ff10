"""Predictors shared by every session: one per model file, reloaded when the file changes;
and the training images shown beside the uploader."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from resnet_explorer.common.devices import resolve_device
from resnet_explorer.inference import Predictor
from resnet_explorer.inference import training_samples as _training_samples


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


@st.cache_data(max_entries=8, show_spinner=False)
def training_samples(dataset: str, channels: int, root: str) -> list:
    """A few training images of a built-in dataset, read once per process, not per rerun."""
    return _training_samples(dataset, channels, Path(root))
