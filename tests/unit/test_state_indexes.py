"""The queries an incremental run makes find their rows through an index, never by reading every
contact of the scope: a run of 100 new orders on a state of 100,000 contacts must cost what it
changes.  Checked with SQLite's own query plan, on a new state file and on one that was made
with the older index (opening it upgrades the index)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hubmap.state import StateStore

DIRTY_QUERIES = [
    "SELECT contact FROM contacts WHERE scope=? AND dirty=1 ORDER BY contact",
    "SELECT COUNT(*) FROM contacts WHERE scope=? AND dirty=1",
    "SELECT contact FROM contacts WHERE scope=? AND dirty=1 AND sending IS NOT NULL "
    "ORDER BY contact",
]


def _plans(store: StateStore) -> list[str]:
    return [" ".join(str(step[-1]) for step in store.db.execute("EXPLAIN QUERY PLAN " + q, ("s",)))
            for q in DIRTY_QUERIES]


@pytest.mark.parametrize("older", [False, True])
def test_the_dirty_contacts_come_from_an_index_in_key_order(tmp_path: Path, older: bool) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    if older:  # a file from before: the index without the key, the new one absent
        db = sqlite3.connect(path)
        db.execute("DROP INDEX contacts_dirty_key")
        db.execute("CREATE INDEX contacts_dirty ON contacts (scope, dirty)")
        db.commit()
        db.close()
    store = StateStore(path)
    try:
        for plan in _plans(store):
            assert "contacts_dirty_key (scope=? AND dirty=?)" in plan, plan
            assert "TEMP B-TREE" not in plan  # no sort: the index gives key order
    finally:
        store.close()
