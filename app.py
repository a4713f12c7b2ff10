"""ResNet34 Explorer: `streamlit run app.py`. Pages live in app_pages/, logic in resnet_explorer/."""

import streamlit as st

from ui.nav import PAGES
from ui.shell import run_page

# An emoji icon: Streamlit draws it in the page, while a :material/…: icon makes every
# visitor's browser fetch it from fonts.gstatic.com (a console error on an offline server).
st.set_page_config(page_title="ResNet34 Explorer", page_icon="🧠", layout="wide")
page = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=i == 0)
                      for i, p in enumerate(PAGES)])
run_page(page)
