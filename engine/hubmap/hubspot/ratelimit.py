"""The rate limiter: keeps all threads of a run, together, under the portal's rolling limit.

HubSpot counts requests per app in a rolling window (``X-HubSpot-RateLimit-Max`` requests per
``X-HubSpot-RateLimit-Interval-Milliseconds``, e.g. 100 per 10 000 ms) and says how many are
left (``X-HubSpot-RateLimit-Remaining``). The limiter starts from a configured guess and adopts
the window from the headers as soon as a response carries them (they can be missing).

How it stays under the limit without guessing: each request holds a *slot* from the moment it is
sent until one window after its answer came back. HubSpot saw the request somewhere between those
two moments, so at any instant the requests HubSpot counts in its window are a subset of the slots
we hold; never holding more than ``max`` slots therefore never exceeds the limit, whatever the
latency (the price is one latency per window, ~2 % at 200 ms over 10 s). Requests from elsewhere
on the same token (another process, another integration) show up as a ``Remaining`` lower than our
own count; the difference is held as *phantom* slots for one window. After a 429 the limiter is
closed for every thread until the earliest slot frees (or the server's Retry-After).

It is thread-safe and shared by all workers of a run; it counts the time threads spent waiting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from hubmap.hubspot.config import DEFAULT_RATE_LIMIT_INTERVAL_MS, DEFAULT_RATE_LIMIT_MAX

HEADER_MAX = "X-HubSpot-RateLimit-Max"
HEADER_INTERVAL_MS = "X-HubSpot-RateLimit-Interval-Milliseconds"
HEADER_REMAINING = "X-HubSpot-RateLimit-Remaining"
HEADER_DAILY = "X-HubSpot-RateLimit-Daily"
HEADER_DAILY_REMAINING = "X-HubSpot-RateLimit-Daily-Remaining"

# A slot is held this fraction of a window longer than the window itself, to absorb the coarse
# clocks (whole milliseconds) of the server's window.
DEFAULT_SAFETY_MARGIN = 0.01
# Never trust a window shorter than this (a header of 0 ms would turn the limiter off).
MIN_INTERVAL_SECONDS = 0.05


class RateLimiter:
    """A rolling-window limiter shared by threads: `acquire` before a request, `release` after."""

    def __init__(
        self,
        *,
        max_requests: int = DEFAULT_RATE_LIMIT_MAX,
        interval: float = DEFAULT_RATE_LIMIT_INTERVAL_MS / 1000,
        safety_margin: float = DEFAULT_SAFETY_MARGIN,
        learn_from_headers: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_requests < 1 or interval <= 0:
            raise ValueError("max_requests and interval must be positive")
        self._max = max_requests
        self._interval = max(interval, MIN_INTERVAL_SECONDS)
        self._margin = safety_margin
        self._learn = learn_from_headers
        self._clock = clock
        self._cond = threading.Condition()
        self._in_flight = 0
        self._done: deque[float] = deque()  # answer times (and phantoms), oldest first
        self._blocked_until = 0.0
        self._daily_remaining: int | None = None
        self._daily_max: int | None = None
        self._waited = 0.0
        self._acquired = 0
        self._phantoms = 0

    # ------------------------------------------------------------------ what it knows

    @property
    def max_requests(self) -> int:
        return self._max

    @property
    def interval(self) -> float:
        """The window in seconds."""
        return self._interval

    @property
    def daily_remaining(self) -> int | None:
        return self._daily_remaining

    @property
    def waited_seconds(self) -> float:
        """Total seconds threads spent blocked in `acquire` (summed over threads)."""
        with self._cond:
            return self._waited

    @property
    def acquired(self) -> int:
        with self._cond:
            return self._acquired

    @property
    def phantom_slots(self) -> int:
        """How many slots were held for requests made by someone else on the same token."""
        with self._cond:
            return self._phantoms

    def __repr__(self) -> str:
        return f"RateLimiter(max_requests={self._max}, interval={self._interval})"

    # ------------------------------------------------------------------ the protocol

    def acquire(self) -> float:
        """Block until a slot is free and take it; returns the seconds waited."""
        started = time.monotonic()
        with self._cond:
            while True:
                delay = self._delay_locked(self._clock())
                if delay == 0.0:
                    break
                self._cond.wait(timeout=delay)
            self._in_flight += 1
            self._acquired += 1
            waited = time.monotonic() - started
            self._waited += waited
        return waited

    def release(self, headers: Mapping[str, str] | None = None) -> None:
        """Give back the slot of a request whose answer (or failure) has just arrived.

        The slot stays held for one window from now. ``headers`` of the answer, if any, teach the
        limiter the portal's window and how much of it others use.
        """
        with self._cond:
            now = self._clock()
            self._in_flight = max(0, self._in_flight - 1)
            self._done.append(now)
            if headers is not None:
                self._observe_locked(headers, now)
            self._cond.notify_all()

    def penalize(self, wait: float | None = None) -> float:
        """After a 429: close the limiter for every thread; returns the seconds until it reopens.

        ``wait`` (from Retry-After) wins when given; otherwise the limiter waits until the
        earliest slot it holds frees, or one full window when it holds none.
        """
        with self._cond:
            now = self._clock()
            self._expire_locked(now)
            if wait is None:
                wait = self._window() if not self._done else self._done[0] + self._window() - now
            wait = max(wait, 0.0)
            self._blocked_until = max(self._blocked_until, now + wait)
            self._cond.notify_all()
            return self._blocked_until - now

    def delay(self) -> float | None:
        """Seconds until a slot is free (0.0: now; None: when an in-flight request finishes)."""
        with self._cond:
            return self._delay_locked(self._clock())

    # ------------------------------------------------------------------ internals

    def _window(self) -> float:
        return self._interval * (1.0 + self._margin)

    def _expire_locked(self, now: float) -> None:
        horizon = now - self._window()
        done = self._done
        while done and done[0] <= horizon:
            done.popleft()

    def _delay_locked(self, now: float) -> float | None:
        if now < self._blocked_until:
            return self._blocked_until - now
        self._expire_locked(now)
        if self._in_flight + len(self._done) < self._max:
            return 0.0
        if self._done:
            # Enough slots free up when the oldest held ones expire.
            excess = self._in_flight + len(self._done) - self._max  # >= 0
            if excess < len(self._done):
                return max(self._done[excess] + self._window() - now, 1e-4)
        return None  # all slots are in flight: wait for a release (notify)

    def _observe_locked(self, headers: Mapping[str, str], now: float) -> None:
        maximum = _int_header(headers, HEADER_MAX)
        interval_ms = _int_header(headers, HEADER_INTERVAL_MS)
        remaining = _int_header(headers, HEADER_REMAINING)
        daily_remaining = _int_header(headers, HEADER_DAILY_REMAINING)
        daily = _int_header(headers, HEADER_DAILY)
        if daily_remaining is not None:
            self._daily_remaining = daily_remaining
        if daily is not None:
            self._daily_max = daily
        if not self._learn:
            return
        if maximum is not None and maximum > 0:
            self._max = maximum
        if interval_ms is not None and interval_ms > 0:
            self._interval = max(interval_ms / 1000, MIN_INTERVAL_SECONDS)
        if remaining is None:
            return
        self._expire_locked(now)
        used_by_server = self._max - remaining
        held = self._in_flight + len(self._done)
        shortfall = used_by_server - held
        if shortfall > 0:
            # Someone else spends this token's budget: hold their share for one window.
            self._done.extend([now] * shortfall)
            self._phantoms += shortfall


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None
