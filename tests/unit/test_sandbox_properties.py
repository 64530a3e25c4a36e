"""The sandbox's properties and property-group endpoints over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hubmap.sandbox import SandboxConfig, start_sandbox
from tests.unit.sandbox_api import Api

TOKEN = "test-token"
PROPERTIES = "/crm/v3/properties/contacts"
GROUPS = PROPERTIES + "/groups"


@pytest.fixture
def api() -> Iterator[Api]:
    with start_sandbox(config=SandboxConfig(token=TOKEN)) as running, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield Api(session, running.url)


def definition(
    name: str = "hm_last_order_date", kind: str = "date", field_type: str = "date", **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "label": "Label",
        "type": kind,
        "fieldType": field_type,
        "groupName": "contactinformation",
        **extra,
    }


def test_builtin_properties_exist_from_the_start(api: Api) -> None:
    names = {p["name"]: p for p in api("GET", PROPERTIES).json()["results"]}
    assert {
        "email",
        "firstname",
        "lastname",
        "phone",
        "company",
        "website",
        "city",
        "country",
        "lifecyclestage",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    } <= set(names)
    assert names["lifecyclestage"]["type"] == "enumeration"
    assert names["createdate"]["modificationMetadata"]["readOnlyValue"] is True


def test_create_then_read_and_a_second_create_is_a_409(api: Api) -> None:
    created = api("POST", PROPERTIES, json=definition(description="last order"))
    assert created.status_code == 201
    body = created.json()
    assert body["type"] == "date" and body["hasUniqueValue"] is False
    assert api("GET", PROPERTIES + "/hm_last_order_date").json()["description"] == "last order"
    again = api("POST", PROPERTIES, json=definition())
    assert again.status_code == 409
    assert again.json()["category"] == "CONFLICT"


@pytest.mark.parametrize(
    ("kind", "field_type"),
    [
        ("string", "number"),
        ("number", "text"),
        ("date", "text"),
        ("datetime", "number"),
        ("bool", "select"),
        ("enumeration", "text"),
        ("string", "date"),
        ("texty", "text"),
    ],
)
def test_invalid_type_and_field_type_pairs_are_refused(
    api: Api, kind: str, field_type: str
) -> None:
    response = api(
        "POST",
        PROPERTIES,
        json=definition("hm_x", kind, field_type, options=[{"label": "A", "value": "a"}]),
    )
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert api("GET", PROPERTIES + "/hm_x").status_code == 404


@pytest.mark.parametrize(
    ("kind", "field_type"),
    [
        ("string", "text"),
        ("string", "textarea"),
        ("number", "number"),
        ("bool", "booleancheckbox"),
        ("enumeration", "checkbox"),
        ("enumeration", "radio"),
        ("date", "date"),
        ("datetime", "date"),
        ("dateTime", "date"),
    ],
)
def test_valid_pairs_are_accepted(api: Api, kind: str, field_type: str) -> None:
    response = api(
        "POST",
        PROPERTIES,
        json=definition("hm_x", kind, field_type, options=[{"label": "A", "value": "a"}]),
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("missing", ["name", "label", "type", "fieldType", "groupName"])
def test_required_fields(api: Api, missing: str) -> None:
    body = definition()
    del body[missing]
    assert api("POST", PROPERTIES, json=body).status_code == 400


@pytest.mark.parametrize("name", ["HmTotal", "1total", "hm-total", "hm total", "_hm"])
def test_internal_names_are_lower_case_identifiers(api: Api, name: str) -> None:
    assert api("POST", PROPERTIES, json=definition(name)).status_code == 400


def test_enumeration_needs_options_and_the_group_must_exist(api: Api) -> None:
    assert (
        api("POST", PROPERTIES, json=definition("hm_tier", "enumeration", "select")).status_code
        == 400
    )
    response = api("POST", PROPERTIES, json=definition(groupName="nogroup"))
    assert response.status_code == 400
    assert "nogroup" in response.json()["message"]


def test_groups_create_get_409_and_use(api: Api) -> None:
    created = api("POST", GROUPS, json={"name": "hubmap", "label": "hubmap", "displayOrder": -1})
    assert created.status_code == 201
    assert api("POST", GROUPS, json={"name": "hubmap", "label": "again"}).status_code == 409
    assert api("GET", GROUPS + "/hubmap").json()["label"] == "hubmap"
    assert api("PATCH", GROUPS + "/hubmap", json={"label": "HubMap"}).json()["label"] == "HubMap"
    assert api("POST", PROPERTIES, json=definition(groupName="hubmap")).status_code == 201
    assert api("DELETE", GROUPS + "/hubmap").status_code == 400  # still holds a property
    assert api("DELETE", PROPERTIES + "/hm_last_order_date").status_code == 204
    assert api("DELETE", GROUPS + "/hubmap").status_code == 204
    assert api("GET", GROUPS + "/hubmap").status_code == 404


def test_patch_adds_options_and_refuses_type_changes(api: Api) -> None:
    options = [{"label": "Gold", "value": "gold"}]
    api("POST", PROPERTIES, json=definition("hm_tier", "enumeration", "select", options=options))
    patched = api(
        "PATCH",
        PROPERTIES + "/hm_tier",
        json={"options": [*options, {"label": "Silver", "value": "silver"}]},
    )
    assert patched.status_code == 200
    assert [o["value"] for o in patched.json()["options"]] == ["gold", "silver"]
    contact = api(
        "POST",
        "/crm/v3/objects/contacts",
        json={"properties": {"email": "a@x.com", "hm_tier": "silver"}},
    )
    assert contact.status_code == 201
    assert (
        api(
            "PATCH", PROPERTIES + "/hm_tier", json={"type": "string", "fieldType": "text"}
        ).status_code
        == 400
    )
    assert api("PATCH", PROPERTIES + "/hm_tier", json={"hasUniqueValue": True}).status_code == 400
    assert api("PATCH", PROPERTIES + "/email", json={"label": "E"}).status_code == 400


def test_builtin_properties_cannot_be_archived(api: Api) -> None:
    assert api("DELETE", PROPERTIES + "/email").status_code == 400


def test_batch_create_and_read(api: Api) -> None:
    api("POST", PROPERTIES, json=definition("hm_a", "string", "text"))
    response = api(
        "POST",
        PROPERTIES + "/batch/create",
        json={
            "inputs": [definition("hm_a", "string", "text"), definition("hm_b", "number", "number")]
        },
    )
    assert response.status_code == 207
    body = response.json()
    assert [p["name"] for p in body["results"]] == ["hm_b"]
    assert body["errors"][0]["category"] == "CONFLICT"
    bad = api(
        "POST",
        PROPERTIES + "/batch/create",
        json={"inputs": [definition("hm_c", "string", "number")]},
    )
    assert bad.status_code == 400
    read = api(
        "POST",
        PROPERTIES + "/batch/read",
        json={"inputs": [{"name": "hm_b"}, {"name": "hm_missing"}]},
    )
    assert read.status_code == 207
    assert [p["name"] for p in read.json()["results"]] == ["hm_b"]
