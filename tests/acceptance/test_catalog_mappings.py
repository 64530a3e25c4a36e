"""The shipped checkout forms and contacts mappings over real shop payloads plus real product
catalogs: the top-3 items by line value, their product URLs and images, the upsell and similar
items from the catalog's own relations (never a product just bought), the cart URL, and the
categories and brands bought.

The real catalogs are in the shared data folder: Shopify's `catalog/product.json` (MIT, also
shipped as `mappings/examples/shopify/product.json`) and WooCommerce's
`catalog/products-load-all.json` (GPL-2.0, so never copied into the repository: each test puts it
beside a copy of the shipped mapping in a temporary folder, where the mapping's `catalogs.*.file`
finds it).  The tests skip when the shared data is absent.  Expected values are worked out by hand
from the payloads (the arithmetic is in the comments), not copied from hubmap's output.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hubmap.evaluate import CompiledMapping
from hubmap.fold import ContactFolder
from hubmap.mapping import load_mapping
from hubmap.plan import Plan, submission_fields
from hubmap.uses import plan as planning
from tests.conftest import MAPPINGS, shared_data

SHOPIFY_FORM = "shopify-checkout-form.yaml"
SHOPIFY_CONTACTS = "shopify-orders-contacts.yaml"
WOO_FORM = "woocommerce-checkout-form.yaml"
WOO_CONTACTS = "woocommerce-orders-contacts.yaml"

IPOD_IMAGE = "http://static.shopify.com/s/files/1/6909/3384/products/ipod-nano.png?0"
WOO_UPLOADS = "thuy-nonjtpk.mystagingwebsite.com/wp-content/uploads/2018/01/"


def _shopify_folder(tmp_path: Path, name: str) -> Path:
    """The shipped Shopify mapping and its example files, with the shared Shopify catalog as its
    products catalog (the recommendations are the shipped ones, written for the project)."""
    folder = tmp_path / "shopify-mapping"
    examples = folder / "examples" / "shopify"
    if not examples.exists():
        shutil.copytree(MAPPINGS / "examples" / "shopify", examples)
    shutil.copy(shared_data("shopify", "catalog", "product.json"), examples / "product.json")
    shutil.copy(MAPPINGS / name, folder / name)
    return folder / name


def _woo_folder(tmp_path: Path, name: str) -> Path:
    """The shipped WooCommerce mapping with the shared (GPL) products page as its catalog."""
    folder = tmp_path / "woo-mapping"
    examples = folder / "examples" / "woocommerce"
    examples.mkdir(parents=True, exist_ok=True)
    shutil.copy(
        shared_data("woocommerce", "catalog", "products-load-all.json"), examples / "products.json"
    )
    shutil.copy(MAPPINGS / name, folder / name)
    return folder / name


def _write(tmp_path: Path, name: str, document: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _plan(mapping: Path, orders: Path) -> Plan:
    return planning.plan(str(mapping), str(orders)).unwrap()


def _fields(mapping: Path, orders: Path) -> tuple[dict[str, str], Plan]:
    """The one submission's fields, as they are sent."""
    result = _plan(mapping, orders)
    assert not result.rejected, result.rejected
    (order,) = result.submissions
    compiled = CompiledMapping(load_mapping(str(mapping)))
    return submission_fields(compiled, ContactFolder(compiled), order), result


def _contact(mapping: Path, orders: Path) -> dict[str, str]:
    (contact,) = _plan(mapping, orders).contacts
    return {k: v for k, v in contact.values.items() if v != ""}


# ---------------------------------------------------------------------------------- Shopify


def test_the_shipped_shopify_catalog_is_the_real_one() -> None:
    shipped = (MAPPINGS / "examples" / "shopify" / "product.json").read_bytes()
    assert shipped == shared_data("shopify", "catalog", "product.json").read_bytes()


