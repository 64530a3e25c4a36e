"""Shopify orders that change, end to end through `hubmap run` (the CLI as a subprocess, over real
HTTP, against the local HubSpot stand-in), on the shipped Shopify mapping.

The scenario a user reported: 600 Shopify orders of 200 customers, of which about 45 % change
after they were placed - partial and full refunds (delivered both as standalone `refunds/create`
Refund bodies and inside later `orders/updated` versions), cancellations, and edits that remove a
line item.  The webhooks are delivered over three runs the way a shop delivers them: out of order,
stale copies (older versions) arriving after newer ones, duplicates, refunds arriving before their
order.  After the three runs every contact must hold exactly what an independent computation
(plain Python and Decimal, below; it does not use hubmap's fold) gives for the latest version of
each order with its refunds counted once by id; and running the last file again must change
nothing.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, localcontext
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests

from hubmap.sandbox import SandboxConfig, start_sandbox
from tests.acceptance.test_cli_run import MAPPING, TOKEN, hubmap

SEED = 20240611
CUSTOMERS = 200
ORDERS = 600
CENTS = Decimal("0.01")
SKU_CAP = 100  # skus_bought: max_items
OFFSETS = [
    timezone(timedelta(hours=-4)),
    timezone(timedelta(hours=-7)),
    timezone.utc,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=9)),
]
CATALOG = [  # (sku, title, variant, vendor, price)
    ("TSHIRT-BLK-M", "Organic tee", "Black / M", "Northwind Apparel", "24.00"),
    ("TSHIRT-WHT-L", "Organic tee", "White / L", "Northwind Apparel", "24.00"),
    ("HOOD-GRY-S", "Zip hoodie", "Grey / S", "Northwind Apparel", "59.90"),
    ("MUG-ENAMEL", "Enamel mug", None, "Potter & Co", "14.50"),
    ("MUG-STONE-2", "Stoneware mugs (2 pack)", None, "Potter & Co", "32.00"),
    ("TOTE-NAT", "Canvas tote", "Natural", "Acme Goods", "18.00"),
    ("CAP-RED", "Baseball cap", "Red", "Acme Goods", "21.99"),
    ("SOCK-3PK", "Wool socks (3 pairs)", None, "Knitwear Ltd", "17.25"),
    ("BEANIE-NVY", "Beanie", "Navy", "Knitwear Ltd", "19.00"),
    ("CANDLE-FIG", "Fig candle", None, "Lumen & Wick", "28.40"),
    ("CANDLE-CED", "Cedar candle", None, "Lumen & Wick", "28.40"),
    ("NOTE-A5", "Dot-grid notebook A5", None, "Paperie", "12.95"),
    ("PEN-BRASS", "Brass pen", None, "Paperie", "45.00"),
    ("BOTTLE-750", "Steel bottle 750 ml", "Sage", "Acme Goods", "29.00"),
    ("SCARF-MER", "Merino scarf", "Oat", "Knitwear Ltd", "64.00"),
    ("SOAP-LAV", "Lavender soap", None, "Lumen & Wick", "7.80"),
    ("CAFÉ-1KG", "Café crème beans 1 kg", None, "Röstwerk", "23.10"),
    ("PLANT-POT", "Terracotta pot", "Small", "Potter & Co", "11.00"),
]
CODES = ["WELCOME10", "SUMMER15", "VIP20"]


# -- the shop: orders, their versions and refunds -------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.isoformat()


def _money(amount: Decimal) -> str:
    return str(amount.quantize(CENTS))


@dataclass
class ShopOrder:
    """One order's life in the shop: each version as the shop sends it, and its events."""

    id: int
    email: str
    created: datetime
    events: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)
    change: str = "none"

    @property
    def versions(self) -> list[dict[str, Any]]:
        return [body for _, kind, body in self.events if kind == "order"]


def _line_items(rng: random.Random, order_id: int) -> list[dict[str, Any]]:
    items = []
    for index, (sku, title, variant, vendor, price) in enumerate(
        rng.sample(CATALOG, rng.choice([1, 1, 2, 2, 2, 3, 3, 4]))
    ):
        items.append(
            {
                "id": order_id * 10 + index,
                "variant_id": 40_000_000_000 + CATALOG.index((sku, title, variant, vendor, price)),
                "product_id": 7_000_000_000 + CATALOG.index((sku, title, variant, vendor, price)),
                "sku": sku,
                "title": title,
                "variant_title": variant,
                "name": f"{title} - {variant}" if variant else title,
                "vendor": vendor,
                "price": price,
                "quantity": rng.choice([1, 1, 1, 2, 3]),
                "requires_shipping": True,
                "taxable": True,
                "fulfillment_status": None,
            }
        )
    return items


