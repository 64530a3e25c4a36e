"""The sandbox portal in SQLite: contacts and their values, property definitions and groups,
form definitions and form submissions.

One connection guarded by a re-entrant lock, so a request handler can hold `transaction()` across
its checks and writes and nothing interleaves (a check-then-create is atomic). The database runs in
WAL mode so `dump()`/`show_contact()` on the file can read while the server writes; only the
serving process writes, so it keeps the property and group definitions (read on every contact
write) parsed in memory until one changes. The store knows nothing of HTTP or validation; callers
pass values already checked.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubmap.sandbox.catalog import (
    ADDITIONAL_EMAILS,
    BUILTIN_GROUPS,
    MERGED_OBJECT_IDS,
    builtin_properties,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contact_values (
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (contact_id, name)
);
CREATE INDEX IF NOT EXISTS contact_values_by_value ON contact_values (name, value);
CREATE TABLE IF NOT EXISTS contact_hutks (
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    hutk TEXT NOT NULL,
    PRIMARY KEY (contact_id, hutk)
);
CREATE TABLE IF NOT EXISTS property_groups (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS properties (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS forms (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    form_id TEXT NOT NULL,
    portal_id INTEGER NOT NULL,
    submitted_at INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    authenticated INTEGER NOT NULL,
    contact_id INTEGER,
    body TEXT NOT NULL
);
"""
TABLES = (
    "contact_hutks",
    "contact_values",
    "contacts",
    "properties",
    "property_groups",
    "forms",
    "submissions",
)


@dataclass
class ContactRecord:
    id: int
    created_at: str
    updated_at: str
    values: dict[str, str] = field(default_factory=dict)


