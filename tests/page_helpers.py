"""What the AppTest page tests share: opening a page script and reading its text elements."""

from streamlit.testing.v1 import AppTest

from resnet_explorer.arch import ArchConfig

TIMEOUT = 90  # a first run imports torch and builds models on a slow shared machine


def open_page_at(path: str, arch: ArchConfig | None = None) -> AppTest:
    """Run a page script once (path relative to tests/) and check it raised nothing; `arch`
    is what the Architecture page would have stored for the session."""
    at = AppTest.from_file(path, default_timeout=TIMEOUT)
    if arch is not None:
        at.session_state["arch"] = arch
    at.run()
    assert not at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)
