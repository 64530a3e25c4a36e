"""A state file from hubmap 0.1 (schema 1: order ids and accumulators, no per-order
contributions) is upgraded in place: runs are refused until one `--rebuild` with the full
history, which keeps the baselines 0.1 read - so the rebuilt totals are exact, not doubled.
And a run whose input cannot be opened writes nothing, not even properties."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from hubmap.mapping import load_mapping
from hubmap.problems import HubmapError
from hubmap.uses import run as running
from hubmap.uses.context import scope_of
from tests.acceptance import helpers

# The tables of a 0.1 state file, as 0.1 created them.
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, mapping_file TEXT,
    input TEXT, started_at TEXT NOT NULL, ended_at TEXT, outcome TEXT, counts TEXT);
CREATE TABLE locks (scope TEXT PRIMARY KEY, run_id INTEGER, pid INTEGER, host TEXT, since TEXT);
CREATE TABLE orders (
    scope TEXT NOT NULL, order_id TEXT NOT NULL, contact TEXT NOT NULL, order_time TEXT,
    run_id INTEGER, status TEXT NOT NULL DEFAULT 'counted', PRIMARY KEY (scope, order_id));
CREATE TABLE contacts (
    scope TEXT NOT NULL, contact TEXT NOT NULL, hubspot_id TEXT,
    baseline TEXT, acc TEXT NOT NULL DEFAULT '{}', pending TEXT NOT NULL DEFAULT '{}',
    written TEXT, writing TEXT, dirty INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, updated_at TEXT, PRIMARY KEY (scope, contact));
CREATE TABLE rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, run_id INTEGER,
    location TEXT, order_id TEXT, property TEXT, reason TEXT NOT NULL, code TEXT,
    kind TEXT NOT NULL, record TEXT, status TEXT NOT NULL DEFAULT 'pending', at TEXT);
CREATE TABLE drift (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, run_id INTEGER,
    contact TEXT NOT NULL, property TEXT NOT NULL, expected TEXT, found TEXT, at TEXT);
INSERT INTO meta VALUES ('schema', '1');
"""

BASELINE = Decimal("100.00")  # what HubSpot held before hubmap 0.1 first wrote


@pytest.fixture
def sandbox():  # type: ignore[no-untyped-def]
    running_sandbox = helpers.start()
    yield running_sandbox
    running_sandbox.stop()


def _hubmap_0_1_state(path: Path, scope: str, email: str, counted: list[dict]) -> None:
    """What 0.1 left after counting `counted` for `email`: the ledger, the baseline it read,
    the values it wrote."""
    written = {
        "tiny_total": str(BASELINE + sum(Decimal(o["amount"]) for o in counted)),
        "tiny_count": str(len(counted)),
    }
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.executemany(
        "INSERT INTO orders (scope, order_id, contact, order_time) VALUES (?,?,?,?)",
        [(scope, str(o["id"]), email, o["at"]) for o in counted],
    )
    db.execute(
        "INSERT INTO contacts (scope, contact, baseline, written) VALUES (?,?,?,?)",
        (
            scope,
            email,
            json.dumps({"tiny_total": str(BASELINE), "tiny_count": None}),
            json.dumps(written),
        ),
    )
    db.commit()
    db.close()


def test_a_0_1_state_is_refused_until_rebuilt_and_the_rebuild_keeps_its_baselines(
    tmp_path: Path, sandbox
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 21), contacts_count=1)
    email = items[0]["email"]
    scope = scope_of(load_mapping(str(mapping)), str(helpers.PORTAL_ID))
    state = tmp_path / "state.db"
    first = items[:12]
    _hubmap_0_1_state(state, scope, email, first)
    helpers.apply(mapping, helpers.environ(sandbox))
    # HubSpot holds what 0.1 wrote: the baseline plus the first orders
    requests.post(
        f"{sandbox.url}/crm/v3/objects/contacts/batch/upsert",
        timeout=10,
        headers={"Authorization": f"Bearer {helpers.TOKEN}"},
        json={
            "inputs": [
                {
                    "idProperty": "email",
                    "id": email,
                    "properties": {
                        "tiny_total": str(BASELINE + sum(Decimal(o["amount"]) for o in first)),
                        "tiny_count": str(len(first)),
                    },
                }
            ]
        },
    ).raise_for_status()
    source = helpers.write_orders(tmp_path / "all.ndjson", items)

    with pytest.raises(HubmapError) as refused:
        helpers.run(mapping, source, sandbox, state)
    (problem,) = refused.value.problems
    assert problem.code == "HM703" and "0.1" in problem.message and "--rebuild" in problem.hint
    assert helpers.status(state)["scopes"][0]["rebuild_needed"] is True

    rebuilt = helpers.run(mapping, source, sandbox, state, rebuild=True)
    assert rebuilt.ok and rebuilt.rebuilt and rebuilt.new == len(items)
    held = helpers.contacts(sandbox)[email]
    assert Decimal(held["tiny_total"]) == BASELINE + sum(Decimal(o["amount"]) for o in items)
    assert held["tiny_count"] == str(len(items))
    assert helpers.status(state)["scopes"][0]["rebuild_needed"] is False
    again = helpers.run(mapping, source, sandbox, state)  # and from now on as usual
    assert (again.new, again.unchanged, again.contacts_updated) == (0, len(items), 0)


def test_a_missing_input_writes_nothing_in_hubspot(tmp_path: Path, sandbox) -> None:
    mapping = helpers.write_mapping(tmp_path)
    outcome = running.run(
        str(mapping),
        str(tmp_path / "typo.ndjson"),
        environ=helpers.environ(sandbox),
        state_path=str(tmp_path / "s.db"),
    )
    assert outcome.exit_code == 2 and "does not exist" in (outcome.message or "")
    names = {
        p["name"]
        for p in requests.get(
            f"{sandbox.url}/crm/v3/properties/contacts",
            timeout=10,
            headers={"Authorization": f"Bearer {helpers.TOKEN}"},
        ).json()["results"]
    }
    assert not {n for n in names if n.startswith("tiny_")}  # no property was created
