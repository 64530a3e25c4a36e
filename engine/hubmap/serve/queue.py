"""The durable webhook queue: accepted events and, per event and mapping, a job; in one SQLite
file (one machine), or in PostgreSQL (any number of intake and worker processes, on any machines).

    events  id, route, delivery_id (UNIQUE per route: a sender's retry is stored once), topic,
            received_at, body (the raw bytes as signed)
    jobs    (mapping, event_id), status, attempts, next_at, owner, lease_until, detail, done_at

A job's life:  queued -> processing -> sent | skipped | dead,  and processing -> queued again
when an attempt fails (attempts + 1, next_at pushed back) or when its worker is gone.  `enqueue`
commits before it returns, so an event is on disk (WAL, synchronous=FULL) before the sender gets
its 2xx.  A worker `claim`s jobs by writing its owner (host:pid:token) and a lease; a job whose
owner process died or whose lease ran out is `recover`ed into the queue, so an event being
processed when the server was killed is processed again: at-least-once into the runner, whose
ledger of order ids makes it count once.  A dead owner is known on SQLite by its pid (same host);
on PostgreSQL by the advisory lock each queue connection holds under its owner name, which the
server lets go when the process dies on any machine.  On PostgreSQL several workers claim at once:
each takes rows no other claim holds (`FOR UPDATE SKIP LOCKED`).  Dead letters stay until
`requeue`d; sent and skipped events are deleted after the configured number of days (`prune`).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubmap import sql

SCHEMA_VERSION = 1
LEASE_SECONDS = 15 * 60.0  # a claim outlives any one run; a dead owner is noticed sooner
BUSY_TIMEOUT_SECONDS = 30

QUEUED, PROCESSING, SENT, SKIPPED, DEAD = "queued", "processing", "sent", "skipped", "dead"
STATUSES = (QUEUED, PROCESSING, SENT, SKIPPED, DEAD)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id {serial}, route TEXT NOT NULL, delivery_id TEXT NOT NULL,
    topic TEXT, received_at {real} NOT NULL, body {blob} NOT NULL,
    UNIQUE (route, delivery_id));
CREATE TABLE IF NOT EXISTS jobs (
    mapping TEXT NOT NULL, event_id INTEGER NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_at {real} NOT NULL, owner TEXT,
    lease_until {real}, detail TEXT, done_at {real},
    PRIMARY KEY (mapping, event_id));
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (status, mapping, next_at);
"""


class QueueError(RuntimeError):
    """The queue cannot be used (not a hubmap queue, newer version, unreadable)."""


@dataclass(frozen=True)
class Claimed:
    """A job handed to a worker, with its event."""

    event_id: int
    route: str
    topic: str | None
    received_at: float
    body: bytes
    attempts: int  # failed attempts so far


@dataclass(frozen=True)
class Outcome:
    """How one claimed job ended: sent, skipped, dead, or (status queued) retry at `retry_at`."""

    event_id: int
    status: str
    detail: str | None = None
    retry_at: float | None = None
    failed: bool = True  # a retry that counts as a failed attempt (False: just put back)


@dataclass
class _Pending:
    """An event waiting for the group commit, then its result (or the error that stopped it)."""

    event: tuple[str, str, str | None, bytes, tuple[str, ...]]
    result: tuple[int, bool] | None = None
    error: BaseException | None = None
    done: bool = False


