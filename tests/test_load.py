"""Load: ten browser sessions at once against one live server for about a minute.

One Chromium, ten contexts (each a separate Streamlit session, as ten people in an audience
would be), each opened on its own architecture through the URL. Every session loops: toggle
an option on the Architecture page, read the Summary page, classify uploads on the Inference
page with one stored model. The sessions share the server's caches (analysis, the meta-device
builds, the predictor), which is where one session's numbers could leak into another's.

Checked: no exception box and no console error in any page; every parameter count a session
is shown is that of its own architecture, counted here independently; the stored model and
its predictions are the same at the start and the end. Reported: p50/p95 of the time from a
toggle to the updated parameter count (printed, recorded as properties, and written to
load.json in the test's tmp dir).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from resnet_explorer.analysis import si
from resnet_explorer.arch import PRESETS, ArchConfig, build_model
from resnet_explorer.common import spec_of
from resnet_explorer.common.access import CLASSIFY_PER_MINUTE
from resnet_explorer.inference import Predictor
from resnet_explorer.models import save_model
from tests.browser_helpers import CHROMIUM, FLAGS, live_server, needs_chromium
from tests.inference_helpers import TINY, encode, sidecar_for
from tests.train_helpers import TINY_ARCH

pytestmark = [pytest.mark.load, pytest.mark.timeout(420), needs_chromium]

SESSIONS = 10
# From the moment all ten sessions have their page open. Each session then goes round its
# cycle of steps (below) until this is over, at least once, finishing the step under way.
LOAD_SECONDS = 60
# One page update under the full load on two shared cores. Playwright's expect() waits 5 s
# unless told otherwise (the context's default timeout is for actions only), so every
# assertion passes it.
STEP_TIMEOUT_MS = 45_000
MODEL = "loadtiny"
# Per visit to the Inference page: the reference image and one other. Visits are spaced so
# that a session stays at two thirds of what demo mode allows a visitor in a minute, however
# fast the machine: this test is about sessions at once, not about one over its limit.
IMAGES_PER_VISIT = 2
VISIT_EVERY_S = 60 * IMAGES_PER_VISIT / (CLASSIFY_PER_MINUTE * 2 / 3)
TOP1 = re.compile(r"^(?P<name>\S+): (?P<label>\S+) \((?P<prob>[\d.]+)%\)$")

# Ten architectures, one per session: the presets and two small custom ones.
BASES: list[tuple[str, ArchConfig]] = [
    *PRESETS.items(),
    ("small-gelu-groupnorm", ArchConfig(blocks=(1, 1, 1), widths=(32, 64, 128),
                                        depthwise=(False, False, False),
                                        activation="gelu", norm="group", norm_groups=8,
                                        num_classes=10)),
    ("tiny-grayscale", TINY_ARCH),
]
ARCH_TITLE, SUMMARY_TITLE, INFERENCE_TITLE = "Architecture", "Summary & FLOPs", "Inference"
ACTIVATION_TAB, STEM_TAB = "Activation, norm, attention", "Stem"


def independent_count(cfg: ArchConfig) -> int:
    """Trainable parameters of a private meta-device build: not the shared, cached meta
    model the server counts with, so a cache that mixed configs up would disagree."""
    model = build_model(cfg, device="meta")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----- the plan: what each session does, and what it must be shown -----------------------
# Each session flips two options of the Architecture page, each between its base value and
# one other: the activation (PReLU adds a learnable slope per activation) and the class count
# (to a number only this session uses). (tab, field) of each.
FLIPS = ((ACTIVATION_TAB, "activation"), (STEM_TAB, "num_classes"))


@dataclass(frozen=True)
class Plan:
    name: str
    base: ArchConfig
    others: dict[str, object]  # field → the value it flips to from the base's
    counts: dict[ArchConfig, int]  # every architecture the flips reach, counted here

    def flipped(self, cfg: ArchConfig, field_: str) -> ArchConfig:
        base_value = getattr(self.base, field_)
        value = self.others[field_] if getattr(cfg, field_) == base_value else base_value
        return replace(cfg, **{field_: value})


def make_plan(i: int, name: str, base: ArchConfig) -> Plan:
    others = {"activation": "prelu" if base.activation != "prelu" else "relu",
              "num_classes": base.num_classes + 1 + i}
    reachable = {replace(base, activation=act, num_classes=classes)
                 for act in (base.activation, others["activation"])
                 for classes in (base.num_classes, others["num_classes"])}
    return Plan(name, base, others, {cfg: independent_count(cfg) for cfg in reachable})


def check_plans(plans: list[Plan]) -> None:
    """Cross-talk must be visible: no count one session can be shown is another's, and every
    flip changes the count (the latency is measured until the number changes)."""
    owners: dict[int, str] = {}
    for plan in plans:
        for cfg, n in plan.counts.items():
            assert owners.setdefault(n, plan.name) == plan.name, \
                f"{n:,} parameters in both {owners[n]} and {plan.name}: cross-talk would hide"
            for _, field_ in FLIPS:
                assert plan.counts[plan.flipped(cfg, field_)] != n, \
                    f"{plan.name}: flipping {field_} keeps {n:,} parameters"
    # The independent count agrees with torchvision where torchvision has the network.
    for name, ctor in (("resnet34", torchvision.models.resnet34),
                       ("resnet18", torchvision.models.resnet18)):
        reference = sum(p.numel() for p in ctor(weights=None).parameters())
        assert independent_count(PRESETS[name]) == reference, name


# ----- images and what the stored model must say about them --------------------------------
@dataclass(frozen=True)
class Expected:
    label: str
    prob: float  # percent, as the page shows it


def make_images(predictor: Predictor, count: int) -> dict[str, tuple[bytes, Expected]]:
    """Small noise images whose top-1 is clear (a margin over the runner-up, so ONNX Runtime
    on the server and PyTorch here cannot disagree on it), with the expected top-1."""
    rng = np.random.default_rng(0)
    chosen: dict[str, tuple[bytes, Expected]] = {}
    for _ in range(500):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        data = encode(Image.fromarray(pixels))
        [result] = predictor.classify([("x.png", data)], k=2)
        probs = result.topk.probs
        if probs[0] - probs[1] > 0.03:
            chosen[f"img{len(chosen)}.png"] = (data, Expected(result.topk.best, 100 * probs[0]))
            if len(chosen) == count:
                return chosen
    raise AssertionError("the random model has no clear top-1 on noise images; change the seed")


# ----- one session -------------------------------------------------------------------------
@dataclass
class SessionLog:
    plan: Plan
    latencies_ms: list[float] = field(default_factory=list)
    summaries: int = 0
    classified: int = 0
    reference_shown: list[str] = field(default_factory=list)  # captions of the reference image
    problems: list[str] = field(default_factory=list)  # wrong numbers, exception boxes, …
    console_errors: list[str] = field(default_factory=list)
    loaded: float = 0.0  # time.monotonic() when all sessions had opened their page
    ended: float = 0.0


# The value of the metric labelled `label` once it differs from `old`, or "exception box" as
# soon as the page shows one (false until either).
_CHANGED_METRIC = """([label, old]) => {
  if (document.querySelector('[data-testid="stException"]')) return "exception box";
  for (const box of document.querySelectorAll('[data-testid="stMetric"]')) {
    const name = box.querySelector('[data-testid="stMetricLabel"]');
    const value = box.querySelector('[data-testid="stMetricValue"]');
    if (name && value && name.innerText.trim() === label) {
      const text = value.innerText.trim();
      return text !== old && text;
    }
  }
  return false;
}"""

# Once every picture of the page has finished loading: the sources of those that failed.
_IMAGES_LOADED = """() => {
  const images = [...document.querySelectorAll('[data-testid="stMainBlockContainer"] img')];
  if (!images.every(img => img.complete)) return false;
  return {broken: images.filter(img => img.naturalWidth === 0).map(img => img.src)};
}"""


class PageBroke(AssertionError):
    """The page shows an exception box: this session stops here."""


class Session:
    """One browser context: one person's Streamlit session, and what its pages must show."""

    def __init__(self, page, url: str, plan: Plan, images: dict[str, tuple[bytes, Expected]],
                 log: SessionLog):
        self.page, self.url, self.plan, self.images, self.log = page, url, plan, images, log
        self.cfg = plan.base  # the architecture this session chose last
        self.visits = 0
        self.next_upload = 0.0  # time.monotonic() from which the next upload keeps the pace

    @property
    def params(self) -> int:
        return self.plan.counts[self.cfg]

    def metric(self, label: str):
        name = self.page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
        return self.page.get_by_test_id("stMetric").filter(has=name) \
            .get_by_test_id("stMetricValue")

    async def settle(self, locator, where: str) -> None:
        """Wait until `locator` shows, or an exception box does (PageBroke)."""
        boxes = self.page.get_by_test_id("stException")
        await locator.or_(boxes).first.wait_for()
        await self.no_exception(where)

    async def no_exception(self, where: str) -> None:
        boxes = self.page.get_by_test_id("stException")
        if await boxes.count():
            raise PageBroke(f"{where}: exception box: {await boxes.first.inner_text()}")

    async def sidebar_agrees(self, where: str) -> None:
        """No exception box, and the sidebar names this session's parameter count."""
        from playwright.async_api import expect

        await self.no_exception(where)
        await expect(self.page.get_by_test_id("stSidebarUserContent")) \
            .to_contain_text(f"{self.params:,} parameters", timeout=STEP_TIMEOUT_MS)

    async def go(self, title: str) -> None:
        self.visits += 1
        await self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
        await self.page.get_by_role("heading", name=title, level=1).wait_for()

    async def architecture_shown(self, where: str) -> None:
        """The Architecture page shows this session's count (waiting for it to draw)."""
        from playwright.async_api import expect

        value = self.metric("Trainable parameters")
        await self.settle(value, where)
        await expect(value).to_have_text(f"{self.params:,}", timeout=STEP_TIMEOUT_MS)
        await self.sidebar_agrees(where)

    async def open(self) -> None:
        await self.page.goto(f"{self.url}/architecture?{urlencode(self.plan.base.to_query())}")
        await self.page.get_by_role("heading", name=ARCH_TITLE, level=1).wait_for()
        await self.architecture_shown("opened")

    async def toggle(self, tab: str, field_: str) -> None:
        """Flip one option; time it until the count changes, then check the new count."""
        page, old = self.page, f"{self.params:,}"
        cfg = self.plan.flipped(self.cfg, field_)
        value, spec = getattr(cfg, field_), spec_of(ArchConfig, field_)
        where = f"after {field_}={value}"
        await page.get_by_role("tab", name=tab).click()
        if spec.choices is not None:  # a select box
            await page.get_by_role("combobox", name=spec.label, exact=True).click()
            option = page.get_by_role("option", name=spec.choice_label(value), exact=True)
            start = time.perf_counter()
            await option.click()
        else:  # a number box
            number = page.get_by_label(spec.label, exact=True)
            await number.fill(str(value))
            start = time.perf_counter()
            await number.press("Tab")  # commits the value: the page reruns
        handle = await page.wait_for_function(_CHANGED_METRIC, arg=["Trainable parameters", old],
                                              polling=25, timeout=STEP_TIMEOUT_MS)
        shown = await handle.json_value()
        self.log.latencies_ms.append(1000 * (time.perf_counter() - start))
        self.cfg = cfg
        await self.no_exception(where)
        # The first new number must already be this session's: a transient foreign count
        # is cross-talk too.
        if shown != f"{self.params:,}":
            self.log.problems.append(f"{where}: shown {shown}, expected {self.params:,} "
                                     f"({cfg.to_query()}); url {page.url}")
        await self.sidebar_agrees(where)

    async def summary(self) -> None:
        from playwright.async_api import expect

        await self.go(SUMMARY_TITLE)
        value = self.metric("Parameters")
        await self.settle(value, "Summary")
        await expect(value).to_have_text(si(self.params), timeout=STEP_TIMEOUT_MS)
        await self.sidebar_agrees("Summary")
        self.log.summaries += 1
        await self.back()

    async def classify(self) -> None:
        from playwright.async_api import expect

        page = self.page
        await self.go(INFERENCE_TITLE)
        picker = page.get_by_role("combobox", name="Model", exact=True)
        await self.settle(picker, "Inference")
        chosen = re.compile(rf"^{MODEL} — ")
        if not chosen.match(await picker.input_value()):  # a fresh session may start on it
            await picker.click()
            await page.get_by_role("option", name=chosen).click()
            await expect(picker).to_have_value(chosen, timeout=STEP_TIMEOUT_MS)
        names = list(self.images)
        # The reference image in every visit; the others in turn.
        picked = [names[0], names[1 + self.visits % (len(names) - 1)]][:IMAGES_PER_VISIT]
        await asyncio.sleep(self.next_upload - time.monotonic())  # at once if negative
        self.next_upload = time.monotonic() + VISIT_EVERY_S
        await page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files([
            {"name": n, "mimeType": "image/png", "buffer": self.images[n][0]} for n in picked])
        n = len(picked)
        await self.settle(page.get_by_text(f"{n} of {n} image(s) classified"), "Inference")
        for name in picked:
            caption = (await page.get_by_text(re.compile(rf"^{re.escape(name)}: "))
                       .first.inner_text()).strip()
            want = self.images[name][1]
            got = TOP1.match(caption)
            if (got is None or got["label"] != want.label
                    or abs(float(got["prob"]) - want.prob) > 0.11):
                self.log.problems.append(f"{name}: shown {caption!r}, expected "
                                         f"{want.label} ({want.prob:.1f}%)")
            if name == names[0]:
                self.log.reference_shown.append(caption)
        self.log.classified += n
        # The pictures load (a person looks at them before moving on). Streamlit drops a
        # session's media files when its next run starts, so leaving at once races the
        # browser's fetch of them into a 404 that says nothing about the app.
        loaded = await page.wait_for_function(_IMAGES_LOADED, polling=50,
                                              timeout=STEP_TIMEOUT_MS)
        if broken := (await loaded.json_value())["broken"]:
            self.log.problems.append(f"Inference: images that did not load: {broken}")
        await self.sidebar_agrees("Inference")
        await self.back()

    async def back(self) -> None:
        """To the Architecture page, which must reopen this session's architecture."""
        await self.go(ARCH_TITLE)
        await self.architecture_shown("back on the Architecture page")


