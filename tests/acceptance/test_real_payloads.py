"""The shipped mappings over the real shop payloads in the shared data set (WooCommerce, Shopify,
Stripe, Magento, BigCommerce): the exact values each contact gets, and that every record is either counted,
skipped or rejected with a reason (never dropped silently).

The WooCommerce payloads are GPL-2.0 and so are not copied into the repository; they are read from
the shared data folder, and these tests skip when it is absent.  Expected values are worked out by
hand from the payloads (the arithmetic is in the comments), not copied from hubmap's output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hubmap.evaluate import CompiledMapping, Rejected
from hubmap.fold import ContactFolder
from hubmap.mapping import load_mapping
from hubmap.plan import Plan, submission_fields
from hubmap.uses import plan as planning
from tests.conftest import MAPPINGS, shared_data

WOO_CONTACTS = MAPPINGS / "woocommerce-orders-contacts.yaml"
WOO_FORM = MAPPINGS / "woocommerce-checkout-form.yaml"

# Every WooCommerce order once: order.json and order-without-data.json repeat order 963 of
# orders-load-all.json, so they are checked on their own below.
WOO_DISTINCT_FILES = (
    "orders-load-all.json",
    "order-details-partially-refunded.json",
    "order-fully-refunded.json",
    "order-with-attribution-info.json",
    "order-560-all-refunds.json",
)

PLATFORM_MAPPINGS = {
    "woocommerce": ("woocommerce-orders-contacts.yaml", "woocommerce-checkout-form.yaml"),
    "shopify": ("shopify-orders-contacts.yaml", "shopify-checkout-form.yaml"),
    "stripe": ("stripe-checkout-contacts.yaml",),
    "magento": ("magento-orders-contacts.yaml",),
    "bigcommerce": ("bigcommerce-orders-contacts.yaml",),
}


def _plan_of(
    mapping: Path, *files: str, platform: str = "woocommerce", tmp_path: Path | None = None
) -> Plan:
    """Plan a mapping over some shared files (copied into one folder when there are several)."""
    paths = [shared_data(platform, name) for name in files]
    if len(paths) == 1:
        return _plan(str(mapping), str(paths[0]))
    assert tmp_path is not None
    folder = tmp_path / platform
    folder.mkdir()
    for path in paths:
        shutil.copy(path, folder / path.name)
    return _plan(str(mapping), str(folder))


def _values(result: Plan) -> dict[str, dict[str, str]]:
    """Each contact's values; "" (no value: cleared, or never written) left out."""
    return {
        contact.contact: {k: v for k, v in contact.values.items() if v != ""}
        for contact in result.contacts
    }


def _rejected(result: Plan) -> dict[str, str]:
    return {r.record: r.reason for r in result.rejected}


