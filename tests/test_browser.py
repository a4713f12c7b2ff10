"""One real browser (Debian's Chromium through Playwright) against a live `streamlit run app.py`.

The main flow a person follows: open a shared architecture link, change an option, read the
summary, train the network on the built-in digits, and classify a good and a bad upload with
the model that run produced. AppTest covers each page's logic; this test covers what only a
browser sees: routing, the URL, websockets, the live fragment and real file uploads.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from tests.train_helpers import TINY_ARCH

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(420),
    # CI installs Chromium, so there a missing browser is a failure, not a skip.
    pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                       reason="Debian's chromium is not installed (apt install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("explorer-home")
    port = _free_port()
    env = {**os.environ, "RESNET_EXPLORER_HOME": str(home), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{proc.stdout.read().decode()}")
            time.sleep(0.5)
        yield url
    finally:
        # The whole group: the server and any trainer it started.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(30_000)
        yield tab
        browser.close()


def _digit_png() -> bytes:
    digits = load_digits()
    image = Image.fromarray((digits.images[-1] * 255 / 16).astype(np.uint8)).resize((64, 64))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _metric(page, label: str) -> str:
    box = page.get_by_test_id("stMetric").filter(has_text=label)
    return box.get_by_test_id("stMetricValue").inner_text()


def _go(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, level=1).wait_for()


def test_main_flow_in_a_real_browser(server, page):
    from playwright.sync_api import expect

    # A shared link reopens its architecture.
    page.goto(f"{server}/architecture?{urlencode(TINY_ARCH.to_query())}")
    page.get_by_role("heading", name="Architecture", level=1).wait_for()
    tiny_params = _metric(page, "Trainable parameters")
    assert tiny_params != "21,797,672"

    # Changing an option updates the parameter count and the URL.
    page.get_by_role("tab", name="Activation, norm, attention").click()
    page.get_by_test_id("stSelectbox").filter(has_text="Activation").click()
    page.get_by_role("option", name="prelu", exact=True).click()
    expect(page.get_by_test_id("stMetric").filter(has_text="Trainable parameters")
           .get_by_test_id("stMetricValue")).not_to_have_text(tiny_params)
    expect(page).to_have_url(re.compile(r"activation=prelu"))
    expect(page.get_by_text("activation: relu → prelu")).to_be_visible()

    # The summary shows the same network's multiply-adds.
    _go(page, "Summary & FLOPs")
    assert _metric(page, "Parameters").strip()
    assert re.search(r"\d", _metric(page, "MACs (multiply-adds)"))
    expect(page.get_by_test_id("stException")).to_have_count(0)

    # Train it for one epoch on the built-in digits and watch the run finish.
    _go(page, "Train")
    expect(page.get_by_text("10 classes")).to_be_visible()
    for label, value in (("Image size (px)", "16"), ("Epochs", "1")):
        field = page.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Tab")  # commits the value without submitting the form
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Started run")).to_be_visible()
    expect(page.get_by_text(re.compile(r"completed\*?\*? —|✅ completed"))).to_be_visible(
        timeout=240_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)

    # The run's model classifies a real digit; a renamed non-image gets its own message.
    page.get_by_role("button", name="Try it on the Inference page").click()
    page.get_by_role("heading", name="Inference", level=1).wait_for()
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files([
        {"name": "digit.png", "mimeType": "image/png", "buffer": _digit_png()},
        {"name": "notes.png", "mimeType": "image/png", "buffer": b"%PDF-1.4 not a picture"},
    ])
    expect(page.get_by_text("1 of 2 image(s) classified")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stAlert").filter(has_text="notes.png")).to_be_visible()
    expect(page.get_by_text(re.compile(r"digit\.png: \d"))).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
