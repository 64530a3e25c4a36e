"""The local state store: every order with its latest version and contribution, refunds, contacts.

One SQLite file (WAL, every change in a transaction) per project; everything is kept per *scope*
(a portal and a mapping name), so one file can serve several mappings.

    orders     per order id: contact, order time, version, content digest, status (counted,
               withdrawn, or sent for a form), its contribution (the typed value each property
               takes from it), and two sequence numbers: `seq` of the stored version and
               `first_seq` of the order's first version (see `hubmap.fold.Cutoffs`)
    refunds    per refund id: the order it names, its digest and the amounts it adds
    contacts   baseline   HubSpot's values before hubmap first wrote them (read once, stored
                          before the first write)
               acc        the merge accumulators of the contact's current contributions (a cache
                          of their fold: the fast path adds a new order to it, any other change
                          folds the contact's orders afresh)
               cutoffs    per property, the version seq up to which orders are inside a value
                          someone edited in HubSpot (drift on a non-sum rule)
               written    the values HubSpot confirmed last; `writing` the values being sent now
                          (stored before the call, so a lost answer is recognised)
               dirty      values HubSpot has not confirmed yet

The JSON values that grow with a contact's history (baselines, accumulators, values written,
being written and to send, and each order's and refund's contribution) are stored compressed
(`Packer`: deflate with a preset dictionary per scope and kind of value, made from the first
values of that kind and kept in `dictionaries`), which keeps a contact near 1 KB; values stored
as plain JSON text by an older hubmap are read as they are.

An order version enters `orders` in the same transaction that folds it into its contact's `acc`
and marks the contact dirty, so whatever happens after, the next run sends the same absolute
values.  A second run on the same scope is refused by a lock row naming the running process (a
lock whose process is gone, on this host, is taken over).

Also kept: rejected records with their reasons (pending until counted, sent or replayed), drift
found, and in `meta` the mapping fingerprint each scope was counted with, the properties started
later (`started|scope`: property -> seq), unfinished rebuilds, and scopes of a 0.1 state file that
must be rebuilt (0.1 kept no per-order contributions).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hubmap import deflate, sql
from hubmap.ledger import ContactRow, StoredOrder, StoredRefund

DEFAULT_STATE_FILE = "hubmap-state.db"
SCHEMA_VERSION = 3  # 3: compressed JSON values (2 is read as it is)
CHUNK = 500  # ids per IN (...) query


_ORDERS_TABLE = """
CREATE TABLE IF NOT EXISTS orders (
    scope TEXT NOT NULL, order_id TEXT NOT NULL, contact TEXT, order_time TEXT,
    run_id INTEGER, status TEXT NOT NULL DEFAULT 'counted',
    version TEXT, digest TEXT, contribution {blob}, seq INTEGER, first_seq INTEGER,
    PRIMARY KEY (scope, order_id))"""

_SCHEMA = (
    _ORDERS_TABLE
    + """;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id {serial}, scope TEXT NOT NULL, mapping_file TEXT,
    input TEXT, started_at TEXT NOT NULL, ended_at TEXT, outcome TEXT, counts TEXT);
CREATE TABLE IF NOT EXISTS locks (
    scope TEXT PRIMARY KEY, run_id INTEGER, pid INTEGER, host TEXT, since TEXT);
CREATE TABLE IF NOT EXISTS refunds (
    scope TEXT NOT NULL, refund_id TEXT NOT NULL, order_id TEXT NOT NULL, digest TEXT NOT NULL,
    contribution {blob} NOT NULL, seq INTEGER NOT NULL, run_id INTEGER,
    PRIMARY KEY (scope, refund_id));
CREATE TABLE IF NOT EXISTS contacts (
    scope TEXT NOT NULL, contact TEXT NOT NULL, hubspot_id TEXT,
    baseline {blob}, acc {acc},
    written {blob}, writing {blob}, dirty INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, updated_at TEXT,
    cutoffs TEXT NOT NULL DEFAULT '{{}}', folded_seq INTEGER NOT NULL DEFAULT 0,
    written_seq INTEGER NOT NULL DEFAULT 0, counted TEXT NOT NULL DEFAULT '',
    fence_written TEXT, fence_writing TEXT, sending {blob}, alias_of TEXT,
    PRIMARY KEY (scope, contact));
CREATE TABLE IF NOT EXISTS rejects (
    id {serial}, scope TEXT NOT NULL, run_id INTEGER,
    location TEXT, order_id TEXT, property TEXT, reason TEXT NOT NULL, code TEXT,
    kind TEXT NOT NULL, record TEXT, status TEXT NOT NULL DEFAULT 'pending', at TEXT);
