"""Sweeps: queue an ablation sweep (modifications × seeds), follow it, read what it found."""

import streamlit as st

from ui import sweep_view as view
from ui.flash import show as show_message

st.title("Ablation sweeps")
st.caption("Each modification of a base architecture and recipe, trained over several seeds "
           "next to the unchanged baseline: mean ± std of the best validation accuracy and the "
           "difference to the baseline with a 95 % confidence interval (Welch's t-test).")
show_message()

st.subheader("New sweep")
view.new_sweep()

st.subheader("Sweeps")
view.sweeps_section()
