"""Demo mode: who may change the stores, and how much one visitor may ask of a shared server.

`RESNET_EXPLORER_MODE=demo` (read here only, by `demo_mode`) keeps exploring, analysing and
classifying open to everyone and locks whatever writes to the stores or reads the server's
folders, until a browser session is unlocked with the operator password: the secret at
OPERATOR_PASSWORD_SECRET in `.streamlit/secrets.toml` (ui/access.py reads it with st.secrets
and keeps the unlock in the session, never in the URL). It sits in a table because Streamlit
copies top-level string secrets into the environment, which every training process inherits.
Any value of the variable but "full" (or none) counts as demo: a typo must not open a public
server.

Per visitor, classification is rate-limited (a `RateLimiter` kept in the visitor's session),
and every prediction takes one of a few process-wide `WorkerSlots`, so one visitor's uploads
wait behind the others' instead of taking every core.
"""

from __future__ import annotations

import hmac
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from .errors import AccessDenied

__all__ = ["MODE_ENV", "OPERATOR_PASSWORD_SECRET", "CLASSIFY_PER_MINUTE",
           "UNLOCK_TRIES_PER_MINUTE", "SERVER_UNLOCK_TRIES_PER_MINUTE", "demo_mode",
           "password_matches", "RateLimiter", "WorkerSlots", "prediction_workers"]

MODE_ENV = "RESNET_EXPLORER_MODE"
# ("demo", "operator_password"): `[demo]` then `operator_password = "…"` in secrets.toml
OPERATOR_PASSWORD_SECRET = ("demo", "operator_password")
CLASSIFY_PER_MINUTE = 30  # images one demo visitor may classify in any minute
UNLOCK_TRIES_PER_MINUTE = 5  # wrong passwords one session may try in any minute
# All sessions together: a script opening new sessions gets no more guesses than this. It
# could keep the operator waiting a minute; it cannot guess a strong password.
SERVER_UNLOCK_TRIES_PER_MINUTE = 20
PREDICTION_WAIT_S = 60.0  # longer in the queue and the visitor is told the server is busy


def demo_mode(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(MODE_ENV, "").strip().lower() not in ("", "full")


def password_matches(given: str, expected: str | None) -> bool:
    """`given` is the operator password (in constant time). Without a password set, or with
    an empty one, nobody can unlock."""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class RateLimiter:
    """At most `limit` events in any `window_s` seconds (a sliding window), for one visitor.

    The clock is injected so tests step time by hand; the state is the times of the events
    still inside the window, so it never holds more than `limit` numbers.
    """

    def __init__(self, limit: int, what: str, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, scope: str = "per visitor") -> None:
        self.limit, self.what, self.window_s, self.scope = limit, what, window_s, scope
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()  # a server-wide limiter is shared by script threads

    def remaining(self) -> int:
        with self._lock:
            self._forget_old(self._clock())
            return self.limit - len(self._times)

    def take(self, n: int = 1) -> None:
        """Count `n` events now, or count none and raise AccessDenied saying when they fit."""
        if n > self.limit:
            raise AccessDenied(f"{n} {self.what} at once is more than this demo allows: at most "
                               f"{self.limit} a minute. Try again with fewer.")
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            over = len(self._times) + n - self.limit
            if over > 0:  # the window has room once the `over` oldest events have left it
                wait = self._times[over - 1] + self.window_s - now
                raise AccessDenied(f"This demo allows {self.limit} {self.what} a minute "
                                   f"{self.scope}; try again in {max(1, math.ceil(wait))} s.")
            self._times.extend([now] * n)

    def _forget_old(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()


class WorkerSlots:
    """At most `size` predictions at once in this process, whoever asks; a caller waits for
    a free slot up to `wait_s` seconds and is then told the server is busy."""

    def __init__(self, size: int, wait_s: float = PREDICTION_WAIT_S) -> None:
        self.size, self.wait_s = size, wait_s
        self._free = threading.BoundedSemaphore(size)

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._free.acquire(timeout=self.wait_s):
            raise AccessDenied("The server is busy classifying for other visitors; try again "
                               "in a moment.")
        try:
            yield
        finally:
            self._free.release()


def prediction_workers(cpu_count: int | None = None) -> int:
    """How many predictions may run at once: each already spreads over the cores (ONNX
    Runtime's and torch's intra-op threads), so a quarter of the cores, at least one."""
    return max(1, (cpu_count or os.cpu_count() or 1) // 4)
