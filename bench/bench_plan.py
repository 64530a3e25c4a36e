"""Benchmark: how fast `hubmap plan` folds orders into contacts, against hand-written Python.

For each mapping it generates N orders on the fly and folds them through the functions `hubmap
plan` uses (`CompiledMapping.outcomes`: evaluating each record; `plan_outcomes`: versions,
refunds, folds, final values, wire text), and with a hand-written function computing the same
HubSpot values directly.  Both see the same orders; `--check` first proves that both give
identical values for every contact.

- `shopify`: `mappings/shopify-orders-contacts.yaml` (27 properties) over realistic Shopify
  orders (1-5 line items, prices, refunds now and then, a few cancelled, voided or
  foreign-currency orders, emails over about N/5 customers, times out of order); the
  hand-written function computes sums, counts, latest value/date by time, first date, the top-3
  items and newest-first de-duplicated capped lists.
- `quickstart`: `mappings/quickstart-contacts.yaml` (6 properties) over a shop backend's orders
  (1-4 SKUs, a few cancelled or non-EUR orders).

Each measurement runs in its own process, so its peak memory (maximum resident set size) is its
own.  Orders/s is per second of CPU time of that process (one core; other work on the machine
barely changes it), without the time to generate the orders (measured alone and subtracted).
Targets: hubmap at least 0.7x the hand-written function for every mapping, and at least 10,000
orders/s on one core for the Shopify mapping; the exit status is 1 when one is missed.

    PYTHONPATH=engine python bench/bench_plan.py [--mapping shopify,quickstart]
        [--orders 100000[,1000000]] [--contacts N] [--check 20000] [--profile hubmap.prof]

Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from hubmap.catalogs import load_catalogs
from hubmap.evaluate import CompiledMapping
from hubmap.inputs import Document
from hubmap.mapping import load_mapping
from hubmap.plan import plan_outcomes

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "mappings" / "shopify-orders-contacts.yaml"
QUICKSTART = ROOT / "mappings" / "quickstart-contacts.yaml"
ORDERS_PER_CONTACT = 5
TARGET_RATIO = 0.7  # hubmap / hand-written, every mapping
TARGET_ORDERS_PER_SECOND = 10_000  # hubmap, the Shopify mapping
SEED = 11

PRODUCTS = [
    (f"SKU-{n:04d}", f"Product {n}", f"Brand {n % 37}", Decimal(199 + n * 37 % 9800) / 100)
    for n in range(2_000)
]
OFFSETS = ["Z", "+01:00", "-05:00", "+05:30", "-08:00"]
SIZES = ["S", "M", "L"]


# ----------------------------------------------------------------------------- the orders


def generate(count: int, contacts: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """`count` orders in the shape of Shopify's Order resource, made one at a time."""
    rng = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    for number in range(1, count + 1):
        items = [
            PRODUCTS[int(rng.paretovariate(1.2)) % len(PRODUCTS)] for _ in range(rng.randint(1, 5))
        ]
        quantities = [rng.choice((1, 1, 1, 2, 3)) for _ in items]
        total = sum((price * q for (_, _, _, price), q in zip(items, quantities)), Decimal(0))
        moment = start + timedelta(seconds=number * 20 + rng.randrange(-86_400, 86_400))
        offset = rng.choice(OFFSETS)
        order: dict[str, Any] = {
            "id": 100_000 + number,
            "name": f"#{100_000 + number}",
            "email": f"Customer.{rng.randrange(contacts)}@Example.com",
            "created_at": moment.isoformat(timespec="seconds").replace("+00:00", "") + offset,
            "currency": "EUR" if rng.random() < 0.005 else "USD",
            "financial_status": "voided" if rng.random() < 0.01 else "paid",
            "cancelled_at": "2024-01-01T00:00:00Z" if rng.random() < 0.02 else None,
            "total_price": str(total),
            "discount_codes": [{"code": "WELCOME10"}] if rng.random() < 0.1 else [],
            "presentment_currency": "USD",
            "line_items": [
                {
                    "sku": sku,
                    "title": title,
                    "name": f"{title} - {SIZES[q % 3]}",
                    "vendor": vendor,
                    "price": str(price),
                    "quantity": q,
                }
                for (sku, title, vendor, price), q in zip(items, quantities)
            ],
        }
        if rng.random() < 0.05:
            order["financial_status"] = "partially_refunded"
            order["refunds"] = [
                {
                    "id": 900_000 + number,
                    "order_id": order["id"],
                    "transactions": [
                        {
                            "kind": "refund",
                            "status": "success",
                            "amount": str(items[0][3]),
                            "currency": "USD",
                        }
                    ],
                }
            ]
        yield order


# ------------------------------------------------------------------------------- hubmap


