"""Who may post to a route: each platform's documented signature, or a shared bearer token.

    shopify      X-Shopify-Hmac-Sha256: base64(HMAC-SHA256(app secret, raw body))
    woocommerce  X-WC-Webhook-Signature: base64(HMAC-SHA256(webhook secret, raw body))
    bearer       Authorization: Bearer <token>   (a custom backend)

Headers are given as a mapping with lower-case names.  Signatures are computed over the raw bytes as received (never over re-encoded JSON) and compared
in constant time (`hmac.compare_digest`).  The same module says what identifies a delivery, so a
platform's retry of one delivery is recognised: Shopify's X-Shopify-Webhook-Id, WooCommerce's
X-WC-Webhook-Delivery-ID, a custom backend's Idempotency-Key; without one, the body's SHA-256.
WooCommerce makes a new delivery id for each attempt, so its retries are recognised later by the
mapping's ledger of order ids instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

SHOPIFY_SIGNATURE = "x-shopify-hmac-sha256"
SHOPIFY_DELIVERY = "x-shopify-webhook-id"
SHOPIFY_TOPIC = "x-shopify-topic"
WOO_SIGNATURE = "x-wc-webhook-signature"
WOO_DELIVERY = "x-wc-webhook-delivery-id"
WOO_TOPIC = "x-wc-webhook-topic"
BEARER_DELIVERY = "idempotency-key"
BEARER_TOPIC = "x-hubmap-topic"
MAX_DELIVERY_ID_CHARS = 200

_SIGNATURE_HEADERS = {"shopify": SHOPIFY_SIGNATURE, "woocommerce": WOO_SIGNATURE}
_DELIVERY_HEADERS = {
    "shopify": SHOPIFY_DELIVERY,
    "woocommerce": WOO_DELIVERY,
    "bearer": BEARER_DELIVERY,
}
_TOPIC_HEADERS = {"shopify": SHOPIFY_TOPIC, "woocommerce": WOO_TOPIC, "bearer": BEARER_TOPIC}
_TOPIC_NAMES = {
    "shopify": "X-Shopify-Topic",
    "woocommerce": "X-WC-Webhook-Topic",
    "bearer": "X-Hubmap-Topic",
}  # as the platforms spell them, for messages
# WooCommerce's test ping when a webhook is created: an unsigned form post, 'webhook_id=<id>'.
_WOO_PING = re.compile(rb"^webhook_id=[0-9]+$")


def signature(secret: bytes, body: bytes) -> str:
    """The base64 HMAC-SHA256 both Shopify and WooCommerce send (also used to sign in tests)."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode("ascii")


def authentic(kind: str, secret: bytes, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether the request carries a valid signature (or token) for `secret`."""
    if kind == "bearer":
        given = headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        return hmac.compare_digest(token.strip().encode("utf-8"), secret)
    sent = headers.get(_SIGNATURE_HEADERS[kind], "")
    if not sent:
        return False
    return hmac.compare_digest(
        sent.strip().encode("ascii", "replace"), signature(secret, body).encode("ascii")
    )


def is_woocommerce_ping(kind: str, headers: Mapping[str, str], body: bytes) -> bool:
    """WooCommerce's creation ping: answered 200 and not queued (it carries no order)."""
    return (
        kind == "woocommerce"
        and not headers.get(WOO_SIGNATURE)
        and bool(_WOO_PING.match(body.strip()))
    )


def delivery_id(kind: str, headers: Mapping[str, str], body: bytes) -> str:
    """What identifies this delivery across the sender's retries."""
    given = headers.get(_DELIVERY_HEADERS[kind], "").strip()
    if given:
        return given[:MAX_DELIVERY_ID_CHARS]
    return "sha256:" + hashlib.sha256(body).hexdigest()


def topic(kind: str, headers: Mapping[str, str]) -> str | None:
    value = headers.get(_TOPIC_HEADERS[kind], "").strip()
    return value or None


def topic_conflict(kind: str, topic_name: str | None, data: Any, filtered: bool) -> str | None:
    """Why the topic header cannot be taken, or None.  The topic is outside the signature, so a
    signed body could be replayed under another one: a route that picks topics (`filtered`)
    needs the header the platform always sends, and a Shopify topic must agree with what the
    body is where the body tells (a refund has order_id and refund_line_items, an order has
    financial_status).  What the mapping does is decided by the body alone, and the ledger
    counts each order and refund once, so a replay cannot count anything twice."""
    header = _TOPIC_NAMES[kind]
    if topic_name is None:
        if filtered and kind != "bearer":
            return (
                f"the {header} header is missing; this route takes only some topics, and "
                f"{kind} always sends one"
            )
        return None
    if kind != "shopify" or not isinstance(data, dict):
        return None
    resource = topic_name.partition("/")[0]
    refund = "order_id" in data and "refund_line_items" in data
    order = "financial_status" in data
    if resource == "orders" and refund:
        return (
            f"the {header} '{topic_name}' is an order topic, but the body is a refund "
            "(it has order_id and refund_line_items); the topic header is not signed: "
            "was the request altered?"
        )
    if resource == "refunds" and order and not refund:
        return (
            f"the {header} '{topic_name}' is a refund topic, but the body is an order "
            "(it has financial_status); the topic header is not signed: was the request "
            "altered?"
        )
    return None
