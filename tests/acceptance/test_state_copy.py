"""`hubmap state copy`: a state moved between SQLite and PostgreSQL goes on exactly where it was:
the same input counts nothing new and writes nothing, more orders add exactly."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hubmap.state import StateStore
from tests.acceptance import helpers


@pytest.fixture
def sandbox():  # type: ignore[no-untyped-def]
    running = helpers.start()
    yield running
    running.stop()


def hubmap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubmap.cli", *args], capture_output=True, text=True, check=False
    )


def test_a_file_copied_to_postgresql_and_back_goes_on_exactly(
    tmp_path: Path, sandbox, postgres_url: str
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    first = helpers.orders(range(1, 61))
    source = helpers.write_orders(tmp_path / "a.ndjson", first)
    state = tmp_path / "state.db"
    assert helpers.run(mapping, source, sandbox, state).new == 60

    copied = hubmap("state", "copy", str(state), postgres_url)
    assert copied.returncode == 0, copied.stderr
    assert "60 orders" in copied.stdout and "7 contacts" in copied.stdout

    writes = sandbox.stats()["requests"]
    again = helpers.run(mapping, source, sandbox, postgres_url)  # the same input on the copy
    assert (again.new, again.unchanged, again.contacts_updated, again.contacts_created) == (
        0,
        60,
        0,
        0,
    )
    more = helpers.orders(range(1, 91))
    later = helpers.run(
        mapping, helpers.write_orders(tmp_path / "b.ndjson", more), sandbox, postgres_url
    )
    assert later.new == 30 and later.ok
    helpers.assert_hubspot_holds(sandbox, more)
    assert sandbox.stats()["requests"] > writes

    back = tmp_path / "back.db"
    returned = hubmap("state", "copy", postgres_url, str(back))
    assert returned.returncode == 0, returned.stderr
    last = helpers.run(mapping, helpers.write_orders(tmp_path / "c.ndjson", more), sandbox, back)
    assert (last.new, last.contacts_updated, last.contacts_created) == (0, 0, 0)
    # the runs after the copy took the next numbers, not the copied one's
    store = StateStore(postgres_url)
    try:
        ids = [r["id"] for r in store.runs(limit=100)]
        assert len(ids) == len(set(ids)) == 3 and ids[-1] == min(ids)
    finally:
        store.close()


def test_copying_into_a_state_that_holds_anything_is_refused(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    source = helpers.write_orders(tmp_path / "a.ndjson", helpers.orders(range(1, 11)))
    state, other = new_state("state.db"), new_state("other.db")
    helpers.run(mapping, source, sandbox, state)
    held = StateStore(other)  # another state, with one run of its own
    held.finish_run("scope", held.start_run("scope", "m.yaml", "in.ndjson"), "ok", {})
    held.close()
    refused = hubmap("state", "copy", str(state), str(other))
    assert refused.returncode == 2
    assert "is not empty" in refused.stderr and "new, empty state" in refused.stderr
    missing = hubmap("state", "copy", str(tmp_path / "nothing.db"), str(tmp_path / "x.db"))
    assert missing.returncode == 2 and "no state file at" in missing.stderr


def test_json_text_of_an_older_state_is_packed_on_the_way(
    tmp_path: Path, postgres_url: str
) -> None:
    """Schema-2 files hold some values as plain JSON text; a PostgreSQL state holds bytes."""
    state = tmp_path / "old.db"
    store = StateStore(state)
    store.close()
    accumulators = {"tiny_total": {"v": 1, "rule": "sum", "part": [1, "10.50"]}}
    with sqlite3.connect(state) as db:
        db.execute(
            "INSERT INTO contacts (scope, contact, acc, dirty) VALUES (?,?,?,1)",
            ("s", "a@example.com", json.dumps(accumulators)),
        )
    copied = hubmap("state", "copy", str(state), postgres_url)
    assert copied.returncode == 0, copied.stderr
    store = StateStore(postgres_url)
    try:
        assert store.load_contacts("s", ["a@example.com"])["a@example.com"].acc == accumulators
    finally:
        store.close()


def test_migrate_says_the_version(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    StateStore(state).close()
    done = hubmap("state", "migrate", "--state", str(state))
    assert done.returncode == 0, done.stderr
    assert "state version 3" in done.stdout
