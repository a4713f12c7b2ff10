"""Compare: every run and stored model side by side: what differs, what it reached, its cost."""

import streamlit as st

from ui import compare_view as view
from ui.flash import show as show_message

st.title("Compare")
show_message()
table = view.load_table()
if not table.rows:
    view.empty_store()
else:
    st.caption("One row per run, and per stored model with metrics that no listed run made: "
               "the architecture's differences from ResNet34, what it reached and what it costs "
               "(parameters and multiply-adds at its input size; latency once measured).")
    rows = view.filters(table)
    selected = view.table_section(table, rows)
    view.actions(table, rows, selected)
    st.subheader("Curves")
    view.curves(selected)
    st.subheader("Accuracy against cost")
    view.scatter(rows)
