"""Demo-mode rules without Streamlit: the mode variable, the password check, the per-visitor
rate limiter (on a clock the test moves by hand) and the process-wide prediction slots.
The pages that use them: tests/test_demo_mode.py."""

from __future__ import annotations

import threading

import pytest

from resnet_explorer.common import AccessDenied
from resnet_explorer.common.access import (MODE_ENV, RateLimiter, WorkerSlots, demo_mode,
                                           password_matches, prediction_workers)


class Clock:
    """time.monotonic stand-in: the test says when time passes."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("value, demo", [
    (None, False), ("", False), ("full", False), (" FULL ", False),
    ("demo", True), ("Demo", True), ("dmeo", True),  # a typo must not open a public server
])
def test_demo_mode_is_on_for_every_value_but_full(value, demo):
    assert demo_mode({} if value is None else {MODE_ENV: value}) is demo


@pytest.mark.parametrize("given, expected, ok", [
    ("s3cret", "s3cret", True), ("s3cret ", "s3cret", False), ("S3CRET", "s3cret", False),
    ("", "s3cret", False), ("", "", False), ("anything", None, False), ("anything", "", False),
    ("pässwörd", "pässwörd", True),  # non-ASCII: compared as UTF-8 bytes, not refused
])
def test_only_the_operator_password_matches_and_none_set_means_nobody(given, expected, ok):
    assert password_matches(given, expected) is ok


def test_the_limiter_admits_up_to_its_limit_then_says_when_to_come_back():
    clock = Clock()
    limiter = RateLimiter(30, "images", clock=clock)
    limiter.take(20)
    clock.now += 10
    limiter.take(10)
    assert limiter.remaining() == 0
    clock.now += 5
    with pytest.raises(AccessDenied, match=r"30 images a minute per visitor; try again in 45 s"):
        limiter.take(1)
    assert limiter.remaining() == 0  # a refusal counts nothing


def test_the_window_slides_freeing_the_oldest_events_first():
    clock = Clock()
    limiter = RateLimiter(3, "images", clock=clock)
    for _ in range(3):
        limiter.take()
        clock.now += 10  # events at 0, 10, 20
    clock.now = 1000.0 + 59.5
    with pytest.raises(AccessDenied, match="try again in 1 s"):
        limiter.take()
    clock.now = 1000.0 + 60  # the first has left the window, the others not yet
    limiter.take()
    with pytest.raises(AccessDenied, match="try again in 10 s"):
        limiter.take()
    clock.now += 10.0
    assert limiter.remaining() == 1


def test_a_batch_that_does_not_fit_waits_for_enough_room_and_counts_nothing_meanwhile():
    clock = Clock()
    limiter = RateLimiter(10, "images", clock=clock)
    limiter.take(4)
    clock.now += 30
    limiter.take(4)
    with pytest.raises(AccessDenied, match="try again in 30 s"):  # 5 fit once the first 4 left
        limiter.take(5)
    clock.now += 30
    limiter.take(5)
    assert limiter.remaining() == 1


def test_a_batch_larger_than_the_limit_is_refused_at_once_with_what_to_do():
    limiter = RateLimiter(30, "images", clock=Clock())
    with pytest.raises(AccessDenied, match="40 images at once .* at most 30 a minute. Try again "
                                           "with fewer"):
        limiter.take(40)
    assert limiter.remaining() == 30


def test_slots_let_size_callers_in_at_once_and_tell_the_next_the_server_is_busy():
    slots = WorkerSlots(2, wait_s=0.05)
    inside, release = threading.Barrier(3), threading.Event()

    def hold() -> None:
        with slots.hold():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()  # both slots taken
    with pytest.raises(AccessDenied, match="busy"):
        with slots.hold():
            pass
    release.set()
    for t in threads:
        t.join()
    with slots.hold():  # freed again, also after an error inside
        pass
    with pytest.raises(ValueError), slots.hold():
        raise ValueError
    with slots.hold(), slots.hold():
        pass


@pytest.mark.parametrize("cpus, workers", [(None, 1), (1, 1), (2, 1), (4, 1), (8, 2), (16, 4)])
def test_prediction_slots_are_a_quarter_of_the_cores_and_at_least_one(cpus, workers, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert prediction_workers(cpus) == workers
