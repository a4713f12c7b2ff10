"""One real browser (Debian's Chromium through Playwright) against a live `streamlit run app.py`.

The main flow a person follows: pick a preset, open a shared architecture link, change an
option, read the summary (and reload it), train the network on the built-in digits, classify a
good and a bad upload with the model that run produced, open the Models page, and find the run
on the Compare page (its row, and its point in the scatter). Then every page once more, each
drawn without an error and photographed (into docs/screenshots/ for the README when
RESNET_EXPLORER_SCREENSHOTS=docs/screenshots is set; else into a temporary folder, so a test
run leaves the checkout as it was).
AppTest covers each page's logic; this test covers what only a browser sees: routing, the URL
across pages and reloads, what Enter does in a box, websockets, the live fragment, real
uploads, drawn charts and tables, and that no request leaves this machine (the dashboard
works offline: an icon or font fetched from the internet fails there).
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlencode, urlparse

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from tests.browser_helpers import CHROMIUM, FLAGS, REPO, live_server, needs_chromium
from tests.train_helpers import TINY_ARCH
from ui.nav import HOME, PAGES, SUMMARY, SWEEPS

SCREENSHOTS_ENV = "RESNET_EXPLORER_SCREENSHOTS"
VIEWPORT = {"width": 1400, "height": 1000}

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420), needs_chromium]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("explorer-home")) as url:
        yield url


@pytest.fixture(scope="module")
def outside() -> list[str]:
    """Every address the browser asked for on a host other than this machine."""
    return []


def _leaves_the_machine(url: str) -> bool:
    parts = urlparse(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return False  # data:, blob:, about: load nothing from anywhere
    host = parts.hostname or ""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


@pytest.fixture(scope="module")
def page(server, outside):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        context = browser.new_context(viewport=VIEWPORT)
        context.on("request", lambda request: outside.append(request.url)
                   if _leaves_the_machine(request.url) else None)
        tab = context.new_page()
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


def test_main_flow_in_a_real_browser(server, page, outside):
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

    # Train it for one epoch on the built-in digits and watch the run finish. The automatic
    # warm-up follows the epochs. Enter in a box only commits the value: a typed warm-up
    # longer than the run shows the validator's complaint and starts nothing.
    _go(page, "Train")
    expect(page.get_by_text("10 classes")).to_be_visible()
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill("1")
    epochs.press("Enter")
    warmup = page.get_by_label("Warm-up epochs", exact=True)
    expect(warmup).to_have_attribute("placeholder", "auto: 0.25")
    warmup.fill("2")
    warmup.press("Enter")
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
    assert not outside, f"requests that left this machine: {outside}"


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = os.environ.get(SCREENSHOTS_ENV)
    return REPO / folder if folder else tmp_path_factory.mktemp("screenshots")


def _photo(target, folder: Path, name: str) -> None:
    """A small JPEG of the window (or of one element) for the README."""
    folder.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=folder / f"{name}.jpg", type="jpeg", quality=60)


def _settled(page) -> None:
    """Wait until the page's script run has finished, and its charts and tables are drawn."""
    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(
        timeout=60_000)
    page.wait_for_timeout(1_000)


def _visible(page, test_id: str):
    """The first element with this test id in the open tab (other tabs' elements are hidden)."""
    return page.locator(f"[data-testid={test_id}]:visible").first


def test_every_page_in_a_real_browser_offline_and_photographed(server, page, outside,
                                                                screenshots):
    """After the main flow (a run and its model exist), each page as a newcomer sees it."""
    from playwright.sync_api import expect

    headings = {HOME: "ResNet34 Explorer", SWEEPS: "Ablation sweeps"}  # the others: their title
    page.goto(server)
    for entry in PAGES:
        name = entry.path.removeprefix("app_pages/").removesuffix(".py")
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=entry.title).click()
        heading = headings.get(entry.path, entry.title)
        page.get_by_role("heading", name=heading, level=1, exact=True).wait_for()
        _settled(page)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        _photo(page, screenshots, name)
        if entry.path == SUMMARY:
            # The layer table's default columns all in view: nothing to scroll sideways.
            table = _visible(page, "stDataFrame")
            table.scroll_into_view_if_needed()
            scroller = table.locator(".dvn-scroller")
            width, room = scroller.evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert width <= room, f"the layer table is {width} px wide in {room} px"
            _photo(page, screenshots, "summary-layers")
            for tab in ("Charts", "Diagram"):
                page.get_by_role("tab", name=tab).click()
                chart = _visible(page, "stPlotlyChart")
                chart.scroll_into_view_if_needed()
                chart.locator(".main-svg").first.wait_for()
                _settled(page)
                _photo(chart, screenshots, f"summary-{tab.lower()}")
    assert not outside, f"requests that left this machine: {outside}"