def test_woocommerce_orders_fold_into_exact_contact_values(tmp_path: Path) -> None:
    result = _plan_of(WOO_CONTACTS, *WOO_DISTINCT_FILES, tmp_path=tmp_path)
    got = _values(result)

    assert set(got) == {
        "scrambled@scrambled.com",
        "thuy.copeland+pamela-nguyen-orders@gmail.com",
        "thuy.copeland+pamela-nguyen-orders@automattic.com",
        "your.email+fakedata99085@gmail.com",
    }

    # Orders 963 (31.20, 2018-04-03T23:05:12 UTC) and 960 (20.00, 2018-04-03T20:52:38 UTC):
    # 31.20 + 20.00 = 51.20 over 2 orders; both are the 3rd in New York (19:05 and 16:52).
    # 963 is the later one.  Quantities 2 + 1.5 (963) + 1 (960) = 4.5.  963's first item has an
    # empty SKU, 960's only item too, so the only SKU is 5555-A.
    scrambled = got["scrambled@scrambled.com"]
    assert scrambled["total_value_of_orders"] == "51.20"
    assert scrambled["total_number_of_orders"] == "2"
    assert scrambled["average_order_value"] == "25.60"
    assert scrambled["first_order_date"] == "2018-04-03"
    assert scrambled["first_order_value"] == "20.00"
    assert scrambled["last_order_date"] == "2018-04-03"
    assert scrambled["last_order_value"] == "31.20"
    assert scrambled["last_order_order_number"] == "963"
    assert scrambled["last_order_status"] == "wc-processing"
    assert scrambled["last_total_number_of_products_bought"] == "3.5"
    assert scrambled["total_number_of_products_bought"] == "4.5"
    assert scrambled["last_skus_bought"] == "5555-A"
    assert scrambled["skus_bought"] == "5555-A"
    assert scrambled["products_bought"] == (
        "Fruits Basket (Mix & Match Product);Fruits Bundle;Poster (Product Add-On)"
    )
    assert scrambled["last_discount_codes"] == "30$off"

    # Order 560: 1198.50 minus its four refunds 63.00 + 117.00 + 18.00 + 27.00 = 225.00 -> 973.50.
    # Quantities 3 + 10 + 2 + 3 + 2 + 4 + 2 + 7 = 33; "Happy Ninja" is both a T-shirt and a hoodie.
    pamela_gmail = got["thuy.copeland+pamela-nguyen-orders@gmail.com"]
    assert pamela_gmail["total_value_of_orders"] == "973.50"
    assert pamela_gmail["first_order_value"] == "1198.50"
    assert pamela_gmail["last_order_value"] == "1198.50"
    assert pamela_gmail["first_order_date"] == "2019-10-01"
    assert pamela_gmail["total_number_of_products_bought"] == "33"
    # The top items by line value: Happy Ninja hoodie 31.50 x 10 = 315.00, Ship Your Idea - Blue,
    # XL 27 x 7 = 189, Ship Your Idea - Black, L 31.50 x 4 = 126 (the T-shirt, 16.20 x 3, is not).
    assert pamela_gmail["last_products_bought_product_1_name"] == "Happy Ninja"
    assert pamela_gmail["last_products_bought_product_1_price"] == "31.50"
    assert pamela_gmail["last_products_bought_product_2_name"] == "Ship Your Idea - Blue, XL"
    assert pamela_gmail["last_products_bought_product_2_price"] == "27.00"
    assert pamela_gmail["last_products_bought_product_3_name"] == "Ship Your Idea - Black, L"
    assert pamela_gmail["skus_bought"].split(";") == [
        "T-SHIRT-HAPPY-NINJA",
        "HOODIE-HAPPY-NINJA",
        "T-SHIRT-NINJA-SILHOUETTE",
        "HOODIE-PATIENT-NINJA",
        "T-SHIRT-PREMIUM-QUALITY",
        "HOODIE-SHIP-YOUR-IDEA-BLACK-L",
        "HOODIE-WOO-LOGO",
        "HOODIE-SHIP-YOUR-IDEA-BLUE-XL",
    ]
    assert pamela_gmail["products_bought"].split(";")[0:2] == ["Happy Ninja", "Ninja Silhouette"]

    # Order 324 ("completed"): 304.45 - 16.20 - 8.10 = 280.15.  Quantities 1 + 2 + ... + 8 = 36.
    # Top items by value: Woo Ninja 13.50 x 4 = 54.00, Woo Album #3 8.10 x 6 = 48.60, Woo Album
    # #1 8.10 x 5 = 40.50; Premium Quality (the float 10.799999999999999 x 3 = 32.40) is fourth.
    pamela_work = got["thuy.copeland+pamela-nguyen-orders@automattic.com"]
    assert pamela_work["total_value_of_orders"] == "280.15"
    assert pamela_work["last_order_value"] == "304.45"
    assert pamela_work["last_order_status"] == "wc-completed"
    assert pamela_work["total_number_of_products_bought"] == "36"
    assert pamela_work["last_products_bought_product_1_name"] == "Woo Ninja"
    assert pamela_work["last_products_bought_product_1_price"] == "13.50"
    assert pamela_work["last_products_bought_product_3_name"] == "Woo Album #1"
    assert pamela_work["last_products_bought_product_3_price"] == "8.10"
    assert pamela_work["last_skus_bought"].split(";")[-1] == "WOO-SINGLE-1"

    # Order 459: 2023-03-29T03:21:20 UTC is still the 28th in New York (23:21 the day before).
    newer = got["your.email+fakedata99085@gmail.com"]
    assert newer["total_value_of_orders"] == "4.00"
    assert newer["first_order_date"] == "2023-03-28"
    assert newer["last_order_date"] == "2023-03-28"
    assert newer["last_products_bought_product_1_image_url"] == (
        "https://example.com/wp-content/uploads/2023/01/beanie-with-logo-1.jpg"
    )
    assert "last_products_bought_product_2_name" not in newer

    # Order 609 is fully refunded ("refunded"): skipped, not counted at zero.
    assert [s.order_id for s in result.skipped] == ["609"]
    rejected = _rejected(result)
    assert "not a valid email" in rejected.pop("961")  # scrambled@scrambled has no TLD
    assert set(rejected) == {"1172", "1025", "590", "562"}  # the refund objects of order 560
    assert all("not a WooCommerce order" in reason for reason in rejected.values())


