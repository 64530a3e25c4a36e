"""Which shipped mapping a sample payload is for: the platform recognised by the fields its
records carry, and the parameter values the sample gives (its currency).

Pure: takes the decoded documents, returns a Recognition (or None); `hubmap init` does the
reading and the writing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# how many records are looked at: enough to see a shop's shapes, few enough for a large export
SAMPLE_RECORDS = 200


@dataclass(frozen=True)
class Recognition:
    platform: str  # for people: "Shopify orders"
    mapping: str  # the shipped mapping's file name
    evidence: str  # why: the fields that told
    params: dict[str, str] = field(default_factory=dict)  # values read from the sample
    records: int = 0  # how many of the sampled records look like this platform's


def records_of(documents: Iterable[Any]) -> list[dict[str, Any]]:
    """The order-like objects of the documents: unwrapped from the shops' envelopes (a list,
    {"orders": [...]}, {"order": ...}, {"data": ...}, an event's data.object, stripe-mock's
    resources), at most SAMPLE_RECORDS of them."""
    found: list[dict[str, Any]] = []

    def add(value: Any, depth: int = 0) -> None:
        if len(found) >= SAMPLE_RECORDS or depth > 3:
            return
        if isinstance(value, list):
            for item in value:
                add(item, depth + 1)
            return
        if not isinstance(value, dict):
            return
        for wrapper in ("orders", "order", "checkouts", "checkout", "items", "refunds"):
            inner = value.get(wrapper)
            if len(value) <= 3 and isinstance(inner, (list, dict)) and inner:
                add(inner, depth + 1)
                return
        if isinstance(value.get("search_criteria"), dict) and isinstance(value.get("items"), list):
            add(value["items"], depth + 1)  # a Magento search result
            return
        data = value.get("data")
        if isinstance(data, dict) and isinstance(data.get("object"), dict):
            add(data["object"], depth + 1)  # a Stripe event
            return
        if isinstance(data, list) and value.get("object") == "list":
            add(data, depth + 1)  # a Stripe list response
            return
        if len(value) == 1:
            (inner,) = value.values()
            if isinstance(inner, (list, dict)) and inner:  # {"data": ...}, {"customer": ...}
                add(inner, depth + 1)
                return
        resources = value.get("resources")
        if isinstance(resources, dict) and len(value) == 1:  # stripe-mock's fixtures
            add([resources.get("checkout.session"), resources.get("charge")], depth + 1)
            return
        found.append(value)

    for document in documents:  # stops reading once the sample is full (a large export)
        add(document)
        if len(found) >= SAMPLE_RECORDS:
            break
    return found


def _has(record: dict[str, Any], *names: str) -> bool:
    return all(name in record for name in names)


def _shopify_order(r: dict[str, Any]) -> bool:
    return _has(r, "financial_status") and (_has(r, "line_items") or _has(r, "total_price"))


def _shopify_checkout(r: dict[str, Any]) -> bool:
    return "financial_status" not in r and (
        _has(r, "abandoned_checkout_url") or _has(r, "cart_token", "completed_at")
    )


def _woocommerce(r: dict[str, Any]) -> bool:
    return _has(r, "order_key") or (
        isinstance(r.get("billing"), dict) and _has(r, "date_created_gmt")
    )


def _magento(r: dict[str, Any]) -> bool:
    return _has(r, "increment_id", "base_grand_total") and _has(r, "customer_email")


def _bigcommerce(r: dict[str, Any]) -> bool:
    if _has(r, "status_id") and (_has(r, "billing_address") or _has(r, "currency_code")):
        return True  # a V2 order
    order = r.get("order")
    if isinstance(order, dict) and isinstance(order.get("date_placed"), dict):
        return True  # the order data of the e-mail templates
    return str(r.get("scope", "")).startswith("store/order/")  # a webhook (id only)


def _stripe(r: dict[str, Any]) -> bool:
    return r.get("object") in ("checkout.session", "charge", "refund") and _has(r, "livemode")


def _online_retail(r: dict[str, Any]) -> bool:
    return _has(r, "InvoiceNo", "StockCode", "Quantity", "UnitPrice", "CustomerID")


def _currency(
    field_name: str, *, upper: bool = False
) -> Callable[[dict[str, Any]], dict[str, str]]:
    def read(record: dict[str, Any]) -> dict[str, str]:
        value = record.get(field_name)
        if not isinstance(value, str) or not value.isalpha() or len(value) != 3:
            return {}
        return {"SHOP_CURRENCY": value.upper() if upper else value}

    return read


def _woocommerce_params(record: dict[str, Any]) -> dict[str, str]:
    found = _currency("currency")(record)
    links = record.get("_links")
    try:
        href = links["self"][0]["href"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return found
    if isinstance(href, str) and "/wp-json/" in href and href.startswith("http"):
        found["SHOP_URL"] = href.split("/wp-json/")[0]
    return found


def _shopify_params(record: dict[str, Any]) -> dict[str, str]:
    found = _currency("currency")(record)
    status_url = record.get("order_status_url")
    if isinstance(status_url, str) and status_url.startswith("http") and status_url.count("/") >= 3:
        found["SHOP_DOMAIN"] = status_url.split("/")[2]
    return found


def _no_params(record: dict[str, Any]) -> dict[str, str]:
    return {}


# (platform, shipped mapping, the fields that tell, test, parameters read from a record).
# The first whose test most records pass wins; checkouts before orders (a form mapping reads
# both, and only a checkout has no financial_status).
PLATFORMS: tuple[
    tuple[
        str, str, str, Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], dict[str, str]]
    ],
    ...,
] = (
    (
        "Shopify checkouts",
        "shopify-checkout-form.yaml",
        "abandoned_checkout_url / cart_token and completed_at, no financial_status",
        _shopify_checkout,
        _shopify_params,
    ),
    (
        "Shopify orders",
        "shopify-orders-contacts.yaml",
        "financial_status with line_items or total_price",
        _shopify_order,
        _shopify_params,
    ),
    (
        "WooCommerce orders",
        "woocommerce-orders-contacts.yaml",
        "order_key, or billing with date_created_gmt",
        _woocommerce,
        _woocommerce_params,
    ),
    (
        "Magento orders",
        "magento-orders-contacts.yaml",
        "increment_id, base_grand_total and customer_email",
        _magento,
        _currency("base_currency_code"),
    ),
    (
        "BigCommerce orders",
        "bigcommerce-orders-contacts.yaml",
        (
            "status_id with billing_address or currency_code (or the e-mail templates' order, or a "
            "store/order/* webhook)"
        ),
        _bigcommerce,
        _currency("currency_code"),
    ),
    (
        "Stripe payments",
        "stripe-checkout-contacts.yaml",
        "object checkout.session, charge or refund, with livemode",
        _stripe,
        _currency("currency", upper=True),
    ),
    (
        "Online Retail (UCI) invoice lines",
        "online-retail-contacts.yaml",
        "the columns InvoiceNo, StockCode, Quantity, UnitPrice and CustomerID",
        _online_retail,
        _no_params,
    ),
)

# the form mappings that go with a contacts mapping, for `hubmap init --form`
FORM_OF = {
    "shopify-orders-contacts.yaml": "shopify-checkout-form.yaml",
    "woocommerce-orders-contacts.yaml": "woocommerce-checkout-form.yaml",
}


def recognise(records: list[dict[str, Any]]) -> Recognition | None:
    """The platform most of the records look like (None when no platform claims any)."""
    best: Recognition | None = None
    for platform, mapping, evidence, test, read_params in PLATFORMS:
        matching = [r for r in records if test(r)]
        if not matching or (best is not None and len(matching) <= best.records):
            continue
        params: dict[str, str] = {}
        for record in matching:  # the first value each parameter gets
            for name, value in read_params(record).items():
                params.setdefault(name, value)
        best = Recognition(platform, mapping, evidence, params, len(matching))
    return best
