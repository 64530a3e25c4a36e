"""Retries and rate limiting against real HTTP servers on 127.0.0.1 (real sockets, real timing).

Each test starts a small scripted server: 429s with HubSpot's body and headers, 5xx, slow answers,
dropped connections, and a server enforcing a rolling window the way HubSpot does.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hubmap.hubspot import (
    DailyLimitReached,
    HubSpotClient,
    HubSpotSettings,
    HubSpotTimeout,
    HubSpotValidationError,
    RetryPolicy,
)

TOKEN = "pat-na1-http-test-token-9999"


@dataclass
class Seen:
    method: str
    path: str
    body: Any
    at: float
    authorization: str


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # sleep before answering (timeouts)
    drop: bool = False  # close the connection without answering


class Server:
    """A threaded HTTP server whose answers come from ``script(seen) -> Reply``."""

    def __init__(self, script: Callable[[Seen], Reply]):
        self.script = script
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                seen = Seen(
                    self.command,
                    self.path,
                    json.loads(raw) if raw else None,
                    time.monotonic(),
                    self.headers.get("Authorization", ""),
                )
                with outer.lock:
                    outer.seen.append(seen)
                reply = outer.script(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = b"" if reply.body is None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout test)
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = _handle

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:  # noqa: PYI034 - final test helper
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def sequence(*replies: Reply) -> Callable[[Seen], Reply]:
    queue = deque(replies)
    lock = threading.Lock()

    def script(seen: Seen) -> Reply:
        with lock:
            return queue.popleft() if len(queue) > 1 else queue[0]

    return script


def rate_headers(maximum: int, interval_ms: int, remaining: int) -> dict[str, str]:
    return {
        "X-HubSpot-RateLimit-Max": str(maximum),
        "X-HubSpot-RateLimit-Interval-Milliseconds": str(interval_ms),
        "X-HubSpot-RateLimit-Remaining": str(remaining),
    }


def rate_limit_body(policy: str = "TEN_SECONDLY_ROLLING") -> dict[str, str]:
    message = {
        "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
        "DAILY": "You have reached your daily limit.",
    }[policy]
    return {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": "3b5a4a3e-0000-4000-8000-000000000001",
        "policyName": policy,
        "groupName": "api-calls",
    }


OK_GROUPS = Reply(200, {"results": [{"name": "hubmap", "label": "hubmap"}]})


@pytest.fixture
def client_for() -> Iterator[Callable[..., HubSpotClient]]:
    clients: list[HubSpotClient] = []

    def make(server: Server, retry: RetryPolicy | None = None, **settings: Any) -> HubSpotClient:
        options = {"read_timeout": 2.0, "connect_timeout": 2.0, **settings}
        client = HubSpotClient(
            HubSpotSettings(
                access_token=TOKEN, api_base=server.url, forms_base=server.url, **options
            ),
            retry=retry
            or RetryPolicy(max_attempts=4, backoff_base=0.05, jitter=0.2, max_total_wait=5.0),
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_429_ten_secondly_waits_for_the_window_then_succeeds(client_for):
    script = sequence(
        Reply(429, rate_limit_body(), rate_headers(10, 400, 0)),
        Reply(200, {"results": []}, rate_headers(10, 400, 9)),
    )
    with Server(script) as server:
        client = client_for(server)
        assert client.list_groups() == []
    first, second = server.seen
    gap = second.at - first.at
    assert 0.35 <= gap < 2.0  # waited for the 400 ms window the headers announced, not 10 s
    stats = client.stats()
    assert (stats.calls, stats.rate_limited, stats.retries) == (2, 1, 1)
    assert stats.limiter_wait_seconds >= 0.3


def test_429_without_headers_uses_the_configured_window(client_for):
    script = sequence(Reply(429, rate_limit_body()), OK_GROUPS)
    with Server(script) as server:
        client = client_for(server, rate_limit_max=5, rate_limit_interval_ms=300)
        client.list_groups()
    gap = server.seen[1].at - server.seen[0].at
    assert 0.25 <= gap < 1.5


def test_retry_after_is_honoured(client_for):
    script = sequence(Reply(429, rate_limit_body(), {"Retry-After": "1"}), OK_GROUPS)
    with Server(script) as server:
        client = client_for(server, rate_limit_interval_ms=100)
        client.list_groups()
    gap = server.seen[1].at - server.seen[0].at
    assert 0.95 <= gap < 2.0


def test_daily_limit_stops_without_retrying(client_for):
    with Server(
        sequence(Reply(429, rate_limit_body("DAILY"), rate_headers(100, 10000, 0)))
    ) as server:
        client = client_for(server)
        with pytest.raises(DailyLimitReached) as info:
            client.batch_upsert_contacts({"a@x.com": {"firstname": "A"}})
    assert len(server.seen) == 1
    assert "daily limit" in str(info.value)
    assert TOKEN not in str(info.value)


def test_502_and_503_then_success_are_retried(client_for):
    script = sequence(Reply(502, None), Reply(503, {"message": "unavailable"}), OK_GROUPS)
    with Server(script) as server:
        client = client_for(server)
        assert client.list_groups()[0]["name"] == "hubmap"
    assert len(server.seen) == 3
    assert client.stats().server_errors == 2 and client.stats().retries == 2


def test_post_is_retried_after_a_dropped_connection(client_for):
    def script(seen: Seen) -> Reply:
        if len(server.seen) == 1:
            return Reply(200, drop=True)
        inputs = seen.body["inputs"]
        return Reply(
            200,
            {
                "status": "COMPLETE",
                "results": [
                    {"id": "1", "new": True, "properties": {"email": i["id"]}} for i in inputs
                ],
            },
        )

    with Server(script) as server:
        client = client_for(server)
        result = client.batch_upsert_contacts({"a@x.com": {"firstname": "A"}})
    assert result.result_for("a@x.com").new is True
    assert [s.method for s in server.seen] == ["POST", "POST"]
    assert server.seen[0].body == server.seen[1].body  # the same absolute write, sent again
    assert client.stats().transport_errors == 1


def test_timeout_is_retried_then_reported(client_for):
    with Server(sequence(Reply(200, {"results": []}, delay=0.6))) as server:
        client = client_for(
            server, read_timeout=0.2, retry=RetryPolicy(max_attempts=2, backoff_base=0.01)
        )
        with pytest.raises(HubSpotTimeout) as info:
            client.list_groups()
    assert info.value.attempts == 2
    assert len(server.seen) == 2
    assert TOKEN not in str(info.value)


def test_400_is_not_retried(client_for, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3 included
    body = {
        "status": "error",
        "message": "Property values were not valid",
        "correlationId": "c",
        "category": "VALIDATION_ERROR",
        "errors": [
            {"message": "bad", "code": "INVALID_OPTION", "context": {"propertyName": ["tier"]}}
        ],
    }
    with Server(sequence(Reply(400, body))) as server:
        client = client_for(server)
        with pytest.raises(HubSpotValidationError) as info:
            client.create_property("contacts", {"name": "tier"})
    assert len(server.seen) == 1
    assert info.value.property_names == ["tier"]
    assert server.seen[0].authorization == f"Bearer {TOKEN}"
    assert "POST /crm/v3/properties/contacts -> 400" in caplog.text
    assert TOKEN not in caplog.text


# ---------------------------------------------------------------------- the shared limiter


class RollingWindow:
    """HubSpot-like enforcement: at most ``maximum`` accepted requests in any ``interval``."""

    def __init__(self, maximum: int, interval: float):
        self.maximum = maximum
        self.interval = interval
        self.accepted: deque[float] = deque()
        self.lock = threading.Lock()
        self.rejected = 0

    def __call__(self, seen: Seen) -> Reply:
        with self.lock:
            now = time.monotonic()
            while self.accepted and self.accepted[0] <= now - self.interval:
                self.accepted.popleft()
            ms = int(self.interval * 1000)
            if len(self.accepted) >= self.maximum:
                self.rejected += 1
                return Reply(429, rate_limit_body(), rate_headers(self.maximum, ms, 0))
            self.accepted.append(now)
            remaining = self.maximum - len(self.accepted)
        return Reply(200, {"results": []}, rate_headers(self.maximum, ms, remaining))


def test_threads_sharing_the_limiter_stay_under_a_rolling_window(client_for):
    maximum, interval, threads, per_thread = 20, 0.5, 4, 30
    window = RollingWindow(maximum, interval)
    with Server(window) as server:
        # Start from HubSpot's default guess (100 / 10 s); the headers teach the real window.
        client = client_for(server)
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(per_thread):
                    client.list_groups()
            except Exception as exc:  # noqa: BLE001 - collected, asserted below
                errors.append(exc)

        started = time.monotonic()
        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.monotonic() - started
    assert not errors
    total = threads * per_thread
    stats = client.stats()
    assert stats.calls == total + stats.rate_limited
    assert stats.rate_limited <= 0.03 * total  # the limiter, not the server, did the throttling
    # The best possible: `maximum` at once, then `maximum` per window.
    best = (total / maximum - 1) * interval
    assert elapsed >= best * 0.95  # the server really was the constraint
    # ... and we used most of the allowed rate: request k*maximum arrives about k windows in.
    arrivals = sorted(s.at for s in server.seen)
    windows = (total - 1) // maximum
    used = windows * interval / (arrivals[windows * maximum] - arrivals[0])
    assert used >= 0.8, f"used {used:.0%} of the allowed rate"
    assert stats.limiter_wait_seconds > 0
    assert client.limiter.max_requests == maximum