CREATE TABLE IF NOT EXISTS dictionaries (
    id {dictionary_id}, scope TEXT NOT NULL, kind TEXT NOT NULL, data {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS drift (
    id {serial}, scope TEXT NOT NULL, run_id INTEGER,
    contact TEXT NOT NULL, property TEXT NOT NULL, expected TEXT, found TEXT, at TEXT);
"""
)

# Every table with its columns, as `copy_into` copies them; the packed ones are marked '*'.
_TABLES = {
    "meta": "key value",
    "dictionaries": "id scope kind data",
    "runs": "id scope mapping_file input started_at ended_at outcome counts",
    "orders": "scope order_id contact order_time run_id status version digest *contribution seq "
    "first_seq",
    "refunds": "scope refund_id order_id digest *contribution seq run_id",
    "contacts": "scope contact hubspot_id *baseline *acc *written *writing dirty last_error "
    "updated_at cutoffs folded_seq written_seq counted fence_written fence_writing "
    "*sending alias_of",
    "rejects": "id scope run_id location order_id property reason code kind record status at",
    "drift": "id scope run_id contact property expected found at",
}
_NUMBERED = ("dictionaries", "runs", "rejects", "drift")  # their ids are copied as they are
COPY_ROWS = 1_000  # rows read and written at a time by `copy_into`

# The packed values' columns hold bytes (`Packer`); SQLite files of schema 2 hold JSON text in
# some, which SQLite's dynamic types allow.  An accumulator is never missing in SQLite ('{}' when
# empty); PostgreSQL's byte column holds NULL for none.
_TYPES = {
    "sqlite": {"acc": "TEXT NOT NULL DEFAULT '{}'", "dictionary_id": "INTEGER PRIMARY KEY"},
    "postgresql": {"acc": "BYTEA", "dictionary_id": sql.POSTGRESQL.serial},
}

# Every query of a run finds its rows through an index, so a run costs what it changes:
# contacts_dirty_key serves "the dirty contacts of a scope, in key order" from the index alone
# (the older contacts_dirty, without the key, left SQLite walking every contact of the scope);
# contacts_record the keys of HubSpot record ids (each batch written looks its records up);
# orders_contact_status a contact's counted orders, and the tally by status from the index alone
# (the older orders_contact, without the status, read every order row of the scope for it);
# rejects_pending_order a pending rejected record of an order id (resolved when the order is
# stored), instead of walking every pending record of the scope.
_INDEXES = """
DROP INDEX IF EXISTS contacts_dirty;
DROP INDEX IF EXISTS rejects_pending;
DROP INDEX IF EXISTS orders_contact;
CREATE INDEX IF NOT EXISTS contacts_dirty_key ON contacts (scope, dirty, contact);
CREATE INDEX IF NOT EXISTS contacts_record ON contacts (scope, hubspot_id);
CREATE INDEX IF NOT EXISTS orders_contact_status ON orders (scope, contact, status);
CREATE INDEX IF NOT EXISTS refunds_order ON refunds (scope, order_id);
CREATE INDEX IF NOT EXISTS rejects_pending_order ON rejects (scope, status, order_id);
"""

# 0.1 (schema 1) files: the contacts table gains these columns, the orders table is made anew.
_UPGRADE_CONTACT_COLUMNS = [
    "cutoffs TEXT NOT NULL DEFAULT '{}'",
    "folded_seq INTEGER NOT NULL DEFAULT 0",
    "written_seq INTEGER NOT NULL DEFAULT 0",
    "counted TEXT NOT NULL DEFAULT ''",
    "fence_written TEXT",
    "fence_writing TEXT",
    "sending TEXT",
    "alias_of TEXT",
]


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
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, default=_plain, separators=(",", ":")
    )


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text, parse_float=Decimal)


# Packed values are only read back by hubmap (no key order needed); made once, not per value.
_PACKED_TEXT = json.JSONEncoder(ensure_ascii=False, default=_plain, separators=(",", ":"))
_PACKED_READ = json.JSONDecoder(parse_float=Decimal)


class Packer:
    """The stored form of JSON values: deflate, with a preset dictionary per scope and kind of
    value (accumulators, baselines, values, contributions).  The values of a kind repeat the
    same texts - property and rule names, the time and id of the latest order in every
    overwrite accumulator - so a dictionary made of the first values (`SAMPLE_BYTES` of their
    JSON, gathered while they are stored without one) makes each value a third of its plain
    deflate.  A stored value is a BLOB: its dictionary's id (2 bytes, 0: none) and the deflate
    stream.  Dictionaries are never changed once stored; one made in a transaction that rolls
    back is forgotten with it."""

    SAMPLE_BYTES = 8192
    _HEADER = struct.Struct(">H")

    def __init__(self, db: sql.Database):
        self.db = db
        self.dictionaries: dict[int, bytes] = {}
        self.current: dict[tuple[str, str], int] = {}  # (scope, kind) -> dictionary in use
        self.samples: dict[tuple[str, str], list[str]] = {}
        self.made: list[tuple[int, tuple[str, str]]] = []  # in the open transaction
        self.compressors: dict[int, Any] = {0: deflate.compressor()}
        for ident, scope, kind, data in db.execute(
            "SELECT id, scope, kind, data FROM dictionaries ORDER BY id"
        ):
            self.dictionaries[ident] = bytes(data)
            self.current[(scope, kind)] = ident

    def pack(self, scope: str, kind: str, value: Any) -> bytes | None:
        if value is None:
            return None
        text = _PACKED_TEXT.encode(value)
        ident = self.current.get((scope, kind)) or self._sampled(scope, kind, text)
        compressor = self.compressors.get(ident)
        if compressor is None:
            compressor = self.compressors[ident] = deflate.compressor(self.dictionaries[ident])
        one = compressor.copy()
        return self._HEADER.pack(ident) + one.compress(text.encode("utf-8")) + one.flush()

    def _sampled(self, scope: str, kind: str, text: str) -> int:
        """Gather `text` into the kind's sample; once it is large enough, its dictionary."""
        sample = self.samples.setdefault((scope, kind), [])
        sample.append(text)
        data = "".join(sample).encode("utf-8")
        if len(data) < self.SAMPLE_BYTES:
            return 0
        del self.samples[(scope, kind)]
        data = data[-self.SAMPLE_BYTES :]  # zlib prefers the texts at the dictionary's end
        ident = self.db.insert_id(
            "INSERT INTO dictionaries (scope, kind, data) VALUES (?,?,?) RETURNING id",
            (scope, kind, data),
        )
        if ident > 0xFFFF:  # beyond what the header names (some 13,000 scopes): none
            self.db.execute("DELETE FROM dictionaries WHERE id=?", (ident,))
            return 0
        self.dictionaries[ident] = data
        self.current[(scope, kind)] = ident
        self.made.append((ident, (scope, kind)))
        return ident

    def unpack(self, data: bytes | str | None) -> Any:
        """A value stored by `pack`, or as plain JSON text (an older state file)."""
        if not isinstance(data, bytes):
            return _unjson(data)
        (ident,) = self._HEADER.unpack_from(data)
        if ident == 0:
            reader = deflate.decompressor()
        else:
            dictionary = self.dictionaries.get(ident)
            if dictionary is None:  # made by another process since this one opened the file
                row = self.db.execute(
                    "SELECT data FROM dictionaries WHERE id=?", (ident,)
                ).fetchone()
                if row is None:
                    raise sqlite3.DatabaseError(
                        f"the state is damaged: a value needs dictionary {ident}, which it lacks"
                    )
                dictionary = self.dictionaries[ident] = bytes(row[0])
            reader = deflate.decompressor(dictionary)
        text = reader.decompress(data[self._HEADER.size :]) + reader.flush()
        return _PACKED_READ.decode(text.decode("utf-8"))

    @classmethod
    def plain(cls, text: str) -> bytes:
        """A JSON text packed without a dictionary."""
        one = deflate.compressor()
        return cls._HEADER.pack(0) + one.compress(text.encode("utf-8")) + one.flush()

    def committed(self) -> None:
        self.made.clear()

    def rolled_back(self) -> None:
        """The dictionaries made in the transaction are gone: new values must not name them."""
        for ident, key in self.made:
            self.dictionaries.pop(ident, None)
            self.compressors.pop(ident, None)
            if self.current.get(key) == ident:
                del self.current[key]
        self.made.clear()


last_opened: str | None = None
"""The state file opened last, for messages about a failure found deep in a run (a command opens
one state file)."""


def failure_message(error: Exception) -> str:
    """What a failure of the state's database means for the user, and what to do."""
    where = f"the state file '{last_opened}'" if last_opened else "the state file"
    text = str(error)
    if "full" in text:
        return (
            f"{where} cannot grow: the disk is full ({text}). Nothing is lost: what was "
            "not stored is counted again; free some space and run the same command again"
        )
    if "disk I/O error" in text:
        return (
            f"{where} cannot be written: {text} (the disk may be full or failing). Nothing "
            "is lost: what was not stored is counted again; free some space or check the "
            "disk, and run the same command again"
        )
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return (
            f"{where} is damaged ({text}): put back a copy from a backup, or move it away "
            "and run once with --rebuild and the shop's full order history (each contact's "
            "fence keeps its totals from being counted twice)"
        )
    return f"{where} cannot be used: {text}"


class StateStore:
    def __init__(self, path: str | Path):
        self.path = str(path)
        global last_opened
        last_opened = sql.shown(self.path)
        try:
            self.db = sql.connect(self.path)
            self._no_acc = None if self.db.is_postgresql else "{}"  # an empty accumulator
            if not self.db.is_postgresql:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            self._open_schema()
        except sql.DatabaseError as error:
            text = str(error)
            if "not a database" in text or "malformed" in text:
                raise StateError(
                    f"'{sql.shown(self.path)}' is not a usable hubmap state file: {text}"
                ) from None
            raise StateError(failure_message(error)) from None

    def _open_schema(self) -> None:
        with self.db.schema_lock():  # processes opening one database at once take turns
            self._make_schema()

    def _make_schema(self) -> None:
        dialect = self.db.dialect
        self.db.script(dialect.ddl(_SCHEMA, **_TYPES[dialect.name]))  # idempotent
        self.packer = Packer(self.db)
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        version = int(row[0]) if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise StateError(
                f"'{sql.shown(self.path)}' was written by a newer hubmap (state "
                f"version "
                f"{version}); upgrade hubmap"
            )
        if version == 1:
            with self.transaction():
                self._upgrade_from_1()
        self.db.script(_INDEXES)
        if version != SCHEMA_VERSION:
            _put_meta(self.db, "schema", str(SCHEMA_VERSION))

    def _upgrade_from_1(self) -> None:
        """0.1 kept which order ids it counted, not what each contributed: the baselines (what
        HubSpot held before hubmap) and what was written are kept, the order ledger is dropped
        (a rebuild recounts it), and every scope is marked to be rebuilt."""
        scopes = [
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT scope FROM contacts UNION SELECT DISTINCT scope FROM orders"
            )
        ]
        self.db.execute("DROP TABLE orders")
        self.db.execute(self.db.dialect.ddl(_ORDERS_TABLE))
        have = {r[1] for r in self.db.execute("PRAGMA table_info(contacts)")}
        for column in _UPGRADE_CONTACT_COLUMNS:
            if column.split()[0] not in have:
                self.db.execute(f"ALTER TABLE contacts ADD COLUMN {column}")
        for scope in scopes:
            _put_meta(self.db, f"upgraded|{scope}", _now())

    def close(self) -> None:
        self.db.close()

    def schema_version(self) -> int:
        return int(self._meta("schema") or SCHEMA_VERSION)

    @contextmanager
    def transaction(self) -> Iterator[sql.Database]:
        """One transaction (`sql.Database.transaction`: nested uses join the outer one); the
        packer forgets the dictionaries an outermost transaction rolled back."""
        outermost = not self.db.nesting
        try:
            with self.db.transaction():
                yield self.db
        except BaseException:
            if outermost:
                self.packer.rolled_back()
            raise
        if outermost:
            self.packer.committed()

    def copy_in_memory(self) -> StateStore:
        """A private copy in memory: a dry run works on it with the same code as a run."""
        copy = StateStore.__new__(StateStore)
        copy.path = f"{self.path} (dry-run copy)"
        copy._no_acc = self._no_acc
        if self.db.is_postgresql:
            # a connection of its own, inside one transaction that is never committed: every
            # `transaction()` of the dry run joins it, and closing the copy drops it all
            copy.db = sql.connect(self.path)
            copy.db.begin_for_good()
        else:
            copy.db = sql.connect_sqlite(":memory:")
            self.db.connection.backup(copy.db.connection)
        copy.packer = Packer(copy.db)
        return copy

    def copy_into(self, target: StateStore, progress: Any = None) -> dict[str, int]:
        """Copy everything this state holds into `target`, an empty state (another file, or a
        PostgreSQL database), in one transaction there; rows copied per table.  Packed values
        are copied as they are, with the dictionaries they name (same ids); a JSON text an
        older hubmap stored in a packed column is packed on the way.  Refused while a run holds
        a scope here, and when `target` holds anything."""
        live = [
            r for r in self.db.execute("SELECT scope, pid, host FROM locks") if _alive(r[1], r[2])
        ]
        if live:
            raise StateLockedError(
                f"a hubmap run holds '{live[0][0]}' in this state; copy it when no run is using it"
            )
        for table in _TABLES:
            rows = f"SELECT 1 FROM {table}" + (" WHERE key != 'schema'" if table == "meta" else "")
            if target.db.execute(rows + " LIMIT 1").fetchone() is not None:
                raise StateError(
                    f"'{sql.shown(target.path)}' is not empty (its {table} table "
                    "has rows): copy into a new, empty state"
                )
        copied: dict[str, int] = {}
        with target.transaction() as db:
            db.execute("DELETE FROM meta")  # what opening it wrote (the schema version)
            for table, spec in _TABLES.items():
                names = [c.lstrip("*") for c in spec.split()]
                packed = [i for i, c in enumerate(spec.split()) if c.startswith("*")]
                insert = (
                    f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                    f"({', '.join('?' * len(names))})"
                )
                rows = self.db.execute(f"SELECT {', '.join(names)} FROM {table}")
                copied[table] = 0
                while batch := rows.fetchmany(COPY_ROWS):
                    batch = [_copied_row(row, packed) for row in batch]
                    db.executemany(insert, batch)
                    copied[table] += len(batch)
                    if progress is not None:
                        progress(table, len(batch))
            if db.is_postgresql:  # the next numbers follow the copied ids
                for table in _NUMBERED:
                    db.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                    )
        target.packer = Packer(target.db)  # the dictionaries copied in
        return copied

    # -- runs and the lock ---------------------------------------------------------------

    def start_run(self, scope: str, mapping_file: str, input_name: str) -> int:
        """Record a new run and take the scope's lock (StateLockedError if another run has it).

        SQLite: the lock row names the process holding it; a row whose process is gone (on this
        host) is taken over.  PostgreSQL: the lock is also an advisory lock of this connection,
        which the server lets go when the connection ends (a process killed on any machine), so
        a row left behind is taken over whatever host it names."""
        if not self.db.try_lock(_scope_lock(scope)):
            raise self._locked(scope)
        try:
            return self._start_run(scope, mapping_file, input_name)
        except BaseException:
            self.db.unlock(_scope_lock(scope))
            raise

    def _locked(self, scope: str) -> StateLockedError:
        held = self.db.execute(
            "SELECT run_id, pid, host, since FROM locks WHERE scope=?", (scope,)
        ).fetchone()
        holder = (
            f"process {held[1]} on {held[2]}, since {held[3]}"
            if held is not None
            else "another process"
        )
        return StateLockedError(
            f"another hubmap run ({holder}) is using this state for "
            f"'{scope}'; wait for it to finish"
        )

    def _start_run(self, scope: str, mapping_file: str, input_name: str) -> int:
        with self.transaction() as db:
            held = db.execute(
                "SELECT run_id, pid, host, since FROM locks WHERE scope=?", (scope,)
            ).fetchone()
            if held is not None and not db.is_postgresql and _alive(held[1], held[2]):
                raise self._locked(scope)
            run_id = db.insert_id(
                "INSERT INTO runs (scope, mapping_file, input, started_at) VALUES (?,?,?,?) "
                "RETURNING id",
                (scope, mapping_file, input_name, _now()),
            )
            db.execute(
                "INSERT INTO locks (scope, run_id, pid, host, since) VALUES (?,?,?,?,?) "
                "ON CONFLICT (scope) DO UPDATE SET run_id=excluded.run_id, "
                "pid=excluded.pid, host=excluded.host, since=excluded.since",
                (scope, run_id, os.getpid(), socket.gethostname(), _now()),
            )
        return run_id

    def finish_run(self, scope: str, run_id: int, outcome: str, counts: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET ended_at=?, outcome=?, counts=? WHERE id=?",
                (_now(), outcome, _json(counts), run_id),
            )
            db.execute("DELETE FROM locks WHERE scope=? AND run_id=?", (scope, run_id))
        self.db.unlock(_scope_lock(scope))

    def runs(self, scope: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        query = (
            "SELECT id, scope, mapping_file, input, started_at, ended_at, outcome, counts "
            "FROM runs" + (" WHERE scope=?" if scope else "") + " ORDER BY id DESC LIMIT ?"
        )
        args: tuple[Any, ...] = (scope, limit) if scope else (limit,)
        return [
            {
                "id": r[0],
                "scope": r[1],
                "mapping": r[2],
                "input": r[3],
                "started": r[4],
                "ended": r[5],
                "outcome": r[6] or "running or interrupted",
                "counts": _unjson(r[7]) or {},
            }
            for r in self.db.execute(query, args)
        ]

    # -- orders and refunds ----------------------------------------------------------------

    def _in_chunks(self, query: str, scope: str, keys: Iterable[str]) -> Iterator[tuple[Any, ...]]:
        items = list(keys)
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(query.format(marks=marks), (scope, *chunk))

    _ORDER_COLUMNS = (
        "order_id, status, contact, order_time, version, digest, contribution, seq, first_seq"
    )

    def _order(self, r: tuple[Any, ...]) -> StoredOrder:
        return StoredOrder(
            r[0], r[1], r[2], r[3], r[4], r[5], self.packer.unpack(r[6]), r[7] or 0, r[8] or 0
        )

    def orders(self, scope: str, order_ids: Iterable[str]) -> dict[str, StoredOrder]:
        return {
            r[0]: self._order(r)
            for r in self._in_chunks(
                f"SELECT {self._ORDER_COLUMNS} FROM orders WHERE scope=? AND order_id IN ({{marks}})",
                scope,
                order_ids,
            )
        }

    def orders_of(self, scope: str, contacts: Iterable[str]) -> dict[str, list[StoredOrder]]:
        """The counted orders of each contact."""
        result: dict[str, list[StoredOrder]] = {}
        for r in self._in_chunks(
            f"SELECT {self._ORDER_COLUMNS} FROM orders WHERE scope=? AND status='counted' "
            "AND contact IN ({marks})",
            scope,
            contacts,
        ):
            result.setdefault(r[2], []).append(self._order(r))
        return result

    def refunds(self, scope: str, refund_ids: Iterable[str]) -> dict[str, StoredRefund]:
        unpack = self.packer.unpack
        return {
            r[0]: StoredRefund(r[0], r[1], r[2], unpack(r[3]), r[4])
            for r in self._in_chunks(
                "SELECT refund_id, order_id, digest, contribution, seq FROM refunds WHERE scope=? "
                "AND refund_id IN ({marks})",
                scope,
                refund_ids,
            )
        }

    def refunds_for(self, scope: str, order_ids: Iterable[str]) -> dict[str, list[StoredRefund]]:
        """The refunds stored for each order (in the order they were stored)."""
        result: dict[str, list[StoredRefund]] = {}
        for r in self._in_chunks(
            "SELECT refund_id, order_id, digest, contribution, seq FROM refunds WHERE scope=? "
            "AND order_id IN ({marks}) ORDER BY seq",
            scope,
            order_ids,
        ):
            result.setdefault(r[1], []).append(
                StoredRefund(r[0], r[1], r[2], self.packer.unpack(r[3]), r[4])
            )
        return result

    def _next_seqs(self, count: int) -> int:
        """Reserve `count` sequence numbers; the first is returned (inside a transaction).  One
        statement reads and moves the counter, so processes writing one PostgreSQL database at
        once never get the same numbers (the row stays locked until the transaction ends)."""
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES ('seq', '0') ON CONFLICT (key) DO NOTHING"
        )
        row = self.db.execute(
            "UPDATE meta SET value=CAST(CAST(value AS BIGINT) + ? AS TEXT) "
            "WHERE key='seq' RETURNING value",
            (count,),
        ).fetchone()
        return int(row[0]) - count + 1

    def put_orders(self, scope: str, run_id: int, orders: list[StoredOrder]) -> None:
        """Store order versions (each gets the next `seq`; `first_seq` is kept from the order's
        first version); a rejected record of the same order still pending is resolved."""
        if not orders:
            return
        pack = self.packer.pack
        with self.transaction() as db:
            first = self._next_seqs(len(orders))
            for offset, order in enumerate(orders):
                order.seq = first + offset
                order.first_seq = order.first_seq or order.seq
            db.executemany(
                "INSERT INTO orders (scope, order_id, contact, order_time, run_id, status, "
                "version, digest, contribution, seq, first_seq) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (scope, order_id) DO UPDATE SET contact=excluded.contact, "
                "order_time=excluded.order_time, run_id=excluded.run_id, "
                "status=excluded.status, version=excluded.version, digest=excluded.digest, "
                "contribution=excluded.contribution, seq=excluded.seq, "
                "first_seq=excluded.first_seq",
                [
                    (
                        scope,
                        o.order_id,
                        o.contact,
                        o.order_time,
                        run_id,
                        o.status,
                        o.version,
                        o.digest,
                        pack(scope, "contribution", o.contribution),
                        o.seq,
                        o.first_seq,
                    )
                    for o in orders
                ],
            )
            db.executemany(
                "UPDATE rejects SET status='resolved' WHERE scope=? AND order_id=? AND "
                "status='pending'",
                [(scope, o.order_id) for o in orders],
            )

    def put_versions(self, scope: str, versions: dict[str, str]) -> None:
        """A newer version of unchanged content: only the version is kept."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE orders SET version=? WHERE scope=? AND order_id=?",
                [(v, scope, order_id) for order_id, v in versions.items()],
            )

    def put_refunds(self, scope: str, run_id: int, refunds: list[StoredRefund]) -> None:
        if not refunds:
            return
        pack = self.packer.pack
        with self.transaction() as db:
            first = self._next_seqs(len(refunds))
            for offset, refund in enumerate(refunds):
                refund.seq = first + offset
            db.executemany(
                "INSERT INTO refunds (scope, refund_id, order_id, digest, contribution, seq, "
                "run_id) VALUES (?,?,?,?,?,?,?) ON CONFLICT (scope, refund_id) DO UPDATE SET "
                "order_id=excluded.order_id, digest=excluded.digest, "
                "contribution=excluded.contribution, seq=excluded.seq, run_id=excluded.run_id",
                [
                    (
                        scope,
                        r.refund_id,
                        r.order_id,
                        r.digest,
                        pack(scope, "refund", r.contribution),
                        r.seq,
                        run_id,
                    )
                    for r in refunds
                ],
            )
            db.executemany(
                "UPDATE rejects SET status='resolved' WHERE scope=? AND order_id=? AND "
                "status='pending'",
                [(scope, f"refund {r.refund_id}") for r in refunds],
            )

    def order_counts(self, scope: str) -> dict[str, int]:
        """Stored orders by status (counted, withdrawn, sent, skipped), and refunds (all, and
        those whose order has not come)."""
        # a withdrawn row without a contact was never counted: a skipped record remembered
        counts = {
            status: int(n)
            for status, n in self.db.execute(
                "SELECT CASE WHEN status='withdrawn' AND contact IS NULL THEN 'skipped' ELSE status "
                "END, COUNT(*) FROM orders WHERE scope=? GROUP BY 1",
                (scope,),
            )
        }
        counts["refunds"] = int(
            self.db.execute("SELECT COUNT(*) FROM refunds WHERE scope=?", (scope,)).fetchone()[0]
        )
        counts["refunds_waiting"] = self.refunds_waiting(scope)
        return counts

    def refunds_waiting(self, scope: str) -> int:
        """Refunds whose order has not come (each refund looks its order up by key: no walk of
        the scope's orders)."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM refunds r WHERE r.scope=? AND NOT EXISTS (SELECT 1 FROM orders "
                "o WHERE o.scope=r.scope AND o.order_id=r.order_id)",
                (scope,),
            ).fetchone()[0]
        )

    def count_orders(self, scope: str) -> int:
        """Orders that count (for a form: that were submitted)."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM orders WHERE scope=? AND status IN ('counted', 'sent')",
                (scope,),
            ).fetchone()[0]
        )

    # -- contacts --------------------------------------------------------------------------

    def load_contacts(self, scope: str, contacts: Iterable[str]) -> dict[str, ContactRow]:
        unpack = self.packer.unpack
        return {
            r[0]: ContactRow(
                r[0],
                unpack(r[1]),
                unpack(r[2]) or {},
                _unjson(r[3]) or {},
                r[4],
                r[5],
                unpack(r[6]),
                unpack(r[7]),
                r[8],
                bool(r[9]),
                r[10],
                r[11],
                r[12],
                r[13],
                unpack(r[14]),
            )
            for r in self._in_chunks(
                "SELECT contact, baseline, acc, cutoffs, folded_seq, written_seq, written, "
                "writing, hubspot_id, dirty, last_error, counted, fence_written, "
                "fence_writing, sending FROM contacts WHERE scope=? AND contact IN ({marks})",
                scope,
                contacts,
            )
        }

    def folded_contacts(self, scope: str) -> Iterator[tuple[str, dict[str, Any], int]]:
        """Each contact's accumulators and number of counted orders, in key order, read one at a
        time (for `hubmap plan`, which prints them as they come)."""
        for contact, acc, orders in self.db.execute(
            "SELECT c.contact, c.acc, (SELECT COUNT(*) FROM orders o WHERE o.scope=c.scope "
            "AND o.contact=c.contact AND o.status='counted') FROM contacts c "
            "WHERE c.scope=? AND c.alias_of IS NULL ORDER BY c.contact",
            (scope,),
        ):
            yield contact, self.packer.unpack(acc) or {}, int(orders)

    def save_folded(self, scope: str, rows: Iterable[ContactRow]) -> None:
        """Contacts whose accumulators changed: stored, and marked to be written."""
        now = _now()
        pack = self.packer.pack
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO contacts (scope, contact, acc, folded_seq, counted, dirty, "
                "updated_at) VALUES (?,?,?,?,?,1,?) ON CONFLICT (scope, contact) DO UPDATE SET "
                "acc=excluded.acc, folded_seq=excluded.folded_seq, counted=excluded.counted, "
                "dirty=1, updated_at=excluded.updated_at",
                [
                    (scope, r.contact, pack(scope, "acc", r.acc), r.folded_seq, r.counted, now)
                    for r in rows
                ],
            )

    def aliases(self, scope: str, contacts: Iterable[str]) -> dict[str, str]:
        """Contact keys that are another key's HubSpot record (merged, a secondary address, an
        email changed in HubSpot): key -> the key whose fold holds its orders."""
        return {
            r[0]: r[1]
            for r in self._in_chunks(
                "SELECT contact, alias_of FROM contacts WHERE scope=? AND alias_of IS NOT NULL AND "
                "contact IN ({marks})",
                scope,
                contacts,
            )
        }

    def keys_of_records(self, scope: str, record_ids: Iterable[str]) -> dict[str, list[str]]:
        """The contact keys (not aliases) the state knows under each HubSpot record id."""
        result: dict[str, list[str]] = {}
        for contact, record in self._in_chunks(
            "SELECT contact, hubspot_id FROM contacts WHERE scope=? AND alias_of IS NULL "
            "AND hubspot_id IN ({marks})",
            scope,
            record_ids,
        ):
            result.setdefault(record, []).append(contact)
        return result

    def alias(self, scope: str, canonical: str, others: Iterable[str], digest_of: Any) -> None:
        """Make `others` aliases of `canonical`: their orders become its orders (each order's
        digest recomputed for its new contact by `digest_of(order, contact)`), the contact is
        to be folded afresh and written; the aliases are no longer written themselves."""
        others = [o for o in others if o != canonical]
        with self.transaction() as db:
            moved = [o for mine in self.orders_of(scope, others).values() for o in mine]
            db.executemany(
                "UPDATE orders SET contact=?, digest=? WHERE scope=? AND order_id=?",
                [(canonical, digest_of(o, canonical), scope, o.order_id) for o in moved],
            )
            db.executemany(
                "UPDATE orders SET contact=? WHERE scope=? AND contact=? AND status!='counted'",
                [(canonical, scope, other) for other in others],
            )
            db.executemany(
                "UPDATE contacts SET alias_of=?, dirty=0, sending=NULL WHERE scope=? AND contact=?",
                [(canonical, scope, other) for other in others],
            )
            db.executemany(
                "UPDATE contacts SET alias_of=? WHERE scope=? AND alias_of=?",
                [(canonical, scope, other) for other in others],
            )
            db.execute(
                "INSERT INTO contacts (scope, contact, dirty) VALUES (?,?,1) "
                "ON CONFLICT (scope, contact) DO UPDATE SET dirty=1, alias_of=NULL",
                (scope, canonical),
            )

    def save_identity(self, scope: str, row: ContactRow) -> None:
        """A contact that took in other keys' orders: its joined baseline, what HubSpot holds of
        it (the values and fence of the key that wrote the record), its HubSpot record."""
        pack = self.packer.pack
        with self.transaction() as db:
            db.execute(
                "UPDATE contacts SET baseline=?, written=?, writing=?, fence_written=?, "
                "fence_writing=?, written_seq=?, hubspot_id=? WHERE scope=? AND contact=?",
                (
                    pack(scope, "baseline", row.baseline),
                    pack(scope, "values", row.written),
                    pack(scope, "values", row.writing),
                    row.fence_written,
                    row.fence_writing,
                    row.written_seq,
                    row.hubspot_id,
                    scope,
                    row.contact,
                ),
            )

    def dirty_contacts(self, scope: str) -> list[str]:
        """Contacts with values HubSpot has not confirmed yet (a snapshot, in key order)."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT contact FROM contacts WHERE scope=? AND dirty=1 ORDER BY contact", (scope,)
            )
        ]

    def count_dirty(self, scope: str) -> int:
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM contacts WHERE scope=? AND dirty=1", (scope,)
            ).fetchone()[0]
        )

    def save_prepared(
        self,
        scope: str,
        run_id: int,
        rebased: Iterable[ContactRow],
        drift: Iterable[tuple[str, str, str | None, str | None]],
        prepared: Iterable[ContactRow],
        refolded: Iterable[ContactRow] = (),
    ) -> None:
        """Before anything is sent, in one transaction: baselines read (or moved by drift) with
        their cutoffs, the accumulators of the contacts folded afresh for drift (`refolded`; the
        others' are as stored), the drift found, and for each prepared contact the values and
        the fence it is to hold (`writing`, `fence_writing`), what a write sends (`sending`),
        and what it holds now if an earlier write was found to have landed (`written`,
        `fence_written`)."""
        now = _now()
        pack = self.packer.pack
        with self.transaction() as db:
            db.executemany(
                "UPDATE contacts SET baseline=?, cutoffs=?, "
                "hubspot_id=COALESCE(?, hubspot_id) WHERE scope=? AND contact=?",
                [
                    (
                        pack(scope, "baseline", r.baseline),
                        _json(r.cutoffs),
                        r.hubspot_id,
                        scope,
                        r.contact,
                    )
                    for r in rebased
                ],
            )
            db.executemany(
                "UPDATE contacts SET acc=? WHERE scope=? AND contact=?",
                [(pack(scope, "acc", r.acc), scope, r.contact) for r in refolded],
            )
            db.executemany(
                "INSERT INTO drift (scope, run_id, contact, property, expected, found, at) "
                "VALUES (?,?,?,?,?,?,?)",
                [(scope, run_id, c, p, e, f, now) for c, p, e, f in drift],
            )
            db.executemany(  # the record id as just read: none when HubSpot has no such contact
                "UPDATE contacts SET written=?, fence_written=?, writing=?, fence_writing=?, "
                "sending=?, hubspot_id=? WHERE scope=? AND contact=?",
                [
                    (
                        pack(scope, "values", r.written),
                        r.fence_written,
                        pack(scope, "values", r.writing),
                        r.fence_writing,
                        pack(scope, "values", r.sending),
                        r.hubspot_id,
                        scope,
                        r.contact,
                    )
                    for r in prepared
                ],
            )

    def prepared_contacts(self, scope: str) -> list[str]:
        """Dirty contacts with a write prepared (in key order)."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT contact FROM contacts WHERE scope=? AND dirty=1 AND sending IS NOT NULL "
                "ORDER BY contact",
                (scope,),
            )
        ]

    def save_written(self, scope: str, rows: Iterable[ContactRow]) -> None:
        """HubSpot confirmed: `written` holds what it has now, the contact is no longer dirty."""
        now = _now()
        pack = self.packer.pack
        with self.transaction() as db:
            db.executemany(
                "UPDATE contacts SET written=?, written_seq=folded_seq, writing=NULL, dirty=0, "
                "fence_written=?, fence_writing=NULL, sending=NULL, last_error=NULL, "
                "hubspot_id=COALESCE(?, hubspot_id), updated_at=? WHERE scope=? AND contact=?",
                [
                    (
                        pack(scope, "values", r.written),
                        r.fence_written,
                        r.hubspot_id,
                        now,
                        scope,
                        r.contact,
                    )
                    for r in rows
                ],
            )

    def save_failed(self, scope: str, failures: dict[str, str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE contacts SET last_error=? WHERE scope=? AND contact=?",
                [(reason, scope, contact) for contact, reason in failures.items()],
            )

    def failed_contacts(self, scope: str) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT contact, last_error FROM contacts WHERE scope=? AND dirty=1 AND "
                "last_error IS NOT NULL ORDER BY contact",
                (scope,),
            )
        ]

    def drift_items(self, scope: str, run_id: int | None = None) -> list[dict[str, Any]]:
        query = "SELECT run_id, contact, property, expected, found, at FROM drift WHERE scope=?"
        args: tuple[Any, ...] = (scope,)
        if run_id is not None:
            query += " AND run_id=?"
            args = (scope, run_id)
        return [
            {
                "run": r[0],
                "contact": r[1],
                "property": r[2],
                "expected": r[3],
                "found": r[4],
                "at": r[5],
            }
            for r in self.db.execute(query + " ORDER BY id", args)
        ]

    # -- the mapping a scope was counted with ----------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def ledger_id(self) -> str:
        """This state file's id, written into every fence (made at first use)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('ledger', ?) ON CONFLICT (key) DO NOTHING",
                (secrets.token_hex(8),),
            )  # the first process's id wins
            held = self._meta("ledger")
        assert held is not None
        return held

    def fence_property(self, scope: str) -> str | None:
        """The fence property of the scope's mapping (chosen at its first run)."""
        return self._meta(f"fence|{scope}")

    def save_fence_property(self, scope: str, name: str) -> None:
        with self.transaction() as db:
            _put_meta(db, f"fence|{scope}", name)

    def mapping_files(self, portal_scope_prefix: str) -> dict[str, str]:
        """Each scope of a portal with the mapping file of its last run."""
        result: dict[str, str] = {}
        for scope, file in self.db.execute(
            "SELECT scope, mapping_file FROM runs WHERE scope LIKE ? ESCAPE '\\' ORDER BY id",
            (portal_scope_prefix.replace("%", "\\%").replace("_", "\\_") + "%",),
        ):
            result[scope] = file
        return result

    def rename_scope(self, old: str, new: str) -> None:
        """A mapping's new name: everything kept of the old name is the new name's."""
        with self.transaction() as db:
            for table in ("runs", "orders", "refunds", "contacts", "rejects", "drift"):
                db.execute(f"UPDATE {table} SET scope=? WHERE scope=?", (new, old))
            for (key,) in db.execute(
                "SELECT key FROM meta WHERE key LIKE ?", (f"%|{old}",)
            ).fetchall():
                db.execute("UPDATE meta SET key=? WHERE key=?", (key[: -len(old)] + new, key))

    def fingerprint(self, scope: str) -> dict[str, Any] | None:
        """What the scope's stored counts were computed with (see `hubmap.sync.fingerprint`)."""
        return _unjson(self._meta(f"fingerprint|{scope}"))

    def started(self, scope: str) -> dict[str, int]:
        """Properties added to the mapping after orders were stored: property -> the seq up to
        which orders are left out of it."""
        return _unjson(self._meta(f"started|{scope}")) or {}

    def rebuilding(self, scope: str) -> bool:
        """Whether a rebuild of the scope was started and has not completed."""
        return self._meta(f"rebuilding|{scope}") is not None

    def needs_rebuild(self, scope: str) -> bool:
        """Whether the scope was counted by hubmap 0.1 and not rebuilt since."""
        return self._meta(f"upgraded|{scope}") is not None

    def save_fingerprint(
        self, scope: str, fingerprint: dict[str, Any], started: Iterable[str] = ()
    ) -> None:
        """Record the mapping in use; properties in `started` begin afresh: orders stored so far
        are left out of them, and what is stored of them from an earlier use of the name
        (accumulators, baseline, values written, cutoffs) is forgotten, so HubSpot's value at
        their next write becomes their baseline."""
        with self.transaction() as db:
            _put_meta(db, f"fingerprint|{scope}", _json(fingerprint))
            started = list(started)
            if not started:
                return
            row = db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
            now_seq = int(row[0]) if row else 0
            cutoffs = self.started(scope)
            cutoffs.update({name: now_seq for name in started})
            _put_meta(db, f"started|{scope}", _json(cutoffs))
            self._forget_properties(scope, set(started))

    def _forget_properties(self, scope: str, names: set[str]) -> None:
        """Take `names` out of every contact's accumulators, baseline, values written and
        cutoffs (read and written back here: the stored values are compressed), a page of
        contacts at a time."""
        pack, unpack = self.packer.pack, self.packer.unpack
        query = (
            "SELECT contact, acc, baseline, written, writing, cutoffs FROM contacts "
            "WHERE scope=? AND contact>=? ORDER BY contact LIMIT ?"
        )
        after = ""
        while True:
            rows = self.db.execute(query, (scope, after, CHUNK)).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            query = query.replace("contact>=?", "contact>?")  # the next page: past this one
            self.db.executemany(
                "UPDATE contacts SET acc=?, baseline=?, written=?, writing=?, cutoffs=? "
                "WHERE scope=? AND contact=?",
                [
                    (
                        pack(scope, "acc", _without(unpack(acc), names) or {}),
                        pack(scope, "baseline", _without(unpack(baseline), names)),
                        pack(scope, "values", _without(unpack(written), names)),
                        pack(scope, "values", _without(unpack(writing), names)),
                        _json(_without(_unjson(cutoffs), names) or {}),
                        scope,
                        contact,
                    )
                    for contact, acc, baseline, written, writing, cutoffs in rows
                ],
            )

    def start_rebuild(self, scope: str) -> None:
        """Forget the scope's orders, refunds, accumulators and cutoffs (baselines, and what
        HubSpot was sent, are kept); every contact is to be written again.  Until
        `end_rebuild`, the scope is marked as being rebuilt."""
        with self.transaction() as db:
            _put_meta(db, f"rebuilding|{scope}", _now())
            db.execute("DELETE FROM orders WHERE scope=?", (scope,))
            db.execute("DELETE FROM refunds WHERE scope=?", (scope,))
            db.execute(
                "DELETE FROM meta WHERE key IN (?, ?)", (f"started|{scope}", f"upgraded|{scope}")
            )
            db.execute(
                "UPDATE contacts SET acc=?, cutoffs='{}', folded_seq=0, written_seq=0, "
                "counted='', dirty=1 WHERE scope=?",
                (self._no_acc, scope),
            )

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
                "((order_id IS NOT NULL AND order_id=?) OR (order_id IS NULL AND "
                "CAST(? AS TEXT) IS NULL AND location=?))",
                [
                    (
                        scope,
                        i.get("kind", "rejected"),
                        i.get("order_id"),
                        i.get("order_id"),
                        i.get("where"),
                    )
                    for i in items
                ],
            )
            db.executemany(
                "INSERT INTO rejects (scope, run_id, location, order_id, property, reason, code, "
                "kind, record, at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        scope,
                        run_id,
                        i.get("where"),
                        i.get("order_id"),
                        i.get("property"),
                        i["reason"],
                        i.get("code"),
                        i.get("kind", "rejected"),
                        _json(i.get("record")),
                        _now(),
                    )
                    for i in items
                ],
            )

    def pending_rejects(self, scope: str) -> list[dict[str, Any]]:
        return [
            {
                "id": r[0],
                "where": r[1],
                "order_id": r[2],
                "property": r[3],
                "reason": r[4],
                "code": r[5],
                "kind": r[6],
                "record": _unjson(r[7]),
            }
            for r in self.db.execute(
                "SELECT id, location, order_id, property, reason, code, kind, record FROM "
                "rejects WHERE scope=? AND status='pending' ORDER BY id",
                (scope,),
            )
        ]

    def resolve_rejects(self, ids: Iterable[int]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE rejects SET status='resolved' WHERE id=?", [(i,) for i in ids])

    def scopes(self) -> list[str]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT scope FROM runs UNION SELECT DISTINCT scope FROM contacts"
            )
        ]


def _copied_row(row: tuple[Any, ...], packed: list[int]) -> tuple[Any, ...]:
    """A row as `copy_into` writes it: bytes as bytes, an older JSON text in a packed column
    packed without a dictionary (which `Packer.unpack` reads as any packed value)."""
    values = [bytes(v) if isinstance(v, memoryview) else v for v in row]
    for index in packed:
        if isinstance(values[index], str):
            values[index] = Packer.plain(values[index])
    return tuple(values)


def _scope_lock(scope: str) -> str:
    return f"hubmap scope|{scope}"


def _put_meta(db: sql.Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
        "value=excluded.value",
        (key, value),
    )


def _without(values: dict[str, Any] | None, names: set[str]) -> dict[str, Any] | None:
    return None if values is None else {k: v for k, v in values.items() if k not in names}


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