def hubmap_plan(
    orders: Iterator[dict[str, Any]], path: Path = MAPPING
) -> dict[str, dict[str, str]]:
    """The per-contact HubSpot values, exactly as `hubmap plan` computes them."""
    mapping = load_mapping(str(path))
    compiled = CompiledMapping(mapping, load_catalogs(mapping))
    documents = (Document(order, "bench") for order in orders)
    plan = plan_outcomes(compiled, compiled.outcomes(documents))
    return {
        contact.contact: {k: v for k, v in contact.values.items() if v != ""}  # "": none
        for contact in plan.contacts
    }


# ------------------------------------------------------------------------ hand-written


CENT = Decimal("0.01")
SKU_CAP, PRODUCT_CAP, BRAND_CAP = 100, 100, 50


def _newest_first(held: dict[str, tuple], cap: int) -> list[str]:
    return [item for item, _ in sorted(held.items(), key=lambda kv: kv[1], reverse=True)][:cap]


def _prepend(held: dict[str, tuple], items: list[str], key: tuple, cap: int) -> None:
    for index, item in enumerate(items):
        if not item:
            continue
        stamp = (key, -index)
        if item not in held or held[item] < stamp:
            held[item] = stamp
    if len(held) > 4 * cap:  # keep the newest: an older item can only return with a newer stamp
        for item in sorted(held, key=held.__getitem__)[: len(held) - cap]:
            del held[item]


def _unique_join(values: list[Any]) -> str:
    return ";".join(dict.fromkeys(str(v) for v in values if v is not None))


