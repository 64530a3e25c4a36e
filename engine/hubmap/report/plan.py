"""Print a plan: per contact, each property's value before -> after, and the rejected records."""

from __future__ import annotations

import json

from hubmap.plan import Plan


def plan_json(plan: Plan) -> str:
    document = {
        "contacts": [
            {
                "email": contact.contact,
                "orders": contact.orders,
                "changes": {
                    name: {"before": change.before, "after": change.after}
                    for name, change in contact.changes.items()
                },
            }
            for contact in plan.contacts
        ],
        "submissions": [
            {"email": order.contact, "order": order.order_id, "context": order.context}
            for order in plan.submissions
        ],
        "rejected": [
            {"record": r.record, "where": r.where, "property": r.property_name, "reason": r.reason,
             "code": r.code}
            for r in plan.rejected
        ],
        "skipped": [{"record": s.order_id or s.where, "reason": s.reason} for s in plan.skipped],
        "records": plan.records,
        "orders": plan.orders.as_dict(),
        "refunds_waiting": plan.refunds_waiting,
        "warnings": plan.warnings,
        "unwritable": [{"contact": c, "reason": reason} for c, reason in plan.unwritable],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def plan_text(plan: Plan) -> str:
    lines: list[str] = []
    for contact in plan.contacts:
        lines.append(f"{contact.contact} ({contact.orders} order(s))")
        for name, change in contact.changes.items():
            before = "(none)" if change.before is None else repr(change.before)
            lines.append(f"  {name}: {before} -> {change.after!r}")
    for order in plan.submissions:
        lines.append(f"submit form for {order.contact} (order {order.order_id})")
    for rejected in plan.rejected:
        prop = f" {rejected.property_name}:" if rejected.property_name else ""
        where = f" ({rejected.where})" if rejected.where != rejected.record else ""
        lines.append(f"rejected {rejected.record}{where}:{prop} {rejected.reason}")
    for contact, reason in plan.unwritable:
        lines.append(f"not writable: contact {contact}: {reason}")
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    for skipped in plan.skipped:
        lines.append(f"skipped {skipped.order_id or skipped.where} ({skipped.where}): "
                     f"{skipped.reason}")
    o = plan.orders
    lines.append(
        f"{plan.records} record(s): {len(plan.contacts)} contact(s), "
        f"{len(plan.submissions)} submission(s); orders {o.new} new, {o.changed} changed, "
        f"{o.unchanged} unchanged, {o.stale} stale, {o.withdrawn} withdrawn, {o.skipped} "
        f"skipped; {len(plan.rejected)} rejected"
        + (f"; refunds {o.refunds} ({plan.refunds_waiting} waiting for their order)"
           if o.refunds or plan.refunds_waiting else ""))
    return "\n".join(lines)
