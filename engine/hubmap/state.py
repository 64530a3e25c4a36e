"""The local state store: which orders were counted, each contact's accumulated values, runs.

One SQLite file (WAL, every change in a transaction) per project; everything is kept per *scope*
(a portal and a mapping name), so one file can serve several mappings.  Per contact it keeps:

    baseline   HubSpot's values before hubmap first wrote them (read once, stored before writing)
    acc        merge accumulators of the orders whose values HubSpot has confirmed
    pending    merge accumulators of orders counted since (not yet confirmed by HubSpot)
    written    the values HubSpot confirmed last
    writing    the values being sent now (stored before the call, so a lost answer is recognised)

An order id enters the ledger in the same transaction that adds it to `pending`, so it is counted
once whatever happens after; HubSpot always receives absolute values computed from the state, so
sending them again is harmless.  A second run on the same scope is refused by a lock row that names
the running process (a lock whose process is gone, on this host, is taken over).

Also kept: rejected records with their reasons (pending until counted, sent or replayed), drift
found (HubSpot values someone changed), and in `meta` the mapping fingerprint each scope was
counted with and whether a rebuild of it is unfinished (see `hubmap.run`).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

DEFAULT_STATE_FILE = "hubmap-state.db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, mapping_file TEXT,
    input TEXT, started_at TEXT NOT NULL, ended_at TEXT, outcome TEXT, counts TEXT);
CREATE TABLE IF NOT EXISTS locks (
    scope TEXT PRIMARY KEY, run_id INTEGER, pid INTEGER, host TEXT, since TEXT);
CREATE TABLE IF NOT EXISTS orders (
    scope TEXT NOT NULL, order_id TEXT NOT NULL, contact TEXT NOT NULL, order_time TEXT,
    run_id INTEGER, status TEXT NOT NULL DEFAULT 'counted',
    PRIMARY KEY (scope, order_id));
CREATE TABLE IF NOT EXISTS contacts (
    scope TEXT NOT NULL, contact TEXT NOT NULL, hubspot_id TEXT,
    baseline TEXT, acc TEXT NOT NULL DEFAULT '{}', pending TEXT NOT NULL DEFAULT '{}',
    written TEXT, writing TEXT, dirty INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, updated_at TEXT,
    PRIMARY KEY (scope, contact));
CREATE INDEX IF NOT EXISTS contacts_dirty ON contacts (scope, dirty);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, run_id INTEGER,
    location TEXT, order_id TEXT, property TEXT, reason TEXT NOT NULL, code TEXT,
    kind TEXT NOT NULL, record TEXT, status TEXT NOT NULL DEFAULT 'pending', at TEXT);
CREATE INDEX IF NOT EXISTS rejects_pending ON rejects (scope, status);
CREATE TABLE IF NOT EXISTS drift (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, run_id INTEGER,
    contact TEXT NOT NULL, property TEXT NOT NULL, expected TEXT, found TEXT, at TEXT);
"""


class StateLockedError(RuntimeError):
    """Another run holds the scope."""


