"""Print a plan: per contact, each property's value before -> after, and the rejected records.

The printers are generators of text pieces, written as they come: a plan whose contacts are read
from a temporary state (`hubmap.uses.plan.StoredPlan`) is never held whole, not even as the JSON
document - which is the same text `json.dumps(document, indent=2)` gives.  `plan_json` and
`plan_text` join the pieces, for a plan in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def _contact(contact: Any) -> dict[str, Any]:
    return {
        "email": contact.contact,
        "orders": contact.orders,
        "changes": {
            name: {"before": change.before, "after": change.after}
            for name, change in contact.changes.items()
        },
    }


def _dumped(value: Any, depth: int) -> str:
    """`value` as json.dumps(indent=2) writes it `depth` levels down in a document."""
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + "  " * depth)


def _json_list(items: Iterable[Any]) -> Iterator[str]:
    """A list one level down in the document, an item at a time."""
    empty = True
    for item in items:
        yield ("[" if empty else ",") + "\n    " + _dumped(item, 2)
        empty = False
    yield "[]" if empty else "\n  ]"


def plan_json_pieces(plan: Any) -> Iterator[str]:
    """The plan as one JSON document, in pieces; its lists are written an item at a time (the
    scalars after them are read once the lists are done: `unwritable` fills while contacts are
    read)."""
    lists = {
        "contacts": (_contact(c) for c in plan.contacts),
        "submissions": (
            {"email": o.contact, "order": o.order_id, "context": o.context}
            for o in plan.submissions
        ),
        "rejected": (
            {
                "record": r.record,
                "where": r.where,
                "property": r.property_name,
                "reason": r.reason,
                "code": r.code,
            }
            for r in plan.rejected
        ),
        "skipped": ({"record": s.order_id or s.where, "reason": s.reason} for s in plan.skipped),
    }
    first = True
    for name, items in lists.items():
        yield ("{" if first else ",") + f"\n  {json.dumps(name)}: "
        yield from _json_list(items)
        first = False
    rest = {
        "records": plan.records,
        "orders": plan.orders.as_dict(),
        "refunds_waiting": plan.refunds_waiting,
        "warnings": plan.warnings,
        "unwritable": [{"contact": c, "reason": reason} for c, reason in plan.unwritable],
    }
    for name, value in rest.items():
        yield f",\n  {json.dumps(name)}: " + _dumped(value, 1)
    yield "\n}"


def plan_text_lines(plan: Any) -> Iterator[str]:
    """The plan for people, a line at a time."""
    for param in getattr(plan, "params", ()):
        origin = "--param or the environment" if param.origin == "environment" else "default"
        yield f"parameter {param.name} = {param.value} ({origin})"
    contacts = 0
    for contact in plan.contacts:
        contacts += 1
        yield f"{contact.contact} ({contact.orders} order(s))"
        for name, change in contact.changes.items():
            before = "(none)" if change.before is None else repr(change.before)
            yield f"  {name}: {before} -> {change.after!r}"
    for order in plan.submissions:
        yield f"submit form for {order.contact} (order {order.order_id})"
    for rejected in plan.rejected:
        prop = f" {rejected.property_name}:" if rejected.property_name else ""
        where = f" ({rejected.where})" if rejected.where != rejected.record else ""
        yield f"rejected {rejected.record}{where}:{prop} {rejected.reason}"
    for contact_key, reason in plan.unwritable:
        yield f"not writable: contact {contact_key}: {reason}"
    for warning in plan.warnings:
        yield f"warning: {warning}"
    for skipped in plan.skipped:
        yield f"skipped {skipped.order_id or skipped.where} ({skipped.where}): {skipped.reason}"
    o = plan.orders
    yield (
        f"{plan.records} record(s): {contacts} contact(s), "
        f"{len(plan.submissions)} submission(s); orders {o.new} new, {o.changed} changed, "
        f"{o.unchanged} unchanged, {o.stale} stale, {o.withdrawn} withdrawn, {o.skipped} "
        f"skipped; {len(plan.rejected)} rejected"
        + (
            f"; refunds {o.refunds} ({plan.refunds_waiting} waiting for their order)"
            if o.refunds or plan.refunds_waiting
            else ""
        )
    )


def plan_json(plan: Any) -> str:
    return "".join(plan_json_pieces(plan))


def plan_text(plan: Any) -> str:
    return "\n".join(plan_text_lines(plan))
