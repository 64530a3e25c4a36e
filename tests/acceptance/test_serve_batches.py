"""`hubmap serve` taking webhooks together, over real HTTP: many posted at once are each answered
200 only once stored (the group commit), each stored once; when the commit holding some of them
fails, each of those is answered 503 (the sender keeps it and retries) and none is stored; the
worker evaluates each event once, not once more inside the run, and delivers it once.
"""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hubmap.evaluate import CompiledMapping
from hubmap.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from hubmap.serve import Service, load_config
from tests.acceptance.test_serve import (
    HUBSPOT_TOKEN,
    contacts,
    hubspot_env,
    jobs,
    post_shopify,
    serving,
    shopify_order,
    wait_for,
    write_config,
)


@pytest.fixture
def sandbox():  # type: ignore[no-untyped-def]
    with start_sandbox(config=SandboxConfig(token=HUBSPOT_TOKEN)) as running:
        yield running


def intake_only(folder: Any, sandbox: RunningSandbox) -> Service:
    return Service(
        load_config(str(write_config(folder))), hubspot_env(sandbox), worker=False
    ).start()


def stored(service: Service) -> list[str]:
    """Delivery ids in the queue file, read through a connection of its own (committed only)."""
    with sqlite3.connect(service.config.queue_path) as other:
        return [r[0] for r in other.execute("SELECT delivery_id FROM events")]


class FailingCommits:
    """The queue's connection, with every COMMIT failing as a full or broken disk makes it."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def post_all(service: Service, bodies: dict[str, bytes], senders: int = 12) -> dict[str, Any]:
    with ThreadPoolExecutor(senders) as pool:
        answers = pool.map(
            lambda item: (item[0], post_shopify(service, item[1], item[0])), bodies.items()
        )
        return dict(answers)


def orders(count: int, first: int = 1) -> dict[str, bytes]:
    return {
        f"delivery-{n}": shopify_order(7_000_000 + n, f"buyer{n}@example.com")
        for n in range(first, first + count)
    }


def test_webhooks_posted_at_once_are_each_stored_once_before_their_200(tmp_path, sandbox):
    bodies = orders(80)
    service = intake_only(tmp_path, sandbox)
    try:
        answers = post_all(service, bodies)
        assert {d: a.status_code for d, a in answers.items()} == dict.fromkeys(bodies, 200)
        assert {a.json()["status"] for a in answers.values()} == {"queued"}
        assert len({a.json()["event"] for a in answers.values()}) == 80
        held = stored(service)
        assert sorted(held) == sorted(bodies)  # every 200 is on disk, once
        again = post_all(service, dict(list(bodies.items())[:10]))  # the senders' retries
        assert {a.json()["status"] for a in again.values()} == {"duplicate"}
        assert sorted(stored(service)) == sorted(bodies)
        assert jobs(service) == {"queued": 80}
    finally:
        service.stop()


def test_when_the_commit_fails_each_webhook_in_it_gets_503_and_none_is_stored(tmp_path, sandbox):
    bodies = orders(24)
    service = intake_only(tmp_path, sandbox)
    try:
        healthy = service.queue.db.connection
        service.queue.db.connection = FailingCommits(healthy)
        answers = post_all(service, bodies)
        assert {a.status_code for a in answers.values()} == {503}
        assert all(a.headers.get("Retry-After") for a in answers.values())
        assert stored(service) == []
        service.queue.db.connection = healthy
        answers = post_all(service, bodies)  # the senders try again
        assert {a.status_code for a in answers.values()} == {200}
        assert sorted(stored(service)) == sorted(bodies)
    finally:
        service.stop()


def test_the_worker_evaluates_each_event_once_and_delivers_it_once(tmp_path, sandbox, monkeypatch):
    evaluated: list[Any] = []
    lock = threading.Lock()
    original = CompiledMapping.evaluate

    def counting(self: CompiledMapping, record: Any, where: str) -> Any:
        with lock:
            evaluated.append(record.get("id") if isinstance(record, dict) else record)
        return original(self, record, where)

    monkeypatch.setattr(CompiledMapping, "evaluate", counting)
    bodies = orders(12)
    # one batch of all of them: the intake stores them before the worker is let in
    with serving(tmp_path, sandbox, batch_every_seconds=0.5) as service:
        answers = post_all(service, bodies)
        assert {a.status_code for a in answers.values()} == {200}
        wait_for(lambda: jobs(service).get("sent") == 12)
    assert sorted(evaluated) == sorted(7_000_000 + n for n in range(1, 13))
    found = contacts(sandbox)
    assert {found[f"buyer{n}@example.com"]["total_number_of_orders"] for n in range(1, 13)} == {"1"}
