"""Counts of what the sandbox served, for tests and rate benchmarks (`GET /_sandbox/stats`)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

#: How many recent requests keep their timestamp.
MAX_RECORDED_REQUESTS = 100_000


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._by_endpoint: Counter[str] = Counter()
            self._by_status: Counter[str] = Counter()
            self._rate_limited = 0
            self._gateway_errors = 0
            self._dropped = 0
            self._requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED_REQUESTS)

    def record(
        self,
        method: str,
        path: str,
        endpoint: str,
        status: int,
        *,
        dropped: bool = False,
        gateway_error: bool = False,
    ) -> None:
        with self._lock:
            self._by_endpoint[endpoint] += 1
            self._by_status[str(status)] += 1
            self._rate_limited += status == 429
            self._gateway_errors += gateway_error
            self._dropped += dropped
            self._requests.append(
                {
                    "at": time.time(),
                    "method": method,
                    "path": path,
                    "endpoint": endpoint,
                    "status": status,
                    "dropped": dropped,
                }
            )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._by_endpoint.values()),
                "byEndpoint": dict(self._by_endpoint),
                "byStatus": dict(self._by_status),
                "rateLimited": self._rate_limited,
                "faults": {
                    "gatewayErrors": self._gateway_errors,
                    "droppedAfterWrite": self._dropped,
                    "total": self._gateway_errors + self._dropped,
                },
                "requests": list(self._requests),
            }
