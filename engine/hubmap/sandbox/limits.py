"""HubSpot's rate limits: a rolling window per budget key (a token, or a portal's public form
endpoint) and a daily count per key that resets at UTC midnight.

Requests refused with a 429 do not use up budget. The clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

ROLLING_POLICY = "TEN_SECONDLY_ROLLING"
DAILY_POLICY = "DAILY"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one request against its budget, and what the headers should say."""

    allowed: bool
    policy: str | None  # which limit refused it
    max: int
    remaining: int
    interval_ms: int
    daily: int
    daily_remaining: int

    def headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(self.daily_remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.interval_ms),
            "X-HubSpot-RateLimit-Max": str(self.max),
            "X-HubSpot-RateLimit-Remaining": str(self.remaining),
        }


class RateLimiter:
    """Rolling-window and daily budgets, thread-safe."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], str] = lambda: datetime.now(UTC).date().isoformat(),
    ) -> None:
        self._clock = clock
        self._today = today
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._daily: dict[str, tuple[str, int]] = {}

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._daily.clear()

    def take(self, key: str, maximum: int, interval_ms: int, daily_limit: int) -> Verdict:
        """Spend one request from `key`'s budgets, or refuse it."""
        with self._lock:
            now = self._clock()
            window = self._windows.setdefault(key, deque())
            while window and now - window[0] >= interval_ms / 1000:
                window.popleft()
            day = self._today()
            used_day, used_today = self._daily.get(key, (day, 0))
            if used_day != day:
                used_today = 0
            policy = None
            if used_today >= daily_limit:
                policy = DAILY_POLICY
            elif len(window) >= maximum:
                policy = ROLLING_POLICY
            if policy is None:
                window.append(now)
                used_today += 1
                self._daily[key] = (day, used_today)
            return Verdict(
                allowed=policy is None,
                policy=policy,
                max=maximum,
                remaining=max(0, maximum - len(window)),
                interval_ms=interval_ms,
                daily=daily_limit,
                daily_remaining=max(0, daily_limit - used_today),
            )
