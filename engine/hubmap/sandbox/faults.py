"""Fault dice: which requests get a 502/503 and which writes lose their response.

Each kind of fault has its own random stream, seeded from `SandboxConfig.seed`, and a die is only
rolled when its rate is above zero, so the same seed and request sequence give the same faults.
"""

from __future__ import annotations

import random
import threading

GATEWAY_STATUSES = (502, 503)
GATEWAY_MESSAGES = {
    502: ("Bad Gateway", "BAD_GATEWAY"),
    503: ("Service Unavailable", "SERVICE_UNAVAILABLE"),
}


class FaultInjector:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        with self._lock:
            self._errors = random.Random(None if seed is None else f"{seed}:errors")
            self._drops = random.Random(None if seed is None else f"{seed}:drops")

    def gateway_error(self, rate: float) -> int | None:
        """A 502 or 503 status for this request, or None to let it through."""
        if rate <= 0:
            return None
        with self._lock:
            if self._errors.random() >= rate:
                return None
            return self._errors.choice(GATEWAY_STATUSES)

    def drop_after_write(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._drops.random() < rate
