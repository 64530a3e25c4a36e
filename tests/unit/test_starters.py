"""`hubmap init`'s pure parts: recognising a platform, making a shipped mapping a shop's own,
and the skeleton for a platform hubmap does not ship."""

from __future__ import annotations

import yaml
from hypothesis import given
from hypothesis import strategies as st

from hubmap.mapping import check_document
from hubmap.mapping.loader import load_text
from hubmap.starters import skeleton, starter
from hubmap.starters.recognise import recognise, records_of

SHOPIFY = {
    "id": 1,
    "financial_status": "paid",
    "total_price": "10.00",
    "currency": "EUR",
    "line_items": [],
    "order_status_url": "https://shop.example.org/1/orders/x",
}
WOO = {
    "id": 5,
    "order_key": "wc_order_x",
    "currency": "GBP",
    "billing": {"email": "a@b.co"},
    "date_created_gmt": "2024-01-01T00:00:00",
    "_links": {"self": [{"href": "https://woo.example.org/wp-json/wc/v3/orders/5"}]},
}


def test_each_platform_is_recognised_by_its_fields_with_the_currency_of_its_orders():
    cases = [
        (
            SHOPIFY,
            "shopify-orders-contacts.yaml",
            {"SHOP_CURRENCY": "EUR", "SHOP_DOMAIN": "shop.example.org"},
        ),
        (
            {"token": "t", "cart_token": "c", "completed_at": None, "currency": "USD"},
            "shopify-checkout-form.yaml",
            {"SHOP_CURRENCY": "USD"},
        ),
        (
            WOO,
            "woocommerce-orders-contacts.yaml",
            {"SHOP_CURRENCY": "GBP", "SHOP_URL": "https://woo.example.org"},
        ),
        (
            {
                "entity_id": 3,
                "increment_id": "000000003",
                "base_grand_total": 5,
                "customer_email": "a@b.co",
                "base_currency_code": "CAD",
            },
            "magento-orders-contacts.yaml",
            {"SHOP_CURRENCY": "CAD"},
        ),
        (
            {"id": 100, "status_id": 11, "currency_code": "AUD", "billing_address": {}},
            "bigcommerce-orders-contacts.yaml",
            {"SHOP_CURRENCY": "AUD"},
        ),
        (
            {"id": "ch_1", "object": "charge", "livemode": False, "currency": "usd"},
            "stripe-checkout-contacts.yaml",
            {"SHOP_CURRENCY": "USD"},
        ),
        (
            {
                "InvoiceNo": "536365",
                "StockCode": "85123A",
                "Quantity": "6",
                "UnitPrice": "2.55",
                "CustomerID": "17850.0",
            },
            "online-retail-contacts.yaml",
            {},
        ),
    ]
    for record, mapping, params in cases:
        found = recognise([record])
        assert found is not None, record
        assert (found.mapping, found.params) == (mapping, params)


def test_envelopes_are_opened_and_the_platform_most_records_have_wins():
    wrapped = [
        {"orders": [SHOPIFY, SHOPIFY]},
        {"data": [WOO]},
        {
            "id": "evt_1",
            "object": "event",
            "data": {"object": {"object": "charge", "livemode": True, "currency": "eur"}},
        },
    ]
    records = records_of(wrapped)
    assert len(records) == 4
    assert recognise(records).mapping == "shopify-orders-contacts.yaml"
    assert recognise(records).records == 2
    assert recognise([{"sku": "x", "email": "a@b.co"}]) is None


def test_only_a_sample_is_read_from_a_long_input():
    taken = []

    def documents():
        for n in range(10_000):
            taken.append(n)
            yield {"id": n}

    assert len(records_of(documents())) == 200
    assert len(taken) == 200


SHIPPED_LIKE = """\
# yaml-language-server: $schema=../schemas/mapping.schema.json
version: 1
name: x
params:
  SHOP_CURRENCY:
    default: USD
    description: the currency
  SHOP_TIMEZONE:
    default: America/New_York
records:
  id: id
examples:
  - name: one
    input: {id: 1}
  - name: two   # a comment stays
    input_file: examples/a.json
"""


