"""Fences over real HTTP: after one exact run, running the same input again never doubles a
contact's sums, whatever happened to the state file (deleted, emptied, another one, an older
copy), to the portal id, to the mapping's name, or to the contacts in HubSpot (merged, a
secondary address, an email changed).  Each scenario ends EXACT (HubSpot equals the independent
oracle of `helpers.expected`, plus any baseline HubSpot held before hubmap) or REFUSED with
HubSpot unchanged - and a refusal is then recovered exactly by `--rebuild` with the full history.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from hubmap import sql
from hubmap.problems import HubmapError
from hubmap.sandbox import RunningSandbox
from hubmap.uses.outcome import ConfigurationError
from tests.acceptance import helpers

OTHER_PORTAL = 7654321


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    running = helpers.start()
    yield running
    running.stop()


# -- small helpers -------------------------------------------------------------------------


def api(sandbox: RunningSandbox, method: str, path: str, body: Any = None, **params: str) -> Any:
    """One HubSpot API call to the stand-in, as a HubSpot user (or the UI) would make it."""
    response = requests.request(
        method,
        f"{sandbox.url}{path}",
        json=body,
        params=params or None,
        headers={"Authorization": f"Bearer {helpers.TOKEN}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json() if response.content else None


def record_id(sandbox: RunningSandbox, email: str) -> str:
    return str(api(sandbox, "GET", f"/crm/v3/objects/contacts/{email}", idProperty="email")["id"])


def set_values(sandbox: RunningSandbox, email: str, **values: str) -> None:
    """What HubSpot holds before hubmap first writes (a baseline), set through the API."""
    api(
        sandbox,
        "POST",
        "/crm/v3/objects/contacts/batch/upsert",
        {"inputs": [{"idProperty": "email", "id": email, "properties": values}]},
    )


def exact(
    sandbox: RunningSandbox,
    items: Iterable[dict[str, Any]],
    baselines: dict[str, dict[str, Decimal]] | None = None,
) -> None:
    """HubSpot holds the oracle's values of `items` (each order id once), sums starting from
    what HubSpot held before hubmap (`baselines`: email -> property -> value); no other contact
    holds anything."""
    want = helpers.expected(items)
    for email, values in (baselines or {}).items():
        for name, value in values.items():
            want[email][name] += value
    got = {email: helpers.held(values) for email, values in helpers.contacts(sandbox).items()}
    assert got == want


def refused(
    mapping: Path, source: Path, sandbox: RunningSandbox, state: Path, **options: Any
) -> HubmapError:
    """The run stops with HM708 before writing anything: HubSpot is as it was."""
    before = helpers.contacts(sandbox)
    with pytest.raises(HubmapError) as stopped:
        helpers.run(mapping, source, sandbox, state, **options)
    assert stopped.value.problems
    assert {p.code for p in stopped.value.problems} == {"HM708"}
    assert all("--rebuild" in p.hint for p in stopped.value.problems)
    assert helpers.contacts(sandbox) == before
    return stopped.value


forget = helpers.forget_state


def named(error: HubmapError) -> str:
    return "\n".join(p.message for p in error.problems)


# Every contact of the tiny mapping with orders; two of them held values before hubmap.
BASELINES = {
    "buyer0@example.com": {"tiny_total": Decimal("100.00")},
    "buyer1@example.com": {"tiny_total": Decimal("0.50"), "tiny_count": Decimal(5)},
}


def first_exact_run(
    tmp_path: Path, sandbox: RunningSandbox, state: Path
) -> tuple[Path, Path, list[dict[str, Any]]]:
    """The mapping's properties exist, two contacts hold pre-hubmap values, and one run counts
    60 orders of 7 contacts exactly."""
    mapping = helpers.write_mapping(tmp_path)
    helpers.apply(mapping, helpers.environ(sandbox))
    for email, values in BASELINES.items():
        set_values(sandbox, email, **{k: str(v) for k, v in values.items()})
    items = helpers.orders(range(1, 61))
    source = helpers.write_orders(tmp_path / "orders.ndjson", items)
    first = helpers.run(mapping, source, sandbox, state)
    assert (first.new, first.ok) == (60, True)
    assert (first.contacts_created, first.contacts_updated) == (5, 2)
    exact(sandbox, items, BASELINES)
    return mapping, source, items


def lost_state_is_refused_then_rebuilt(
    mapping: Path, source: Path, items: list[dict[str, Any]], sandbox: RunningSandbox, state: Path
) -> None:
    """The same input on a state that has no record of the contacts: refused for every contact,
    HubSpot unchanged; then --rebuild with the full history: exact, baselines counted once."""
    error = refused(mapping, source, sandbox, state)
    for email in helpers.expected(items):
        assert f"contact {email}:" in named(error)
    assert "no record of the contact" in named(error)
    rebuilt = helpers.run(mapping, source, sandbox, state, rebuild=True)
    assert rebuilt.ok and rebuilt.rebuilt and rebuilt.new == len(items)
    assert not rebuilt.warnings  # the full history: as many orders as each fence says
    exact(sandbox, items, BASELINES)
    # from now on as usual: the same input writes nothing, more orders add exactly
    again = helpers.run(mapping, source, sandbox, state)
    assert (again.new, again.contacts_updated, again.contacts_created) == (0, 0, 0)
    more = helpers.orders(range(1, 76))
    later = helpers.run(
        mapping, helpers.write_orders(source.parent / "more.ndjson", more), sandbox, state
    )
    assert later.new == 15
    exact(sandbox, more, BASELINES)


# -- 1-3: the state is lost --------------------------------------------------------------


def test_a_deleted_state_is_refused_and_rebuilt_exactly_with_its_baselines(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    state = new_state("state.db")
    mapping, source, items = first_exact_run(tmp_path, sandbox, state)
    forget(state)
    lost_state_is_refused_then_rebuilt(mapping, source, items, sandbox, state)


def test_an_emptied_state_is_refused_and_rebuilt_exactly(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    state = new_state("state.db")
    mapping, source, items = first_exact_run(tmp_path, sandbox, state)
    if sql.is_url(state):
        pytest.skip("a file emptied in place is SQLite's case (PostgreSQL's: the deleted state)")
    forget(state)
    state.write_bytes(b"")  # a fresh empty file at the same path
    lost_state_is_refused_then_rebuilt(mapping, source, items, sandbox, state)


def test_another_state_file_is_refused_and_rebuilt_exactly(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    state = new_state("state.db")
    mapping, source, items = first_exact_run(tmp_path, sandbox, state)
    other = new_state("elsewhere/other-state.db")
    lost_state_is_refused_then_rebuilt(mapping, source, items, sandbox, other)


# -- 4: an older copy of the state ---------------------------------------------------------


def test_an_older_copy_of_the_state_is_refused_and_hubspot_is_unchanged(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    state = new_state("state.db")
    mapping, source, _items = first_exact_run(tmp_path, sandbox, state)
    old = new_state("old-copy.db")
    helpers.copy_state(state, old)

    everything = helpers.orders(range(1, 91))
    full = helpers.write_orders(tmp_path / "all.ndjson", everything)
    newer = helpers.run(mapping, full, sandbox, state)
    assert newer.new == 30
    exact(sandbox, everything, BASELINES)

    # with the input it had seen, the old copy has nothing to add and writes nothing
    before = helpers.contacts(sandbox)
    same = helpers.run(mapping, source, sandbox, old)
    assert (same.new, same.contacts_updated, same.contacts_created) == (0, 0, 0)
    assert helpers.contacts(sandbox) == before
    # The old copy knows only the first 60 orders; the full input has 30 it would add again.
    error = refused(mapping, full, sandbox, old)
    assert "older copy" in named(error)
    for email in {o["email"] for o in everything[60:]}:
        assert f"contact {email}:" in named(error)
    # the refused run counted those orders in the old copy: it stays refused, whatever the input
    refused(mapping, source, sandbox, old)
    # and the original state goes on as usual
    again = helpers.run(mapping, full, sandbox, state)
    assert (again.new, again.contacts_updated) == (0, 0)
    exact(sandbox, everything, BASELINES)
    # the old copy is recovered by a rebuild with the full history: exact, not doubled
    rebuilt = helpers.run(mapping, full, sandbox, old, rebuild=True)
    assert rebuilt.ok and rebuilt.new == len(everything) and not rebuilt.warnings
    exact(sandbox, everything, BASELINES)


# -- 5: the portal ---------------------------------------------------------------------------


def test_a_portal_id_other_than_the_tokens_is_refused_before_anything_is_written(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 21))
    source = helpers.write_orders(tmp_path / "orders.ndjson", items)
    state = new_state("state.db")
    env = {**helpers.environ(sandbox), "HUBSPOT_PORTAL_ID": str(OTHER_PORTAL)}
    with pytest.raises(ConfigurationError) as stopped:
        helpers.run_env(mapping, source, env, state)
    message = str(stopped.value)
    assert str(OTHER_PORTAL) in message and str(helpers.PORTAL_ID) in message
    assert helpers.contacts(sandbox) == {}
    properties = api(sandbox, "GET", "/crm/v3/properties/contacts")["results"]
    assert not [p["name"] for p in properties if p["name"].startswith(("tiny_", "hubmap_"))]
    assert helpers.status(state)["scopes"] == []

    # unset: HubSpot's id is the portal, and the run works
    env.pop("HUBSPOT_PORTAL_ID")
    summary = helpers.run_env(mapping, source, env, state)
    assert summary.ok and summary.new == 20
    (scope,) = helpers.status(state)["scopes"]
    assert scope["scope"].startswith(f"portal {helpers.PORTAL_ID}|")
    helpers.assert_hubspot_holds(sandbox, items)


def test_without_portal_id_the_state_keeps_each_portal_apart(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    """One state, two portals named only by HubSpot: each gets its own scope and exact values;
    and the configured id of one portal refuses the other's token, naming both."""
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 21))
    source = helpers.write_orders(tmp_path / "orders.ndjson", items)
    state = new_state("state.db")
    other = helpers.start(portal_id=OTHER_PORTAL)
    try:
        env_one = {k: v for k, v in helpers.environ(sandbox).items() if k != "HUBSPOT_PORTAL_ID"}
        env_two = {k: v for k, v in helpers.environ(other).items() if k != "HUBSPOT_PORTAL_ID"}
        assert helpers.run_env(mapping, source, env_one, state).new == 20
        assert helpers.run_env(mapping, source, env_two, state).new == 20  # another portal
        scopes = sorted(s["scope"] for s in helpers.status(state)["scopes"])
        assert scopes == [
            f"portal {helpers.PORTAL_ID}|tiny-orders",
            f"portal {OTHER_PORTAL}|tiny-orders",
        ]
        helpers.assert_hubspot_holds(sandbox, items)
        helpers.assert_hubspot_holds(other, items)
        before = helpers.contacts(other)
        with pytest.raises(ConfigurationError) as stopped:
            helpers.run_env(
                mapping, source, {**env_two, "HUBSPOT_PORTAL_ID": str(helpers.PORTAL_ID)}, state
            )
        assert str(OTHER_PORTAL) in str(stopped.value)
        assert str(helpers.PORTAL_ID) in str(stopped.value)
        assert helpers.contacts(other) == before
    finally:
        other.stop()


