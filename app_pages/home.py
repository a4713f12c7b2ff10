"""Home: what the tool does and where to start."""

import streamlit as st

from ui import nav

st.title("ResNet34 Explorer")
st.markdown(
    """
Reproduce **ResNet34** exactly as torchvision defines it, change its architecture one option at
a time, and see at once what that does to its layers, parameters and FLOPs. Train a variant for
a few minutes, compare runs, and classify your own images.

**Where to start**

1. **Architecture**: pick a preset or switch options (stem, blocks, shortcuts, depth and width,
   depthwise-separable convolutions, activation, normalization, squeeze-excitation, dropout …).
   The parameter count and the differences from ResNet34 update on every click, and the URL
   holds the architecture so a copied link reopens it.
2. **Summary & FLOPs**: the chosen network layer by layer (shapes, parameters, multiply-adds,
   memory), per-stage charts, a diagram, and a side-by-side diff against ResNet34 or any preset.
3. **Train**: train it for a few minutes on the built-in digits (or CIFAR, MNIST, your own
   folder or zip) on the GPU or CPU, with live curves; runs keep going if you close the tab.
4. **Inference**: drop in photos or use the camera; see the top-k classes and where the model
   looked (Grad-CAM), with your trained models or torchvision's ImageNet weights.
5. **Models**: the model store: import a model file, download torchvision's ImageNet weights
   or transfer them into your architecture, rename and delete models.

Everything works offline: the built-in dataset is scikit-learn's 1,797 handwritten digits.
"""
)
for entry in nav.PAGES:
    if entry.path != nav.HOME:
        nav.link(entry.path)
