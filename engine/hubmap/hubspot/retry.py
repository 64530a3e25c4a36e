"""The retry policy: which failures are tried again, how long to wait, and when to give up.

Retried: 429 (except the DAILY policy), 5xx, timeouts and dropped connections — for every method,
POST and PATCH included, because hubmap only ever writes absolute values (a repeated write is
harmless). Not retried: any other 4xx, which no amount of waiting fixes.

Waits: a 429 on the rolling ten-second policy (or without a policy) waits for the rate limiter to
reopen (it knows when its oldest slot frees) rather than a blind 10 s; the search "secondly"
policy waits about a second; 5xx and network failures back off exponentially with jitter. A
``Retry-After`` header, when present, is honoured. The policy gives up after ``max_attempts``
attempts or when the next wait would push the total past ``max_total_wait``.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from enum import Enum

DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_MAX_TOTAL_WAIT = 120.0  # seconds, summed over all retries of one request
DEFAULT_BACKOFF_BASE = 0.5  # seconds before the 2nd attempt; doubles each attempt
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_JITTER = 0.5  # fraction of the backoff randomly taken off (spreads threads apart)
SECONDLY_WAIT = 1.0  # HubSpot's search limit is per second

POLICY_DAILY = "DAILY"
POLICY_TEN_SECONDLY = "TEN_SECONDLY_ROLLING"
POLICY_SECONDLY = "SECONDLY"


class Outcome(str, Enum):
    """How one attempt ended, as far as retrying goes."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # 429, rolling window or unknown policy
    SECONDLY_LIMITED = "secondly_limited"  # 429, search per-second limit
    DAILY_LIMITED = "daily_limited"  # 429, daily budget spent: stop
    SERVER_ERROR = "server_error"  # 5xx
    TRANSPORT_ERROR = "transport_error"  # timeout, refused, dropped
    REJECTED = "rejected"  # other 4xx: stop


def classify(status: int | None, policy_name: str = "", message: str = "") -> Outcome:
    """The outcome of an attempt from its status (None: no answer) and a 429 body's policy."""
    if status is None:
        return Outcome.TRANSPORT_ERROR
    if status == 429:
        policy = policy_name.upper()
        if policy == POLICY_DAILY or "daily limit" in message.lower():
            return Outcome.DAILY_LIMITED
        if policy == POLICY_SECONDLY or "secondly limit" in message.lower():
            return Outcome.SECONDLY_LIMITED
        return Outcome.RATE_LIMITED
    if status >= 500:
        return Outcome.SERVER_ERROR
    if status >= 300:  # redirects are not followed (they would carry the token elsewhere)
        return Outcome.REJECTED
    return Outcome.OK


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard to try. ``max_attempts`` counts the first try; waits are in seconds."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_total_wait: float = DEFAULT_MAX_TOTAL_WAIT
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    jitter: float = DEFAULT_JITTER
    secondly_wait: float = SECONDLY_WAIT
    retry_server_errors: bool = True
    retry_transport_errors: bool = True
    retry_rate_limits: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a fraction between 0 and 1")
        if self.max_total_wait < 0 or self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("waits cannot be negative")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retries (for probes and tests)."""
        return cls(max_attempts=1)

    def retries(self, outcome: Outcome) -> bool:
        """Whether this kind of failure is worth another attempt at all."""
        if outcome in (Outcome.RATE_LIMITED, Outcome.SECONDLY_LIMITED):
            return self.retry_rate_limits
        if outcome is Outcome.SERVER_ERROR:
            return self.retry_server_errors
        if outcome is Outcome.TRANSPORT_ERROR:
            return self.retry_transport_errors
        return False

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), with jitter.

        ``base * 2**(attempt-1)`` capped at ``backoff_max``, minus a random fraction up to
        ``jitter`` of it, so threads that failed together do not come back together.
        """
        raw = min(self.backoff_max, self.backoff_base * (2.0 ** max(attempt - 1, 0)))
        draw = float((rng or random).random())
        return raw * (1.0 - self.jitter * draw)

    def allows(self, attempt: int, waited: float, next_wait: float) -> bool:
        """May attempt ``attempt + 1`` happen after waiting ``next_wait`` more seconds?"""
        return attempt < self.max_attempts and waited + next_wait <= self.max_total_wait


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)