class StateError(RuntimeError):
    """The state file cannot be used (not a hubmap state, newer version, unreadable)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _plain(value: Any) -> Any:
    # Records read from JSON carry Decimals; up to 15 digits a float's text is the same number,
    # and records are read back with Decimals again (`_unjson`).
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=_plain)


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text, parse_float=Decimal)


@dataclass
class ContactRow:
    contact: str
    baseline: dict[str, str | None] | None = None
    acc: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, Any] = field(default_factory=dict)
    written: dict[str, str] | None = None
    writing: dict[str, str] | None = None
    hubspot_id: str | None = None
    dirty: bool = False
    last_error: str | None = None


class StateStore:
    def __init__(self, path: str | Path):
        self.path = str(path)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise StateError(f"'{self.path}' is not a usable hubmap state file: {error}") from None
        version = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if version is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(version[0]) > SCHEMA_VERSION:
            raise StateError(f"'{self.path}' was written by a newer hubmap (state version "
                             f"{version[0]}); upgrade hubmap")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # -- runs and the lock ---------------------------------------------------------------

    def start_run(self, scope: str, mapping_file: str, input_name: str) -> int:
        """Record a new run and take the scope's lock (StateLockedError if another run has it)."""
        with self.transaction() as db:
            held = db.execute("SELECT run_id, pid, host, since FROM locks WHERE scope=?",
                              (scope,)).fetchone()
            if held is not None and _alive(held[1], held[2]):
                raise StateLockedError(
                    f"another hubmap run (process {held[1]} on {held[2]}, since {held[3]}) is "
                    f"using this state for '{scope}'; wait for it to finish")
            cursor = db.execute(
                "INSERT INTO runs (scope, mapping_file, input, started_at) VALUES (?,?,?,?)",
                (scope, mapping_file, input_name, _now()))
            run_id = int(cursor.lastrowid or 0)
            db.execute("INSERT OR REPLACE INTO locks VALUES (?,?,?,?,?)",
                       (scope, run_id, os.getpid(), socket.gethostname(), _now()))
        return run_id

    def finish_run(self, scope: str, run_id: int, outcome: str, counts: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET ended_at=?, outcome=?, counts=? WHERE id=?",
                       (_now(), outcome, _json(counts), run_id))
            db.execute("DELETE FROM locks WHERE scope=? AND run_id=?", (scope, run_id))

    def runs(self, scope: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        query = "SELECT id, scope, mapping_file, input, started_at, ended_at, outcome, counts " \
                "FROM runs" + (" WHERE scope=?" if scope else "") + " ORDER BY id DESC LIMIT ?"
        args: tuple[Any, ...] = (scope, limit) if scope else (limit,)
        return [
            {"id": r[0], "scope": r[1], "mapping": r[2], "input": r[3], "started": r[4],
             "ended": r[5], "outcome": r[6] or "running or interrupted",
             "counts": _unjson(r[7]) or {}}
            for r in self.db.execute(query, args)
        ]

    # -- the order ledger ----------------------------------------------------------------

    def known_orders(self, scope: str, order_ids: Iterable[str]) -> set[str]:
        ids = list(order_ids)
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(row[0] for row in self.db.execute(
                f"SELECT order_id FROM orders WHERE scope=? AND order_id IN ({marks})",
                (scope, *chunk)))
        return known

    def order_status(self, scope: str, order_id: str) -> str | None:
        row = self.db.execute("SELECT status FROM orders WHERE scope=? AND order_id=?",
                              (scope, order_id)).fetchone()
        return row[0] if row else None

    def set_order(self, scope: str, order_id: str, contact: str, order_time: str, run_id: int,
                  status: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO orders VALUES (?,?,?,?,?,?)",
                       (scope, order_id, contact, order_time, run_id, status))
            db.execute("UPDATE rejects SET status='resolved' WHERE scope=? AND order_id=? AND "
                       "status='pending'", (scope, order_id))

    # -- contacts --------------------------------------------------------------------------

    def load_contacts(self, scope: str, contacts: Iterable[str]) -> dict[str, ContactRow]:
        keys = list(contacts)
        rows: dict[str, ContactRow] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(
                    "SELECT contact, baseline, acc, pending, written, writing, hubspot_id, dirty, "
                    f"last_error FROM contacts WHERE scope=? AND contact IN ({marks})",
                    (scope, *chunk)):
                rows[r[0]] = ContactRow(r[0], _unjson(r[1]), _unjson(r[2]), _unjson(r[3]),
                                        _unjson(r[4]), _unjson(r[5]), r[6], bool(r[7]), r[8])
        return rows

    def dirty_contacts(self, scope: str) -> Iterator[str]:
        """Contacts with values HubSpot has not confirmed yet (a snapshot, in key order)."""
        keys = [r[0] for r in self.db.execute(
            "SELECT contact FROM contacts WHERE scope=? AND dirty=1 ORDER BY contact", (scope,))]
        yield from keys

    def count_dirty(self, scope: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM contacts WHERE scope=? AND dirty=1",
                                   (scope,)).fetchone()[0])

    def count_orders(self, scope: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM orders WHERE scope=?",
                                   (scope,)).fetchone()[0])

    def save_counted(self, scope: str, run_id: int, rows: Iterable[ContactRow],
                     orders: Iterable[tuple[str, str, str]]) -> None:
        """Counted orders (id, contact, time) and their contacts' accumulators, atomically; a
        rejected record of the same order still pending is resolved by it."""
        now = _now()
        orders = list(orders)
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO orders (scope, order_id, contact, order_time, run_id) "
                "VALUES (?,?,?,?,?)",
                [(scope, order_id, contact, time, run_id) for order_id, contact, time in orders])
            db.executemany(
                "UPDATE rejects SET status='resolved' WHERE scope=? AND order_id=? AND "
                "status='pending'", [(scope, order_id) for order_id, _, _ in orders])
            db.executemany(
                "INSERT INTO contacts (scope, contact, acc, pending, dirty, updated_at) "
                "VALUES (?,?,?,?,1,?) ON CONFLICT (scope, contact) DO UPDATE SET "
                "pending=excluded.pending, dirty=1, updated_at=excluded.updated_at",
                [(scope, row.contact, _json(row.acc), _json(row.pending), now) for row in rows])

    def save_prepared(self, scope: str, run_id: int, baselines: Iterable[ContactRow],
                      drift: Iterable[tuple[str, str, str | None, str | None]],
                      writes: dict[str, dict[str, str]]) -> None:
        """Before a batch is sent, in one transaction: baselines read (or moved by drift) with
        their accumulators, the drift found, and the values about to be sent (`writing`)."""
        now = _now()
        with self.transaction() as db:
            db.executemany(
                "UPDATE contacts SET baseline=?, acc=?, hubspot_id=COALESCE(?, hubspot_id) "
                "WHERE scope=? AND contact=?",
                [(_json(r.baseline), _json(r.acc), r.hubspot_id, scope, r.contact)
                 for r in baselines])
            db.executemany(
                "INSERT INTO drift (scope, run_id, contact, property, expected, found, at) "
                "VALUES (?,?,?,?,?,?,?)",
                [(scope, run_id, c, p, e, f, now) for c, p, e, f in drift])
            db.executemany("UPDATE contacts SET writing=? WHERE scope=? AND contact=?",
                           [(_json(values), scope, contact) for contact, values in writes.items()])

    def save_written(self, scope: str, rows: Iterable[ContactRow]) -> None:
        """HubSpot confirmed: pending joins acc, `writing` becomes `written`."""
        now = _now()
        with self.transaction() as db:
            db.executemany(
                "UPDATE contacts SET acc=?, pending='{}', written=?, writing=NULL, dirty=0, "
                "last_error=NULL, hubspot_id=COALESCE(?, hubspot_id), updated_at=? "
                "WHERE scope=? AND contact=?",
                [(_json(r.acc), _json(r.written), r.hubspot_id, now, scope, r.contact)
                 for r in rows])

    def save_failed(self, scope: str, failures: dict[str, str]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE contacts SET last_error=? WHERE scope=? AND contact=?",
                           [(reason, scope, contact) for contact, reason in failures.items()])

    def failed_contacts(self, scope: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.db.execute(
            "SELECT contact, last_error FROM contacts WHERE scope=? AND dirty=1 AND "
            "last_error IS NOT NULL ORDER BY contact", (scope,))]

    def drift_items(self, scope: str, run_id: int | None = None) -> list[dict[str, Any]]:
        query = "SELECT run_id, contact, property, expected, found, at FROM drift WHERE scope=?"
        args: tuple[Any, ...] = (scope,)
        if run_id is not None:
            query += " AND run_id=?"
            args = (scope, run_id)
        return [{"run": r[0], "contact": r[1], "property": r[2], "expected": r[3],
                 "found": r[4], "at": r[5]} for r in self.db.execute(query + " ORDER BY id", args)]

    # -- the mapping a scope was counted with ----------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def fingerprint(self, scope: str) -> dict[str, Any] | None:
        """What the scope's stored counts were computed with (see `hubmap.run.fingerprint`)."""
        return _unjson(self._meta(f"fingerprint|{scope}"))

    def rebuilding(self, scope: str) -> bool:
        """Whether a rebuild of the scope was started and has not completed."""
        return self._meta(f"rebuilding|{scope}") is not None

    def save_fingerprint(self, scope: str, fingerprint: dict[str, Any],
                         started: Iterable[str] = ()) -> None:
        """Record the mapping in use; properties in `started` begin afresh: what is stored of them
        from an earlier use of the name (accumulators, baseline, values written) is forgotten, so
        HubSpot's value at their next write becomes their baseline and only orders counted from
        now on are added to it."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)",
                       (f"fingerprint|{scope}", _json(fingerprint)))
            for name in started:
                path = f'$."{name}"'
                db.execute(
                    "UPDATE contacts SET acc=json_remove(acc, ?1), "
                    "pending=json_remove(pending, ?1), baseline=json_remove(baseline, ?1), "
                    "written=json_remove(written, ?1), "
                    "writing=json_remove(writing, ?1) WHERE scope=?2", (path, scope))

    def start_rebuild(self, scope: str) -> None:
        """Forget which orders were counted and every contact's accumulators (baselines, and what
        HubSpot was sent, are kept); every contact is to be written again.  Until
        `end_rebuild`, the scope is marked as being rebuilt."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (f"rebuilding|{scope}", _now()))
            db.execute("DELETE FROM orders WHERE scope=?", (scope,))
            db.execute("UPDATE contacts SET acc='{}', pending='{}', dirty=1 WHERE scope=?",
                       (scope,))

    def end_rebuild(self, scope: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM meta WHERE key=?", (f"rebuilding|{scope}",))

    # -- rejected records ------------------------------------------------------------------

    def add_rejects(self, scope: str, run_id: int, items: Iterable[dict[str, Any]]) -> None:
        """Keep rejected (or failed) records with their reasons; a record already pending (the
        same order id, or the same place when it has none) is replaced, not kept twice."""
        items = list(items)
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM rejects WHERE scope=? AND status='pending' AND kind=? AND "
                "((order_id IS NOT NULL AND order_id=?) OR (order_id IS NULL AND ? IS NULL AND "
                "location=?))",
                [(scope, i.get("kind", "rejected"), i.get("order_id"), i.get("order_id"),
                  i.get("where")) for i in items])
            db.executemany(
                "INSERT INTO rejects (scope, run_id, location, order_id, property, reason, code, "
                "kind, record, at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(scope, run_id, i.get("where"), i.get("order_id"), i.get("property"),
                  i["reason"], i.get("code"), i.get("kind", "rejected"), _json(i.get("record")),
                  _now()) for i in items])

    def pending_rejects(self, scope: str) -> list[dict[str, Any]]:
        return [
            {"id": r[0], "where": r[1], "order_id": r[2], "property": r[3], "reason": r[4],
             "code": r[5], "kind": r[6], "record": _unjson(r[7])}
            for r in self.db.execute(
                "SELECT id, location, order_id, property, reason, code, kind, record FROM "
                "rejects WHERE scope=? AND status='pending' ORDER BY id", (scope,))
        ]

    def resolve_rejects(self, ids: Iterable[int]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE rejects SET status='resolved' WHERE id=?",
                           [(i,) for i in ids])

    def scopes(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT scope FROM runs UNION SELECT DISTINCT scope FROM contacts")]


def _alive(pid: int | None, host: str | None) -> bool:
    """Whether the process holding a lock still runs (other hosts: assume it does)."""
    if pid is None:
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