def test_shopify_checkout_sends_top_items_recommendations_and_cart_url(tmp_path: Path) -> None:
    mapping = _shopify_folder(tmp_path, SHOPIFY_FORM)
    fields, result = _fields(mapping, shared_data("shopify", "order.json"))
    # Order #1001: three variants of product 632910392, each 199.00 x 1 = 199.00.  Equal values
    # keep the order's item order: green, red, black.  Each variant's catalog row (keyed by SKU)
    # gives the product's handle "ipod-nano" and, as no variant has an image of its own, the
    # product's one image.
    items = [
        ("IPod Nano - 8gb - green", 39072856),
        ("IPod Nano - 8gb - red", 49148385),
        ("IPod Nano - 8gb - black", 457924702),
    ]
    for n, (name, variant) in enumerate(items, start=1):
        assert fields[f"last_products_bought_product_{n}_name"] == name
        assert fields[f"last_products_bought_product_{n}_price"] == "199.00"
        # no order_status_url in this (2008) order: the shop's domain from its landing_site
        assert fields[f"last_products_bought_product_{n}_url"] == (
            f"https://www.example.com/products/ipod-nano?variant={variant}"
        )
        assert fields[f"last_products_bought_product_{n}_image_url"] == IPOD_IMAGE
    # recommendations.csv lists, for the three SKUs bought, the other colours; without the three
    # bought, only the pink variant (808950810) is left.  Each top item's upsell and similar slot
    # is its own, so each of the three shows the pink one: every field has a real value.
    for kind in ("upsell", "similar"):
        for n in (1, 2, 3):
            assert fields[f"last_products_bought_{kind}_{n}_name"] == "IPod Nano - 8GB - Pink"
            assert fields[f"last_products_bought_{kind}_{n}_url"] == (
                "https://www.example.com/products/ipod-nano?variant=808950810"
            )
            assert fields[f"last_products_bought_{kind}_{n}_image_url"] == IPOD_IMAGE
    assert fields["last_order_value"] == "409.94"
    assert fields["last_order_cart_url"] == (
        "https://www.example.com/cart/39072856:1,49148385:1,457924702:1"
    )
    assert result.submissions[0].context["pageName"] == "Checkout #1001"
    assert catalog_warnings(result) == []  # every SKU looked up is in the catalogs


def test_shopify_order_status_url_gives_the_shop_domain(tmp_path: Path) -> None:
    mapping = _shopify_folder(tmp_path, SHOPIFY_FORM)
    order = json.loads(shared_data("shopify", "order.json").read_text())
    # What newer API versions add: the order status page, on the shop's own domain.
    order["order"]["order_status_url"] = (
        "https://shop.example.com/690933842/orders/b1946ac92492d2347c6235b4d2611184/authenticate"
        "?key=abc"
    )
    fields, _ = _fields(mapping, _write(tmp_path, "order.json", order))
    assert fields["last_products_bought_product_1_url"] == (
        "https://shop.example.com/products/ipod-nano?variant=39072856"
    )
    assert fields["last_order_cart_url"] == (
        "https://shop.example.com/cart/39072856:1,49148385:1,457924702:1"
    )


def test_shopify_abandoned_checkout_sends_its_cart_not_the_purchase_fields(tmp_path: Path) -> None:
    mapping = _shopify_folder(tmp_path, SHOPIFY_FORM)
    fields, _ = _fields(mapping, shared_data("shopify", "checkouts.json"))
    assert fields["abandoned_cart_total_value"] == "409.94"
    assert fields["abandoned_cart_url"].startswith("https://checkout.local/orders/690933842/")
    assert not [name for name in fields if name.startswith("last_")]


def test_shopify_contacts_record_categories_and_brands_from_the_catalog(tmp_path: Path) -> None:
    values = _contact(
        _shopify_folder(tmp_path, SHOPIFY_CONTACTS), shared_data("shopify", "order.json")
    )
    # The line items have "vendor": null; the catalog's product has product_type "Cult Products"
    # and vendor "Apple" (one value each, however many variants were bought).
    assert values["categories_bought"] == "Cult Products"
    assert values["brands_bought"] == "Apple"


# ------------------------------------------------------------------------------ WooCommerce

