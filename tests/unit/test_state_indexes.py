"""The queries an incremental run makes find their rows through an index, never by reading every
contact of the scope: a run of 100 new orders on a state of 100,000 contacts must cost what it
changes.  Checked with SQLite's own query plan, on a new state file and on one that was made
with the older index (opening it upgrades the index), and for every statement a real
incremental run makes (traced from its connection)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hubmap.state import StateStore
from tests.acceptance import changes, helpers

DIRTY_QUERIES = [
    "SELECT contact FROM contacts WHERE scope=? AND dirty=1 ORDER BY contact",
    "SELECT COUNT(*) FROM contacts WHERE scope=? AND dirty=1",
    (
        "SELECT contact FROM contacts WHERE scope=? AND dirty=1 AND sending IS NOT NULL "
        "ORDER BY contact"
    ),
]


def _plans(store: StateStore) -> list[str]:
    return [
        " ".join(str(step[-1]) for step in store.db.execute("EXPLAIN QUERY PLAN " + q, ("s",)))
        for q in DIRTY_QUERIES
    ]


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


# -- every query of an incremental run ------------------------------------------------------

# The tables that grow with the shop, and the walks over one scope that read only an index and
# only count (the run's closing tally of orders by status and of refunds waiting for their order).
GROWING = ("contacts", "orders", "refunds", "rejects")
COUNTS_FROM_AN_INDEX = ("SELECT CASE WHEN status='withdrawn'", "SELECT COUNT(*) FROM refunds")


def _statements_of_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements the state runs in a second, incremental run (versions, refunds, a rejected
    record and new contacts), with their parameters written in."""
    sandbox = helpers.start()
    try:
        mapping = changes.write_mapping(tmp_path)
        orders = changes.history(5, 12, 4)
        state = tmp_path / "state.db"
        first = [changes.order_record(o, 1) for o in orders[:-2]]
        helpers.run(mapping, helpers.write_orders(tmp_path / "first.ndjson", first), sandbox, state)
        seen: list[str] = []
        opened = StateStore.__init__

        def traced(store: StateStore, path: str | Path) -> None:
            opened(store, path)
            store.db.connection.set_trace_callback(seen.append)

        monkeypatch.setattr(StateStore, "__init__", traced)
        later = (
            [changes.order_record(o, len(o.versions)) for o in orders[:6]]  # changed
            + changes.every_record(orders[-2:])  # new orders of known contacts, refunds
            + [
                {**first[0], "id": 999, "email": "new@example.com"},  # a new contact
                {**first[0], "id": 1000, "amount": "no number"},
            ]
        )  # rejected
        helpers.run(mapping, helpers.write_orders(tmp_path / "later.ndjson", later), sandbox, state)
    finally:
        sandbox.stop()
    return list(
        dict.fromkeys(
            s
            for s in seen
            if s.split(None, 1)[0].upper() in ("SELECT", "UPDATE", "DELETE", "INSERT")
        )
    )


def test_no_query_of_an_incremental_run_walks_the_contacts_or_orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements = _statements_of_a_run(tmp_path, monkeypatch)
    assert any("FROM contacts" in s for s in statements)
    store = StateStore(tmp_path / "state.db")
    try:
        for statement in statements:
            steps = [str(r[-1]) for r in store.db.execute("EXPLAIN QUERY PLAN " + statement)]
            for step in steps:
                assert not any(step.startswith(f"SCAN {table}") for table in GROWING), (
                    statement[:300],
                    steps,
                )
                if any(step.startswith(f"SEARCH {t} ") for t in GROWING) and step.endswith(
                    "(scope=?)"
                ):  # every row of the scope
                    assert statement.startswith(COUNTS_FROM_AN_INDEX), (statement[:300], steps)
                    assert "COVERING INDEX" in step, (statement[:300], steps)
    finally:
        store.close()
