"""hubmap.plan: evaluated records taken through a run's decisions into each contact's values
before -> after (pure, no state, no HubSpot), the rejected and skipped records kept, versions
and withdrawals, values HubSpot cannot hold, properties no record gives, form submissions."""

from __future__ import annotations

from typing import Any

import yaml

from hubmap.evaluate import CompiledMapping
from hubmap.fold import ContactFolder
from hubmap.inputs import Document
from hubmap.mapping import check_document
from hubmap.mapping.loader import load_text
from hubmap.plan import ValuesSeen, plan_outcomes, submission_fields
from hubmap.sync import Change

PROPERTIES: dict[str, Any] = {
    "total": {"type": "number", "from": "amount", "merge": "sum"},
    "last_sku": {"type": "string", "from": "sku"},
    "coupon": {"type": "string", "from": "coupon", "merge": "latest_known"},
}


def compiled_of(**changes: Any) -> CompiledMapping:
    data: dict[str, Any] = {
        "version": 1,
        "name": "plan-test",
        "records": {"id": "id", "time": "at", "contact": "email", "when": "status != 'void'"},
        "target": {"kind": "contacts"},
        "properties": PROPERTIES,
    }
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    checked = check_document(load_text(yaml.safe_dump(data), "m.yaml"), environ={})
    assert checked.ok, [str(p) for p in checked.problems if p.is_error]
    return CompiledMapping(checked.mapping)  # type: ignore[arg-type]


def order(order_id: str, day: int, email: str = "a@example.com", **fields: Any) -> dict[str, Any]:
    return {
        "id": order_id,
        "at": f"2024-01-{day:02d}T10:00:00Z",
        "email": email,
        "status": "paid",
        **fields,
    }


def plan_of(compiled: CompiledMapping, records: list[Any], **kwargs: Any) -> Any:
    documents = [Document(r, f"in.ndjson:{i + 1}") for i, r in enumerate(records)]
    return plan_outcomes(compiled, compiled.outcomes(documents), **kwargs)


def test_each_contact_gets_its_folded_values_and_its_order_count() -> None:
    plan = plan_of(
        compiled_of(),
        [
            order("1", 1, amount="10", sku="A", coupon="SAVE"),
            order("2", 2, amount="5.5", sku="B"),
            order("3", 1, email="B@Example.com", amount="1", sku="C"),
        ],
    )
    got = {c.contact: (c.values, c.orders) for c in plan.contacts}
    assert got == {
        "a@example.com": ({"total": "15.5", "last_sku": "B", "coupon": "SAVE"}, 2),
        "b@example.com": ({"total": "1", "last_sku": "C", "coupon": ""}, 1),
    }
    assert plan.records == 3 and plan.orders.new == 3


def test_changes_are_what_differs_from_hubspot_and_values_hubspot_holds_alike_are_none() -> None:
    records = [order("1", 1, amount="10", sku="A")]
    current = {"a@example.com": {"total": "2.00", "last_sku": "A", "coupon": "OLD"}}
    (contact,) = plan_of(compiled_of(), records, current=current).contacts
    assert contact.changes == {"total": Change("2.00", "12")}  # latest_known keeps OLD
    assert contact.values == {"total": "12", "last_sku": "A", "coupon": "OLD"}
    (fresh,) = plan_of(compiled_of(), records, default_current={"total": "1"}).contacts
    assert fresh.changes["total"] == Change("1", "11")


def test_rejected_and_skipped_records_are_kept_and_counted() -> None:
    plan = plan_of(
        compiled_of(),
        [order("1", 1, amount="x"), order("2", 1, status="void"), order("3", 1, amount="1")],
    )
    assert [(r.order_id, r.property_name) for r in plan.rejected] == [("1", "total")]
    assert [s.order_id for s in plan.skipped] == ["2"]
    assert plan.records == 3 and plan.orders.skipped == 1 and plan.orders.new == 1
    assert [c.values["total"] for c in plan.contacts] == ["1"]


def test_a_newer_version_replaces_the_order_and_one_left_out_by_when_withdraws_it() -> None:
    compiled = compiled_of(records={"version": "updated"})
    plan = plan_of(
        compiled,
        [
            order("1", 1, amount="10", updated="2024-01-01T10:00:00Z"),
            order("2", 2, amount="3", updated="2024-01-02T10:00:00Z"),
            order("1", 1, amount="20", updated="2024-01-05T10:00:00Z"),
            order("1", 1, amount="99", updated="2024-01-03T10:00:00Z"),  # older: stale
            order("2", 2, amount="3", status="void", updated="2024-01-06T10:00:00Z"),
        ],
    )
    (contact,) = plan.contacts
    assert (contact.values["total"], contact.orders) == ("20", 1)
    tally = plan.orders
    assert (tally.new, tally.changed, tally.stale, tally.withdrawn) == (2, 1, 1, 1)


def test_a_sum_hubspot_cannot_hold_makes_the_contact_unwritable_not_the_plan() -> None:
    huge = "9" * 40  # each within what a number holds; twenty of them are not
    plan = plan_of(
        compiled_of(),
        [order(str(i), 1, amount=huge) for i in range(20)] + [order("x", 1, "b@x.io", amount="1")],
    )
    assert [c.contact for c in plan.contacts] == ["b@x.io"]
    ((contact, reason),) = plan.unwritable
    assert contact == "a@example.com" and reason.startswith("total: ")


def test_values_seen_names_the_properties_no_record_gave() -> None:
    compiled = compiled_of()
    seen = ValuesSeen()
    records = [order("1", 1, amount="1"), order("2", 2, amount="2", sku="A")]
    outcomes = list(seen.watch(compiled.outcomes(Document(r, "in") for r in records)))
    assert len(outcomes) == 2 and seen.records == 2
    assert seen.never_given(compiled) == ["coupon"]
    assert ValuesSeen().never_given(compiled) == []  # no record: nothing to say


FORMS = """\
version: 1
name: plan-forms
records: {id: id, time: at, contact: email}
target: {kind: forms, portal_id: "1", form_guid: "g", context: {hutk: hutk}}
properties:
  last_total: {type: number, from: amount, decimals: 2}
  last_sku: {type: string, from: sku}
"""


def test_a_forms_plan_is_one_submission_per_order_with_this_purchases_values() -> None:
    checked = check_document(load_text(FORMS, "f.yaml"), environ={})
    assert checked.ok, [str(p) for p in checked.problems if p.is_error]
    compiled = CompiledMapping(checked.mapping)  # type: ignore[arg-type]
    plan = plan_of(
        compiled,
        [order("1", 1, amount="5", sku="A", hutk="h1"), order("2", 2, amount="7")],
    )
    assert plan.contacts == []
    folder = ContactFolder(compiled)
    fields = [submission_fields(compiled, folder, o) for o in plan.submissions]
    assert fields == [
        {"email": "a@example.com", "last_total": "5.00", "last_sku": "A"},
        {"email": "a@example.com", "last_total": "7.00"},  # no value: not cleared
    ]
    assert [o.context for o in plan.submissions] == [{"hutk": "h1"}, {}]