@pytest.mark.parametrize("name", ["order.json", "order-without-data.json"])
def test_woocommerce_order_reads_the_same_wrapped_or_not(name: str) -> None:
    got = _values(_plan_of(WOO_CONTACTS, name))
    values = got["scrambled@scrambled.com"]
    assert values["total_value_of_orders"] == "31.20"
    assert values["last_order_date"] == "2018-04-03"
    assert values["last_products_bought_product_1_name"] == "Fruits Basket (Mix & Match Product)"
    assert values["last_products_bought_product_1_price"] == "30.00"
    # Item 890's SKU is empty: it leaves no "" item and no stray ";".
    if name == "order.json":  # the wrapped one also has the 1.5-unit "Fruits Bundle"
        assert values["total_number_of_products_bought"] == "3.5"
        assert values["skus_bought"] == values["last_skus_bought"] == "5555-A"
    else:
        assert values["total_number_of_products_bought"] == "2"
        assert "skus_bought" not in values and "last_skus_bought" not in values


def test_woocommerce_checkout_form_context_and_fields() -> None:
    result = _plan_of(WOO_FORM, "order-with-attribution-info.json")
    (order,) = result.submissions
    assert order.contact == "your.email+fakedata99085@gmail.com"
    # No 'hubspotutk' meta entry in this order, so no hutk is sent (it cannot be guessed).
    assert order.context == {
        "pageUri": "https://ddev.site/shop/",
        "pageName": "Order 459",
        "ipAddress": "189.147.41.13",
    }
    compiled = CompiledMapping(load_mapping(str(WOO_FORM)))
    fields = submission_fields(compiled, ContactFolder(compiled), order)
    assert fields["last_order_value"] == "4.00"
    assert fields["last_order_date"] == "2023-03-28"
    assert fields["last_order_status"] == "wc-processing"
    assert fields["last_products_bought_product_1_image_url"].endswith("beanie-with-logo-1.jpg")
    assert "abandoned_cart_url" not in fields


def test_records_without_a_usable_contact_key_are_rejected_with_a_reason() -> None:
    woo = _rejected(_plan_of(WOO_CONTACTS, "orders-load-all.json"))
    assert woo == {
        "961": "'scrambled@scrambled' is not a valid email address ('scrambled' is "
        "not a domain name such as example.com)"
    }

    stripe = _plan_of(
        MAPPINGS / "stripe-checkout-contacts.yaml", "fixtures3.json", platform="stripe"
    )
    (charge,) = stripe.rejected  # stripe-mock's charge has no receipt or billing email
    assert charge.record == "ch_1PgafuB7WZ01zgkWXYmPNZs8"
    assert "no contact key" in charge.reason


def test_a_payment_in_another_currency_is_rejected_not_summed() -> None:
    result = _plan_of(
        MAPPINGS / "stripe-checkout-contacts.yaml", "charge_succeeded__card.json", platform="stripe"
    )
    assert result.contacts == []
    assert "not in USD" in _rejected(result)["ch_000000000000000000000000"]  # AUD 1.00


def test_magento_parent_and_child_items_are_counted_once() -> None:
    result = _plan_of(
        MAPPINGS / "magento-orders-contacts.yaml",
        "order-create-order_GET_V1_orders_3.json",
        platform="magento",
    )
    values = _values(result)["jdoe@example.com"]
    # 9 item rows: 4 top-level (22 + 18 + 68 + 52 = 160 subtotal) and 5 children; grand total
    # 160 + 5 shipping = 165.  Only the 4 top-level items are products bought (1 each).
    assert values["total_value_of_orders"] == "165.00"
    assert values["total_number_of_products_bought"] == "4"
    assert values["products_bought"].split(";") == [
        "Radiant Tee-M-Orange",
        "Advanced Pilates & Yoga (Strength)",
        "Sprite Yoga Companion Kit",
        "Chaz Kangeroo Hoodie",
    ]
    assert values["last_order_date"] == "2017-08-21"  # 22:22 UTC is 18:22 in New York


