"""Home: what the tool does and where to start."""

import streamlit as st

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
2. Then use the other pages in the menu with the architecture you chose.

Everything works offline: the built-in dataset is scikit-learn's 1,797 handwritten digits.
"""
)
st.page_link("pages/architecture.py", label="Open the Architecture page", icon=":material/tune:")