def process_owner() -> str:
    """host:pid:token; the token tells this process from an earlier one with the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{_TOKEN}"


_TOKEN = secrets.token_hex(4)


class Queue:
    """One connection, serialised by a lock; safe to share between threads."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()  # the connection; held for a whole transaction
        # the group commit: events waiting for the next commit, and whether one is under way
        self._commit = threading.Condition()
        self._pending: list[_Pending] = []
        self._committing = False
        try:
            self.db = sql.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS)
            # PostgreSQL: the queue may share its database with the state, whose own table is
            # `meta`; a queue file keeps the name it always had
            self._meta = "queue_meta" if self.db.is_postgresql else "meta"
            if not self.db.is_postgresql:
                self.db.execute("PRAGMA journal_mode=WAL")
                # FULL: a commit is on disk (fsync) before the sender hears 2xx, even on power
                # loss (PostgreSQL's commit is durable by default)
                self.db.execute("PRAGMA synchronous=FULL")
            with self.db.schema_lock():
                self.db.script(
                    self.db.dialect.ddl(_SCHEMA, real=_REAL[self.db.dialect.name], meta=self._meta)
                )
            version = self.db.execute(
                f"SELECT value FROM {self._meta} WHERE key='schema'"
            ).fetchone()
            # this process's jobs are known to be its own while this lock is held (PostgreSQL)
            self.db.try_lock(_owner_lock(process_owner()))
        except sql.DatabaseError as error:
            raise QueueError(
                f"'{sql.shown(self.path)}' is not a usable hubmap queue: {error}"
            ) from None
        if version is None:
            self.db.execute(
                f"INSERT INTO {self._meta} (key, value) VALUES ('schema', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
        elif int(version[0]) > SCHEMA_VERSION:
            raise QueueError(
                f"'{sql.shown(self.path)}' was written by a newer hubmap (queue "
                f"version "
                f"{version[0]}); upgrade hubmap"
            )

    def close(self) -> None:
        with self._lock:
            self.db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sql.Database]:
        with self._lock, self.db.transaction():
            yield self.db

    # -- intake ----------------------------------------------------------------------------

    def enqueue(
        self, route: str, delivery_id: str, topic: str | None, body: bytes, mappings: Iterable[str]
    ) -> tuple[int, bool]:
        """Store an event and a job per mapping, committed; (event id, False) for a delivery
        id already stored on this route (nothing new is written).

        Group commit: events that arrive while a commit is on its way to disk wait for it to
        end; then one of their threads commits all of them in one transaction, so each waits for
        one disk flush, not one flush each.  Every caller returns only after the transaction
        holding its event is committed; when that transaction fails, every caller whose event
        was in it gets the error (and nothing of them is stored)."""
        item = _Pending((route, delivery_id, topic, body, tuple(mappings)))
        batch: list[_Pending] = []
        with self._commit:
            self._pending.append(item)
            while self._committing and not item.done:
                self._commit.wait()
            if not item.done:  # no commit under way: this thread commits what waits
                self._committing = True
                batch, self._pending = self._pending, []
        if batch:
            try:
                self._write_events(batch)
            finally:
                with self._commit:
                    self._committing = False
                    self._commit.notify_all()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _write_events(self, batch: list[_Pending]) -> None:
        """One transaction for `batch`; every item is done afterwards, with its result or the
        error that stopped the transaction (then none of them is stored)."""
        now = time.time()
        with self._lock:
            try:
                with self.db.transaction():
                    results = [self._insert_event(self.db, *item.event, now) for item in batch]
            except BaseException as error:  # noqa: BLE001 - each waiting request answers it
                for item in batch:
                    item.error, item.done = error, True
                if self.db.in_transaction:  # a failed COMMIT may leave it open
                    self.db.execute("ROLLBACK")
                return
        for item, result in zip(batch, results):
            item.result, item.done = result, True

    @staticmethod
    def _insert_event(
        db: sql.Database,
        route: str,
        delivery_id: str,
        topic: str | None,
        body: bytes,
        mappings: tuple[str, ...],
        now: float,
    ) -> tuple[int, bool]:
        made = db.execute(
            "INSERT INTO events (route, delivery_id, topic, received_at, body) VALUES "
            "(?,?,?,?,?) ON CONFLICT (route, delivery_id) DO NOTHING RETURNING id",
            (route, delivery_id, topic, now, body),
        ).fetchone()
        if made is None:  # a retry of a delivery stored before
            row = db.execute(
                "SELECT id FROM events WHERE route=? AND delivery_id=?", (route, delivery_id)
            ).fetchone()
            return int(row[0]), False
        event_id = int(made[0])
        db.executemany(
            "INSERT INTO jobs (mapping, event_id, status, next_at) VALUES (?,?,?,?)",
            [(m, event_id, QUEUED, now) for m in mappings],
        )
        return event_id, True

    # -- the worker's side -----------------------------------------------------------------

    def claim(
        self, mapping: str, limit: int, owner: str, lease_seconds: float = LEASE_SECONDS
    ) -> list[Claimed]:
        """Up to `limit` due jobs of `mapping`, oldest first, marked as processing by `owner`."""
        now = time.time()
        # PostgreSQL: rows another worker's claim holds are passed over, not waited for
        skip_taken = " FOR UPDATE OF j SKIP LOCKED" if self.db.is_postgresql else ""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT e.id, e.route, e.topic, e.received_at, e.body, j.attempts FROM jobs j "
                "JOIN events e ON e.id = j.event_id WHERE j.status=? AND j.mapping=? AND "
                "j.next_at<=? ORDER BY j.next_at, j.event_id LIMIT ?" + skip_taken,
                (QUEUED, mapping, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE jobs SET status=?, owner=?, lease_until=? WHERE mapping=? AND event_id=?",
                [(PROCESSING, owner, now + lease_seconds, mapping, r[0]) for r in rows],
            )
        return [Claimed(int(r[0]), r[1], r[2], float(r[3]), bytes(r[4]), int(r[5])) for r in rows]

    def finish(self, mapping: str, outcomes: Iterable[Outcome]) -> None:
        """Record how claimed jobs ended, in one transaction."""
        now = time.time()
        rows = [
            (
                o.status,
                o.retry_at if o.status == QUEUED and o.retry_at is not None else now,
                1 if o.failed and o.status in (QUEUED, DEAD) else 0,
                o.detail,
                None if o.status == QUEUED else now,
                mapping,
                o.event_id,
            )
            for o in outcomes
        ]
        with self._transaction() as db:
            db.executemany(
                "UPDATE jobs SET status=?, next_at=?, attempts=attempts+?, detail=?, done_at=?, "
                "owner=NULL, lease_until=NULL WHERE mapping=? AND event_id=? AND status=?",
                [(*row, PROCESSING) for row in rows],
            )

    def recover(self) -> int:
        """Put back the jobs of workers that are gone (process ended on this host, an earlier
        process with this pid, or a lease that ran out); returns how many."""
        now = time.time()
        host = socket.gethostname()
        mine = process_owner()
        with self._transaction() as db:
            owners = [
                r[0]
                for r in db.execute("SELECT DISTINCT owner FROM jobs WHERE status=?", (PROCESSING,))
            ]
            gone = [o for o in owners if o != mine and self._owner_gone(o, host)]
            count = 0
            for owner in gone:
                count += db.execute(
                    "UPDATE jobs SET status=?, owner=NULL, lease_until=NULL WHERE status=? AND "
                    "owner=?",
                    (QUEUED, PROCESSING, owner),
                ).rowcount
            count += db.execute(
                "UPDATE jobs SET status=?, owner=NULL, lease_until=NULL WHERE status=? AND "
                "lease_until<?",
                (QUEUED, PROCESSING, now),
            ).rowcount
        return count

    def _owner_gone(self, owner: str, host: str) -> bool:
        if not self.db.is_postgresql:
            return _owner_gone(owner, host)
        # the owner's connection holds its lock while it lives; taking it proves it is gone
        if not self.db.try_lock(_owner_lock(owner)):
            return False
        self.db.unlock(_owner_lock(owner))
        return True

    def hand_back(self, owner: str) -> int:
        """Put `owner`'s claimed jobs back in the queue (a worker stopping); how many."""
        with self._transaction() as db:
            return int(
                db.execute(
                    "UPDATE jobs SET status=?, owner=NULL, lease_until=NULL WHERE status=? AND "
                    "owner=?",
                    (QUEUED, PROCESSING, owner),
                ).rowcount
            )

    def next_due(self, mapping: str) -> float | None:
        """When the earliest queued job of `mapping` is due (epoch seconds), or None."""
        with self._lock:
            row = self.db.execute(
                "SELECT MIN(next_at) FROM jobs WHERE status=? AND mapping=?", (QUEUED, mapping)
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def prune(self, older_than_seconds: float) -> int:
        """Delete sent and skipped jobs done before the cutoff, and events left without jobs."""
        cutoff = time.time() - older_than_seconds
        with self._transaction() as db:
            count = db.execute(
                "DELETE FROM jobs WHERE status IN (?,?) AND done_at<?", (SENT, SKIPPED, cutoff)
            ).rowcount
            db.execute("DELETE FROM events WHERE id NOT IN (SELECT event_id FROM jobs)")
        return count

    # -- people's side ---------------------------------------------------------------------

    def requeue(self, event_ids: Iterable[int] | None = None, mapping: str | None = None) -> int:
        """Dead letters back into the queue with a fresh count of attempts (all of them, or the
        given events, optionally of one mapping); returns how many jobs."""
        now = time.time()
        query = (
            "UPDATE jobs SET status=?, attempts=0, next_at=?, detail=NULL, done_at=NULL "
            "WHERE status=?"
        )
        args: list[Any] = [QUEUED, now, DEAD]
        if mapping is not None:
            query += " AND mapping=?"
            args.append(mapping)
        with self._transaction() as db:
            if event_ids is None:
                return int(db.execute(query, args).rowcount)
            return sum(
                int(db.execute(query + " AND event_id=?", [*args, e]).rowcount) for e in event_ids
            )

    def counts(self) -> dict[tuple[str, str], int]:
        """(mapping, status) -> number of jobs."""
        with self._lock:
            return {
                (r[0], r[1]): int(r[2])
                for r in self.db.execute(
                    "SELECT mapping, status, COUNT(*) FROM jobs GROUP BY mapping, status"
                )
            }

    def backlog(self) -> dict[str, Any]:
        """What is waiting: queued, processing and dead jobs, and the age (seconds) of the oldest
        event not yet settled (queued or being sent; None when nothing waits)."""
        with self._lock:
            counts = {
                r[0]: int(r[1])
                for r in self.db.execute(
                    "SELECT status, COUNT(*) FROM jobs WHERE status IN (?,?,?) GROUP BY status",
                    (QUEUED, PROCESSING, DEAD),
                )
            }
            oldest = self.db.execute(
                "SELECT MIN(e.received_at) FROM jobs j JOIN events e ON e.id = j.event_id "
                "WHERE j.status IN (?,?)",
                (QUEUED, PROCESSING),
            ).fetchone()[0]
        return {
            "queued": counts.get(QUEUED, 0),
            "processing": counts.get(PROCESSING, 0),
            "dead": counts.get(DEAD, 0),
            "oldest_queued_seconds": None
            if oldest is None
            else round(max(0.0, time.time() - float(oldest)), 3),
        }

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "event": r[0],
                    "mapping": r[1],
                    "route": r[2],
                    "delivery_id": r[3],
                    "topic": r[4],
                    "received_at": r[5],
                    "attempts": r[6],
                    "reason": r[7],
                }
                for r in self.db.execute(
                    "SELECT j.event_id, j.mapping, e.route, e.delivery_id, e.topic, "
                    "e.received_at, j.attempts, j.detail FROM jobs j JOIN events e ON "
                    "e.id = j.event_id WHERE j.status=? ORDER BY j.event_id LIMIT ?",
                    (DEAD, limit),
                )
            ]

    def latencies(self, mapping: str | None = None) -> list[float]:
        """Seconds from acceptance to done of every sent job (for benchmarks)."""
        query = (
            "SELECT j.done_at - e.received_at FROM jobs j JOIN events e ON e.id = "
            "j.event_id WHERE j.status=?" + (" AND j.mapping=?" if mapping else "")
        )
        args: tuple[Any, ...] = (SENT, mapping) if mapping else (SENT,)
        with self._lock:
            return [float(r[0]) for r in self.db.execute(query, args)]