class Store:
    """A portal's data in one SQLite file (thread-safe; see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._depth = 0
        # Property and group definitions, read on every contact write: kept parsed until a
        # definition changes or a transaction rolls back (it may have read a change it undid).
        self._definitions: dict[str, list[dict[str, Any]]] = {}
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        with self.transaction():
            self._seed()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and one SQLite transaction; nested uses join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                self._definitions.clear()
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def _seed(self) -> None:
        for group in BUILTIN_GROUPS:
            self._db.execute(
                "INSERT OR IGNORE INTO property_groups (name, definition) VALUES (?, ?)",
                (group["name"], json.dumps({**group, "archived": False, "hubspotDefined": True})),
            )
        for definition in builtin_properties():
            self._db.execute(
                "INSERT OR IGNORE INTO properties (name, definition) VALUES (?, ?)",
                (definition["name"], json.dumps(definition)),
            )

    def reset(self) -> None:
        """Forget everything except the HubSpot-defined groups and properties."""
        with self.transaction():
            for table in TABLES:
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("DELETE FROM sqlite_sequence")
            self._seed()
            self._definitions.clear()

    # -- property groups and properties ---------------------------------------------------

    def _get_json(self, table: str, key_column: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT definition FROM {table} WHERE {key_column} = ?", (key,)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def _list_json(self, table: str, order: str) -> list[dict[str, Any]]:
        with self._lock:
            held = self._definitions.get(table)
            if held is None:
                rows = self._db.execute(
                    f"SELECT definition FROM {table} ORDER BY {order}"
                ).fetchall()
                held = self._definitions[table] = [json.loads(row[0]) for row in rows]
            return [dict(definition) for definition in held]  # a caller may change its copy

    def _changed(self, table: str) -> None:
        self._definitions.pop(table, None)

    def get_group(self, name: str) -> dict[str, Any] | None:
        return self._get_json("property_groups", "name", name)

    def list_groups(self) -> list[dict[str, Any]]:
        return self._list_json("property_groups", "rowid")

    def put_group(self, group: dict[str, Any]) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO property_groups (name, definition) VALUES (?, ?)",
                (group["name"], json.dumps(group)),
            )
            self._changed("property_groups")

    def delete_group(self, name: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM property_groups WHERE name = ?", (name,))
            self._changed("property_groups")

    def get_property(self, name: str) -> dict[str, Any] | None:
        return self._get_json("properties", "name", name)

    def list_properties(self) -> list[dict[str, Any]]:
        return self._list_json("properties", "rowid")

    def put_property(self, definition: dict[str, Any]) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO properties (name, definition) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET definition = excluded.definition",
                (definition["name"], json.dumps(definition)),
            )
            self._changed("properties")

    def delete_property(self, name: str) -> None:
        """Remove the definition and every contact's value of it."""
        with self.transaction():
            self._db.execute("DELETE FROM properties WHERE name = ?", (name,))
            self._db.execute("DELETE FROM contact_values WHERE name = ?", (name,))
            self._changed("properties")

    # -- contacts ---------------------------------------------------------------------------

    def create_contact(self, values: dict[str, str], now: str) -> int:
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO contacts (created_at, updated_at) VALUES (?, ?)", (now, now)
            )
            contact_id = int(cursor.lastrowid or 0)
            self._write_values(contact_id, values)
        return contact_id

    def update_contact(self, contact_id: int, values: dict[str, str], now: str) -> None:
        """Set the given values (an empty string removes the value) and touch updated_at."""
        with self.transaction():
            self._write_values(contact_id, values)
            self._db.execute("UPDATE contacts SET updated_at = ? WHERE id = ?", (now, contact_id))

    def _write_values(self, contact_id: int, values: dict[str, str]) -> None:
        for name, value in values.items():
            if value == "":
                self._db.execute(
                    "DELETE FROM contact_values WHERE contact_id = ? AND name = ?",
                    (contact_id, name),
                )
            else:
                self._db.execute(
                    "INSERT INTO contact_values (contact_id, name, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (contact_id, name) DO UPDATE SET value = excluded.value",
                    (contact_id, name, value),
                )

    def get_contact(self, contact_id: int) -> ContactRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, created_at, updated_at FROM contacts WHERE id = ?", (contact_id,)
            ).fetchone()
            if row is None:
                return None
            values = self._db.execute(
                "SELECT name, value FROM contact_values WHERE contact_id = ? ORDER BY name",
                (contact_id,),
            ).fetchall()
        return ContactRecord(row[0], row[1], row[2], {name: value for name, value in values})

    def find_contact(self, name: str, value: str) -> int | None:
        """The id of a contact whose property `name` equals `value` exactly (lowest id first)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(contact_id) FROM contact_values WHERE name = ? AND value = ?",
                (name, value),
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def _find_in_list(self, name: str, item: str) -> int | None:
        """The id of a contact whose `;`-separated property `name` contains `item` (lowest id)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(contact_id) FROM contact_values WHERE name = ? "
                "AND instr(';' || value || ';', ';' || ? || ';') > 0",
                (name, item),
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def find_contact_by_email(self, email: str) -> int | None:
        """The contact whose primary email is `email` (case-insensitive), else the one listing it
        in `hs_additional_emails`."""
        email = email.lower()
        found = self.find_contact("email", email)
        if found is None and email and ";" not in email:
            found = self._find_in_list(ADDITIONAL_EMAILS, email)
        return found

    def find_contact_by_merged_id(self, contact_id: int) -> int | None:
        """The surviving contact that `contact_id` was merged into (`hs_merged_object_ids`)."""
        return self._find_in_list(MERGED_OBJECT_IDS, str(contact_id))

    def merge_contacts(
        self, primary_id: int, merged_id: int, values: dict[str, str], now: str
    ) -> None:
        """Fold `merged_id` into `primary_id`: its hutks and form submissions move over, it is
        deleted, and `values` (already decided by the caller) are written on the survivor."""
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO contact_hutks (contact_id, hutk) "
                "SELECT ?, hutk FROM contact_hutks WHERE contact_id = ? ORDER BY rowid",
                (primary_id, merged_id),
            )
            self._db.execute(
                "UPDATE submissions SET contact_id = ? WHERE contact_id = ?",
                (primary_id, merged_id),
            )
            self._db.execute("DELETE FROM contacts WHERE id = ?", (merged_id,))
            self.update_contact(primary_id, values, now)

    def delete_contact(self, contact_id: int) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))

    def contact_ids(self) -> list[int]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT id FROM contacts ORDER BY id")]

    def add_hutk(self, contact_id: int, hutk: str) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO contact_hutks (contact_id, hutk) VALUES (?, ?)",
                (contact_id, hutk),
            )

    def hutks(self, contact_id: int) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT hutk FROM contact_hutks WHERE contact_id = ? ORDER BY rowid", (contact_id,)
            ).fetchall()
        return [row[0] for row in rows]

    def find_contact_by_hutk(self, hutk: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(contact_id) FROM contact_hutks WHERE hutk = ?", (hutk,)
            ).fetchone()
        return None if row[0] is None else int(row[0])

    # -- forms and submissions -----------------------------------------------------------------

    def get_form(self, form_id: str) -> dict[str, Any] | None:
        return self._get_json("forms", "id", form_id)

    def list_forms(self) -> list[dict[str, Any]]:
        return self._list_json("forms", "rowid")

    def put_form(self, form: dict[str, Any]) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO forms (id, definition) VALUES (?, ?)",
                (form["id"], json.dumps(form)),
            )

    def add_submission(
        self,
        *,
        form_id: str,
        portal_id: int,
        submitted_at: int,
        received_at: str,
        authenticated: bool,
        contact_id: int | None,
        body: dict[str, Any],
    ) -> int:
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO submissions (form_id, portal_id, submitted_at, received_at, "
                "authenticated, contact_id, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    form_id,
                    portal_id,
                    submitted_at,
                    received_at,
                    int(authenticated),
                    contact_id,
                    json.dumps(body),
                ),
            )
        return int(cursor.lastrowid or 0)

    def submissions(self, contact_id: int | None = None) -> list[dict[str, Any]]:
        query = (
            "SELECT id, form_id, portal_id, submitted_at, received_at, authenticated, "
            "contact_id, body FROM submissions"
        )
        params: tuple[Any, ...] = ()
        if contact_id is not None:
            query += " WHERE contact_id = ?"
            params = (contact_id,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        result = []
        for row in rows:
            body = json.loads(row["body"])
            result.append(
                {
                    "id": row["id"],
                    "formId": row["form_id"],
                    "portalId": row["portal_id"],
                    "submittedAt": row["submitted_at"],
                    "receivedAt": row["received_at"],
                    "authenticated": bool(row["authenticated"]),
                    "contactId": None if row["contact_id"] is None else str(row["contact_id"]),
                    "fields": body.get("fields", []),
                    "context": body.get("context", {}),
                    "legalConsentOptions": body.get("legalConsentOptions"),
                }
            )
        return result