def _priced(order: dict[str, Any]) -> None:
    """Sets the order's subtotal, discount and total_price from its line items."""
    subtotal = sum((Decimal(i["price"]) * i["quantity"] for i in order["line_items"]), Decimal(0))
    discount = Decimal(0)
    for code in order["discount_codes"]:
        percent = Decimal(code["code"][-2:])
        discount = (subtotal * percent / 100).quantize(CENTS, ROUND_HALF_UP)
        code["amount"] = _money(discount)
    shipping = Decimal(order["_shipping"])
    order["subtotal_price"] = _money(subtotal - discount)
    order["total_discounts"] = _money(discount)
    order["total_line_items_price"] = _money(subtotal)
    order["total_price"] = _money(subtotal - discount + shipping)


def _body(order: dict[str, Any]) -> dict[str, Any]:
    """The webhook body of a version (a deep copy, without the generator's own keys)."""
    return {k: copy.deepcopy(v) for k, v in order.items() if not k.startswith("_")}


def _refund(
    rng: random.Random,
    order: dict[str, Any],
    refund_id: int,
    moment: datetime,
    amount: Decimal,
    *,
    items: list[dict[str, Any]],
    note: str,
) -> dict[str, Any]:
    """A Shopify Refund resource: what refunds/create posts and what orders list in refunds[]."""
    status = "pending" if rng.random() < 0.15 else "success"
    transactions = []
    if rng.random() < 0.2:  # a first attempt the gateway declined: takes off nothing
        transactions.append(
            {
                "id": refund_id * 10 + 1,
                "order_id": order["id"],
                "kind": "refund",
                "gateway": "bogus",
                "status": "failure",
                "message": "Card declined",
                "amount": _money(amount),
                "currency": "USD",
                "created_at": _stamp(moment),
                "parent_id": order["id"] * 10,
                "test": False,
            }
        )
    transactions.append(
        {
            "id": refund_id * 10 + 2,
            "order_id": order["id"],
            "kind": "refund",
            "gateway": "bogus",
            "status": status,
            "message": "Bogus Gateway: Forced success",
            "amount": _money(amount),
            "currency": "USD",
            "created_at": _stamp(moment),
            "parent_id": order["id"] * 10,
            "test": False,
        }
    )
    return {
        "id": refund_id,
        "order_id": order["id"],
        "created_at": _stamp(moment),
        "processed_at": _stamp(moment),
        "note": note,
        "restock": bool(items),
        "user_id": 548380009,
        "refund_line_items": [
            {
                "id": refund_id * 100 + n,
                "line_item_id": item["id"],
                "quantity": item["quantity"],
                "restock_type": "return",
                "location_id": 24826418,
                "subtotal": float(Decimal(item["price"]) * item["quantity"]),
                "total_tax": 0.0,
                "line_item": copy.deepcopy(item),
            }
            for n, item in enumerate(items)
        ],
        "transactions": transactions,
        "order_adjustments": [],
    }


def _refunded_so_far(order: dict[str, Any]) -> Decimal:
    return sum(
        (
            Decimal(t["amount"])
            for r in order["refunds"]
            for t in r["transactions"]
            if t["status"] in ("success", "pending")
        ),
        Decimal(0),
    )


CHANGES = (
    ["partial_refund"] * 12
    + ["two_partial_refunds"] * 4
    + ["full_refund"] * 6
    + ["cancel"] * 8
    + ["edit"] * 8
    + ["edit_then_refund"] * 3
    + ["refund_then_cancel"] * 4
)  # 45 of 100
# The changes of the customers with one order: refunded to 0.00, withdrawn to nothing, edited.
SINGLE_ORDER_CHANGES = [
    "full_refund",
    "full_refund",
    "cancel",
    "refund_then_cancel",
    "edit",
    "two_partial_refunds",
]


