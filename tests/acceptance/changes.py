"""Orders that change, for the tests: a mapping with versions, withdrawals and refunds, histories
of order versions and refunds made from a seed, and an independent computation of what HubSpot
must hold once every record was delivered - written apart from hubmap's fold.

An order keeps its id, contact and time; its versions change the amount, the SKU, an optional
note and phone, and the status (a cancelled version withdraws the order).  A refund belongs to
one order, is created with one of its versions, comes inside every later version of the order
(`refunds`) and also as a document of its own; its amount is taken off the order's amount.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from tests.acceptance.helpers import parse_time

CAP = 6  # prepend cap of the mapping's list property

MAPPING = """\
version: 1
name: {name}
records:
  id: id
  time: at
  contact: email
  version: v
  when: "status != 'cancelled'"
refunds:
  match: "refund_of != null"
  in_order: refunds
  id: rid
  order: "to_string(refund_of)"
  values:
    c_total: "multiply(amount, `-1`)"
    c_largest: "multiply(amount, `-1`)"
target:
  kind: contacts
  match_on: email
group:
  name: ecommerce
  label: E-commerce
properties:
  c_total:
    label: Changing total
    type: number
    from: amount
    merge: sum
  c_count:
    label: Changing count
    type: number
    value: 1
    merge: sum
  c_largest:
    label: Largest order
    type: number
    from: amount
    merge: max
  c_last_sku:
    label: Last SKU
    type: string
    from: sku
  c_last_note:
    label: Last note
    type: string
    from: note
  c_phone:
    label: Phone
    type: string
    from: phone
    merge: latest_known
  c_first_sku:
    label: First SKU
    type: string
    from: sku
    merge: set_once
  c_first_at:
    label: First order at
    type: datetime
    from: at
    merge: min
  c_skus:
    label: SKUs
    type: string
    from: sku
    merge: prepend
    max_items: {cap}
"""

NUMBERS = ("c_total", "c_count", "c_largest")


def write_mapping(folder: Any, name: str = "changing-orders") -> Any:
    path = folder / "changing.yaml"
    path.write_text(MAPPING.format(name=name, cap=CAP), encoding="utf-8")
    return path


@dataclass
class Refund:
    rid: str
    order: int
    amount: Decimal
    created_with: int  # the version of its order that first carries it


@dataclass
class Order:
    id: int
    email: str
    at: datetime
    versions: list[dict[str, Any]] = field(default_factory=list)  # content per version, from 1
    refunds: list[Refund] = field(default_factory=list)


def history(seed: int, orders: int, contacts: int, max_versions: int = 4) -> list[Order]:
    """Orders with their versions and refunds, all from `seed`."""
    rng = random.Random(seed)
    made = []
    for number in range(1, orders + 1):
        order = Order(
            number,
            f"buyer{number % contacts}@example.com",
            datetime(2024, 3, 1, tzinfo=timezone.utc)
            + timedelta(hours=rng.randrange(2000), minutes=rng.randrange(60)),
        )
        for version in range(1, rng.randint(1, max_versions) + 1):
            order.versions.append(
                {
                    "amount": Decimal(rng.randrange(100, 50_000)) / 100,
                    "sku": f"SKU-{rng.randrange(9)}",
                    "note": rng.choice([None, "gift", "rush"]),
                    "phone": rng.choice([None, None, f"+49 30 {rng.randrange(10**6):06d}"]),
                    "status": "cancelled" if rng.random() < 0.2 else "paid",
                }
            )
            if rng.random() < 0.35:
                order.refunds.append(
                    Refund(
                        f"r{number}-{len(order.refunds) + 1}",
                        number,
                        Decimal(rng.randrange(1, 5_000)) / 100,
                        version,
                    )
                )
        made.append(order)
    return made


def order_record(order: Order, version: int) -> dict[str, Any]:
    content = order.versions[version - 1]
    record: dict[str, Any] = {
        "id": order.id,
        "email": order.email,
        "v": version,
        "at": order.at.isoformat().replace("+00:00", "Z"),
        "amount": str(content["amount"]),
        "sku": content["sku"],
        "status": content["status"],
        "refunds": [
            {"rid": r.rid, "amount": str(r.amount)}
            for r in order.refunds
            if r.created_with <= version
        ],
    }
    for key in ("note", "phone"):
        if content[key] is not None:
            record[key] = content[key]
    return record


def refund_record(refund: Refund) -> dict[str, Any]:
    return {"rid": refund.rid, "refund_of": refund.order, "amount": str(refund.amount)}


def every_record(orders: list[Order]) -> list[dict[str, Any]]:
    records = [order_record(o, v) for o in orders for v in range(1, len(o.versions) + 1)]
    records += [refund_record(r) for o in orders for r in o.refunds]
    return records


def expected(delivered: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What HubSpot must hold per contact after `delivered` (any order, any repeats): each
    order at the highest version delivered, counted unless that version is cancelled, its
    amount less every refund of it delivered (on its own or inside any version)."""
    latest: dict[int, dict[str, Any]] = {}
    refunds: dict[str, tuple[int, Decimal]] = {}
    for record in delivered:
        if "refund_of" in record:
            refunds[record["rid"]] = (int(record["refund_of"]), Decimal(record["amount"]))
            continue
        for inner in record["refunds"]:
            refunds[inner["rid"]] = (int(record["id"]), Decimal(inner["amount"]))
        held = latest.get(record["id"])
        if held is None or record["v"] > held["v"]:
            latest[record["id"]] = record
    off: dict[int, Decimal] = {}
    for order_id, amount in refunds.values():
        off[order_id] = off.get(order_id, Decimal(0)) + amount
    per_contact: dict[str, list[dict[str, Any]]] = {}
    for record in latest.values():
        if record["status"] != "cancelled":
            per_contact.setdefault(record["email"], []).append(record)
    result = {}
    for email, mine in per_contact.items():
        mine.sort(key=lambda r: (parse_time(r["at"]), int(r["id"])))
        amounts = [Decimal(r["amount"]) - off.get(int(r["id"]), Decimal(0)) for r in mine]
        newest_first: list[str] = []
        for record in reversed(mine):
            if record["sku"] not in newest_first:
                newest_first.append(record["sku"])
        phones = [r["phone"] for r in mine if "phone" in r]
        values: dict[str, Any] = {
            "c_total": sum(amounts, Decimal(0)),
            "c_count": Decimal(len(mine)),
            "c_largest": max(amounts),
            "c_last_sku": mine[-1]["sku"],
            "c_first_sku": mine[0]["sku"],
            "c_first_at": parse_time(mine[0]["at"]),
            "c_skus": newest_first[:CAP],
        }
        if "note" in mine[-1]:
            values["c_last_note"] = mine[-1]["note"]  # the last purchase's note, or none
        if phones:
            values["c_phone"] = phones[-1]  # the latest order that has one
        result[email] = values
    return result


def held(values: dict[str, str]) -> dict[str, Any]:
    """A contact's values as HubSpot holds them, typed like `expected` (empty ones left out)."""
    result: dict[str, Any] = {}
    for name, text in values.items():
        if not name.startswith("c_") or text in (None, ""):
            continue
        if name in NUMBERS:
            result[name] = Decimal(text)
        elif name == "c_first_at":
            result[name] = parse_time(text)
        elif name == "c_skus":
            result[name] = text.split(";")
        else:
            result[name] = text
    return result
