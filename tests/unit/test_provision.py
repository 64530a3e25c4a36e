"""hubmap.provision, the pure part: which HubSpot property definitions a mapping needs (type,
fieldType, options, group, a unique match property), and what a portal lacks or holds otherwise
(`compare`, `portal_problems`)."""

from __future__ import annotations

from typing import Any

import yaml

from hubmap.mapping import check_document
from hubmap.mapping.loader import load_text
from hubmap.mapping.model import Mapping
from hubmap.provision import (
    DEFAULT_GROUP,
    compare,
    definitions,
    forms_group,
    group_name,
    portal_problems,
)

PROPERTIES: dict[str, Any] = {
    "total": {"type": "number", "from": "total", "merge": "sum"},
    "first_day": {"type": "date", "from": "at", "merge": "min"},
    "last_at": {"type": "datetime", "from": "at"},
    "vip": {"type": "bool", "from": "vip"},
    "tier": {
        "type": "enumeration",
        "options": ["gold", {"value": "s", "label": "Silver"}],
        "from": "tier",
    },
    "colours": {
        "type": "enumeration",
        "multiple": True,
        "options": ["red"],
        "from": "colours",
        "merge": "prepend",
    },
    "skus": {"type": "string", "from": "items[].sku", "merge": "prepend"},
    "note": {"type": "string", "from": "note", "label": "The note", "description": "Said so"},
}


def mapping_of(**extra: Any) -> Mapping:
    data: dict[str, Any] = {
        "version": 1,
        "name": "provision-test",
        "records": {"id": "id", "time": "at", "contact": "email"},
        "target": {"kind": "contacts"},
        "properties": PROPERTIES,
        **extra,
    }
    checked = check_document(load_text(yaml.safe_dump(data), "m.yaml"), environ={})
    assert checked.ok, [str(p) for p in checked.problems if p.is_error]
    return checked.mapping  # type: ignore[return-value]


def bodies(mapping: Mapping) -> dict[str, dict[str, Any]]:
    return {d.name: d.body for d in definitions(mapping)}


def test_each_type_gets_its_hubspot_type_and_field_type() -> None:
    got = {name: (b["type"], b["fieldType"]) for name, b in bodies(mapping_of()).items()}
    assert got == {
        "total": ("number", "number"),
        "first_day": ("date", "date"),
        "last_at": ("datetime", "date"),
        "vip": ("bool", "booleancheckbox"),
        "tier": ("enumeration", "select"),
        "colours": ("enumeration", "checkbox"),
        "skus": ("string", "textarea"),
        "note": ("string", "text"),
    }


def test_options_labels_descriptions_and_the_default_group() -> None:
    got = bodies(mapping_of())
    assert [(o["value"], o["label"], o["displayOrder"]) for o in got["tier"]["options"]] == [
        ("gold", "gold", 0),
        ("s", "Silver", 1),
    ]
    assert [o["value"] for o in got["vip"]["options"]] == ["true", "false"]
    assert (got["note"]["label"], got["note"]["description"]) == ("The note", "Said so")
    assert "description" not in got["total"]
    assert {b["groupName"] for b in got.values()} == {DEFAULT_GROUP}
    assert not any(b.get("hasUniqueValue") for b in got.values())


def test_a_custom_match_property_is_defined_unique_and_the_group_is_the_mappings() -> None:
    mapping = mapping_of(
        target={"kind": "contacts", "match_on": "shop_customer_id"},
        group={"name": "shop", "label": "Shop"},
    )
    got = bodies(mapping)
    assert got["shop_customer_id"]["hasUniqueValue"] is True
    assert got["shop_customer_id"]["type"] == "string"
    assert group_name(mapping) == "shop"
    assert {b["groupName"] for b in got.values()} == {"shop"}


def test_a_forms_mapping_group_is_its_name_in_hubspot_spelling() -> None:
    assert forms_group("shopify-checkout-form").name == "shopify_checkout_form"
    assert forms_group("shopify-checkout-form").label == "shopify-checkout-form"
    assert forms_group("2024 Form!").name == "hubmap_2024_form"
    assert forms_group("---").name == "hubmap"


def existing_of(mapping: Mapping) -> list[dict[str, Any]]:
    """A portal holding exactly what the mapping defines."""
    return [dict(body) for body in bodies(mapping).values()]


def test_a_portal_with_everything_lacks_nothing() -> None:
    mapping = mapping_of()
    comparison = compare(mapping, existing_of(mapping), [])
    assert (comparison.missing, comparison.add_options, comparison.problems) == ([], {}, [])
    assert comparison.group is None and not comparison.refused


def test_what_is_missing_and_the_group_to_make_for_it() -> None:
    mapping = mapping_of(group={"name": "shop", "label": "Shop"})
    existing = [p for p in existing_of(mapping) if p["name"] != "total"]
    comparison = compare(mapping, existing, [{"name": "contactinformation"}])
    assert [d.name for d in comparison.missing] == ["total"]
    assert comparison.group == {"name": "shop", "label": "Shop"}
    assert compare(mapping, existing, [{"name": "shop"}]).group is None
    (problem,) = portal_problems(mapping, comparison)
    assert (problem.code, problem.is_error) == ("HM603", False)


def test_a_property_of_another_type_is_refused() -> None:
    mapping = mapping_of()
    existing = existing_of(mapping)
    for prop in existing:
        if prop["name"] == "total":
            prop["type"] = "string"
    comparison = compare(mapping, existing, [])
    (problem,) = comparison.problems
    assert problem.code == "HM601" and "'total'" in problem.message
    assert comparison.refused


def test_a_match_property_without_unique_values_is_refused() -> None:
    mapping = mapping_of(target={"kind": "contacts", "match_on": "shop_customer_id"})
    existing = existing_of(mapping)
    for prop in existing:
        prop.pop("hasUniqueValue", None)
    assert [p.code for p in compare(mapping, existing, []).problems] == ["HM602"]


def test_missing_options_are_added_after_the_portals_own() -> None:
    mapping = mapping_of()
    existing = existing_of(mapping)
    for prop in existing:
        if prop["name"] == "tier":
            prop["options"] = [
                {"label": "Bronze", "value": "bronze"},
                {"label": "g", "value": "gold"},
            ]
    comparison = compare(mapping, existing, [])
    assert [(o["value"], o.get("displayOrder")) for o in comparison.add_options["tier"]] == [
        ("bronze", None),
        ("gold", None),
        ("s", 2),
    ]
    assert not comparison.refused
    assert [p.code for p in portal_problems(mapping, comparison)] == ["HM604"]
