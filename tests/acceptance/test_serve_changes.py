"""Orders that change, through `hubmap serve` (the in-process Service on real HTTP, the shipped
Shopify mapping, Shopify's HMAC signature): an order's orders/create, then its orders/updated
carrying a refund, then an older copy of it again (stale); a refunds/create for another order
that arrives before that order's orders/create, then the order, then its orders/updated listing
the same refund; a delivery retried with the same webhook id and a refund sent again under a new
one.  Every event ends `sent`, and the stand-in holds exactly the fold over the latest versions:
the refunded value, the stale copy ignored, the early refund applied once its order came, and
every refund counted once.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from hubmap import sql
from hubmap.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from hubmap.serve import Service, load_config
from hubmap.serve.auth import signature
from hubmap.state import StateStore
from tests.acceptance.test_serve import (
    HUBSPOT_TOKEN,
    SHOPIFY_SECRET,
    hubspot_env,
    jobs,
    wait_for,
    write_config,
)
from tests.acceptance.test_shopify_changes import CHECKED, expected_contacts

ANA = "Ana.Silva@Example.com"  # Shopify keeps the case the customer typed
BO = "bo.jensen@example.com"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(config=SandboxConfig(token=HUBSPOT_TOKEN)) as running:
        yield running


@contextmanager
def serving(folder: Path, sandbox: RunningSandbox, state: Path | str) -> Iterator[Service]:
    """The intake and the worker, the state and the queue in `state`'s backend (a PostgreSQL
    URL holds both; a file's folder holds the two files)."""
    database = str(state) if sql.is_url(state) else None
    service = Service(
        load_config(str(write_config(folder, database=database))), hubspot_env(sandbox)
    ).start()
    try:
        yield service
    finally:
        service.stop()


# -- the shop's webhooks ---------------------------------------------------------------------


def _item(
    n: int, sku: str, title: str, variant: str | None, vendor: str, price: str, quantity: int
) -> dict[str, Any]:
    return {
        "id": 13_000_000_000 + n,
        "variant_id": 40_000_000_000 + n,
        "product_id": 7_000_000_000 + n,
        "sku": sku,
        "title": title,
        "variant_title": variant,
        "name": f"{title} - {variant}" if variant else title,
        "vendor": vendor,
        "price": price,
        "quantity": quantity,
        "requires_shipping": True,
    }


def _order(
    order_id: int,
    number: int,
    email: str,
    created_at: str,
    total: str,
    items: list[dict[str, Any]],
    codes: list[dict[str, str]],
) -> dict[str, Any]:
    """orders/create: a Shopify Order resource as first placed."""
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{number}",
        "order_number": number,
        "email": email,
        "contact_email": email,
        "created_at": created_at,
        "updated_at": created_at,
        "processed_at": created_at,
        "currency": "USD",
        "presentment_currency": "USD",
        "financial_status": "paid",
        "fulfillment_status": None,
        "cancelled_at": None,
        "cancel_reason": None,
        "total_price": total,
        "subtotal_price": total,
        "total_tax": "0.00",
        "discount_codes": codes,
        "line_items": items,
        "refunds": [],
        "customer": {"id": 6_200_000_000 + number, "email": email},
    }


def _refund(
    refund_id: int, order: dict[str, Any], created_at: str, transactions: list[tuple[str, str]]
) -> dict[str, Any]:
    """refunds/create: a Shopify Refund resource (also what orders list in refunds[])."""
    return {
        "id": refund_id,
        "order_id": order["id"],
        "created_at": created_at,
        "processed_at": created_at,
        "note": "Customer return",
        "restock": True,
        "user_id": 548380009,
        "refund_line_items": [
            {
                "id": refund_id + 1,
                "line_item_id": order["line_items"][0]["id"],
                "quantity": 1,
                "restock_type": "return",
                "subtotal": float(order["line_items"][0]["price"]),
                "total_tax": 0.0,
            }
        ],
        "transactions": [
            {
                "id": refund_id + 10 + n,
                "order_id": order["id"],
                "kind": "refund",
                "gateway": "shopify_payments",
                "status": status,
                "amount": amount,
                "currency": "USD",
                "created_at": created_at,
                "parent_id": order["id"] + 1,
            }
            for n, (status, amount) in enumerate(transactions)
        ],
        "order_adjustments": [],
    }


