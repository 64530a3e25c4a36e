"""The sandbox's CRM contacts endpoints over real HTTP: auth, strict values, batches."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from hubmap.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from tests.unit.sandbox_api import Api

TOKEN = "test-token"
CONTACTS = "/crm/v3/objects/contacts"
PROPERTIES = "/crm/v3/properties/contacts"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(config=SandboxConfig(token=TOKEN)) as running:
        yield running


@pytest.fixture
def api(sandbox: RunningSandbox) -> Iterator[Api]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield Api(session, sandbox.url)


def create_property(api: Api, name: str, kind: str, field_type: str, **extra: Any) -> None:
    body = {
        "name": name,
        "label": name,
        "type": kind,
        "fieldType": field_type,
        "groupName": "contactinformation",
        **extra,
    }
    response = api("POST", PROPERTIES, json=body)
    assert response.status_code == 201, response.text


def codes(response: requests.Response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]


# -- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
def test_requests_without_the_right_bearer_token_get_401(
    sandbox: RunningSandbox, headers: dict[str, str]
) -> None:
    response = requests.get(sandbox.url + CONTACTS + "/1", headers=headers, timeout=10)
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error"
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert len(body["correlationId"]) == 36
    assert "X-HubSpot-RateLimit-Remaining" not in response.headers


# -- single-object endpoints ---------------------------------------------------------------


def test_create_returns_the_object_with_computed_properties(api: Api) -> None:
    response = api(
        "POST", CONTACTS, json={"properties": {"email": "Jane@Example.com", "firstname": "Jane"}}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["properties"]["email"] == "jane@example.com"
    assert body["properties"]["hs_object_id"] == body["id"]
    assert {"createdate", "lastmodifieddate"} <= set(body["properties"])
    assert body["archived"] is False and body["createdAt"].endswith("Z")


def test_create_needs_email_firstname_or_lastname(api: Api) -> None:
    response = api("POST", CONTACTS, json={"properties": {"phone": "123"}})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_create_with_an_existing_email_is_a_409_naming_the_contact(api: Api) -> None:
    first = api("POST", CONTACTS, json={"properties": {"email": "a@x.com"}}).json()
    response = api("POST", CONTACTS, json={"properties": {"email": "A@X.COM"}})
    assert response.status_code == 409
    body = response.json()
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {first['id']}"


def test_read_by_email_is_case_insensitive_and_honours_properties(api: Api) -> None:
    api("POST", CONTACTS, json={"properties": {"email": "a@x.com", "city": "Oslo"}})
    response = api(
        "GET", CONTACTS + "/A@X.com", params={"idProperty": "email", "properties": "city,phone"}
    )
    assert response.status_code == 200
    props = response.json()["properties"]
    assert props["city"] == "Oslo"
    assert props["phone"] is None
    assert "hs_object_id" in props and "email" not in props


def test_read_unknown_contact_is_404(api: Api) -> None:
    response = api("GET", CONTACTS + "/999")
    assert response.status_code == 404
    assert response.json()["category"] == "OBJECT_NOT_FOUND"


def test_patch_by_email_updates_and_empty_string_clears(api: Api) -> None:
    api(
        "POST",
        CONTACTS,
        json={"properties": {"email": "a@x.com", "city": "Oslo", "firstname": "A"}},
    )
    response = api(
        "PATCH",
        CONTACTS + "/a@x.com?idProperty=email",
        json={"properties": {"city": "", "firstname": "B"}},
    )
    assert response.status_code == 200
    props = api("GET", CONTACTS + "/a@x.com?idProperty=email&properties=city,firstname").json()
    assert props["properties"]["city"] is None
    assert props["properties"]["firstname"] == "B"


def test_unknown_property_is_rejected_naming_it(api: Api) -> None:
    response = api("POST", CONTACTS, json={"properties": {"email": "a@x.com", "shoe_size": "9"}})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == "PROPERTY_DOESNT_EXIST"
    assert error["context"]["propertyName"] == ["shoe_size"]
    assert "shoe_size" in response.json()["message"]


@pytest.mark.parametrize("name", ["hs_object_id", "createdate", "lastmodifieddate"])
def test_read_only_properties_cannot_be_written(api: Api, name: str) -> None:
    response = api("POST", CONTACTS, json={"properties": {"email": "a@x.com", name: "1"}})
    assert response.status_code == 400
    assert codes(response) == ["READ_ONLY_VALUE"]


@pytest.mark.parametrize("value", [12, 1.5, True, None, ["a"]])
def test_values_must_be_json_strings(api: Api, value: Any) -> None:
    response = api("POST", CONTACTS, json={"properties": {"email": "a@x.com", "city": value}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["context"]["propertyName"] == ["city"]


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "a b@x.com", "@x.com"])
def test_invalid_email_syntax_is_rejected(api: Api, email: str) -> None:
    response = api("POST", CONTACTS, json={"properties": {"email": email}})
    assert response.status_code == 400
    assert codes(response) == ["INVALID_EMAIL"]


@pytest.mark.parametrize("value", ["1.42e-14", "4,68", "1 000", "1,000.5", "12abc", "+5", "."])
def test_number_values_with_exponents_or_separators_are_refused(api: Api, value: str) -> None:
    create_property(api, "hm_total", "number", "number")
    response = api("POST", CONTACTS, json={"properties": {"email": "a@x.com", "hm_total": value}})
    assert response.status_code == 400
    assert codes(response) == ["INVALID_INTEGER"]
    assert response.json()["errors"][0]["message"] == f"{value} was not a valid number."


@pytest.mark.parametrize("value", ["4.68", "-12", "0", "1234567890.123456"])
def test_plain_decimal_numbers_are_accepted(api: Api, value: str) -> None:
    create_property(api, "hm_total", "number", "number")
    response = api("POST", CONTACTS, json={"properties": {"email": "a@x.com", "hm_total": value}})
    assert response.status_code == 201
    assert response.json()["properties"]["hm_total"] == value


def test_a_date_with_a_time_of_day_is_refused(api: Api) -> None:
    create_property(api, "hm_last_order_date", "date", "date")
    response = api(
        "POST",
        CONTACTS,
        json={"properties": {"email": "a@x.com", "hm_last_order_date": "1715869135865"}},
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == "INVALID_DATE"
    assert error["message"] == "1715869135865 is at 14:18:55.865 UTC, not midnight!"


@pytest.mark.parametrize("value", ["2024-05-16", "1715817600000"])
def test_midnight_dates_are_accepted_and_read_back_as_calendar_dates(api: Api, value: str) -> None:
    create_property(api, "hm_last_order_date", "date", "date")
    created = api(
        "POST", CONTACTS, json={"properties": {"email": "a@x.com", "hm_last_order_date": value}}
    )
    assert created.status_code == 201
    read = api("GET", f"{CONTACTS}/{created.json()['id']}?properties=hm_last_order_date")
    assert read.json()["properties"]["hm_last_order_date"] == "2024-05-16"


@pytest.mark.parametrize("value", ["2024-02-30", "16/05/2024", "2024-05-16T10:00:00Z", "soon"])
def test_malformed_dates_are_refused(api: Api, value: str) -> None:
    create_property(api, "hm_last_order_date", "date", "date")
    response = api(
        "POST", CONTACTS, json={"properties": {"email": "a@x.com", "hm_last_order_date": value}}
    )
    assert response.status_code == 400
    assert codes(response) == ["INVALID_DATE"]


def test_datetime_accepts_iso_and_epoch_ms_and_returns_iso(api: Api) -> None:
    create_property(api, "hm_seen", "datetime", "date")
    ok = api(
        "POST", CONTACTS, json={"properties": {"email": "a@x.com", "hm_seen": "1715869135865"}}
    )
    assert ok.json()["properties"]["hm_seen"] == "2024-05-16T14:18:55.865Z"
    ok = api(
        "POST",
        CONTACTS,
        json={"properties": {"email": "b@x.com", "hm_seen": "1997-07-16T19:20:30.45+01:00"}},
    )
    assert ok.json()["properties"]["hm_seen"] == "1997-07-16T18:20:30.450Z"
    bad = api("POST", CONTACTS, json={"properties": {"email": "c@x.com", "hm_seen": "yesterday"}})
    assert bad.status_code == 400


def test_enumeration_values_must_be_option_values(api: Api) -> None:
    options = [{"label": "Gold", "value": "gold"}, {"label": "Silver", "value": "silver"}]
    create_property(api, "hm_tier", "enumeration", "select", options=options)
    create_property(api, "hm_tags", "enumeration", "checkbox", options=options)
    assert (
        api(
            "POST",
            CONTACTS,
            json={"properties": {"email": "a@x.com", "hm_tier": "gold", "hm_tags": "gold;silver"}},
        ).status_code
        == 201
    )
    for props in ({"hm_tier": "Gold"}, {"hm_tier": "gold;silver"}, {"hm_tags": "gold,silver"}):
        response = api("POST", CONTACTS, json={"properties": {"email": "b@x.com", **props}})
        assert response.status_code == 400, props
        assert codes(response) == ["INVALID_OPTION"]
        assert "was not one of the allowed options" in response.json()["errors"][0]["message"]


def test_bool_values_are_lower_case_true_or_false(api: Api) -> None:
    create_property(api, "hm_vip", "bool", "booleancheckbox")
    assert (
        api(
            "POST", CONTACTS, json={"properties": {"email": "a@x.com", "hm_vip": "true"}}
        ).status_code
        == 201
    )
    response = api("POST", CONTACTS, json={"properties": {"email": "b@x.com", "hm_vip": "True"}})
    assert response.status_code == 400


def test_strings_longer_than_65536_characters_are_refused(api: Api) -> None:
    response = api(
        "POST", CONTACTS, json={"properties": {"email": "a@x.com", "city": "x" * 65_537}}
    )
    assert response.status_code == 400
    assert (
        api(
            "POST", CONTACTS, json={"properties": {"email": "a@x.com", "city": "x" * 65_536}}
        ).status_code
        == 201
    )


def test_invalid_json_body_is_a_validation_error(api: Api) -> None:
    response = api("POST", CONTACTS, data=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid input JSON")


def test_date_based_paths_behave_like_v3(api: Api) -> None:
    dated = "/crm/objects/2026-03/contacts"
    created = api("POST", dated, json={"properties": {"email": "a@x.com"}})
    assert created.status_code == 201
    assert api("GET", f"{CONTACTS}/{created.json()['id']}").status_code == 200
    assert api("POST", dated, json={"properties": {"email": "a@x.com"}}).status_code == 409
    upsert = api(
        "POST",
        dated + "/batch/upsert",
        json={"inputs": [{"idProperty": "email", "id": "a@x.com", "properties": {"city": "Rome"}}]},
    )
    assert upsert.status_code == 200 and upsert.json()["results"][0]["new"] is False
    listed = api("GET", "/crm/properties/2026-03/contacts")
    assert any(p["name"] == "email" for p in listed.json()["results"])
    assert api("GET", "/crm/objects/1999-01/contacts/1").status_code == 404


def test_archive_removes_the_contact(api: Api) -> None:
    created = api("POST", CONTACTS, json={"properties": {"email": "a@x.com"}}).json()
    assert api("DELETE", f"{CONTACTS}/{created['id']}").status_code == 204
    assert api("GET", f"{CONTACTS}/{created['id']}").status_code == 404


# -- batches -------------------------------------------------------------------------------


def test_batch_upsert_by_email_creates_then_updates(api: Api) -> None:
    body = {
        "inputs": [{"idProperty": "email", "id": "Jane@X.com", "properties": {"firstname": "Jane"}}]
    }
    first = api("POST", CONTACTS + "/batch/upsert", json=body)
    assert first.status_code == 200
    envelope = first.json()
    assert envelope["status"] == "COMPLETE"
    assert {"requestedAt", "startedAt", "completedAt"} <= set(envelope)
    created = envelope["results"][0]
    assert created["new"] is True
    assert created["properties"]["email"] == "jane@x.com"
    body["inputs"][0].update(id="JANE@x.COM", properties={"firstname": "Janet"})
    second = api("POST", CONTACTS + "/batch/upsert", json=body).json()["results"][0]
    assert second["new"] is False
    assert second["id"] == created["id"]
    assert second["properties"]["firstname"] == "Janet"


def test_the_same_key_twice_in_one_batch_is_refused_naming_it(api: Api) -> None:
    body = {
        "inputs": [
            {"idProperty": "email", "id": "a@x.com", "properties": {}},
            {"idProperty": "email", "id": "A@X.com", "properties": {}},
        ]
    }
    response = api("POST", CONTACTS + "/batch/upsert", json=body)
    assert response.status_code == 400
    assert "a@x.com" in response.json()["message"]
    create = {
        "inputs": [{"properties": {"email": "b@x.com"}}, {"properties": {"email": "B@x.com"}}]
    }
    response = api("POST", CONTACTS + "/batch/create", json=create)
    assert response.status_code == 400
    assert "b@x.com" in response.json()["message"]
    assert api("GET", CONTACTS + "/b@x.com?idProperty=email").status_code == 404


@pytest.mark.parametrize("endpoint", ["read", "create", "update", "upsert"])
def test_more_than_100_inputs_are_refused(api: Api, endpoint: str) -> None:
    inputs = [
        {"idProperty": "email", "id": f"u{i}@x.com", "properties": {"email": f"u{i}@x.com"}}
        for i in range(101)
    ]
    response = api("POST", f"{CONTACTS}/batch/{endpoint}", json={"inputs": inputs})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert api("POST", f"{CONTACTS}/batch/upsert", json={"inputs": inputs[:100]}).status_code == 200


def test_batch_read_reports_unknown_ids_in_a_207(api: Api) -> None:
    known = api("POST", CONTACTS, json={"properties": {"email": "a@x.com"}}).json()["id"]
    response = api(
        "POST",
        CONTACTS + "/batch/read",
        json={"inputs": [{"id": known}, {"id": "424242"}], "properties": ["email"]},
    )
    assert response.status_code == 207
    body = response.json()
    assert [r["id"] for r in body["results"]] == [known]
    assert body["numErrors"] == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"]["ids"] == ["424242"]
    by_email = api(
        "POST",
        CONTACTS + "/batch/read",
        json={"idProperty": "email", "inputs": [{"id": "A@x.com"}], "properties": ["email"]},
    )
    assert by_email.status_code == 200
    assert by_email.json()["results"][0]["properties"]["email"] == "a@x.com"


def test_batch_update_by_id_works_and_by_email_is_refused(api: Api) -> None:
    known = api("POST", CONTACTS, json={"properties": {"email": "a@x.com"}}).json()["id"]
    ok = api(
        "POST",
        CONTACTS + "/batch/update",
        json={
            "inputs": [
                {"id": known, "properties": {"city": "Rome"}},
                {"id": "777", "properties": {}},
            ]
        },
    )
    assert ok.status_code == 207
    assert ok.json()["results"][0]["properties"]["city"] == "Rome"
    assert ok.json()["errors"][0]["context"]["ids"] == ["777"]
    refused = api(
        "POST",
        CONTACTS + "/batch/update",
        json={"inputs": [{"idProperty": "email", "id": "a@x.com", "properties": {"city": "Oslo"}}]},
    )
    assert refused.status_code == 400
    assert "non-unique" in refused.json()["message"]


def test_batch_validation_errors_reject_the_whole_batch_naming_the_input(api: Api) -> None:
    response = api(
        "POST",
        CONTACTS + "/batch/create",
        json={
            "inputs": [
                {"properties": {"email": "ok@x.com"}},
                {"properties": {"email": "b@x.com", "nope": "1"}},
            ]
        },
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["in"] == "inputs[1]"
    assert api("GET", CONTACTS + "/ok@x.com?idProperty=email").status_code == 404


def test_batch_create_with_an_existing_email_is_a_409(api: Api) -> None:
    existing = api("POST", CONTACTS, json={"properties": {"email": "a@x.com"}}).json()["id"]
    response = api(
        "POST",
        CONTACTS + "/batch/create",
        json={
            "inputs": [{"properties": {"email": "new@x.com"}}, {"properties": {"email": "a@x.com"}}]
        },
    )
    assert response.status_code == 409
    assert response.json()["message"] == f"Contact already exists. Existing ID: {existing}"
    ok = api(
        "POST",
        CONTACTS + "/batch/create",
        json={"inputs": [{"properties": {"email": "new@x.com"}}]},
    )
    assert ok.status_code == 201


def test_upsert_by_a_unique_custom_property_and_uniqueness_is_enforced(api: Api) -> None:
    create_property(api, "hm_customer_id", "string", "text", hasUniqueValue=True)
    body = {
        "inputs": [
            {"idProperty": "hm_customer_id", "id": "C-1", "properties": {"email": "a@x.com"}}
        ]
    }
    first = api("POST", CONTACTS + "/batch/upsert", json=body).json()["results"][0]
    assert first["new"] is True and first["properties"]["hm_customer_id"] == "C-1"
    body["inputs"][0]["properties"] = {"city": "Rome"}
    second = api("POST", CONTACTS + "/batch/upsert", json=body).json()["results"][0]
    assert second["new"] is False and second["id"] == first["id"]
    clash = api(
        "POST", CONTACTS, json={"properties": {"email": "b@x.com", "hm_customer_id": "C-1"}}
    )
    assert clash.status_code == 409
    read = api("GET", CONTACTS + "/C-1?idProperty=hm_customer_id")
    assert read.status_code == 200 and read.json()["id"] == first["id"]


def test_upsert_by_a_non_unique_property_is_refused(api: Api) -> None:
    response = api(
        "POST",
        CONTACTS + "/batch/upsert",
        json={"inputs": [{"idProperty": "city", "id": "Rome", "properties": {}}]},
    )
    assert response.status_code == 400


def test_list_contacts_pages(api: Api) -> None:
    for i in range(3):
        api("POST", CONTACTS, json={"properties": {"email": f"u{i}@x.com"}})
    page = api("GET", CONTACTS + "?limit=2").json()
    assert len(page["results"]) == 2
    rest = api("GET", CONTACTS + f"?limit=2&after={page['paging']['next']['after']}").json()
    assert len(rest["results"]) == 1 and "paging" not in rest


def test_repeated_properties_parameters_are_all_honoured(api: Api) -> None:
    api("POST", CONTACTS, json={"properties": {"email": "a@x.com", "city": "Oslo", "phone": "1"}})
    response = api(
        "GET",
        CONTACTS + "/a@x.com",
        params=[("idProperty", "email"), ("properties", "city"), ("properties", "phone")],
    )
    assert response.json()["properties"]["city"] == "Oslo"
    assert response.json()["properties"]["phone"] == "1"


def test_concurrent_upserts_of_the_same_emails_create_each_contact_once(
    sandbox: RunningSandbox,
) -> None:
    emails = [f"user{i}@x.com" for i in range(20)]

    def upsert_all(worker: int) -> list[int]:
        with requests.Session() as session:
            body = {
                "inputs": [
                    {"idProperty": "email", "id": email, "properties": {"city": f"w{worker}"}}
                    for email in emails
                ]
            }
            response = session.post(
                sandbox.url + CONTACTS + "/batch/upsert",
                json=body,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            )
            return [response.status_code]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [s for result in pool.map(upsert_all, range(8)) for s in result]
    assert statuses == [200] * 8
    assert len(sandbox.store.contact_ids()) == len(emails)