# An order written for these tests over the real products page (ids 31-37, 81, 208, 282).
WOO_ORDER = {
    "id": 7501,
    "number": "7501",
    "status": "processing",
    "currency": "USD",
    "date_created_gmt": "2024-10-02T15:20:00",
    "total": "81.00",
    "billing": {"email": "sam@example.com"},
    "_links": {"self": [{"href": "https://example.com/wp-json/wc/v3/orders/7501"}]},
    "line_items": [
        {
            "id": 1,
            "name": "Book the Green Room",
            "product_id": 282,
            "variation_id": 0,
            "quantity": 1,
            "price": 10,
        },
        {
            "id": 2,
            "name": "Tshirt",
            "product_id": 36,
            "variation_id": 0,
            "quantity": 2,
            "price": 12,
        },
        {
            "id": 3,
            "name": "Hoodie",
            "product_id": 33,
            "variation_id": 0,
            "quantity": 1,
            "price": 42,
        },
        {
            "id": 4,
            "name": "Woo Singles",
            "product_id": 81,
            "variation_id": 0,
            "quantity": 1,
            "price": 5,
        },
    ],
}


def test_woocommerce_checkout_fills_similar_items_from_the_real_catalog(tmp_path: Path) -> None:
    mapping = _woo_folder(tmp_path, WOO_FORM)
    fields, result = _fields(mapping, _write(tmp_path, "order.json", WOO_ORDER))
    # Line values: Book 10 x 1 = 10, Tshirt 12 x 2 = 24, Hoodie 42 x 1 = 42, Woo Singles 5.
    # Top 3: Hoodie, Tshirt, Book; URL and image from the catalog (the items carry no image).
    top = [
        (
            "Hoodie",
            "42.00",
            "https://example.com/product/hoodie/",
            f"https://i0.wp.com/{WOO_UPLOADS}hoodie.jpg?fit=801%2C801&ssl=1",
        ),
        (
            "Tshirt",
            "12.00",
            "https://example.com/product/tshirt/",
            f"https://i1.wp.com/{WOO_UPLOADS}tshirt.jpg?fit=801%2C801&ssl=1",
        ),
        (
            "Book the Green Room",
            "10.00",
            "https://example.com/product/book-the-green-room/",
            f"https://somewebsite.com/{WOO_UPLOADS}vneck-tee.jpg.png",
        ),
    ]
    for n, (name, price, url, image) in enumerate(top, start=1):
        assert fields[f"last_products_bought_product_{n}_name"] == name
        assert fields[f"last_products_bought_product_{n}_price"] == price
        assert fields[f"last_products_bought_product_{n}_url"] == url
        assert fields[f"last_products_bought_product_{n}_image_url"] == image
    # One upsell and one similar item per top item, never a product bought (282, 36, 33, 81),
    # only products on this page, none shown twice while others are left.
    # Upsell: Hoodie (33) has no upsell or cross-sell ids: the other products of its category,
    # Hoodies (33, 32, 31 on the page) -> 32.  Tshirt (36): Tshirts (37, 36, 35, 34) -> 37.  Book
    # (282): upsell_ids [99, 1234566] and cross_sell_ids [1234, 234234, 3], none on this page, and
    # its category Events has only itself: its slot takes the next new product of the others'
    # lists in turn (32 and 37 are shown, then Hoodie's 31).
    # Similar: related_ids Hoodie [31, 32, 30] -> 31 (30 is not on the page); Tshirt [37, 34, 35]
    # -> 37; Book [31, 22, 369, 414, 56]: only 31 is on the page and it is shown, so the next new
    # one in turn: Hoodie's 32.
    pocket = ("Hoodie with Pocket", "hoodie-with-pocket", "i0", "801%2C801")
    zipper = ("Hoodie with Zipper", "hoodie-with-zipper", "i1", "800%2C800")
    vneck = ("Vneck Tshirt", "vneck-tee", None, None)
    for kind, items in (("upsell", [zipper, vneck, pocket]), ("similar", [pocket, vneck, zipper])):
        for n, (name, slug, host, fit) in enumerate(items, start=1):
            assert fields[f"last_products_bought_{kind}_{n}_name"] == name
            assert fields[f"last_products_bought_{kind}_{n}_url"] == (
                f"https://example.com/product/{slug}/"
            )
            image = (
                f"https://{host}.wp.com/{WOO_UPLOADS}{slug}.jpg?fit={fit}&ssl=1"
                if host
                else f"https://somewebsite.com/{WOO_UPLOADS}vneck-tee.jpg.png"
            )
            assert fields[f"last_products_bought_{kind}_{n}_image_url"] == image
    # The ids not on the page are warnings, each counted once for the order however many of its
    # expressions looked it up: 99, 1234566, 1234, 234234, 3 (Book's upsell and cross-sell), 30
    # (Hoodie's related) and 22, 369, 414, 56 (Book's related).
    (warning,) = catalog_warnings(result)
    assert warning.startswith("catalog 'products': 10 key(s) looked up are not in it")
    assert fields["last_order_value"] == "81.00"
    assert fields["last_order_cart_url"] == (
        "https://example.com/checkout-link/?products=282:1,36:2,33:1,81:1"
    )


