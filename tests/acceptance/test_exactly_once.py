"""Exactly-once over real HTTP: each order is counted once in HubSpot whatever the input repeats,
whatever order it comes in, and whatever HubSpot's network does (5xx, answers lost after the
write).  Runs `hubmap.uses.run.run` against the local stand-in; expected values are computed
independently (tests/acceptance/helpers.py).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hubmap.mapping import load_mapping
from hubmap.state import StateLockedError, StateStore
from hubmap.uses.context import scope_of
from tests.acceptance import helpers
from tests.conftest import MAPPINGS


@pytest.fixture
def sandbox():  # type: ignore[no-untyped-def]
    running = helpers.start()
    yield running
    running.stop()


def test_the_same_input_twice_counts_nothing_new_and_writes_nothing(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 61))
    source = helpers.write_orders(tmp_path / "orders.ndjson", items)
    state = new_state("state.db")

    first = helpers.run(mapping, source, sandbox, state)
    assert (first.new, first.contacts_created, first.ok) == (60, 7, True)
    before = helpers.contacts(sandbox)
    writes_before = sandbox.stats()["byEndpoint"].get("contacts.batch_upsert", 0)

    second = helpers.run(mapping, source, sandbox, state)
    assert (second.new, second.unchanged) == (0, 60)
    assert (second.contacts_created, second.contacts_updated, second.contacts_unchanged) == (
        0,
        0,
        0,
    )
    assert second.calls <= 3  # which portal, and the property check: no contact read or written
    assert sandbox.stats()["byEndpoint"].get("contacts.batch_upsert", 0) == writes_before
    assert helpers.contacts(sandbox) == before
    helpers.assert_hubspot_holds(sandbox, items)


def test_overlapping_inputs_count_every_order_once(tmp_path: Path, sandbox, new_state) -> None:
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    first = helpers.run(
        mapping,
        helpers.write_orders(tmp_path / "a.ndjson", helpers.orders(range(1, 101))),
        sandbox,
        state,
    )
    second = helpers.run(
        mapping,
        helpers.write_orders(tmp_path / "b.ndjson", helpers.orders(range(50, 151))),
        sandbox,
        state,
    )

    assert first.new == 100
    assert (second.new, second.unchanged) == (50, 51)
    helpers.assert_hubspot_holds(sandbox, helpers.orders(range(1, 151)))
    store = StateStore(state)
    try:
        scope = scope_of(load_mapping(str(mapping)), str(helpers.PORTAL_ID))
        assert store.count_orders(scope) == 150
        assert store.count_dirty(scope) == 0
    finally:
        store.close()


def test_duplicates_inside_one_input_count_once(tmp_path: Path, sandbox, new_state) -> None:
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 41))
    repeated = items + items[::3] + items[:5]
    summary = helpers.run(
        mapping,
        helpers.write_orders(tmp_path / "o.ndjson", repeated),
        sandbox,
        new_state("state.db"),
        options={"count_chunk": 7},
    )
    assert (summary.new, summary.unchanged) == (40, len(repeated) - 40)
    helpers.assert_hubspot_holds(sandbox, items)


def test_5xx_and_lost_answers_leave_exactly_the_fault_free_values(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 601), contacts_count=300)
    source = helpers.write_orders(tmp_path / "orders.ndjson", items)
    clean = helpers.start()
    try:
        helpers.run(mapping, source, clean, new_state("clean.db"))
        sandbox.configure(error_rate=0.1, drop_after_write_rate=0.05, seed=20240601)
        # Small batches and chunks: many calls, so many faults.
        faulty = helpers.run(
            mapping,
            source,
            sandbox,
            new_state("faulty.db"),
            options={"batch": 3, "count_chunk": 50},
        )
        faults = sandbox.stats()["faults"]
        assert faults["gatewayErrors"] > 0 and faults["droppedAfterWrite"] > 0
        assert faulty.retries > 0
        assert faulty.ok, faulty.failures
        assert faulty.drift == 0  # a lost answer is not mistaken for an edit in HubSpot
        again = helpers.run(mapping, source, sandbox, new_state("faulty.db"), options={"batch": 3})
        assert again.new == 0
        sandbox.configure(error_rate=0.0, drop_after_write_rate=0.0)
        assert helpers.contacts(sandbox).keys() == helpers.contacts(clean).keys()
        faulty_values = {e: helpers.held(v) for e, v in helpers.contacts(sandbox).items()}
        clean_values = {e: helpers.held(v) for e, v in helpers.contacts(clean).items()}
        assert faulty_values == clean_values
        helpers.assert_hubspot_holds(sandbox, items)
    finally:
        clean.stop()


def test_newest_first_or_shuffled_input_keeps_time_order(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 121), contacts_count=4)
    newest_first = sorted(items, key=lambda i: (i["at"], i["id"]), reverse=True)
    # Newest half in one run, the older half in a later run: the later run brings older orders.
    state = new_state("state.db")
    helpers.run(
        mapping,
        helpers.write_orders(tmp_path / "new.ndjson", newest_first[:60]),
        sandbox,
        state,
        options={"count_chunk": 11, "batch": 3},
    )
    helpers.run(
        mapping,
        helpers.write_orders(tmp_path / "old.ndjson", newest_first[60:]),
        sandbox,
        state,
        options={"count_chunk": 11, "batch": 3},
    )
    helpers.assert_hubspot_holds(sandbox, items)

    shuffled = list(items)
    random.Random(7).shuffle(shuffled)
    other = helpers.start()
    try:
        helpers.run(
            mapping,
            helpers.write_orders(tmp_path / "shuffled.ndjson", shuffled),
            other,
            new_state("shuffled.db"),
            options={"count_chunk": 13},
        )
        assert helpers.contacts(other).keys() == helpers.contacts(sandbox).keys()
        helpers.assert_hubspot_holds(other, items)
    finally:
        other.stop()

    # Spelled out for one contact: last = latest by time, first = earliest, list newest first.
    mine = sorted(
        (i for i in items if i["email"] == "buyer1@example.com"), key=lambda i: (i["at"], i["id"])
    )
    values = helpers.contacts(sandbox)["buyer1@example.com"]
    assert values["tiny_last_sku"] == mine[-1]["sku"]
    assert values["tiny_first_sku"] == mine[0]["sku"]
    assert values["tiny_skus"].split(";")[0] == mine[-1]["sku"]


def test_the_shipped_shopify_mapping_counts_each_order_once(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = MAPPINGS / "shopify-orders-contacts.yaml"
    base = {
        "currency": "USD",
        "financial_status": "paid",
        "cancelled_at": None,
        "line_items": [
            {
                "sku": "A",
                "title": "Apron",
                "vendor": "Acme",
                "price": "1.10",
                "quantity": 1,
                "name": "Apron",
            }
        ],
    }
    shop_orders = [
        {
            **base,
            "id": 1000 + n,
            "email": f"shopper{n % 3}@example.com",
            "name": f"#{1000 + n}",
            "total_price": f"{n}.10",
            "created_at": f"2024-02-{(n * 7) % 27 + 1:02d}T10:00:00Z",
        }
        for n in range(1, 31)
    ]
    state = new_state("state.db")
    helpers.run(
        mapping, helpers.write_orders(tmp_path / "a.ndjson", shop_orders[:20]), sandbox, state
    )
    second = helpers.run(
        mapping, helpers.write_orders(tmp_path / "b.ndjson", shop_orders[10:]), sandbox, state
    )
    assert (second.new, second.unchanged) == (10, 10)
    held = helpers.contacts(sandbox)
    for n in range(3):
        mine = [o for o in shop_orders if o["email"] == f"shopper{n}@example.com"]
        values = held[f"shopper{n}@example.com"]
        assert values["total_number_of_orders"] == str(len(mine))
        assert float(values["total_value_of_orders"]) == pytest.approx(
            sum(float(o["total_price"]) for o in mine)
        )
        latest = max(mine, key=lambda o: (o["created_at"], o["id"]))
        assert values["last_order_order_number"] == latest["name"]


def test_a_second_run_on_the_same_state_is_refused_while_one_holds_the_lock(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    source = helpers.write_orders(tmp_path / "o.ndjson", helpers.orders(range(1, 11)))
    state = new_state("state.db")
    scope = scope_of(load_mapping(str(mapping)), str(helpers.PORTAL_ID))
    holder = StateStore(state)
    try:
        run_id = holder.start_run(scope, str(mapping), "elsewhere")  # this process: alive
        with pytest.raises(StateLockedError, match="another hubmap run"):
            helpers.run(mapping, source, sandbox, state)
        assert helpers.contacts(sandbox) == {}
        holder.finish_run(scope, run_id, "ok", {})
        assert helpers.run(mapping, source, sandbox, state).new == 10
    finally:
        holder.close()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path, sandbox, new_state) -> None:
    import subprocess
    import sys

    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    scope = scope_of(load_mapping(str(mapping)), str(helpers.PORTAL_ID))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    holder = StateStore(state)
    try:
        holder.start_run(scope, str(mapping), "killed")
        holder.db.execute("UPDATE locks SET pid=? WHERE scope=?", (int(dead.stdout), scope))
    finally:
        holder.close()
    source = helpers.write_orders(tmp_path / "o.ndjson", helpers.orders(range(1, 11)))
    assert helpers.run(mapping, source, sandbox, state).new == 10
