"""ResNet34 Explorer: `streamlit run app.py`. Pages live in app_pages/, logic in resnet_explorer/."""

import streamlit as st

from ui.sidebar import render_sidebar

st.set_page_config(page_title="ResNet34 Explorer", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/architecture.py", title="Architecture", icon=":material/tune:"),
    st.Page("app_pages/summary.py", title="Summary & FLOPs", icon=":material/table_chart:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/inference.py", title="Inference", icon=":material/image_search:"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