def _updated(
    order: dict[str, Any], updated_at: str, status: str, refunds: list[dict[str, Any]]
) -> dict[str, Any]:
    """orders/updated: the order after a refund (a newer updated_at, its refunds listed)."""
    return {
        **copy.deepcopy(order),
        "updated_at": updated_at,
        "financial_status": status,
        "refunds": copy.deepcopy(refunds),
    }


def webhooks() -> list[tuple[str, str, dict[str, Any]]]:
    """(delivery id, topic, body) in the order the shop delivers them."""
    ana = _order(
        5_530_000_000_101,
        1101,
        ANA,
        "2024-05-02T10:00:00-04:00",
        "58.50",
        [
            _item(1, "TOTE-NAT", "Canvas tote", "Natural", "Acme Goods", "25.00", 2),
            _item(2, "MUG-ENAMEL", "Enamel mug", None, "Potter & Co", "15.00", 1),
        ],
        [{"code": "WELCOME10", "amount": "6.50", "type": "percentage"}],
    )
    ana_refund = _refund(
        968_000_000_100,
        ana,
        "2024-05-06T09:00:00-04:00",
        [("failure", "25.00"), ("success", "20.00")],
    )
    ana_updated = _updated(ana, "2024-05-06T09:00:04-04:00", "partially_refunded", [ana_refund])
    bo = _order(
        5_530_000_000_202,
        1102,
        BO,
        "2024-05-03T12:00:00+02:00",
        "80.00",
        [_item(3, "LAMP-OAK", "Oak lamp", None, "Lumen & Wick", "80.00", 1)],
        [],
    )
    bo_refund = _refund(968_000_000_200, bo, "2024-05-09T08:30:00+02:00", [("success", "30.00")])
    bo_updated = _updated(bo, "2024-05-09T08:30:03+02:00", "partially_refunded", [bo_refund])
    return [
        ("a-create", "orders/create", ana),
        ("a-updated", "orders/updated", ana_updated),
        ("a-paid-late", "orders/paid", ana),  # the first version again, after the newer one
        ("b-refund", "refunds/create", bo_refund),  # before its order
        ("b-create", "orders/create", bo),
        ("b-updated", "orders/updated", bo_updated),  # lists the same refund
        ("b-refund-again", "refunds/create", bo_refund),  # sent again under a new id
    ]


