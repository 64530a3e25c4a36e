"""`hubmap serve` as a real process: killed (SIGKILL) after acknowledging webhooks and while
sending them, then started again, it sends every accepted event, and each order counts once;
stopped with SIGTERM, it exits cleanly and keeps what it has not sent.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hubmap.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from tests.acceptance.test_serve import (
    SHOPIFY_MAPPING,
    contacts,
    hubspot_env,
    shopify_order,
    wait_for,
    write_config,
)
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

START_TIMEOUT = 20.0
URL_LINE = re.compile(r"hubmap serve on (http://\S+?);")


_started: list[subprocess.Popen[bytes]] = []


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(config=SandboxConfig(token="hubspot-test-token")) as running:
        yield running
        for process in _started:  # a failed test leaves no server behind
            if process.poll() is None:
                process.kill()
            process.wait()
        _started.clear()


class Server:
    """`hubmap serve --config FILE` in a subprocess, its log in a file."""

    def __init__(self, config: Path, sandbox: RunningSandbox, log: Path):
        env = {**os.environ, **hubspot_env(sandbox), "PYTHONPATH": str(ROOT / "engine")}
        self.log = log
        seen = log.stat().st_size if log.exists() else 0
        with log.open("a") as stream:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hubmap.cli", "serve", "--config", str(config)],
                cwd=ROOT,
                env=env,
                stdout=stream,
                stderr=stream,
            )
        _started.append(self.process)
        self.url = ""
        deadline = time.monotonic() + START_TIMEOUT
        while not self.url:
            found = URL_LINE.findall(log.read_text()[seen:])
            if found and self.process.poll() is None:
                self.url = found[-1]
            elif self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{log.read_text()}")
            else:
                time.sleep(0.05)

    def post(self, body: bytes, delivery: str) -> requests.Response:
        from hubmap.serve.auth import signature
        from tests.acceptance.test_serve import SHOPIFY_SECRET

        return requests.post(
            self.url + "/shopify",
            data=body,
            timeout=10,
            headers={
                "X-Shopify-Hmac-Sha256": signature(SHOPIFY_SECRET.encode(), body),
                "X-Shopify-Webhook-Id": delivery,
                "X-Shopify-Topic": "orders/create",
            },
        )

    def stop(self, signal_number: int) -> int:
        self.process.send_signal(signal_number)
        return self.process.wait(timeout=15)


def query(path: Path, sql: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(sql).fetchone()[0] or 0)


def sent(folder: Path) -> int:
    return query(
        folder / "queue.db",
        f"SELECT COUNT(*) FROM jobs WHERE status='sent' AND mapping='{SHOPIFY_MAPPING}'",
    )


def test_killed_while_sending_then_restarted_sends_every_accepted_event_once(tmp_path, sandbox):
    config = write_config(tmp_path, retry_seconds=0.2, max_retry_seconds=0.5)
    log = tmp_path / "serve.log"
    first = [f"early{n}@example.com" for n in range(6)]
    later = [f"late{n}@example.com" for n in range(4)]
    sandbox.configure(latency_ms=400)  # each HubSpot call is slow: the kill lands mid-run
    server = Server(config, sandbox, log)
    for n, email in enumerate(first):
        assert server.post(shopify_order(100 + n, email), f"a-{n}").json()["status"] == "queued"
    # Wait until the orders are counted in the state but HubSpot has not confirmed them.
    wait_for(lambda: query(tmp_path / "state.db", "SELECT COUNT(*) FROM orders") == len(first))
    for n, email in enumerate(later):  # accepted while the worker is busy: still queued
        assert server.post(shopify_order(200 + n, email), f"b-{n}").status_code == 200
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    assert query(tmp_path / "state.db", "SELECT COUNT(*) FROM contacts WHERE dirty=1") > 0
    in_hand = query(tmp_path / "queue.db", "SELECT COUNT(*) FROM jobs WHERE status='processing'")
    waiting = query(tmp_path / "queue.db", "SELECT COUNT(*) FROM jobs WHERE status='queued'")
    assert in_hand > 0 and waiting >= len(later)  # killed mid-run, with events still queued
    assert in_hand + waiting + sent(tmp_path) == len(first) + len(later)

    sandbox.configure(latency_ms=0)
    server = Server(config, sandbox, log)
    wait_for(lambda: sent(tmp_path) == len(first) + len(later))
    # The shop retries one delivery, and sends the same order under a new delivery id.
    assert server.post(shopify_order(100, first[0]), "a-0").json()["status"] == "duplicate"
    assert server.post(shopify_order(100, first[0]), "a-0-again").json()["status"] == "queued"
    wait_for(lambda: sent(tmp_path) == len(first) + len(later) + 1)
    assert server.stop(signal.SIGTERM) == 0
    found = contacts(sandbox)
    assert {
        email: (found[email]["total_number_of_orders"], found[email]["total_value_of_orders"])
        for email in first + later
    } == {email: ("1", "409.94") for email in first + later}


def test_sigterm_stops_cleanly_and_what_was_not_sent_is_sent_after_a_restart(tmp_path, sandbox):
    config = write_config(tmp_path, retry_seconds=0.2, max_retry_seconds=0.5)
    log = tmp_path / "serve.log"
    emails = [f"term{n}@example.com" for n in range(3)]
    sandbox.configure(error_rate=1.0)
    server = Server(config, sandbox, log)
    for n, email in enumerate(emails):
        assert server.post(shopify_order(300 + n, email), f"t-{n}").status_code == 200
    wait_for(lambda: query(tmp_path / "queue.db", "SELECT SUM(attempts) FROM jobs") >= 3)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    assert query(
        tmp_path / "queue.db", "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'processing')"
    ) == len(emails)

    sandbox.configure(error_rate=0.0)
    server = Server(config, sandbox, log)
    wait_for(lambda: sent(tmp_path) == len(emails))
    assert server.stop(signal.SIGINT) == 0
    found = contacts(sandbox)
    assert [found[email]["total_number_of_orders"] for email in emails] == ["1", "1", "1"]