def test_defaults_are_set_and_cases_pinned_to_the_values_they_were_written_for():
    text = starter.with_defaults(
        SHIPPED_LIKE, {"SHOP_CURRENCY": "EUR", "SHOP_TIMEZONE": "Europe/Berlin"}
    )
    text = starter.with_pinned_cases(
        text, {"SHOP_CURRENCY": "USD", "SHOP_TIMEZONE": "America/New_York"}
    )
    data = yaml.safe_load(text)
    assert data["params"]["SHOP_CURRENCY"] == {"default": "EUR", "description": "the currency"}
    assert data["params"]["SHOP_TIMEZONE"] == {"default": "Europe/Berlin"}
    assert [c["params"] for c in data["examples"]] == [
        {"SHOP_CURRENCY": "USD", "SHOP_TIMEZONE": "America/New_York"}
    ] * 2
    assert "# a comment stays" in text
    assert starter.referenced_files(text) == ["examples/a.json"]
    assert starter.with_schema_header(text, "mapping.schema.json").startswith(
        "# yaml-language-server: $schema=mapping.schema.json\n"
    )


@given(
    st.text(
        alphabet=st.characters(
            min_codepoint=33, max_codepoint=126, exclude_characters="'\"`\\{}$#"
        ),
        min_size=1,
        max_size=30,
    )
)
def test_any_plain_value_is_the_default_read_back(value):
    text = starter.with_defaults(SHIPPED_LIKE, {"SHOP_CURRENCY": value})
    assert starter.declared_defaults(text)["SHOP_CURRENCY"] == value
    assert starter.declared_defaults(text)["SHOP_TIMEZONE"] == "America/New_York"


def test_a_parameter_the_mapping_does_not_declare_is_refused():
    try:
        starter.with_defaults(SHIPPED_LIKE, {"SHOP_URL": "https://x.example"})
    except ValueError as error:
        assert "SHOP_URL" in str(error)
    else:
        raise AssertionError("an undeclared parameter was accepted")


SQUARE_LIKE = [
    {
        "id": "ord-1",
        "state": "COMPLETED",
        "version": 3,
        "created_at": "2025-02-14T18:22:05Z",
        "updated_at": "2025-02-14T18:25:40Z",
        "customer_email": "grace@example.com",
        "total_money": {"amount": 5088, "currency": "USD"},
        "line_items": [
            {"name": "Coffee", "quantity": "2", "sku": "C-1"},
            {"name": "Mug", "quantity": "1"},
        ],
    },
    {
        "id": "ord-2",
        "state": "OPEN",
        "created_at": "2025-03-01T10:00:00Z",
        "customer_email": "ada@example.com",
        "total_money": {"amount": 100, "currency": "USD"},
        "line_items": [],
    },
]


def test_the_skeleton_lists_every_field_with_its_kind_and_guesses_a_valid_mapping():
    text = skeleton.skeleton(
        "square-contacts",
        "orders.ndjson",
        SQUARE_LIKE,
        "mapping.schema.json",
        "mappings/square-contacts.yaml",
    )
    for listed in (
        "#   id: text, ord-1",
        "#   version: number, 3",
        "#   created_at: date as text, 2025-02-14T18:22:05Z",
        "#   total_money.amount: number, 5088",
        "#   line_items[].quantity: number as text, 2",
        "#   line_items[].name: text, Coffee",
    ):
        assert listed in text
    data = yaml.safe_load(text)
    assert data["records"] == {
        "id": "to_string(id)",
        "version": "updated_at",
        "time": "created_at",
        "contact": "customer_email",
    }
    assert data["properties"]["total_value_of_orders"]["from"] == "total_money.amount"
    assert data["properties"]["products_bought"]["from"] == "line_items[].name"
    assert data["properties"]["skus_bought"]["from"] == "line_items[].sku"
    checked = check_document(load_text(text, "square-contacts.yaml"), environ={})
    assert [p for p in checked.problems if p.is_error] == []


def test_a_field_the_skeleton_cannot_guess_is_left_for_the_author_with_why():
    text = skeleton.skeleton(
        "x", "s.json", [{"total": 5, "Ordered At": "2024-01-01"}], "mapping.schema.json", "x.yaml"
    )
    assert "# id: ...  # no field looked like the order's own id" in text
    assert "# contact: ...  # no field looked like the customer's e-mail" in text
    assert '#   "Ordered At": date as text, 2024-01-01' in text  # quoted as JMESPath needs
    assert yaml.safe_load(text)["records"]["time"] == '"Ordered At"'


def test_every_shipped_mapping_takes_new_defaults_and_pins_every_case():
    # `hubmap init` edits the shipped texts; a mapping written in another shape would stop it
    from tests.conftest import MAPPINGS

    for path in sorted(MAPPINGS.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        defaults = starter.declared_defaults(text)
        changed = {name: f"X{n}" for n, name in enumerate(defaults)}
        edited = starter.with_pinned_cases(starter.with_defaults(text, changed), defaults)
        assert starter.declared_defaults(edited) == changed, path.name
        cases = yaml.safe_load(edited).get("examples") or []
        assert cases and all(c["params"] == defaults for c in cases if defaults), path.name