def test_woocommerce_upsell_relations_on_the_page_are_sent(tmp_path: Path) -> None:
    mapping = _woo_folder(tmp_path, WOO_FORM)
    catalog = mapping.parent / "examples" / "woocommerce" / "products.json"
    page = json.loads(catalog.read_text())
    # The real page lists upsells and cross-sells that are on other pages; one more page, with
    # products 99 and 1234 (ids the real Book the Green Room names), joined to it.
    page["data"] += [
        {
            "id": 99,
            "name": "Green Room Upgrade",
            "permalink": "https://example.com/product/upgrade/",
            "images": [{"src": "https://example.com/upgrade.jpg"}],
            "categories": [],
        },
        {
            "id": 1234,
            "name": "Snacks",
            "permalink": "https://example.com/product/snacks/",
            "images": [],
            "categories": [],
        },
    ]
    catalog.write_text(json.dumps(page))
    book_only = {**WOO_ORDER, "line_items": WOO_ORDER["line_items"][:1]}
    fields, _ = _fields(mapping, _write(tmp_path, "order.json", book_only))
    # Book (282): upsell_ids 99, 1234566 (still not there), then cross_sell_ids 1234, 234234, 3.
    # The one top item's own slot takes 99; the next slot, with no item of its own, the next new
    # product of the Book's list (1234); then nothing new is left and no item owns slot 3.
    assert fields["last_products_bought_upsell_1_name"] == "Green Room Upgrade"
    assert fields["last_products_bought_upsell_1_url"] == "https://example.com/product/upgrade/"
    assert fields["last_products_bought_upsell_1_image_url"] == "https://example.com/upgrade.jpg"
    assert fields["last_products_bought_upsell_2_name"] == "Snacks"
    assert "last_products_bought_upsell_2_image_url" not in fields  # it has no image
    assert "last_products_bought_upsell_3_name" not in fields


def test_woocommerce_real_orders_rank_their_items_by_line_value(tmp_path: Path) -> None:
    mapping = _woo_folder(tmp_path, WOO_FORM)
    # Order 324: 13.5 x 1, 13.5 x 2, 10.799999999999999 x 3 (32.399999999999997, exactly), 13.5 x 4
    # = 54, 8.1 x 5 = 40.5, 8.1 x 6 = 48.6, 1.8 x 7, 2.7 x 8: Woo Ninja, Woo Album #3, #1.
    fields, _ = _fields(
        mapping, shared_data("woocommerce", "order-details-partially-refunded.json")
    )
    assert [fields[f"last_products_bought_product_{n}_name"] for n in (1, 2, 3)] == [
        "Woo Ninja",
        "Woo Album #3",
        "Woo Album #1",
    ]
    assert [fields[f"last_products_bought_product_{n}_price"] for n in (1, 2, 3)] == [
        "13.50",
        "8.10",
        "8.10",
    ]
    # Its products (10-54) are not on the real page: no URL, no recommendations (warnings).
    assert "last_products_bought_product_1_url" not in fields
    assert fields["last_order_cart_url"] == (
        "https://thuy-test.mystagingwebsite.com/checkout-link/?products="
        "54:1,42:2,48:3,45:4,12:5,14:6,11:7,10:8"
    )