def shop(seed: int = SEED) -> list[ShopOrder]:
    """600 orders of 200 customers, with what happens to them after they were placed."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 8, 9, 0, tzinfo=timezone.utc)
    minutes = rng.sample(range(300 * 24 * 60), ORDERS)  # distinct: "latest" is unambiguous
    refund_ids = iter(range(968_000_000_000, 969_000_000_000, 7))
    orders = []
    for n in range(ORDERS):
        order_id = 5_530_000_000_000 + n * 37
        # Every customer orders once; then the first ones order again.  The last few customers
        # keep their single order, so some contacts live on one order that changes.
        person = n if n < CUSTOMERS else rng.randrange(CUSTOMERS - len(SINGLE_ORDER_CHANGES))
        email = (
            f"customer.{person}@shop-example.com"
            if person % 4
            else f"Kundin.{person}@Example-Shop.de"
        )
        if rng.random() < 0.3:
            email = email.upper() if rng.random() < 0.5 else email.lower()
        created = (start + timedelta(minutes=minutes[n])).astimezone(rng.choice(OFFSETS))
        status = rng.choice(["paid", "paid", "paid", "authorized", "pending"])
        order: dict[str, Any] = {
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{1001 + n}",
            "order_number": 1001 + n,
            "number": 1 + n,
            "email": email,
            "contact_email": email,
            "created_at": _stamp(created),
            "updated_at": _stamp(created),
            "processed_at": _stamp(created),
            "currency": "USD",
            "presentment_currency": "USD",
            "financial_status": status,
            "fulfillment_status": None,
            "cancelled_at": None,
            "cancel_reason": None,
            "test": False,
            "taxes_included": False,
            "total_tax": "0.00",
            "customer": {
                "id": 6_200_000_000 + person,
                "email": email,
                "first_name": "Kim",
                "last_name": f"Customer {person}",
            },
            "line_items": _line_items(rng, order_id),
            "discount_codes": [],
            "refunds": [],
            "_shipping": rng.choice(["0.00", "0.00", "4.90", "9.90"]),
        }
        if rng.random() < 0.3:
            code = rng.choice(CODES)
            order["discount_codes"] = [{"code": code, "amount": "0.00", "type": "percentage"}]
        _priced(order)
        life = _Life(rng, order, ShopOrder(order_id, email, created), refund_ids)
        change = rng.choice(CHANGES + ["none"] * 55)
        if person >= CUSTOMERS - len(SINGLE_ORDER_CHANGES):
            change = SINGLE_ORDER_CHANGES[person - CUSTOMERS]
        if change.startswith("edit") and len(order["line_items"]) < 2:
            change = "partial_refund"
        if status != "paid" and change == "none" and rng.random() < 0.4:
            life.capture()  # the payment is captured: a new version, nothing else changes
        life.made.change = change
        for step in STEPS[change]:
            getattr(life, step)()
        orders.append(life.made)
    return orders


STEPS = {
    "none": [],
    "partial_refund": ["partial_refund"],
    "two_partial_refunds": ["partial_refund", "partial_refund"],
    "full_refund": ["full_refund"],
    "cancel": ["cancel"],
    "edit": ["edit"],
    "edit_then_refund": ["edit", "partial_refund"],
    "refund_then_cancel": ["partial_refund", "cancel"],
}


class _Life:
    """What happens to one order after it was placed: each step a new version (and refunds)."""

    def __init__(
        self, rng: random.Random, order: dict[str, Any], made: ShopOrder, refund_ids: Iterator[int]
    ):
        self.rng, self.order, self.made, self.refund_ids = rng, order, made, refund_ids
        self.moment = made.created
        made.events.append((made.created, "order", _body(order)))  # orders/create

    def later(self, hours_from: float, hours_to: float) -> datetime:
        self.moment += timedelta(minutes=self.rng.randint(int(hours_from * 60), int(hours_to * 60)))
        return self.moment

    def version(self, at: datetime) -> None:  # orders/updated
        self.order["updated_at"] = _stamp(at)
        self.made.events.append((at, "order", _body(self.order)))

    def left(self) -> Decimal:
        return Decimal(self.order["total_price"]) - _refunded_so_far(self.order)

    def capture(self) -> None:
        if self.order["financial_status"] in ("authorized", "pending"):
            self.order["financial_status"] = "paid"
            self.version(self.later(0.5, 30))

    def _refunds_create(
        self, at: datetime, amount: Decimal, items: list[dict[str, Any]], note: str
    ) -> None:
        body = _refund(
            self.rng, self.order, next(self.refund_ids), at, amount, items=items, note=note
        )
        self.order["refunds"].append(body)
        self.made.events.append((at, "refund", copy.deepcopy(body)))  # refunds/create

    def refund(self, amount: Decimal, items: list[dict[str, Any]], note: str) -> None:
        self.capture()
        at = self.later(24, 24 * 14)
        self._refunds_create(at, amount, items, note)
        self.order["financial_status"] = "refunded" if self.left() <= 0 else "partially_refunded"
        self.version(at + timedelta(seconds=self.rng.randint(1, 20)))

    def partial_refund(self) -> None:
        share = Decimal(self.rng.randint(5, 45)) / 100
        self.refund(
            max(CENTS, (self.left() * share).quantize(CENTS)), [], "Partial refund: goodwill"
        )

    def full_refund(self) -> None:
        self.refund(self.left(), self.order["line_items"], "Returned in full")

    def cancel(self) -> None:
        at = self.later(1, 24 * 5)
        if self.order["financial_status"] in ("authorized", "pending"):
            self.order["financial_status"] = "voided"  # never captured: nothing to refund
        else:
            self._refunds_create(at, self.left(), self.order["line_items"], "Order canceled")
            self.order["financial_status"] = "refunded"
        self.order["cancelled_at"] = _stamp(at)
        self.order["cancel_reason"] = self.rng.choice(["customer", "inventory", "fraud"])
        self.version(at + timedelta(seconds=self.rng.randint(1, 20)))

    def edit(self) -> None:  # a line item removed: fewer items, a lower total_price
        removed = self.rng.randrange(len(self.order["line_items"]))
        self.order["line_items"] = [
            i for k, i in enumerate(self.order["line_items"]) if k != removed
        ]
        before = self.order["total_price"]
        _priced(self.order)
        assert Decimal(self.order["total_price"]) < Decimal(before)
        self.version(self.later(0.2, 48))


# -- delivery over three runs ---------------------------------------------------------------------


@dataclass
class Delivery:
    """The three files, and the disorder put into them (besides the jitter of arrival times)."""

    files: list[list[dict[str, Any]]]
    stale_copies: list[int]  # per run: older versions placed after a newer one
    duplicates: list[int]  # per run: a delivery repeated
    cancel_first: list[int]  # per run: a cancelled version before the order's first version
    refunds_early: list[int]  # per run: refunds/create delivered in a run before their order's


def deliver(orders: list[ShopOrder], seed: int = SEED) -> Delivery:
    """Each event of each order once, in one of three runs, roughly in time with a day of
    jitter; a webhook outage delays some orders past their refunds; stale copies and
    duplicates come on top."""
    rng = random.Random(seed + 1)
    slots: list[tuple[int, float, dict[str, Any]]] = []  # (run, place in the file, body)
    stale, duplicates, cancel_first, early = [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]
    day = 86_400.0
    for order in orders:
        kinds = [kind for _, kind, _ in order.events]
        versions = [i for i, kind in enumerate(kinds) if kind == "order"]
        run = rng.choices([1, 2, 3], weights=[55, 30, 15])[0]
        runs, keys = [], []
        for at, _, _ in order.events:
            runs.append(run)
            keys.append(at.timestamp() + rng.uniform(-day, day))
            if rng.random() < 0.35:
                run = min(3, run + 1)
        if "refund" in kinds and rng.random() < 0.2:
            # The orders/* webhooks failed for a while: the order's versions come in a later
            # run than its first refund.
            first_refund = kinds.index("refund")
            runs[first_refund] = rng.choice([1, 2])
            for index in range(len(kinds)):
                if index != first_refund:
                    runs[index] = max(runs[index], runs[first_refund] + (kinds[index] == "order"))
            early[runs[first_refund] - 1] += 1
        elif not _counts(order.versions[-1]) and rng.random() < 0.25:
            # The cancelled version overtakes the order's first version (orders/create late).
            last = versions[-1]
            runs[last], runs[0] = min(runs[0], runs[last]), max(runs[0], runs[last])
            keys[last], keys[0] = min(keys[0], keys[last]) - 1, max(keys[0], keys[last]) + 1
            cancel_first[runs[last] - 1] += 1
        for index, (_, _, body) in enumerate(order.events):
            slots.append((runs[index], keys[index], body))
        if len(versions) >= 2 and rng.random() < 0.4:
            # A stale copy: an older version delivered again, after a newer one.
            old = rng.choice(versions[:-1])
            newer = rng.choice([i for i in versions if i > old])
            again = rng.randint(runs[newer], 3)
            place = (
                keys[newer] + rng.uniform(1, 3 * day)
                if again == runs[newer]
                else rng.uniform(0, 2e9)
            )
            slots.append((again, place, order.events[old][2]))
            stale[again - 1] += 1
        for index in range(len(kinds)):
            if rng.random() < 0.08:  # the shop retries a delivery
                again = rng.randint(runs[index], 3)
                place = (
                    keys[index] + rng.uniform(1, day)
                    if again == runs[index]
                    else rng.uniform(0, 2e9)
                )
                slots.append((again, place, order.events[index][2]))
                duplicates[again - 1] += 1
    files: list[list[dict[str, Any]]] = [[], [], []]
    for run_of, _, body in sorted(slots, key=lambda s: (s[0], s[1])):
        files[run_of - 1].append(body)
    return Delivery(files, stale, duplicates, cancel_first, early)


# -- what HubSpot must hold, computed independently ----------------------------------------------


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _is_refund(body: dict[str, Any]) -> bool:
    return "order_id" in body and "refund_line_items" in body


def _refund_amount(refund: dict[str, Any]) -> Decimal:
    """The mapping's refunds.values: minus its successful or pending refund transactions."""
    return sum(
        (
            Decimal(t["amount"])
            for t in refund["transactions"]
            if t["kind"] == "refund" and t["status"] in ("success", "pending")
        ),
        Decimal(0),
    )


