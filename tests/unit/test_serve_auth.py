"""hubmap.serve.auth: each platform's signature over the raw body (checked against HMAC-SHA256
computed here with the standard library), bearer tokens, WooCommerce's creation ping, what
identifies a delivery, and a topic header that disagrees with the signed body."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from hubmap.serve.auth import (
    MAX_DELIVERY_ID_CHARS,
    authentic,
    delivery_id,
    is_woocommerce_ping,
    topic,
    topic_conflict,
)

SECRET = b"shpss_app_secret"
BODY = b'{"id": 1, "total_price": "10.00"}'


def signed(body: bytes, secret: bytes = SECRET) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


SIGNATURE_HEADER = {"shopify": "x-shopify-hmac-sha256", "woocommerce": "x-wc-webhook-signature"}


@pytest.mark.parametrize("kind", ["shopify", "woocommerce"])
def test_a_signature_over_the_raw_body_is_authentic(kind: str) -> None:
    header = SIGNATURE_HEADER[kind]
    assert authentic(kind, SECRET, {header: signed(BODY)}, BODY)
    assert authentic(kind, SECRET, {header: f"  {signed(BODY)}\n"}, BODY)  # spaces around


@pytest.mark.parametrize("kind", ["shopify", "woocommerce"])
def test_a_changed_body_another_secret_or_no_signature_is_not(kind: str) -> None:
    header = SIGNATURE_HEADER[kind]
    reencoded = b'{"id":1,"total_price":"10.00"}'  # the same JSON, other bytes
    assert not authentic(kind, SECRET, {header: signed(BODY)}, reencoded)
    assert not authentic(kind, SECRET, {header: signed(BODY, b"other")}, BODY)
    assert not authentic(kind, SECRET, {}, BODY)
    assert not authentic(kind, SECRET, {header: "é" + signed(BODY)}, BODY)  # never raises


def test_each_platform_reads_its_own_header() -> None:
    shopify_headers = {SIGNATURE_HEADER["shopify"]: signed(BODY)}
    assert not authentic("woocommerce", SECRET, shopify_headers, BODY)


@pytest.mark.parametrize(
    ("given", "ok"),
    [
        ("Bearer tok-123", True),
        ("bearer tok-123", True),
        ("Bearer tok-123 ", True),
        ("Bearer tok-124", False),
        ("Basic tok-123", False),
        ("Bearer ", False),
        ("tok-123", False),
        ("", False),
    ],
)
def test_bearer_tokens(given: str, ok: bool) -> None:
    assert authentic("bearer", b"tok-123", {"authorization": given}, BODY) is ok


def test_woocommerce_creation_ping_is_unsigned_and_carries_only_the_webhook_id() -> None:
    ping = b"webhook_id=42"
    assert is_woocommerce_ping("woocommerce", {}, ping)
    assert not is_woocommerce_ping("woocommerce", {"x-wc-webhook-signature": "x"}, ping)
    assert not is_woocommerce_ping("shopify", {}, ping)
    assert not is_woocommerce_ping("woocommerce", {}, b"webhook_id=42&order=1")


def test_a_delivery_is_named_by_the_platform_header_else_by_the_body() -> None:
    assert delivery_id("shopify", {"x-shopify-webhook-id": " abc "}, BODY) == "abc"
    assert delivery_id("woocommerce", {"x-wc-webhook-delivery-id": "7"}, BODY) == "7"
    assert delivery_id("bearer", {"idempotency-key": "k"}, BODY) == "k"
    long = "x" * (MAX_DELIVERY_ID_CHARS + 50)
    assert delivery_id("bearer", {"idempotency-key": long}, BODY) == long[:MAX_DELIVERY_ID_CHARS]
    assert delivery_id("shopify", {}, BODY) == "sha256:" + hashlib.sha256(BODY).hexdigest()
    assert delivery_id("shopify", {}, BODY) != delivery_id("shopify", {}, BODY + b" ")


def test_topic_header_of_each_kind() -> None:
    assert topic("shopify", {"x-shopify-topic": " orders/create "}) == "orders/create"
    assert topic("woocommerce", {"x-wc-webhook-topic": "order.updated"}) == "order.updated"
    assert topic("bearer", {"x-hubmap-topic": ""}) is None


ORDER = {"id": 1, "financial_status": "paid"}
REFUND = {"id": 9, "order_id": 1, "refund_line_items": []}


def test_a_topic_that_disagrees_with_the_signed_body_is_refused() -> None:
    assert "body is a refund" in (topic_conflict("shopify", "orders/updated", REFUND, False) or "")
    assert "body is an order" in (topic_conflict("shopify", "refunds/create", ORDER, False) or "")
    assert topic_conflict("shopify", "orders/updated", ORDER, False) is None
    assert topic_conflict("shopify", "refunds/create", REFUND, False) is None
    assert topic_conflict("woocommerce", "order.updated", REFUND, True) is None


def test_a_missing_topic_matters_only_on_a_route_that_picks_topics() -> None:
    assert "X-Shopify-Topic header is missing" in (
        topic_conflict("shopify", None, ORDER, True) or ""
    )
    assert topic_conflict("shopify", None, ORDER, False) is None
    assert topic_conflict("bearer", None, ORDER, True) is None  # a custom backend may send none