def test_woocommerce_cart_link_names_variations(tmp_path: Path) -> None:
    mapping = _woo_folder(tmp_path, WOO_FORM)
    orders = json.loads(shared_data("woocommerce", "orders-load-all.json").read_text())
    (order_560,) = [o for o in orders["data"] if o["id"] == 560]
    fields, _ = _fields(mapping, _write(tmp_path, "order-560.json", order_560))
    # 16.2 x 3 = 48.6, 31.5 x 10 = 315, 18 x 2, 31.5 x 3 = 94.5, 18 x 2, 31.5 x 4 = 126 (variation
    # 71), 31.5 x 2, 27 x 7 = 189 (variation 70): 315, 189, 126.
    assert [fields[f"last_products_bought_product_{n}_name"] for n in (1, 2, 3)] == [
        "Happy Ninja",
        "Ship Your Idea - Blue, XL",
        "Ship Your Idea - Black, L",
    ]
    assert fields["last_order_cart_url"] == (
        "https://thuy-test.mystagingwebsite.com/checkout-link/?products="
        "23:3,24:10,22:2,63:3,19:2,71:4,16:2,70:7"
    )


def test_woocommerce_contacts_record_categories_from_the_real_catalog(tmp_path: Path) -> None:
    values = _contact(
        _woo_folder(tmp_path, WOO_CONTACTS), _write(tmp_path, "order.json", WOO_ORDER)
    )
    # In the order's item order: Book the Green Room "Events", Tshirt "Tshirts", Hoodie "Hoodies";
    # Woo Singles has no category.  The real page has no brands (WooCommerce Brands came later).
    assert values["categories_bought"] == "Events;Tshirts;Hoodies"
    assert "brands_bought" not in values


def test_the_real_attribution_order_gets_its_shops_cart_link() -> None:
    # Shipped as is (its example catalog does not have product 36): the real order's own REST
    # link names the shop, https://example.com.
    result = _plan(
        MAPPINGS / WOO_FORM, shared_data("woocommerce", "order-with-attribution-info.json")
    )
    (order,) = result.submissions
    compiled = CompiledMapping(load_mapping(str(MAPPINGS / WOO_FORM)))
    fields = submission_fields(compiled, ContactFolder(compiled), order)
    assert fields["last_products_bought_product_1_name"] == "Beanie with Logo"
    assert fields["last_order_cart_url"] == "https://example.com/checkout-link/?products=36:1"


# ---------------------------------------------------------------------------------- Magento

MAGENTO_UPSELL = """\
version: 1
name: magento-upsell
catalogs:
  products:
    file: products.json
    path: items
    key: sku
let:
  top_items: "sort_by(items[?parent_item_id == null] || `[]`, &multiply(multiply(base_price || `0`, qty_ordered || `1`), `-1`))[:3]"
  upsell_rows: >-
    lookup('products', one_each(
      map(&(sort_by(product_links[?link_type == 'upsell'] || `[]`, &position)[].linked_product_sku
            | [?lookup('products', @)]),
          lookup('products', map(&sku, let('top_items')))),
      items[].sku, `3`))
records:
  id: entity_id
  time: created_at
  contact: customer_email
target:
  kind: forms
  portal_id: "1"
  form_guid: 00000000-0000-0000-0000-000000000000
  email_field: email
  context:
    hutk: "extension_attributes.hubspotutk"
    page_uri: "'https://shop.example/checkout'"
properties:
  upsell_1_name: {type: string, from: "let('upsell_rows')[0].name"}
  upsell_2_name: {type: string, from: "let('upsell_rows')[1].name"}
  upsell_3_name: {type: string, from: "let('upsell_rows')[2].name"}
"""


def _magento_product(sku: str, name: str, *links: tuple[str, str, int]) -> dict[str, Any]:
    """A product as GET /V1/products gives it (written for this test), with its product_links."""
    return {
        "sku": sku,
        "name": name,
        "type_id": "simple",
        "product_links": [
            {
                "sku": sku,
                "link_type": kind,
                "linked_product_sku": linked,
                "linked_product_type": "simple",
                "position": position,
            }
            for kind, linked, position in links
        ],
    }


