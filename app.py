"""ResNet34 Explorer: `streamlit run app.py`. Pages live in pages/, logic in resnet_explorer/."""

import streamlit as st

from ui.sidebar import render_sidebar

st.set_page_config(page_title="ResNet34 Explorer", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/architecture.py", title="Architecture", icon=":material/tune:"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