def hand_plan(orders: Iterator[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The same properties, computed directly in Python."""
    contacts: dict[str, dict[str, Any]] = {}
    for order in orders:
        if order.get("cancelled_at") is not None or order.get("financial_status") == "voided":
            continue
        if not order.get("financial_status") or order.get("currency") != "USD":
            continue
        email = (order.get("email") or "").strip().lower()
        if "@" not in email:
            continue
        created = order["created_at"]
        key = (datetime.fromisoformat(created).astimezone(UTC), order["id"])
        refunded = sum(
            (
                Decimal(t["amount"])
                for r in order.get("refunds") or ()
                for t in r["transactions"]
                if t["kind"] == "refund" and t["status"] == "success"
            ),
            Decimal(0),
        )
        price = Decimal(order["total_price"])
        value = (price - refunded).quantize(CENT, ROUND_HALF_UP)
        price = price.quantize(CENT, ROUND_HALF_UP)
        day = created[:10]
        items = order.get("line_items") or []
        skus = [i.get("sku") for i in items]
        titles = [i.get("title") for i in items]
        quantity = sum(Decimal(i["quantity"]) for i in items) if items else None
        state = contacts.get(email)
        if state is None:
            state = contacts[email] = {
                "total": Decimal(0),
                "count": 0,
                "first_day": day,
                "first": (key, price),
                "latest": {},
                "skus": {},
                "products": {},
                "brands": {},
            }
        state["total"] += value
        state["count"] += 1
        if quantity is not None:
            state["products_total"] = state.get("products_total", Decimal(0)) + quantity
        state["first_day"] = min(state["first_day"], day)
        if key < state["first"][0]:
            state["first"] = (key, price)
        codes = ";".join(d["code"] for d in order.get("discount_codes") or [])
        latest = {
            "last_order_date": day,
            "last_order_value": price,
            "last_order_order_number": order["name"],
            "last_order_currency": order["currency"],
            "last_order_status": order["financial_status"],
            "last_products_bought": _unique_join(titles),
            "last_skus_bought": _unique_join([s for s in skus if s]),
            "last_total_number_of_products_bought": quantity,
            "last_discount_codes": codes,
        }
        # the top-3 items: greatest line value first, equal values in the order's item order
        top = sorted(
            items,
            key=lambda i: -Decimal(i.get("price") or 0) * Decimal(str(i.get("quantity") or 1)),
        )
        for n, item in enumerate(top[:3], start=1):
            latest[f"last_products_bought_product_{n}_name"] = item.get("name")
            latest[f"last_products_bought_product_{n}_price"] = Decimal(item["price"]).quantize(
                CENT, ROUND_HALF_UP
            )
        if "latest_key" not in state or state["latest_key"] < key:
            # "last purchase" values all come from the latest order; what it lacks is empty
            state["latest_key"] = key
            state["latest"] = {
                name: (key, current)
                for name, current in latest.items()
                if current not in (None, "")
            }
        _prepend(state["skus"], skus, key, SKU_CAP)
        _prepend(state["products"], titles, key, PRODUCT_CAP)
        _prepend(state["brands"], [i.get("vendor") for i in items], key, BRAND_CAP)
    result = {}
    for email, state in contacts.items():
        values = {
            "total_value_of_orders": f"{state['total']:.2f}",
            "total_number_of_orders": str(state["count"]),
            "average_order_value": str(
                (state["total"] / state["count"]).quantize(CENT, ROUND_HALF_UP)
            ),
            "first_order_date": state["first_day"],
            "first_order_value": f"{state['first'][1]:.2f}",
        }
        if "products_total" in state:
            values["total_number_of_products_bought"] = str(state["products_total"])
        for name, (_, current) in state["latest"].items():
            values[name] = current
            if isinstance(current, Decimal):
                values[name] = str(current) if "number_of" in name else f"{current:.2f}"
        for name, held, cap in (
            ("skus_bought", state["skus"], SKU_CAP),
            ("products_bought", state["products"], PRODUCT_CAP),
            ("brands_bought", state["brands"], BRAND_CAP),
        ):
            if held:
                values[name] = ";".join(_newest_first(held, cap))
        result[email] = values
    return result


# ------------------------------------------------------------------------ the quickstart mapping


QUICK_SKUS = [f"Q-{n:03d}" for n in range(400)]
QUICK_SKU_CAP = 50


def generate_quickstart(count: int, contacts: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """`count` orders in the shape the quickstart mapping reads (a shop backend's own JSON)."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for number in range(1, count + 1):
        skus = [
            QUICK_SKUS[int(rng.paretovariate(1.2)) % len(QUICK_SKUS)]
            for _ in range(rng.randint(1, 4))
        ]
        moment = start + timedelta(seconds=number * 20 + rng.randrange(-86_400, 86_400))
        yield {
            "order_id": 500_000 + number,
            "placed_at": moment.isoformat(timespec="seconds").replace("+00:00", "")
            + rng.choice(OFFSETS),
            "status": "cancelled" if rng.random() < 0.02 else "paid",
            "currency": "USD" if rng.random() < 0.005 else "EUR",
            "total": str(Decimal(rng.randrange(100, 50_000)) / 100),
            "customer": {"email": f"Shopper.{rng.randrange(contacts)}@Example.com"},
            "items": [{"sku": sku} for sku in skus],
        }


def hand_quickstart(orders: Iterator[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The quickstart mapping's properties, computed directly in Python."""
    contacts: dict[str, dict[str, Any]] = {}
    for order in orders:
        if order.get("status") == "cancelled" or order.get("currency") != "EUR":
            continue
        email = (order.get("customer") or {}).get("email", "").strip().lower()
        if "@" not in email:
            continue
        placed = order["placed_at"]
        key = (datetime.fromisoformat(placed).astimezone(UTC), order["order_id"])
        value = Decimal(order["total"]).quantize(CENT, ROUND_HALF_UP)
        day = placed[:10]
        state = contacts.get(email)
        if state is None:
            state = contacts[email] = {
                "total": Decimal(0),
                "count": 0,
                "first_day": day,
                "latest": (key, day, value),
                "skus": {},
            }
        state["total"] += value
        state["count"] += 1
        state["first_day"] = min(state["first_day"], day)
        if state["latest"][0] < key:
            state["latest"] = (key, day, value)
        _prepend(
            state["skus"], [i.get("sku") for i in order.get("items") or []], key, QUICK_SKU_CAP
        )
    result = {}
    for email, state in contacts.items():
        _, last_day, last_value = state["latest"]
        values = {
            "total_value_of_orders": f"{state['total']:.2f}",
            "total_number_of_orders": str(state["count"]),
            "first_order_date": state["first_day"],
            "last_order_date": last_day,
            "last_order_value": f"{last_value:.2f}",
        }
        if state["skus"]:
            values["skus_bought"] = ";".join(_newest_first(state["skus"], QUICK_SKU_CAP))
        result[email] = values
    return result


# ------------------------------------------------------------------------------ measuring


MAPPINGS = {  # name -> (mapping file, the orders, the hand-written function)
    "shopify": (MAPPING, generate, hand_plan),
    "quickstart": (QUICKSTART, generate_quickstart, hand_quickstart),
}
KINDS = ("hubmap", "hand", "generate")


def run_kind(kind: str, mapping: str, count: int, contacts: int) -> int:
    """Contacts folded by one implementation (none for `generate`: the orders alone)."""
    path, orders, hand = MAPPINGS[mapping]
    if kind == "generate":
        for _ in orders(count, contacts):
            pass
        return 0
    if kind == "hubmap":
        return len(hubmap_plan(orders(count, contacts), path))
    return len(hand(orders(count, contacts)))


def measure(
    kind: str, mapping: str, count: int, contacts: int, profile: str | None
) -> dict[str, Any]:
    """One implementation over `count` orders, in this process."""
    started = time.process_time()
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        folded = run_kind(kind, mapping, count, contacts)
        profiler.disable()
        profiler.dump_stats(profile)
    else:
        folded = run_kind(kind, mapping, count, contacts)
    seconds = time.process_time() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "kind": kind,
        "mapping": mapping,
        "orders": count,
        "contacts": folded,
        "seconds": seconds,
        "peak_rss_mib": round(peak, 1),
    }


def in_process(kind: str, mapping: str, count: int, contacts: int) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--one",
        kind,
        "--mapping",
        mapping,
        "--orders",
        str(count),
        "--contacts",
        str(contacts),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(mapping: str, count: int) -> bool:
    path, orders, hand = MAPPINGS[mapping]
    contacts = max(1, count // ORDERS_PER_CONTACT)
    mine = hubmap_plan(orders(count, contacts), path)
    theirs = hand(orders(count, contacts))
    differences = [
        (email, name, value, theirs.get(email, {}).get(name))
        for email, values in mine.items()
        for name, value in values.items()
        if theirs.get(email, {}).get(name) != value
    ]
    differences += [
        (email, name, mine.get(email, {}).get(name), value)
        for email, values in theirs.items()
        for name, value in values.items()
        if name not in mine.get(email, {})
    ]
    print(
        f"{mapping}: check over {count:,} orders: {len(mine):,} contacts, "
        + (
            "hubmap and hand-written give identical values"
            if not differences
            else f"{len(differences)} DIFFERENCES, first: {differences[:3]}"
        )
    )
    return not differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mapping",
        default="shopify,quickstart",
        help="mappings to measure, comma-separated: " + ", ".join(MAPPINGS),
    )
    parser.add_argument("--orders", default="100000")
    parser.add_argument(
        "--contacts", type=int, default=None, help="number of customers (default: orders / 5)"
    )
    parser.add_argument(
        "--check",
        type=int,
        default=20_000,
        help="orders to compare both implementations on first (0: skip)",
    )
    parser.add_argument("--one", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--profile", help="with --one hubmap: write cProfile stats here")
    args = parser.parse_args()
    counts = [int(n) for n in args.orders.split(",")]
    mappings = [m.strip() for m in args.mapping.split(",") if m.strip()]
    unknown = [m for m in mappings if m not in MAPPINGS]
    if unknown:
        parser.error(f"unknown mapping(s) {', '.join(unknown)}; known: {', '.join(MAPPINGS)}")
    if args.one:
        contacts = args.contacts or max(1, counts[0] // ORDERS_PER_CONTACT)
        print(json.dumps(measure(args.one, mappings[0], counts[0], contacts, args.profile)))
        return 0
    checked = [check(m, args.check) for m in mappings] if args.check else []  # each says its own
    if not all(checked):
        return 1
    missed = []
    print(
        f"{'mapping':>10} {'orders':>9} {'contacts':>8} {'hubmap/s':>9} {'hand/s':>9} "
        f"{'ratio':>6} {'hubmap MiB':>10} {'hand MiB':>9} {'gen MiB':>8}"
    )
    for mapping in mappings:
        for count in counts:
            contacts = args.contacts or max(1, count // ORDERS_PER_CONTACT)
            gen = in_process("generate", mapping, count, contacts)
            ours = in_process("hubmap", mapping, count, contacts)
            hand = in_process("hand", mapping, count, contacts)
            ours_rate = count / max(ours["seconds"] - gen["seconds"], 1e-9)
            hand_rate = count / max(hand["seconds"] - gen["seconds"], 1e-9)
            ratio = ours_rate / hand_rate
            print(
                f"{mapping:>10} {count:>9,} {contacts:>8,} {ours_rate:>9,.0f} "
                f"{hand_rate:>9,.0f} {ratio:>6.2f} {ours['peak_rss_mib']:>10} "
                f"{hand['peak_rss_mib']:>9} {gen['peak_rss_mib']:>8}"
            )
            print(
                f"{'':>10} CPU seconds: generating alone {gen['seconds']:.1f}; hubmap "
                f"{ours['seconds']:.1f} and hand-written {hand['seconds']:.1f} including it"
            )
            if ratio < TARGET_RATIO:
                missed.append(
                    f"{mapping} at {count:,} orders: hubmap {ratio:.2f}x the "
                    f"hand-written function (target {TARGET_RATIO}x)"
                )
            if mapping == "shopify" and ours_rate < TARGET_ORDERS_PER_SECOND:
                missed.append(
                    f"{mapping} at {count:,} orders: hubmap {ours_rate:,.0f} orders "
                    f"per CPU-second (target {TARGET_ORDERS_PER_SECOND:,})"
                )
    for line in missed:
        print(f"target missed: {line}")
    if not missed:
        print(
            f"targets met: hubmap >= {TARGET_RATIO}x the hand-written function, and >= "
            f"{TARGET_ORDERS_PER_SECOND:,} orders per CPU-second for the Shopify mapping"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