# Opened on a page's path (/architecture?…), Streamlit's frontend first asks for its server
# endpoints under that path and then under the root: the first two answers are 404s that say
# nothing about the app.
_PATH_PROBE = re.compile(r"/[^/?]+/_stcore/(host-config|health)$")


def _is_app_error(message) -> bool:
    return message.type == "error" and not (
        "404" in message.text and _PATH_PROBE.search(message.location.get("url", "")))


async def run_session(browser, url: str, plan: Plan, images, opened: asyncio.Barrier,
                      shots: Path, index: int) -> SessionLog:
    log = SessionLog(plan)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = await context.new_page()
    page.on("console", lambda m: _is_app_error(m) and log.console_errors.append(
        f"{m.text} ({m.location.get('url')})"))
    page.on("pageerror", lambda e: log.console_errors.append(f"page error: {e}"))
    session = Session(page, url, plan, images, log)
    waiting = True
    try:
        await session.open()
        waiting = False
        # The load starts when every session has its page: opening ten under load can take
        # a good part of a minute on two cores, and that is not the load this test is about.
        await opened.wait()
        log.loaded = time.monotonic()
        deadline = log.loaded + LOAD_SECONDS
        # Two toggles, the Summary page, two toggles, the Inference page; again until the
        # deadline, and at least once whole. Each session starts at another point of the
        # cycle, so at any moment some sessions toggle while others analyse or classify.
        actions = [*(partial(session.toggle, *flip) for flip in FLIPS), session.summary,
                   *(partial(session.toggle, *flip) for flip in FLIPS), session.classify]
        for step in itertools.count():
            if step >= len(actions) and time.monotonic() >= deadline:
                break
            await actions[(index + step) % len(actions)]()
    except Exception as exc:  # this session stops; the others go on, and the test fails
        # Playwright's message ends with its call log: what it waited for, and what it saw.
        log.problems.append(f"stopped: {type(exc).__name__}: {str(exc)[:1500]}")
        if waiting:  # the others must not wait for this one
            await opened.wait()
        with contextlib.suppress(Exception):  # a picture of the failure, if the page still draws
            await page.screenshot(path=shots / f"session-{index}-{plan.name}.png",
                                  full_page=True)
    finally:
        log.ended = time.monotonic()
        await context.close()
    return log