def test_magento_product_links_fill_the_upsell_items(tmp_path: Path) -> None:
    catalog = {
        "items": [
            _magento_product(
                "24-WG080-24-WG084-24-WG088-24-WG082-blue-24-WG086",
                "Sprite Yoga Companion Kit",
                ("upsell", "24-UG01", 1),
            ),
            _magento_product(
                "MH01-S-Gray",
                "Chaz Kangeroo Hoodie",
                ("upsell", "MH02-S-Black", 2),
                ("upsell", "MH03-S-Blue", 1),
                ("related", "WS11-M-Green", 1),
            ),
            _magento_product(
                "WS12-M-Orange",
                "Radiant Tee",
                ("upsell", "MH01-S-Gray", 1),
                ("crosssell", "MH02-S-Black", 1),
                ("upsell", "WS11-M-Green", 2),
            ),
            _magento_product("MH02-S-Black", "Teton Pullover Hoodie"),
            _magento_product("MH03-S-Blue", "Bruno Compete Hoodie"),
            _magento_product("WS11-M-Green", "Cassia Funnel Sweatshirt"),
        ]
    }
    _write(tmp_path, "products.json", catalog)
    mapping = tmp_path / "magento-upsell.yaml"
    mapping.write_text(MAGENTO_UPSELL, encoding="utf-8")
    fields, result = _fields(
        mapping, shared_data("magento", "order-create-order_GET_V1_orders_3.json")
    )
    # The real order's top items by value: the kit (68), the hoodie MH01-S-Gray (52), the tee
    # WS12-M-Orange (22).  The kit's one upsell, 24-UG01, is not in the export (a warning): its
    # slot waits.  The hoodie's upsells by position: MH03 (1), MH02 (2) -> MH03.  The tee's:
    # MH01 (bought, never recommended back), WS11 -> WS11; its cross-sell is not an upsell.  The
    # kit's slot then takes the next new upsell in turn: MH02.
    assert [fields.get(f"upsell_{n}_name") for n in (1, 2, 3)] == [
        "Teton Pullover Hoodie",
        "Bruno Compete Hoodie",
        "Cassia Funnel Sweatshirt",
    ]
    (warning,) = catalog_warnings(result)
    assert "'24-UG01'" in warning


# ------------------------------------------------------------------------ over HTTP, end to end


def test_the_real_shopify_checkout_submits_every_field_over_http(tmp_path: Path) -> None:
    """`hubmap run --sandbox` of the shipped form: the real order, placed an hour ago (HubSpot
    takes no submission back-dated by more than a month), with the real catalog, reaches the
    stand-in's form with a real value in every field the mapping declares for an order."""
    from tests.acceptance.test_forms_run import hubmap

    mapping = _shopify_folder(tmp_path, SHOPIFY_FORM)
    order = json.loads(shared_data("shopify", "order.json").read_text())
    placed = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    order["order"]["created_at"] = order["order"]["updated_at"] = placed
    orders = _write(mapping.parent, "order.json", order)
    done = hubmap("run", mapping.name, "--input", orders.name, "--sandbox", cwd=mapping.parent)
    assert done.returncode == 0, done.stderr
    assert "form submissions: 1 sent, 0 failed" in done.stdout
    dumped = hubmap("sandbox", "dump", "--db", "hubmap-state-sandbox.db", cwd=mapping.parent)
    (submission,) = json.loads(dumped.stdout)["submissions"]
    sent = {f["name"]: f["value"] for f in submission["fields"]}
    # What a placed order sends: every property whose `when` is the order's, none of the
    # abandoned cart's, and the email.
    declared = [
        spec.name
        for spec in load_mapping(str(mapping)).properties
        if not spec.name.startswith("abandoned_")
    ]
    assert sorted(sent) == sorted(["email", *declared])
    assert all(value.strip() for value in sent.values())
    assert sent["last_products_bought_upsell_3_name"] == "IPod Nano - 8GB - Pink"
    assert sent["last_products_bought_similar_2_url"] == (
        "https://www.example.com/products/ipod-nano?variant=808950810"
    )
    assert sent["last_order_cart_url"] == (
        "https://www.example.com/cart/39072856:1,49148385:1,457924702:1"
    )
    assert submission["context"]["pageName"] == "Checkout #1001"


def catalog_warnings(result: Any) -> list[str]:
    """The plan's warnings about catalogs (not those of properties no record gave a value)."""
    return [w for w in result.warnings if w.startswith("catalog ")]
