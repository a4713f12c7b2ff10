"""Streamlit-only glue shared by the pages (session state, cached calls). The package stays UI-free."""