def post(service: Service, delivery: str, topic: str, body: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    answer = requests.post(
        service.url + "/shopify",
        data=raw,
        timeout=10,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": signature(SHOPIFY_SECRET.encode(), raw),
            "X-Shopify-Webhook-Id": delivery,
            "X-Shopify-Shop-Domain": "example.myshopify.com",
            "X-Shopify-API-Version": "2024-04",
        },
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def held(sandbox: RunningSandbox) -> dict[str, dict[str, str | None]]:
    """Each contact's checked values in the stand-in ("" is a cleared value: None)."""
    dumped = requests.get(sandbox.url + "/_sandbox/dump", timeout=10).json()
    return {
        c["properties"]["email"]: {name: c["properties"].get(name) or None for name in CHECKED}
        for c in dumped["contacts"]
    }


def tally(target: Path | str) -> dict[str, int]:
    """The summary words summed over every run the worker made."""
    state = StateStore(target)
    try:
        totals: dict[str, int] = {}
        for run in state.runs(limit=10_000):
            for word, count in run["counts"].items():
                if isinstance(count, int):
                    totals[word] = totals.get(word, 0) + count
        return totals
    finally:
        state.close()


EXPECTED_ANA = {  # 58.50 as placed, less the successful 20.00 (the failed 25.00 is no refund)
    "total_value_of_orders": "38.50",
    "total_number_of_orders": "1",
    "last_order_value": "58.50",
    "last_order_status": "partially_refunded",
    "last_discount_codes": "WELCOME10",
    "last_products_bought_product_2_name": "Enamel mug",
    "skus_bought": "TOTE-NAT;MUG-ENAMEL",
    "first_order_date": "2024-05-02",
}
EXPECTED_BO = {  # 80.00 less the 30.00 that came before the order, counted once
    "total_value_of_orders": "50.00",
    "total_number_of_orders": "1",
    "last_order_value": "80.00",
    "last_order_status": "partially_refunded",
    "last_discount_codes": None,
    "last_products_bought_product_2_name": None,
    "skus_bought": "LAMP-OAK",
    "first_order_date": "2024-05-03",
}


def assert_final(sandbox: RunningSandbox) -> None:
    bodies = [body for _, _, body in webhooks()]
    want = expected_contacts(bodies)  # the independent fold of test_shopify_changes
    assert held(sandbox) == want
    assert {k: want[ANA.lower()][k] for k in EXPECTED_ANA} == EXPECTED_ANA
    assert {k: want[BO][k] for k in EXPECTED_BO} == EXPECTED_BO


# -- the tests ---------------------------------------------------------------------------------


def test_webhooks_one_by_one_leave_the_fold_of_the_latest_versions(tmp_path, sandbox, new_state):
    state = new_state("state.db")
    with serving(tmp_path, sandbox, state) as service:
        for sent, (delivery, topic, body) in enumerate(webhooks(), start=1):
            assert post(service, delivery, topic, body)["status"] == "queued"
            wait_for(lambda n=sent: jobs(service).get("sent") == n)  # settled before the next
            if delivery == "a-updated":
                # Shopify retries the delivery (same webhook id): not stored again.
                assert post(service, delivery, topic, body)["status"] == "duplicate"
            if delivery == "a-paid-late":
                assert held(sandbox)[ANA.lower()]["total_value_of_orders"] == "38.50"
            if delivery == "b-refund":
                assert BO not in held(sandbox)  # the refund waits for its order
            if delivery == "b-create":
                assert held(sandbox)[BO]["total_value_of_orders"] == "50.00"
        assert jobs(service) == {"sent": len(webhooks())}  # none dead, none waiting
        metrics = requests.get(service.url + "/metrics", timeout=10).text
    assert 'hubmap_webhooks_duplicates_total{route="/shopify"} 1' in metrics
    assert_final(sandbox)
    words = tally(state)
    assert {
        w: words.get(w, 0)
        for w in (
            "new",
            "changed",
            "unchanged",
            "stale",
            "withdrawn",
            "refunds",
            "refunds_changed",
            "refunds_unchanged",
        )
    } == {
        "new": 2,
        "changed": 2,
        "unchanged": 0,
        "stale": 1,
        "withdrawn": 0,
        "refunds": 2,
        "refunds_changed": 0,
        "refunds_unchanged": 2,
    }


def test_the_same_webhooks_in_one_burst_leave_the_same_values(tmp_path, sandbox, new_state):
    """All at once, so the worker takes them in one or two batches: the decisions inside a
    batch give the same result as one by one."""
    state = new_state("state.db")
    with serving(tmp_path, sandbox, state) as service:
        answers = [post(service, d, t, b)["status"] for d, t, b in webhooks()]
        answers.append(post(service, *webhooks()[1])["status"])  # a retry of one delivery
        assert answers == ["queued"] * len(webhooks()) + ["duplicate"]
        wait_for(lambda: jobs(service).get("sent") == len(webhooks()))
        assert jobs(service) == {"sent": len(webhooks())}
    assert_final(sandbox)
    words = tally(state)
    assert (words.get("stale"), words.get("refunds"), words.get("refunds_unchanged")) == (1, 2, 2)