_REAL = {"sqlite": "REAL", "postgresql": "DOUBLE PRECISION"}


def _owner_lock(owner: str) -> str:
    return f"hubmap queue owner|{owner}"


def _owner_gone(owner: str, host: str) -> bool:
    """Whether the worker named `owner` (host:pid:token) can no longer be running."""
    owner_host, _, rest = owner.partition(":")
    pid_text, _, token = rest.partition(":")
    if owner_host != host or not pid_text.isdigit():
        return False  # another host: only its lease tells
    pid = int(pid_text)
    if pid == os.getpid():
        return token != _TOKEN  # an earlier process that had our pid (a restarted container)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def status_report(path: str | Path, limit: int = 20) -> dict[str, Any] | None:
    """What `hubmap status` can show about a queue file: counts per mapping and status, and the
    dead letters with their reasons; None when there is no queue file."""
    if not sql.is_url(str(path)) and not Path(path).exists():
        return None
    queue = Queue(path)
    try:
        per_mapping: dict[str, dict[str, int]] = {}
        for (mapping, status), count in sorted(queue.counts().items()):
            per_mapping.setdefault(mapping, dict.fromkeys(STATUSES, 0))[status] = count
        return {
            "queue": sql.shown(str(path)),
            "mappings": per_mapping,
            "dead_letters": queue.dead_letters(limit),
        }
    finally:
        queue.close()


def status_text(report: dict[str, Any]) -> str:
    lines = [f"queue: {report['queue']}"]
    if not report["mappings"]:
        lines.append("no webhooks received yet")
    for mapping, counts in report["mappings"].items():
        lines.append(f"{mapping}: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES))
    for dead in report["dead_letters"]:
        lines.append(
            f"  dead event {dead['event']} ({dead['mapping']}, {dead['route']}, "
            f"{dead['attempts']} attempt(s)): {dead['reason']}"
        )
    if report["dead_letters"]:
        lines.append("  send them again with: hubmap queue requeue [EVENT ...]")
    return "\n".join(lines)