async def run_load(url: str, plans: list[Plan], images, shots: Path) -> list[SessionLog]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            opened = asyncio.Barrier(len(plans))
            return list(await asyncio.gather(*(
                run_session(browser, url, plan, images, opened, shots, i)
                for i, plan in enumerate(plans))))
        finally:
            await browser.close()


# ----- the test ----------------------------------------------------------------------------
def _sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_ten_sessions_at_once(tmp_path, capsys, record_property):
    started = time.monotonic()
    plans = [make_plan(i, name, cfg) for i, (name, cfg) in enumerate(BASES)]
    assert len(plans) == SESSIONS
    check_plans(plans)

    # A small random model in the store, and what it says about the images we will upload.
    home = tmp_path / "home"
    weights = home / "weights"
    torch.manual_seed(0)
    model_file = save_model(build_model(TINY), sidecar_for(name=MODEL), MODEL, weights)
    model_files = (model_file, model_file.with_suffix(".json"))
    hash_before = _sha256(*model_files)
    reference = Predictor.from_store(MODEL, weights_dir=weights, engine="torch")
    images = make_images(reference, 4)

    shots = tmp_path / "screenshots"
    shots.mkdir()
    # Demo mode, as a live audience would meet the server (uploads are rate-limited there).
    with live_server(home, RESNET_EXPLORER_MODE="demo", TORCH_HOME=str(home / "torch")) as url:
        browser_started = time.monotonic()
        logs = asyncio.run(run_load(url, plans, images, shots))
    loaded = max(log.loaded for log in logs)  # when the barrier let the sessions go
    open_seconds = loaded - browser_started
    load_seconds = max(log.ended for log in logs) - loaded

    latencies = [ms for log in logs for ms in log.latencies_ms]
    p50, p95 = (float(np.percentile(latencies, q)) for q in (50, 95)) if latencies else (0, 0)
    report = {
        "sessions": len(logs), "open_seconds": round(open_seconds, 1),
        "load_seconds": round(load_seconds, 1),
        "test_seconds": round(time.monotonic() - started, 1),
        "toggles": len(latencies), "toggle_to_params_ms": {"p50": round(p50), "p95": round(p95),
                                                          "max": round(max(latencies, default=0))},
        "summary_visits": sum(log.summaries for log in logs),
        "images_classified": sum(log.classified for log in logs),
        "errors": sum(len(log.problems) + len(log.console_errors) for log in logs),
        "per_session": [{"architecture": log.plan.name, "toggles": len(log.latencies_ms),
                         "summaries": log.summaries, "classified": log.classified,
                         "reference_first_last": log.reference_shown[:1] + log.reference_shown[-1:],
                         "problems": log.problems, "console_errors": log.console_errors}
                        for log in logs],
    }
    out = tmp_path / "load.json"
    out.write_text(json.dumps(report, indent=2))
    for key in ("sessions", "toggles", "summary_visits", "images_classified", "errors"):
        record_property(key, report[key])
    record_property("toggle_p50_ms", round(p50))
    record_property("toggle_p95_ms", round(p95))
    with capsys.disabled():
        print(f"\nload: {report['sessions']} sessions for {load_seconds:.0f} s (after "
              f"{open_seconds:.0f} s to open them), "
              f"{len(latencies)} toggles, toggle → parameter count p50 {p50:.0f} ms, "
              f"p95 {p95:.0f} ms; {report['summary_visits']} summaries, "
              f"{report['images_classified']} images classified, {report['errors']} errors "
              f"(test {report['test_seconds']} s; {out})")

    problems = [f"{log.plan.name}: {p}" for log in logs for p in log.problems]
    problems += [f"{log.plan.name}: console: {e}" for log in logs for e in log.console_errors]
    assert not problems, "\n".join(problems) + f"\n(screenshots in {shots})"
    # The shared predictor said the same about the reference image to every session, from
    # the first upload to the last (each was also checked against `reference` above).
    shown = {c for log in logs for c in log.reference_shown}
    assert len(shown) == 1, f"the reference image got different answers: {shown}"
    # The model is untouched, and a fresh predictor still says what it said at the start.
    assert _sha256(*model_files) == hash_before, "the stored model changed under load"
    again = Predictor.from_store(MODEL, weights_dir=weights, engine="torch")
    for name, (data, want) in images.items():
        [result] = again.classify([(name, data)], k=1)
        assert (result.topk.best, round(100 * result.topk.probs[0], 6)) == \
            (want.label, round(want.prob, 6)), name
    # Each session did each kind of work, or the load was not what this test claims.
    for log in logs:
        assert len(log.latencies_ms) >= 2 * len(FLIPS) and log.summaries and log.classified, \
            f"{log.plan.name} did too little: {len(log.latencies_ms)} toggles, " \
            f"{log.summaries} summaries, {log.classified} images"