def _counts(order: dict[str, Any]) -> bool:
    """records.when: neither cancelled nor voided."""
    return order["cancelled_at"] is None and order["financial_status"] != "voided"


def _item_name(item: dict[str, Any] | None) -> str | None:
    if item is None:
        return None
    return item.get("name") or item.get("title") or None


def _newest_first_unique(lists: list[list[str]], cap: int) -> str | None:
    seen: list[str] = []
    for values in lists:
        for value in values:
            if value and value not in seen:
                seen.append(value)
    return ";".join(seen[:cap]) or None


def latest_versions(delivered: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    latest: dict[int, dict[str, Any]] = {}
    for body in delivered:
        if _is_refund(body):
            continue
        held = latest.get(body["id"])
        if held is None or _instant(body["updated_at"]) > _instant(held["updated_at"]):
            latest[body["id"]] = body
    return latest


def refunds_of(delivered: list[dict[str, Any]]) -> dict[int, dict[int, Decimal]]:
    """Each refund once by its id, from refunds/create bodies and from orders' refunds[]."""
    found: dict[int, dict[int, Decimal]] = {}
    for body in delivered:
        for refund in [body] if _is_refund(body) else body.get("refunds") or []:
            found.setdefault(refund["order_id"], {})[refund["id"]] = _refund_amount(refund)
    return found


def expected_contacts(delivered: list[dict[str, Any]]) -> dict[str, dict[str, str | None]]:
    """Per contact (lower-cased email) the mapping's values after `delivered` (any order, any
    repeats): each order at its latest version (updated_at), counted unless that version is
    cancelled or voided, its gross total_price less its refunds (each refund once)."""
    latest = latest_versions(delivered)
    refunds = refunds_of(delivered)
    per_contact: dict[str, list[dict[str, Any]]] = {}
    for order in latest.values():
        if _counts(order):
            per_contact.setdefault(order["email"].strip().lower(), []).append(order)
    result: dict[str, dict[str, str | None]] = {}
    for email, mine in per_contact.items():
        mine.sort(key=lambda o: (_instant(o["created_at"]), o["id"]), reverse=True)
        last, first = mine[0], mine[-1]
        total = sum(
            (
                Decimal(o["total_price"]) - sum(refunds.get(o["id"], {}).values(), Decimal(0))
                for o in mine
            ),
            Decimal(0),
        )
        # the top items: greatest line value first, equal values in the order's item order
        items = sorted(
            last["line_items"],
            key=lambda i: -Decimal(str(i["price"])) * Decimal(str(i["quantity"])),
        )
        with localcontext() as exact:
            exact.prec = 50
            average = (total / len(mine)).quantize(CENTS, ROUND_HALF_UP)
        result[email] = {
            "total_value_of_orders": _money(total),
            "total_number_of_orders": str(len(mine)),
            "average_order_value": _money(average),
            "first_order_date": min(o["created_at"][:10] for o in mine),  # the shop's own day
            "first_order_value": _money(Decimal(first["total_price"])),
            "last_order_date": last["created_at"][:10],
            "last_order_value": _money(Decimal(last["total_price"])),
            "last_order_order_number": last["name"],
            "last_order_status": last["financial_status"],
            "last_products_bought_product_1_name": _item_name(items[0] if items else None),
            "last_products_bought_product_2_name": _item_name(items[1] if len(items) > 1 else None),
            "last_products_bought_product_3_name": _item_name(items[2] if len(items) > 2 else None),
            "last_skus_bought": _newest_first_unique(
                [[i["sku"] for i in last["line_items"]]], 10_000
            ),
            "last_discount_codes": ";".join(c["code"] for c in last["discount_codes"]) or None,
            "total_number_of_products_bought": str(
                sum(i["quantity"] for o in mine for i in o["line_items"])
            ),
            "skus_bought": _newest_first_unique(
                [[i["sku"] for i in o["line_items"]] for o in mine], SKU_CAP
            ),
            "brands_bought": _newest_first_unique(
                [[i["vendor"] for i in o["line_items"]] for o in mine], 50
            ),
        }
    return result


CHECKED = (
    "total_value_of_orders",
    "total_number_of_orders",
    "average_order_value",
    "first_order_date",
    "first_order_value",
    "last_order_date",
    "last_order_value",
    "last_order_order_number",
    "last_order_status",
    "last_products_bought_product_1_name",
    "last_products_bought_product_2_name",
    "last_products_bought_product_3_name",
    "last_skus_bought",
    "last_discount_codes",
    "total_number_of_products_bought",
    "skus_bought",
    "brands_bought",
)  # the properties compared


def _content(order: dict[str, Any]) -> str:
    """What a version gives the contact (every field the mapping's properties read): two
    versions with the same content are the same to HubSpot."""
    return json.dumps(
        [
            order["email"].strip().lower(),
            _instant(order["created_at"]).isoformat(),
            order["name"],
            order["currency"],
            order["financial_status"],
            order["total_price"],
            [
                (i["sku"], i["title"], i["name"], i["vendor"], i["price"], i["quantity"])
                for i in order["line_items"]
            ],
            [c["code"] for c in order["discount_codes"]],
        ]
    )


def expected_words(files: list[list[dict[str, Any]]]) -> list[dict[str, int]]:
    """The summary's words for each run, from the README's definitions (*Orders that change*):
    each record against what the earlier records left of its order id."""
    held: dict[int, tuple[str, dict[str, Any]]] = {}  # id -> (counted/withdrawn, its version)
    refunds_seen: set[int] = set()
    result = []
    for bodies in files:
        words = dict.fromkeys(
            (
                "new",
                "changed",
                "unchanged",
                "stale",
                "withdrawn",
                "skipped",
                "refunds",
                "refunds_changed",
                "refunds_unchanged",
                "records",
            ),
            0,
        )
        for body in bodies:
            for refund in [body] if _is_refund(body) else body["refunds"]:
                # an order's own refunds follow it; each is a record
                words["records"] += 1
                words["refunds_unchanged" if refund["id"] in refunds_seen else "refunds"] += 1
                refunds_seen.add(refund["id"])
            if _is_refund(body):
                continue
            words["records"] += 1
            counts = _counts(body)
            before = held.get(body["id"])
            newer = before is None or _instant(body["updated_at"]) > _instant(
                before[1]["updated_at"]
            )
            if before is None:
                word = "new" if counts else "skipped"
            elif before[0] == "counted":
                if counts and _content(body) == _content(before[1]):
                    word = "unchanged"
                elif not newer:
                    word = "stale"
                else:
                    word = "changed" if counts else "withdrawn"
            else:  # withdrawn (or skipped) before
                word = "unchanged" if not counts else "changed" if newer else "stale"
            words[word] += 1
            if word in ("new", "changed"):
                held[body["id"]] = ("counted", body)
            elif word in ("withdrawn", "skipped"):
                held[body["id"]] = ("withdrawn", body)
            elif word == "unchanged" and newer:
                held[body["id"]] = (before[0], body)  # type: ignore[index]
        words["waiting_for_order"] = len(
            {  # refunds stored whose order has not come yet
                r["id"]
                for f in files[: len(result) + 1]
                for b in f
                for r in ([b] if _is_refund(b) else b["refunds"])
                if r["order_id"] not in held
            }
        )
        result.append(words)
    return result


# -- running and reading back --------------------------------------------------------------------


def write_ndjson(path: Path, bodies: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(b, ensure_ascii=False) + "\n" for b in bodies), encoding="utf-8"
    )
    return path