@pytest.mark.parametrize("platform", sorted(PLATFORM_MAPPINGS))
def test_every_real_record_is_counted_skipped_or_rejected_with_a_reason(platform: str) -> None:
    folder = shared_data(platform)
    for name in PLATFORM_MAPPINGS[platform]:
        for path in sorted(folder.glob("*.json")):
            result = _plan(str(MAPPINGS / name), str(path))
            # each record is one of: an order (new, changed, unchanged, stale, withdrawn),
            # skipped, a refund (new, changed, unchanged), or rejected
            words = sum(result.orders.as_dict().values())
            assert result.records == words + len(result.rejected), path
            assert all(isinstance(r, Rejected) and r.reason.strip() for r in result.rejected)


def test_shopify_checkout_form_reads_the_storefronts_hubspotutk_attribute(tmp_path: Path) -> None:
    order = json.loads(shared_data("shopify", "order.json").read_text())
    hutk = "0123456789abcdef0123456789abcdef"
    # What the theme's POST /cart/update.js {attributes: {hubspotutk: ...}} becomes on the order.
    order["order"]["note_attributes"].append({"name": "hubspotutk", "value": hutk})
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order))
    (submission,) = _plan(str(MAPPINGS / "shopify-checkout-form.yaml"), str(path)).submissions
    assert submission.order_id == "order-450789469"
    assert submission.context == {
        "hutk": hutk,
        "pageUri": "http://www.example.com?source=abc",
        "pageName": "Checkout #1001",
        "ipAddress": "0.0.0.0",
    }

    checkouts = _plan(
        str(MAPPINGS / "shopify-checkout-form.yaml"), str(shared_data("shopify", "checkouts.json"))
    )
    (cart,) = checkouts.submissions  # the same id as the order, kept apart by its prefix
    assert cart.order_id == "checkout-450789469"
    assert "hutk" not in cart.context  # the real checkout carries no hubspotutk attribute


def _plan(mapping: str, input_path: str) -> Plan:
    return planning.plan(mapping, input_path).unwrap()


BIGCOMMERCE = MAPPINGS / "bigcommerce-orders-contacts.yaml"


def test_bigcommerce_v2_order_and_email_data_fold_into_exact_values() -> None:
    # V2 order 100: total_inc_tax "0.0100", refunded "0.0000", placed Fri, 02 Mar 2012 (UTC);
    # its products are only a URL, so it gives no SKUs
    v2 = _values(_plan_of(BIGCOMMERCE, "order.json", platform="bigcommerce"))
    assert v2 == {
        "bug@bunny.com": {
            "total_value_of_orders": "0.01",
            "total_number_of_orders": "1",
            "average_order_value": "0.01",
            "first_order_date": "2012-03-02",
            "first_order_value": "0.01",
            "last_order_date": "2012-03-02",
            "last_order_value": "0.01",
            "last_order_status": "Awaiting Fulfillment",
        }
    }
    # the invoice e-mail data: total_cost {value: 100}, placed at epoch 1613060604 (2021-02-11
    # UTC), one product SF42 twice; the customer's e-mail wins over the billing address's
    mail = _values(_plan_of(BIGCOMMERCE, "invoice_email.json", platform="bigcommerce"))
    assert mail == {
        "john.f@example.com": {
            "total_value_of_orders": "100.00",
            "total_number_of_orders": "1",
            "average_order_value": "100.00",
            "first_order_date": "2021-02-11",
            "first_order_value": "100.00",
            "last_order_date": "2021-02-11",
            "last_order_value": "100.00",
            "last_products_bought": "Test product name",
            "last_skus_bought": "SF42",
            "total_number_of_products_bought": "2",
            "skus_bought": "SF42",
            "products_bought": "Test product name",
        }
    }


@pytest.mark.parametrize(
    "name",
    [
        "store_order_created.json",
        "store_order_statusUpdated.json",
        "store_cart_converted.json",
        "store_cart_abandoned.json",
    ],
)
def test_bigcommerce_webhooks_with_only_ids_are_rejected_saying_to_fetch_the_order(
    name: str,
) -> None:
    result = _plan_of(BIGCOMMERCE, name, platform="bigcommerce")
    assert list(result.contacts) == []  # nothing counted
    (reason,) = _rejected(result).values()
    assert "fetch the order" in reason