# -- 6: the mapping renamed --------------------------------------------------------------------


def test_a_renamed_mapping_never_doubles(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    state = new_state("state.db")
    mapping = helpers.write_mapping(tmp_path)
    first = helpers.orders(range(1, 41))
    assert (
        helpers.run(mapping, helpers.write_orders(tmp_path / "a.ndjson", first), sandbox, state).new
        == 40
    )

    # the name changed in the same file: the state follows it
    renamed = helpers.write_mapping(tmp_path, name="tiny-orders-v2")
    assert renamed == mapping
    second = helpers.orders(range(1, 61))
    source = helpers.write_orders(tmp_path / "b.ndjson", second)
    summary = helpers.run(renamed, source, sandbox, state)
    assert summary.renamed_from == "tiny-orders"
    assert (summary.new, summary.unchanged) == (20, 40)
    exact(sandbox, second)
    again = helpers.run(renamed, source, sandbox, state)
    assert (again.renamed_from, again.new, again.contacts_updated) == (None, 0, 0)
    exact(sandbox, second)

    # renamed again and written to another file: the state cannot tell it is the same mapping
    moved = helpers.write_mapping(tmp_path, name="tiny-orders-v3", file_name="moved.yaml")
    third = helpers.orders(range(1, 81))
    full = helpers.write_orders(tmp_path / "c.ndjson", third)
    before = helpers.contacts(sandbox)
    try:
        outcome = helpers.run(moved, full, sandbox, state)
    except HubmapError as error:
        assert {p.code for p in error.problems} == {"HM708"}
        assert "hubmap_fence_tiny_orders" in named(error)  # the other mapping's fence
        assert helpers.contacts(sandbox) == before
    else:  # whichever the engine does, it must never double
        assert outcome.ok
        exact(sandbox, third)
    rebuilt = helpers.run(moved, full, sandbox, state, rebuild=True)
    assert rebuilt.ok and rebuilt.rebuilt and not rebuilt.warnings
    exact(sandbox, third)
    again = helpers.run(moved, full, sandbox, state)
    assert (again.new, again.contacts_updated) == (0, 0)
    exact(sandbox, third)
    # the contacts are the moved mapping's now: the old file under its old name cannot add
    old_name = helpers.write_mapping(tmp_path, name="tiny-orders-v2")
    more = helpers.write_orders(tmp_path / "d.ndjson", helpers.orders(range(1, 91)))
    error = refused(old_name, more, sandbox, state)
    assert "is gone" in named(error)
    exact(sandbox, third)


# -- 7-9: HubSpot's identities -------------------------------------------------------------------


def merge(sandbox: RunningSandbox, survivor: str, merged: str) -> None:
    api(
        sandbox,
        "POST",
        "/crm/v3/objects/contacts/merge",
        {
            "primaryObjectId": record_id(sandbox, survivor),
            "objectIdToMerge": record_id(sandbox, merged),
        },
    )


def onto(items: Iterable[dict[str, Any]], email: str, *keys: str) -> list[dict[str, Any]]:
    """The orders, with those of `keys` given to `email` (one HubSpot record holds them)."""
    return [{**item, "email": email} if item["email"] in keys else item for item in items]


@pytest.mark.parametrize("survivor", ["buyer0@example.com", "buyer1@example.com"])
def test_contacts_merged_in_hubspot_hold_the_fold_of_both_keys(
    tmp_path: Path, sandbox: RunningSandbox, survivor: str, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    a, b = "buyer0@example.com", "buyer1@example.com"
    first = helpers.orders(range(1, 7), contacts_count=3)  # a, b and buyer2: two orders each
    helpers.run(mapping, helpers.write_orders(tmp_path / "a.ndjson", first), sandbox, state)
    exact(sandbox, first)
    merged_away = b if survivor == a else a
    merge(sandbox, survivor, merged_away)
    assert set(helpers.contacts(sandbox)) == {survivor, "buyer2@example.com"}

    # new orders for both emails: the survivor holds the fold of both keys' orders
    second = helpers.orders(range(1, 13), contacts_count=3)
    source = helpers.write_orders(tmp_path / "b.ndjson", second)
    summary = helpers.run(mapping, source, sandbox, state)
    assert summary.ok and summary.contacts_created == 0
    exact(sandbox, onto(second, survivor, a, b))
    held = helpers.contacts(sandbox)[survivor]
    mine = [o for o in second if o["email"] in (a, b)]
    assert Decimal(held["tiny_total"]) == sum(Decimal(o["amount"]) for o in mine)
    assert held["tiny_count"] == str(len(mine)) == "8"

    # new orders for the merged-away email only, then the survivor's only: nothing lost
    third = second + [{**helpers.order(13, contacts_count=3), "email": merged_away}]
    helpers.run(mapping, helpers.write_orders(tmp_path / "c.ndjson", third), sandbox, state)
    exact(sandbox, onto(third, survivor, a, b))
    fourth = third + [{**helpers.order(14, contacts_count=3), "email": survivor}]
    source = helpers.write_orders(tmp_path / "d.ndjson", fourth)
    helpers.run(mapping, source, sandbox, state)
    exact(sandbox, onto(fourth, survivor, a, b))
    assert set(helpers.contacts(sandbox)) == {survivor, "buyer2@example.com"}
    again = helpers.run(mapping, source, sandbox, state)
    assert (again.new, again.contacts_updated, again.contacts_created) == (0, 0, 0)
    exact(sandbox, onto(fourth, survivor, a, b))


def test_the_issues_example_merge_is_165_over_4_orders(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    """Two buyers with an order each (100.00 and 50.00), merged; then one more order each (10.00,
    5.00): 165.00 over 4 orders, never 160.00 over 3."""
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    a, b = "ann@example.com", "bob@example.com"

    def shop(order_id: int, email: str, amount: str) -> dict[str, Any]:
        return {**helpers.order(order_id), "email": email, "amount": amount}

    first = [shop(1, a, "100.00"), shop(2, b, "50.00")]
    helpers.run(mapping, helpers.write_orders(tmp_path / "a.ndjson", first), sandbox, state)
    merge(sandbox, a, b)
    both = first + [shop(3, a, "10.00"), shop(4, b, "5.00")]
    summary = helpers.run(
        mapping, helpers.write_orders(tmp_path / "b.ndjson", both), sandbox, state
    )
    assert summary.ok and summary.contacts_created == 0
    ((email, held),) = helpers.contacts(sandbox).items()
    assert email == a
    assert (Decimal(held["tiny_total"]), held["tiny_count"]) == (Decimal("165.00"), "4")
    exact(sandbox, onto(both, a, a, b))


# Keys joined into one fold where the record's primary-email key is not the key that wrote the
# record's values: the joined contact must take over what the writer wrote, or hubmap's own
# values look like drift and the joined key's orders count twice (b@x: 10.00, then a@x +5.00
# must give 15.00 / 2, not 25.00 / 3).


def ann_with_a_secondary_address(sandbox: RunningSandbox, mapping: Path, a: str, b: str) -> str:
    """Ann, created in HubSpot before hubmap (with a pre-hubmap total), has the secondary
    address b; her record id."""
    helpers.apply(mapping, helpers.environ(sandbox))
    created = api(
        sandbox,
        "POST",
        "/crm/v3/objects/contacts",
        {"properties": {"email": a, "firstname": "Ann", "tiny_total": "100.00"}},
    )
    sandbox.set_additional_emails(created["id"], [b])
    return str(created["id"])


def test_orders_for_a_secondary_address_go_into_that_record(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    a, b = "ann@example.com", "ann.work@example.com"
    ann = ann_with_a_secondary_address(sandbox, mapping, a, b)
    state = new_state("state.db")
    items = [{**o, "email": b} for o in helpers.orders(range(1, 9))]
    source = helpers.write_orders(tmp_path / "a.ndjson", items[:4])
    summary = helpers.run(mapping, source, sandbox, state)
    assert summary.ok and (summary.contacts_created, summary.contacts_updated) == (0, 1)
    assert list(helpers.contacts(sandbox)) == [a]  # no contact for b: it is Ann's address
    assert record_id(sandbox, a) == record_id(sandbox, b) == ann
    baseline = {a: {"tiny_total": Decimal("100.00")}}
    exact(sandbox, onto(items[:4], a, b), baseline)
    assert helpers.contacts(sandbox)[a]["firstname"] == "Ann"
    # more orders for b, and the same input again: still the one record, exact
    source = helpers.write_orders(tmp_path / "b.ndjson", items)
    later = helpers.run(mapping, source, sandbox, state)
    assert later.ok and (later.new, later.contacts_created, later.drift) == (4, 0, 0)
    again = helpers.run(mapping, source, sandbox, state)
    assert (again.new, again.contacts_updated, again.contacts_created) == (0, 0, 0)
    assert list(helpers.contacts(sandbox)) == [a]
    exact(sandbox, onto(items, a, b), baseline)


def test_a_buyer_merged_into_a_contact_hubmap_never_wrote_keeps_every_order_once(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    """The survivor of a merge is a contact made in HubSpot (no orders yet); the merged-away
    buyer's orders and the survivor's own new orders fold into it, each once."""
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    a, b = "ann@example.com", "bob@example.com"
    api(sandbox, "POST", "/crm/v3/objects/contacts", {"properties": {"email": a}})
    first = [{**helpers.order(i), "email": b} for i in range(1, 4)]
    helpers.run(mapping, helpers.write_orders(tmp_path / "a.ndjson", first), sandbox, state)
    merge(sandbox, a, b)
    both = first + [{**helpers.order(i), "email": (a, b)[i % 2]} for i in range(4, 8)]
    summary = helpers.run(
        mapping, helpers.write_orders(tmp_path / "b.ndjson", both), sandbox, state
    )
    assert summary.ok and summary.contacts_created == 0
    assert summary.drift == 0
    assert list(helpers.contacts(sandbox)) == [a]
    exact(sandbox, onto(both, a, b))


def test_orders_for_a_primary_and_its_secondary_address_fold_into_the_one_record(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    a, b = "ann@example.com", "ann.work@example.com"
    ann_with_a_secondary_address(sandbox, mapping, a, b)
    state = new_state("state.db")
    first = [{**o, "email": b} for o in helpers.orders(range(1, 5))]
    helpers.run(mapping, helpers.write_orders(tmp_path / "a.ndjson", first), sandbox, state)
    baseline = {a: {"tiny_total": Decimal("100.00")}}
    exact(sandbox, onto(first, a, b), baseline)

    # orders for both addresses fold into the one record
    both = first + [{**helpers.order(i), "email": (a, b)[i % 2]} for i in range(5, 13)]
    source = helpers.write_orders(tmp_path / "b.ndjson", both)
    summary = helpers.run(mapping, source, sandbox, state)
    assert summary.ok and summary.contacts_created == 0
    assert list(helpers.contacts(sandbox)) == [a]
    assert summary.drift == 0  # nobody edited HubSpot: hubmap's own values are not drift
    exact(sandbox, onto(both, a, b), baseline)
    again = helpers.run(mapping, source, sandbox, state)
    assert (again.new, again.contacts_updated, again.contacts_created) == (0, 0, 0)
    exact(sandbox, onto(both, a, b), baseline)


def test_a_primary_and_a_secondary_address_in_one_first_run_are_one_fold(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    helpers.apply(mapping, helpers.environ(sandbox))
    a, b = "ann@example.com", "ann.work@example.com"
    created = api(sandbox, "POST", "/crm/v3/objects/contacts", {"properties": {"email": a}})
    sandbox.set_additional_emails(created["id"], [b])
    state = new_state("state.db")
    items = [{**o, "email": (a, b)[o["id"] % 2]} for o in helpers.orders(range(1, 11))]
    source = helpers.write_orders(tmp_path / "a.ndjson", items)
    summary = helpers.run(mapping, source, sandbox, state)
    assert summary.ok and summary.contacts_created == 0
    assert list(helpers.contacts(sandbox)) == [a]
    exact(sandbox, onto(items, a, b))
    again = helpers.run(mapping, source, sandbox, state)
    assert (again.new, again.contacts_updated) == (0, 0)
    exact(sandbox, onto(items, a, b))


def test_an_email_changed_in_hubspot_is_followed_by_its_record_id(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    old, new = "buyer0@example.com", "renamed0@example.com"
    first = helpers.orders(range(1, 31), contacts_count=3)
    helpers.run(mapping, helpers.write_orders(tmp_path / "a.ndjson", first), sandbox, state)
    exact(sandbox, first)
    the_record = record_id(sandbox, old)
    api(sandbox, "PATCH", f"/crm/v3/objects/contacts/{the_record}", {"properties": {"email": new}})
    assert set(helpers.contacts(sandbox)) == {new, "buyer1@example.com", "buyer2@example.com"}

    second = helpers.orders(range(1, 46), contacts_count=3)  # new orders for the old email too
    source = helpers.write_orders(tmp_path / "b.ndjson", second)
    summary = helpers.run(mapping, source, sandbox, state)
    assert summary.ok and summary.new == 15 and summary.contacts_created == 0
    assert set(helpers.contacts(sandbox)) == {new, "buyer1@example.com", "buyer2@example.com"}
    assert record_id(sandbox, new) == the_record
    exact(sandbox, onto(second, new, old))
    again = helpers.run(mapping, source, sandbox, state)
    assert (again.new, again.contacts_updated, again.contacts_created) == (0, 0, 0)
    exact(sandbox, onto(second, new, old))


def changed_email_then_orders_for_both(tmp_path: Path) -> None:
    """A buyer's email changed in HubSpot after a run; then orders for the old and the new
    address: the one record holds the fold of both, each order once (own sandbox)."""
    sandbox = helpers.start()
    try:
        mapping = helpers.write_mapping(tmp_path)
        state = tmp_path / "state.db"
        old, new = "buyer0@example.com", "renamed0@example.com"
        first = helpers.orders(range(1, 31), contacts_count=3)
        helpers.run(mapping, helpers.write_orders(tmp_path / "a.ndjson", first), sandbox, state)
        api(
            sandbox,
            "PATCH",
            f"/crm/v3/objects/contacts/{record_id(sandbox, old)}",
            {"properties": {"email": new}},
        )
        # the shop now knows the new address too: orders for both
        second = first + [
            {**helpers.order(i, contacts_count=3), "email": (old, new)[i % 2]}
            for i in range(31, 41)
        ]
        source = helpers.write_orders(tmp_path / "b.ndjson", second)
        summary = helpers.run(mapping, source, sandbox, state)
        assert summary.ok and summary.contacts_created == 0
        assert summary.drift == 0, f"hubmap's own values taken for drift ({summary.drift})"
        assert set(helpers.contacts(sandbox)) == {new, "buyer1@example.com", "buyer2@example.com"}
        exact(sandbox, onto(second, new, old))
        again = helpers.run(mapping, source, sandbox, state)
        assert (again.new, again.contacts_updated, again.contacts_created) == (0, 0, 0)
        exact(sandbox, onto(second, new, old))
    finally:
        sandbox.stop()


# Which of the two keys becomes the joined fold's key depends on set iteration order (the record
# read by id carries no email, see the report), so on the string hash seed: the scenario runs
# under several fixed seeds, each in its own process, and must be exact under every one.
HASH_SEEDS = ("0", "1", "2", "3", "4", "5")


def test_orders_for_the_changed_email_join_the_old_keys_fold(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys; from pathlib import Path; from tests.acceptance.test_fences import "
        "changed_email_then_orders_for_both as scenario; scenario(Path(sys.argv[1]))"
    )
    runs = {}
    for seed in HASH_SEEDS:
        folder = tmp_path / f"seed-{seed}"
        folder.mkdir()
        env = {
            **os.environ,
            "PYTHONHASHSEED": seed,
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        }
        runs[seed] = subprocess.Popen(
            [sys.executable, "-c", code, str(folder)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    failed = {}
    for seed, process in runs.items():
        output, _ = process.communicate(timeout=120)
        if process.returncode != 0:
            failed[seed] = output.strip().splitlines()[-1:]
    assert not failed, f"not exact under PYTHONHASHSEED {sorted(failed)}: {failed}"


CUSTOMER_MAPPING = """\
version: 1
name: customers
records:
  id: id
  time: at
  contact: cid
target:
  kind: contacts
  match_on: shop_customer_id
group:
  name: ecommerce
  label: E-commerce
properties:
  tiny_total:
    label: Tiny total
    type: number
    from: amount
    merge: sum
  tiny_count:
    label: Tiny count
    type: number
    value: 1
    merge: sum
"""


def test_contacts_matched_on_a_unique_property_and_merged_hold_the_fold_of_both(
    tmp_path: Path, sandbox: RunningSandbox, new_state
) -> None:
    """The same for a custom unique `match_on`: after a merge the merged-away customer id is no
    longer on any record, and its key is found by the record id hubmap learnt."""
    mapping = tmp_path / "customers.yaml"
    mapping.write_text(CUSTOMER_MAPPING, encoding="utf-8")
    state = new_state("state.db")

    def order(number: int, cid: str, amount: str) -> dict[str, Any]:
        return {"id": number, "cid": cid, "at": f"2024-05-0{number}T10:00:00Z", "amount": amount}

    first = [order(1, "C-1", "10.00"), order(2, "C-2", "20.00"), order(3, "C-2", "0.30")]
    helpers.run(mapping, helpers.write_orders(tmp_path / "a.ndjson", first), sandbox, state)

    def by_customer() -> dict[str, dict[str, Any]]:
        found = api(sandbox, "GET", "/_sandbox/dump")["contacts"]
        return {c["properties"].get("shop_customer_id"): c for c in found}

    held = by_customer()
    api(
        sandbox,
        "POST",
        "/crm/v3/objects/contacts/merge",
        {"primaryObjectId": str(held["C-1"]["id"]), "objectIdToMerge": str(held["C-2"]["id"])},
    )
    both = first + [order(4, "C-2", "4.00"), order(5, "C-1", "0.05")]
    again = helpers.run(mapping, helpers.write_orders(tmp_path / "b.ndjson", both), sandbox, state)
    assert again.ok and again.new == 2 and again.contacts_created == 0
    (survivor,) = by_customer().values()  # one record, holding every order once
    assert (
        Decimal(survivor["properties"]["tiny_total"]),
        survivor["properties"]["tiny_count"],
    ) == (Decimal("34.35"), "5")
    repeat = helpers.run(mapping, helpers.write_orders(tmp_path / "b.ndjson", both), sandbox, state)
    assert (repeat.new, repeat.contacts_updated, repeat.contacts_created) == (0, 0, 0)
