"""The queue's group commit: events arriving while a commit is on its way to disk are committed
together in the next transaction; each caller returns only once its event is committed (another
connection sees it), and when a transaction fails every caller whose event was in it gets the
error and none of them is stored."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hubmap.serve.queue import Queue

WAIT_SECONDS = 10.0


class HeldCommits:
    """Stands in for the queue's connection: each COMMIT waits until `release()` (so the events
    that arrive meanwhile pile up), and fails with a disk error while `failing` is set."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        self.commits_started = 0
        self.batches: list[int] = []  # events inserted per transaction that reached COMMIT
        self.failing = False
        self._inserted = 0
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "BEGIN IMMEDIATE":
            self._inserted = 0
        elif sql.startswith("INSERT INTO events"):
            self._inserted += 1
        elif sql == "COMMIT":
            self.commits_started += 1
            self.batches.append(self._inserted)
            assert self._released.wait(WAIT_SECONDS)
            if self.failing:
                raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def stored(path: Path) -> set[str]:
    """The delivery ids committed to the queue file, read through a connection of its own."""
    with sqlite3.connect(path) as other:
        return {r[0] for r in other.execute("SELECT delivery_id FROM events")}


def wait_until(condition: Any) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Senders:
    """Threads each enqueueing one event; what each got (result or error) and whether its event
    was visible to another connection the moment enqueue returned."""

    def __init__(self, queue: Queue, path: Path):
        self.queue, self.path = queue, path
        self.results: dict[str, Any] = {}
        self.visible_on_return: dict[str, bool] = {}
        self.threads: list[threading.Thread] = []

    def send(self, delivery: str) -> None:
        def post() -> None:
            try:
                self.results[delivery] = self.queue.enqueue(
                    "/shopify", delivery, "orders/create", b'{"id": 1}', ["m1", "m2"]
                )
            except sqlite3.Error as error:
                self.results[delivery] = error
            self.visible_on_return[delivery] = delivery in stored(self.path)

        thread = threading.Thread(target=post)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(WAIT_SECONDS)
            assert not thread.is_alive()


@pytest.fixture
def held(tmp_path: Path) -> tuple[Queue, HeldCommits, Path]:
    path = tmp_path / "queue.db"
    queue = Queue(path)
    connection = HeldCommits(queue.db.connection)
    queue.db.connection = connection
    yield queue, connection, path
    queue.close()


def test_events_arriving_during_a_commit_share_the_next_one_and_return_once_durable(held):
    queue, connection, path = held
    senders = Senders(queue, path)
    senders.send("first")
    wait_until(lambda: connection.commits_started == 1)  # its commit is on its way to disk
    later = [f"d{n}" for n in range(30)]
    for delivery in later:
        senders.send(delivery)
    wait_until(lambda: len(queue._pending) == len(later))
    assert senders.results == {}  # nobody is answered before the commit holding its event
    connection.release()
    senders.join()

    assert connection.batches == [1, len(later)]  # 31 events, two transactions (two fsyncs)
    assert all(senders.visible_on_return.values()) and len(senders.visible_on_return) == 31
    ids = [result[0] for result in senders.results.values()]
    assert len(set(ids)) == 31 and all(new for _, new in senders.results.values())
    assert stored(path) == {"first", *later}
    with sqlite3.connect(path) as other:  # each event's jobs went in with it
        assert other.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 62


def test_a_commit_that_fails_fails_every_request_in_it_and_stores_none_of_them(held):
    queue, connection, path = held
    senders = Senders(queue, path)
    senders.send("first")
    wait_until(lambda: connection.commits_started == 1)
    doomed = [f"d{n}" for n in range(12)]
    for delivery in doomed:
        senders.send(delivery)
    wait_until(lambda: len(queue._pending) == len(doomed))
    # the first transaction commits; the one holding the 12 waiting events fails at its COMMIT
    original_execute = connection.execute

    def fail_second_commit(sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            connection.failing = connection.commits_started == 1
        return original_execute(sql, *args)

    connection.execute = fail_second_commit  # type: ignore[method-assign]
    connection.release()
    senders.join()

    assert connection.batches == [1, len(doomed)]
    assert isinstance(senders.results["first"], tuple)
    for delivery in doomed:  # each is answered with the error (the intake says 503), never 200
        assert isinstance(senders.results[delivery], sqlite3.OperationalError)
        assert not senders.visible_on_return[delivery]
    assert stored(path) == {"first"}
    assert not queue.db.in_transaction  # rolled back: the connection is usable again
    connection.execute = original_execute  # type: ignore[method-assign]
    connection.failing = False
    _, new = queue.enqueue("/shopify", "d0", "orders/create", b"{}", ["m1"])
    assert new and stored(path) == {"first", "d0"}


def test_a_delivery_sent_again_in_the_same_commit_is_stored_once(tmp_path):
    path = tmp_path / "queue.db"
    queue = Queue(path)
    try:
        results: list[tuple[int, bool]] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    queue.enqueue("/shopify", "same", None, b"{}", ["m1"])
                )
            )
            for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_SECONDS)
        assert len(results) == 20 and len({event for event, _ in results}) == 1
        assert sum(new for _, new in results) == 1
        assert stored(path) == {"same"}
    finally:
        queue.close()
