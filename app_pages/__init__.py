"""Page scripts, run by app.py's st.navigation from their paths (never imported). This file
only makes the folder a package, so import-linter can check what the pages import."""
