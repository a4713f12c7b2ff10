"""One real browser (Debian's Chromium through Playwright) against a live `streamlit run app.py`.

The main flow a person follows: pick a preset, open a shared architecture link, change an
option, read the summary (and reload it), train the network on the built-in digits, classify a
good and a bad upload with the model that run produced, open the Models page, and find the run
on the Compare page (its row, and its point in the scatter). AppTest covers each page's
logic; this test covers what only a browser sees: routing, the URL across pages and reloads,
what Enter does in a box, websockets, the live fragment, real uploads and drawn charts.
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


def _sidebar(page):
    return page.get_by_test_id("stSidebarUserContent")


def test_main_flow_in_a_real_browser(server, page):
    from playwright.sync_api import expect

    # A preset: the sidebar shows the page's parameter count in the same run.
    page.goto(f"{server}/architecture")
    page.get_by_role("heading", name="Architecture", level=1).wait_for()
    page.get_by_test_id("stSelectbox").filter(has_text="Start from a preset").click()
    page.get_by_role("option", name="resnet34-d", exact=True).click()
    value = page.get_by_test_id("stMetric").filter(has_text="Trainable parameters") \
        .get_by_test_id("stMetricValue")
    expect(value).to_have_text("21,816,904")
    expect(_sidebar(page)).to_contain_text("21,816,904 parameters")

    # A shared link reopens its architecture.
    page.goto(f"{server}/architecture?{urlencode(TINY_ARCH.to_query())}")
    page.get_by_role("heading", name="Architecture", level=1).wait_for()
    tiny_params = _metric(page, "Trainable parameters")
    assert tiny_params != "21,797,672"

    # Changing an option updates the parameter count, the sidebar and the URL.
    page.get_by_role("tab", name="Activation, norm, attention").click()
    page.get_by_test_id("stSelectbox").filter(has_text="Activation").click()
    page.get_by_role("option", name="PReLU (learnable slope)", exact=True).click()
    expect(value).not_to_have_text(tiny_params)
    expect(page).to_have_url(re.compile(r"activation=prelu"))
    main = page.get_by_test_id("stMainBlockContainer")
    expect(main.get_by_text("activation: relu → prelu")).to_be_visible()
    expect(_sidebar(page)).to_contain_text("activation: relu → prelu")
    prelu_params = value.inner_text()
    expect(_sidebar(page)).to_contain_text(f"{prelu_params} parameters")

    # The summary shows the same network's multiply-adds, and a reload keeps the network.
    _go(page, "Summary & FLOPs")
    expect(page).to_have_url(re.compile(r"/summary\?.*activation=prelu"))
    macs = _metric(page, "MACs (multiply-adds)")
    assert re.search(r"\d", macs)
    page.reload()
    page.get_by_role("heading", name="Summary & FLOPs", level=1).wait_for()
    expect(_sidebar(page)).to_contain_text(f"{prelu_params} parameters")
    assert _metric(page, "MACs (multiply-adds)") == macs
    expect(page.get_by_test_id("stException")).to_have_count(0)

    # Train it for one epoch on the built-in digits and watch the run finish. Enter in a box
    # only commits the value: here it shows the validator's complaint and starts nothing.
    _go(page, "Train")
    expect(page.get_by_text("10 classes")).to_be_visible()
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill("1")
    epochs.press("Enter")
    expect(page.get_by_text("warmup_epochs (2.0) cannot exceed epochs (1)")).to_be_visible()
    expect(page.get_by_role("button", name="Start training")).to_be_disabled()
    expect(page.get_by_text("No runs yet")).to_be_visible()
    for label, value_text in (("Image size (px)", "16"), ("Warm-up epochs", "1")):
        field = page.get_by_label(label, exact=True)
        field.fill(value_text)
        field.press("Tab")  # commits the value
    expect(page.get_by_text("cannot exceed epochs")).to_have_count(0)
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

    # The Models page lists the run's model.
    _go(page, "Models")
    expect(page.get_by_role("tab", name="Import a model file")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    expect(page).to_have_url(re.compile(r"activation=prelu"))
    expect(page.get_by_test_id("stException")).to_have_count(0)

    # The Compare page has the run as its one row (its model is the run's, not a row of its
    # own) and the run as the one point of the accuracy-against-cost scatter.
    _go(page, "Compare")
    expect(page.get_by_text("1 of 1 row(s) shown")).to_be_visible()
    scatter = page.get_by_test_id("stPlotlyChart").last
    expect(scatter.locator(".scatterlayer .trace .points path")).to_have_count(1)
    hover = scatter.locator(".js-plotly-plot").evaluate("plot => plot.data[0].text[0]")
    assert "prelu" in hover and re.search(r"\d{8}-\d{6}-digits-[0-9a-f]{4}", hover)
    expect(page.get_by_test_id("stException")).to_have_count(0)