def run(folder: Path, url: str, path: Path, state: Path | str) -> tuple[int, dict[str, Any], str]:
    result = hubmap(
        "run",
        str(MAPPING),
        "--input",
        str(path),
        "--state",
        str(state),
        "--rejects",
        str(folder / "rejected.ndjson"),
        "--format",
        "json",
        cwd=folder,
        url=url,
    )
    assert "Traceback" not in result.stderr, result.stderr
    try:
        summary = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"no JSON summary:\n{result.stdout}\n{result.stderr}") from None
    return result.returncode, summary, result.stderr


def dump(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/_sandbox/dump", timeout=30).json()


def stored(url: str) -> dict[str, dict[str, str | None]]:
    return {c["properties"]["email"]: c["properties"] for c in dump(url)["contacts"]}


def writes(url: str) -> int:
    """Contact writes the stand-in has served so far."""
    stats = requests.get(f"{url}/_sandbox/stats", timeout=30).json()
    return sum(
        n
        for endpoint, n in stats["byEndpoint"].items()
        if endpoint
        in (
            "contacts.create",
            "contacts.update",
            "contacts.batch_create",
            "contacts.batch_update",
            "contacts.batch_upsert",
        )
    )


def assert_holds(url: str, delivered: list[dict[str, Any]]) -> None:
    want = expected_contacts(delivered)
    got = stored(url)
    missing = sorted(set(want) - set(got))
    assert not missing, f"contacts not in HubSpot: {missing[:5]}"
    wrong = {}
    for email, values in want.items():
        held = {name: got[email].get(name) or None for name in values}  # "" is cleared
        if held != values:
            wrong[email] = {
                name: (held[name], values[name]) for name in values if held[name] != values[name]
            }
    assert not wrong, f"{len(wrong)} contacts differ (HubSpot, expected): " + json.dumps(
        dict(list(wrong.items())[:5]), indent=1, ensure_ascii=False
    )
    # A contact whose every order was withdrawn again holds none of these values.
    for email in set(got) - set(want):
        left = {name: got[email].get(name) for name in CHECKED if got[email].get(name)}
        assert not left, (email, left)


@pytest.fixture
def sandbox(tmp_path):
    with start_sandbox(tmp_path / "sandbox.db", config=SandboxConfig(token=TOKEN)) as running:
        yield running


# -- the tests -----------------------------------------------------------------------------------


def test_the_scenario_is_what_the_user_reported():
    """The generated shop is the reported one: 600 orders of 200 customers, about 45 % of them
    changing in every way, and the later runs bring every kind of disorder."""
    orders = shop()
    assert len(orders) == ORDERS
    assert len({o.email.lower() for o in orders}) == CUSTOMERS
    changed = [o for o in orders if o.change != "none"]
    assert 0.40 <= len(changed) / ORDERS <= 0.50
    assert {o.change for o in changed} == set(CHANGES)
    for order in orders:
        first, last = order.versions[0], order.versions[-1]
        if order.change.startswith("edit"):
            assert len(last["line_items"]) == len(first["line_items"]) - 1
            assert Decimal(last["total_price"]) < Decimal(first["total_price"])
        if "refund" in order.change:
            assert last["refunds"] and all(_is_refund(r) for r in last["refunds"])
    delivery = deliver(orders)
    words = expected_words(delivery.files)
    assert delivery.stale_copies[1] > 0 and delivery.stale_copies[2] > 0
    assert all(n > 0 for n in delivery.duplicates)
    assert sum(delivery.cancel_first) > 0
    assert delivery.refunds_early[0] > 0 and words[0]["waiting_for_order"] > 0
    assert words[2]["waiting_for_order"] == 0  # every order came in the end
    assert {b["id"] for f in delivery.files for b in f if not _is_refund(b)} == {
        o.id for o in orders
    }
    # Between runs, some last purchases lose a second item or a discount code (an edit, or the
    # latest order withdrawn): the values written before must be cleared.
    after: list[dict[str, dict[str, str | None]]] = []
    for number in range(3):
        after.append(expected_contacts([b for f in delivery.files[: number + 1] for b in f]))
    for name in ("last_products_bought_product_2_name", "last_discount_codes"):
        assert any(
            a[email][name] and not b[email][name]
            for a, b in pairwise(after)
            for email in a
            if email in b
        ), name
    assert any(email not in b for a, b in pairwise(after) for email in a)  # all withdrawn
    assert "0.00" in {v["total_value_of_orders"] for v in after[2].values()}  # refunded in full
    # every refund came on its own, at least once
    assert {r["id"] for o in orders for r in o.versions[-1]["refunds"]} == {
        b["id"] for f in delivery.files for b in f if _is_refund(b)
    }


WORDS = (
    "new",
    "changed",
    "unchanged",
    "stale",
    "withdrawn",
    "skipped",
    "refunds",
    "refunds_changed",
    "refunds_unchanged",
    "records",
)


def test_three_runs_of_changing_orders_leave_exactly_the_fold_of_the_latest_versions(
    tmp_path, sandbox, new_state
):
    state = new_state()
    orders = shop()
    delivery = deliver(orders)
    words = expected_words(delivery.files)
    delivered: list[dict[str, Any]] = []
    summaries = []
    for number, bodies in enumerate(delivery.files, start=1):
        path = write_ndjson(tmp_path / f"webhooks-{number}.ndjson", bodies)
        code, summary, stderr = run(tmp_path, sandbox.url, path, state)
        assert code == 0, (summary, stderr)
        summaries.append(summary)
        delivered += bodies
        assert (summary["rejected"], summary["contacts_failed"]) == (0, 0), summary
        assert {w: summary[w] for w in WORDS} == {w: words[number - 1][w] for w in WORDS}
        assert summary["refunds_waiting"] == words[number - 1]["waiting_for_order"]
        assert_holds(sandbox.url, delivered)  # after every run, not only the last

    first, second, third = summaries
    assert first["new"] > 0 and first["contacts_created"] > 0 and first["refunds"] > 0
    assert first["refunds_waiting"] > 0  # refunds/create bodies whose order comes later
    assert second["stale"] > 0 and third["stale"] > 0
    assert second["changed"] > 0 and third["changed"] > 0
    assert second["withdrawn"] > 0 and third["withdrawn"] > 0
    assert second["refunds"] > 0 and third["refunds"] > 0
    assert sum(s["skipped"] for s in summaries) > 0  # cancelled before the order came
    assert all(s["unchanged"] > 0 and s["refunds_unchanged"] > 0 for s in summaries)
    assert sum(s["new"] + s["skipped"] for s in summaries) == ORDERS  # each order once
    assert second["contacts_updated"] > 0 and third["contacts_updated"] > 0

    # The last file again: nothing is new, nothing is written.
    before, written = dump(sandbox.url)["contacts"], writes(sandbox.url)
    code, again, stderr = run(tmp_path, sandbox.url, tmp_path / "webhooks-3.ndjson", state)
    assert code == 0, (again, stderr)
    assert (
        again["new"],
        again["changed"],
        again["withdrawn"],
        again["skipped"],
        again["refunds"],
        again["refunds_changed"],
        again["rejected"],
    ) == (0, 0, 0, 0, 0, 0, 0), again
    assert (
        again["unchanged"] + again["stale"]
        == third["records"] - third["refunds"] - third["refunds_unchanged"]
    )
    assert again["refunds_unchanged"] == third["refunds"] + third["refunds_unchanged"]
    assert (again["contacts_created"], again["contacts_updated"]) == (0, 0), again
    assert writes(sandbox.url) == written
    assert dump(sandbox.url)["contacts"] == before
    assert_holds(sandbox.url, delivered)


def test_refunds_waiting_counts_only_refunds_whose_order_has_not_come(tmp_path, sandbox, new_state):
    """README, *What the summary says*: refunds_waiting is the refunds stored whose order has
    not come yet.  An order that came and was cancelled has come: its refunds left the contact
    with it and wait for nothing."""
    order = {
        "id": 3011,
        "email": "ben@example.com",
        "name": "#3011",
        "created_at": "2024-06-03T10:00:00Z",
        "updated_at": "2024-06-03T10:00:00Z",
        "currency": "USD",
        "financial_status": "paid",
        "cancelled_at": None,
        "total_price": "80.00",
        "discount_codes": [],
        "line_items": [
            {
                "title": "Lamp",
                "name": "Lamp",
                "sku": "LAMP-1",
                "vendor": "Acme",
                "price": "80.00",
                "quantity": 1,
            }
        ],
    }
    refund = {
        "id": 9012,
        "order_id": 3011,
        "created_at": "2024-06-04T08:00:00Z",
        "refund_line_items": [],
        "transactions": [
            {"kind": "refund", "status": "success", "amount": "80.00", "currency": "USD"}
        ],
    }
    cancelled = {
        **order,
        "updated_at": "2024-06-04T08:00:05Z",
        "financial_status": "refunded",
        "cancelled_at": "2024-06-04T08:00:00Z",
        "refunds": [refund],
    }
    path = write_ndjson(tmp_path / "cancelled.ndjson", [order, refund, cancelled])
    state = new_state()
    code, summary, stderr = run(tmp_path, sandbox.url, path, state)
    assert code == 0, stderr
    assert (summary["new"], summary["withdrawn"], summary["refunds"]) == (1, 1, 1)
    assert summary["refunds_waiting"] == 0
