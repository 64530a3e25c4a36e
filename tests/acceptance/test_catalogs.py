"""Catalogs: a shop's product export loaded from a file, keyed by a field, looked up by the
mapping's expressions and templates; a missing key is a warning, never a reject; `validate`
locates a catalog that cannot be used; a changed file is noticed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hubmap.catalogs import load_catalogs
from hubmap.evaluate import CompiledMapping, OrderValues
from hubmap.mapping import check_file, load_mapping
from hubmap.uses import plan as planning
from tests.conftest import shared_data

MAPPING = """\
version: 1
name: catalog-test
catalogs:
  products:
    file: product.json
    path: "[product]"
    each: variants
    key: sku
records:
  id: to_string(id)
  time: created_at
  contact: email
target:
  kind: contacts
  match_on: email
properties:
  categories_bought:
    label: Categories bought
    type: string
    from: "lookup('products', line_items[].sku)[].parent.product_type"
    merge: prepend
  brands_bought:
    label: Brands bought
    type: string
    from: "lookup('products', line_items[].sku)[].parent.vendor"
    merge: prepend
  last_product_1_url:
    label: Last product 1 URL
    type: string
    template: "https://shop.example/products/{{ lookup('products', record.line_items[0].sku).parent.handle }}"
  last_product_1_image:
    label: Last product 1 image
    type: string
    from: "lookup('products', line_items[0].sku).parent.images[0].src"
"""


def _folder(tmp_path: Path, text: str = MAPPING) -> Path:
    shutil.copy(shared_data("shopify", "catalog", "product.json"), tmp_path / "product.json")
    (tmp_path / "catalog.yaml").write_text(text, encoding="utf-8")
    return tmp_path / "catalog.yaml"


def test_the_real_shopify_catalog_gives_categories_brands_urls_and_images(tmp_path: Path) -> None:
    mapping = load_mapping(_folder(tmp_path))
    catalogs = load_catalogs(mapping)
    assert sorted(catalogs["products"].rows) == [
        "IPOD2008BLACK",
        "IPOD2008GREEN",
        "IPOD2008PINK",
        "IPOD2008RED",
    ]
    compiled = CompiledMapping(mapping, catalogs)
    order = json.loads(shared_data("shopify", "order.json").read_text())["order"]
    (result,) = [o for o in compiled.outcomes([_doc(order)]) if isinstance(o, OrderValues)]
    assert result.values["categories_bought"] == ("Cult Products",)
    assert result.values["brands_bought"] == ("Apple",)
    assert result.values["last_product_1_url"] == "https://shop.example/products/ipod-nano"
    assert str(result.values["last_product_1_image"]).startswith("http://static.shopify.com/")
    assert catalogs.misses() == {}


def test_a_key_not_in_the_catalog_is_a_warning_not_a_reject(tmp_path: Path) -> None:
    path = _folder(tmp_path)
    orders = tmp_path / "orders.ndjson"
    orders.write_text(
        json.dumps(
            {
                "id": 1,
                "email": "a@example.com",
                "created_at": "2024-01-01T10:00:00Z",
                "line_items": [{"sku": "IPOD2008RED"}, {"sku": "NOT-SOLD-HERE"}],
            }
        )
        + "\n"
    )
    plan = planning.plan(str(path), str(orders)).unwrap()
    assert not plan.rejected and len(plan.contacts) == 1
    assert plan.contacts[0].values["categories_bought"] == "Cult Products"
    assert len(plan.warnings) == 1 and "NOT-SOLD-HERE" in plan.warnings[0]


def test_a_missing_key_counts_once_per_record_and_each_warning_is_taken_once(
    tmp_path: Path,
) -> None:
    mapping = load_mapping(_folder(tmp_path))
    catalogs = load_catalogs(mapping)
    compiled = CompiledMapping(mapping, catalogs)
    # Three of the mapping's expressions look the SKU up; two orders miss it, each twice over.
    orders = [
        {
            "id": n,
            "email": "a@example.com",
            "created_at": "2024-01-01T10:00:00Z",
            "line_items": [{"sku": "NOT-SOLD-HERE"}, {"sku": "NOT-SOLD-HERE"}],
        }
        for n in (1, 2)
    ]
    assert len(list(compiled.outcomes([_doc(orders)]))) == 2
    assert catalogs.misses() == {"products": 2}  # once per order, not once per lookup
    (warning,) = catalogs.take_warnings()
    assert warning.startswith("catalog 'products': 2 key(s)") and "'NOT-SOLD-HERE'" in warning
    assert catalogs.take_warnings() == []  # a server's next batch reports only its own misses
    list(compiled.outcomes([_doc(orders[0])]))
    assert catalogs.take_warnings()[0].startswith("catalog 'products': 1 key(s)")


BY_CATEGORY = """\
    file: products.json
    path: data
    each: categories
    key: id
    many: true"""


def test_a_catalog_with_many_rows_per_key_gives_them_all_in_file_order(tmp_path: Path) -> None:
    # WooCommerce's real products page keyed by category id: a category's products.
    shutil.copy(
        shared_data("woocommerce", "catalog", "products-load-all.json"), tmp_path / "products.json"
    )
    text = MAPPING.replace(
        '    file: product.json\n    path: "[product]"\n    each: variants\n    key: sku',
        BY_CATEGORY,
    )
    assert BY_CATEGORY in text
    (tmp_path / "catalog.yaml").write_text(text, encoding="utf-8")
    catalogs = load_catalogs(load_mapping(tmp_path / "catalog.yaml"))
    page = json.loads((tmp_path / "products.json").read_text())["data"]
    hoodies = next(c["id"] for p in page for c in p["categories"] if c["name"] == "Hoodies")
    rows = catalogs["products"].get(hoodies)
    assert [row["parent"]["id"] for row in rows] == [33, 32, 31]  # the page's order
    assert all(row["name"] == "Hoodies" for row in rows)
    assert catalogs["products"].get(999_999) is None and catalogs.misses() == {"products": 1}


def test_validate_locates_what_makes_a_catalog_unusable(tmp_path: Path) -> None:
    broken = MAPPING.replace("file: product.json", "file: nowhere.json").replace(
        "lookup('products', line_items[0].sku).parent.images",
        "lookup('prodcts', line_items[0].sku).parent.images",
    )
    problems = {p.code: p for p in check_file(_folder(tmp_path, broken)).problems}
    assert problems["HM415"].location.line == 5  # the file line
    assert problems["HM416"].location.line == 34 and "products" in problems["HM416"].hint
    no_key = MAPPING.replace("key: sku", "key: barcode")
    (problem,) = check_file(_folder(tmp_path, no_key), deep=True).problems
    assert (problem.code, problem.location.line) == ("HM417", 8)  # the key line


def test_a_changed_catalog_file_is_noticed(tmp_path: Path) -> None:
    mapping = load_mapping(_folder(tmp_path))
    catalogs = load_catalogs(mapping)
    assert not catalogs.stale()
    later = os.stat(tmp_path / "product.json").st_mtime + 5
    os.utime(tmp_path / "product.json", (later, later))
    assert catalogs.stale()
    assert not load_catalogs(mapping).stale()  # read again: up to date


def _doc(data: object):  # type: ignore[no-untyped-def]
    from hubmap.inputs import Document

    return Document(data, "order.json")
