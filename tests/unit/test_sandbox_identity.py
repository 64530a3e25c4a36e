"""Contact identity in the sandbox over real HTTP: secondary emails (`hs_additional_emails`),
changing the primary email, and merges (`POST .../contacts/merge`, `hs_merged_object_ids`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hubmap.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from hubmap.sandbox.errors import ApiError
from tests.unit.sandbox_api import Api as BaseApi

TOKEN = "test-token"
CONTACTS = "/crm/v3/objects/contacts"
MERGE = CONTACTS + "/merge"
HUTK = "0123456789abcdef0123456789abcdef"


class Api(BaseApi):
    """The stand-in's API, with the calls these tests repeat."""

    def create(self, **properties: str) -> str:
        response = self("POST", CONTACTS, json={"properties": properties})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def get(self, key: str, **params: str) -> requests.Response:
        return self("GET", f"{CONTACTS}/{key}", params=params)

    def by_email(self, email: str, properties: str = "email") -> requests.Response:
        return self.get(email, idProperty="email", properties=properties)

    def set_secondary(self, contact_id: str, emails: list[str]) -> requests.Response:
        return self.session.post(
            f"{self.url}/_sandbox/contacts/{contact_id}/additional_emails",
            json={"emails": emails},
            timeout=10,
        )

    def merge(self, primary: str, merged: str) -> requests.Response:
        return self("POST", MERGE, json={"primaryObjectId": primary, "objectIdToMerge": merged})


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(config=SandboxConfig(token=TOKEN)) as running:
        yield running


@pytest.fixture
def api(sandbox: RunningSandbox) -> Iterator[Api]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield Api(session, sandbox.url)


def codes(response: requests.Response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]


# -- setting secondary emails (admin backdoor; the API refuses) ----------------------------


@pytest.mark.parametrize("name", ["hs_additional_emails", "hs_merged_object_ids"])
def test_identity_properties_are_read_only_on_every_write(api: Api, name: str) -> None:
    known = api.create(email="a@x.com")
    writes = [
        ("POST", CONTACTS, {"properties": {"email": "b@x.com", name: "c@x.com"}}),
        ("PATCH", f"{CONTACTS}/{known}", {"properties": {name: "c@x.com"}}),
        ("POST", CONTACTS + "/batch/create", {"inputs": [{"properties": {name: "1"}}]}),
        (
            "POST",
            CONTACTS + "/batch/update",
            {"inputs": [{"id": known, "properties": {name: "1"}}]},
        ),
        (
            "POST",
            CONTACTS + "/batch/upsert",
            {"inputs": [{"idProperty": "email", "id": "a@x.com", "properties": {name: "1"}}]},
        ),
    ]
    for method, path, body in writes:
        response = api(method, path, json=body)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["category"] == "VALIDATION_ERROR"
        assert codes(response) == ["READ_ONLY_VALUE"]
        assert response.json()["errors"][0]["context"]["propertyName"] == [name]
    assert api.get(known, properties=name).json()["properties"][name] is None
    definition = api("GET", f"/crm/v3/properties/contacts/{name}").json()
    assert definition["modificationMetadata"]["readOnlyValue"] is True
    assert definition["type"] == "enumeration"


def test_the_admin_route_sets_secondary_emails_lower_cased_and_replaces_them(api: Api) -> None:
    known = api.create(email="a@x.com")
    response = api.set_secondary(known, ["B@X.com", "c@x.com", "b@x.com"])
    assert response.status_code == 200, response.text
    assert response.json()["id"] == known
    assert response.json()["properties"]["hs_additional_emails"] == "b@x.com;c@x.com"
    replaced = api.set_secondary(known, ["d@x.com"]).json()["properties"]
    assert replaced["hs_additional_emails"] == "d@x.com"
    assert api.by_email("b@x.com").status_code == 404
    cleared = api.set_secondary(known, []).json()["properties"]
    assert "hs_additional_emails" not in cleared
    assert api.by_email("d@x.com").status_code == 404


def test_the_admin_route_refuses_bad_requests(api: Api) -> None:
    a = api.create(email="a@x.com")
    b = api.create(email="b@x.com")
    assert api.set_secondary("999", ["z@x.com"]).status_code == 404
    assert api.set_secondary("nope", ["z@x.com"]).status_code == 404
    invalid = api.set_secondary(a, ["not-an-email"])
    assert invalid.status_code == 400 and invalid.json()["category"] == "VALIDATION_ERROR"
    own = api.set_secondary(a, ["A@x.com"])
    assert own.status_code == 400
    taken = api.set_secondary(a, ["b@x.com"])
    assert taken.status_code == 409
    assert taken.json()["message"] == f"Contact already exists. Existing ID: {b}"
    assert api.set_secondary(b, ["s@x.com"]).status_code == 200
    assert api.set_secondary(a, ["s@x.com"]).status_code == 409
    shape = api.session.post(
        f"{api.url}/_sandbox/contacts/{a}/additional_emails", json=["s@x.com"], timeout=10
    )
    assert shape.status_code == 400


def test_the_python_helper_sets_secondary_emails_too(sandbox: RunningSandbox, api: Api) -> None:
    known = api.create(email="a@x.com")
    record = sandbox.set_additional_emails(known, ["Second@x.com"])
    assert record["properties"]["hs_additional_emails"] == "second@x.com"
    assert api.by_email("second@x.com").json()["id"] == known
    with pytest.raises(ApiError) as raised:
        sandbox.set_additional_emails(known, ["a@x.com"])
    assert raised.value.status == 400


# -- lookups by a secondary email -----------------------------------------------------------


def test_get_by_a_secondary_email_returns_the_record_with_its_primary_email(api: Api) -> None:
    known = api.create(email="primary@x.com", firstname="Jane")
    api.create(email="other@x.com")
    api.set_secondary(known, ["old@x.com", "work@x.com"])
    response = api.by_email("Work@X.com", properties="email,firstname,hs_additional_emails")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == known
    assert body["properties"]["email"] == "primary@x.com"
    assert body["properties"]["firstname"] == "Jane"
    assert body["properties"]["hs_additional_emails"] == "old@x.com;work@x.com"
    assert api.by_email("ork@x.com").status_code == 404  # whole addresses only
    assert api.by_email("old@x.com;work@x.com").status_code == 404


def test_batch_read_by_email_finds_contacts_by_secondary_emails(api: Api) -> None:
    a = api.create(email="a@x.com")
    b = api.create(email="b@x.com")
    api.set_secondary(a, ["a2@x.com"])
    response = api(
        "POST",
        CONTACTS + "/batch/read",
        json={
            "idProperty": "email",
            "inputs": [{"id": "A2@x.com"}, {"id": "b@x.com"}, {"id": "nobody@x.com"}],
            "properties": ["email", "hs_additional_emails"],
        },
    )
    assert response.status_code == 207
    body = response.json()
    assert [(r["id"], r["properties"]["email"]) for r in body["results"]] == [
        (a, "a@x.com"),
        (b, "b@x.com"),
    ]
    assert body["results"][0]["properties"]["hs_additional_emails"] == "a2@x.com"
    assert body["results"][1]["properties"]["hs_additional_emails"] is None
    assert body["errors"][0]["context"]["ids"] == ["nobody@x.com"]


def test_upsert_by_a_secondary_email_updates_that_contact_and_keeps_its_primary(api: Api) -> None:
    known = api.create(email="primary@x.com")
    api.set_secondary(known, ["second@x.com"])
    response = api(
        "POST",
        CONTACTS + "/batch/upsert",
        json={
            "inputs": [
                {"idProperty": "email", "id": "SECOND@x.com", "properties": {"city": "Oslo"}}
            ]
        },
    )
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["new"] is False and result["id"] == known
    assert result["properties"]["email"] == "primary@x.com"
    assert result["properties"]["city"] == "Oslo"
    assert result["properties"]["hs_additional_emails"] == "second@x.com"
    assert len(api("GET", CONTACTS).json()["results"]) == 1


def test_upserting_a_primary_and_a_secondary_email_of_one_contact_together_is_refused(
    api: Api,
) -> None:
    known = api.create(email="primary@x.com")
    api.set_secondary(known, ["second@x.com"])
    response = api(
        "POST",
        CONTACTS + "/batch/upsert",
        json={
            "inputs": [
                {"idProperty": "email", "id": "primary@x.com", "properties": {"city": "A"}},
                {"idProperty": "email", "id": "second@x.com", "properties": {"city": "B"}},
            ]
        },
    )
    assert response.status_code == 400
    assert known in response.json()["message"]
    assert api.get(known, properties="city").json()["properties"]["city"] is None


def test_patch_by_a_secondary_email_updates_that_contact(api: Api) -> None:
    known = api.create(email="primary@x.com")
    api.set_secondary(known, ["second@x.com"])
    response = api(
        "PATCH", CONTACTS + "/second@x.com?idProperty=email", json={"properties": {"city": "Rome"}}
    )
    assert response.status_code == 200
    assert response.json()["id"] == known
    assert response.json()["properties"]["email"] == "primary@x.com"


def test_an_address_another_contact_has_as_secondary_is_a_409(api: Api) -> None:
    owner = api.create(email="owner@x.com")
    other = api.create(email="other@x.com")
    api.set_secondary(owner, ["second@x.com"])
    created = api("POST", CONTACTS, json={"properties": {"email": "Second@x.com"}})
    assert created.status_code == 409
    assert created.json()["message"] == f"Contact already exists. Existing ID: {owner}"
    batch = api(
        "POST",
        CONTACTS + "/batch/create",
        json={"inputs": [{"properties": {"email": "second@x.com"}}]},
    )
    assert batch.status_code == 409
    patched = api("PATCH", f"{CONTACTS}/{other}", json={"properties": {"email": "second@x.com"}})
    assert patched.status_code == 409
    assert api.get(other).json()["properties"]["email"] == "other@x.com"


def test_making_a_secondary_email_the_primary_takes_it_out_of_the_secondaries(api: Api) -> None:
    known = api.create(email="old@x.com")
    api.set_secondary(known, ["new@x.com", "keep@x.com"])
    response = api("PATCH", f"{CONTACTS}/{known}", json={"properties": {"email": "New@x.com"}})
    assert response.status_code == 200, response.text
    props = response.json()["properties"]
    assert props["email"] == "new@x.com"
    assert props["hs_additional_emails"] == "keep@x.com"
    assert api.by_email("old@x.com").status_code == 404  # the old primary is not kept
    assert api.by_email("keep@x.com").json()["id"] == known


# -- changing the primary email -------------------------------------------------------------


def test_changing_the_primary_email_by_patch_forgets_the_old_one(api: Api) -> None:
    known = api.create(email="old@x.com")
    response = api("PATCH", f"{CONTACTS}/{known}", json={"properties": {"email": "New@x.com"}})
    assert response.status_code == 200
    assert response.json()["properties"]["email"] == "new@x.com"
    assert api.by_email("old@x.com").status_code == 404
    assert api.by_email("new@x.com").json()["id"] == known
    props = api.get(known, properties="email,hs_additional_emails").json()["properties"]
    assert props == {
        "email": "new@x.com",
        "hs_additional_emails": None,
        **{k: props[k] for k in ("createdate", "hs_object_id", "lastmodifieddate")},
    }
    again = api.create(email="old@x.com")  # the old address is free again
    assert again != known


def test_changing_the_primary_email_by_patch_by_email(api: Api) -> None:
    known = api.create(email="old@x.com")
    response = api(
        "PATCH",
        CONTACTS + "/old@x.com?idProperty=email",
        json={"properties": {"email": "new@x.com"}},
    )
    assert response.status_code == 200 and response.json()["id"] == known
    assert api.by_email("old@x.com").status_code == 404


def test_changing_the_primary_email_by_batch_update_forgets_the_old_one(api: Api) -> None:
    known = api.create(email="old@x.com")
    response = api(
        "POST",
        CONTACTS + "/batch/update",
        json={"inputs": [{"id": known, "properties": {"email": "new@x.com"}}]},
    )
    assert response.status_code == 200
    read = api(
        "POST",
        CONTACTS + "/batch/read",
        json={"idProperty": "email", "inputs": [{"id": "old@x.com"}, {"id": "new@x.com"}]},
    )
    assert read.status_code == 207
    assert [r["id"] for r in read.json()["results"]] == [known]
    assert read.json()["errors"][0]["context"]["ids"] == ["old@x.com"]


def test_changing_the_primary_email_by_upsert_forgets_the_old_one(api: Api) -> None:
    created = api(
        "POST",
        "/crm/v3/properties/contacts",
        json={
            "name": "hm_customer_id",
            "label": "Customer",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
            "hasUniqueValue": True,
        },
    )
    assert created.status_code == 201
    known = api.create(email="old@x.com", hm_customer_id="C-1")
    moved = api(
        "POST",
        CONTACTS + "/batch/upsert",
        json={
            "inputs": [
                {"idProperty": "hm_customer_id", "id": "C-1", "properties": {"email": "new@x.com"}}
            ]
        },
    )
    assert moved.status_code == 200 and moved.json()["results"][0]["id"] == known
    assert api.by_email("old@x.com").status_code == 404
    by_old = api(
        "POST",
        CONTACTS + "/batch/upsert",
        json={"inputs": [{"idProperty": "email", "id": "old@x.com", "properties": {}}]},
    )
    result = by_old.json()["results"][0]
    assert result["new"] is True and result["id"] != known


# -- merges ---------------------------------------------------------------------------------


def test_merge_folds_the_second_contact_into_the_first(api: Api) -> None:
    a = api.create(email="a@x.com", firstname="Ann", city="")
    b = api.create(email="b@x.com", firstname="Bea", lastname="Brown", city="Bergen")
    api.set_secondary(a, ["a2@x.com"])
    api.set_secondary(b, ["b2@x.com", "b3@x.com"])
    response = api.merge(a, b)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == a
    props = body["properties"]
    assert props["hs_object_id"] == a
    assert props["email"] == "a@x.com"
    assert props["firstname"] == "Ann"  # the primary's value wins
    assert props["lastname"] == "Brown"  # empty on the primary: the merged one's value
    assert props["city"] == "Bergen"
    assert props["hs_additional_emails"] == "a2@x.com;b@x.com;b2@x.com;b3@x.com"
    assert props["hs_merged_object_ids"] == b
    listed = api("GET", CONTACTS).json()["results"]
    assert [r["id"] for r in listed] == [a]


def test_the_merged_id_and_emails_now_answer_the_survivor(api: Api) -> None:
    a = api.create(email="a@x.com")
    b = api.create(email="b@x.com", firstname="Bea")
    api.set_secondary(b, ["b2@x.com"])
    assert api.merge(a, b).status_code == 200
    by_id = api.get(b, properties="email,firstname,hs_merged_object_ids")
    assert by_id.status_code == 200
    assert by_id.json()["id"] == a
    assert by_id.json()["properties"]["hs_object_id"] == a
    assert by_id.json()["properties"]["email"] == "a@x.com"
    assert by_id.json()["properties"]["hs_merged_object_ids"] == b
    for id_property in (None, "hs_object_id"):
        body: dict[str, Any] = {"inputs": [{"id": b}], "properties": ["email"]}
        if id_property:
            body["idProperty"] = id_property
        read = api("POST", CONTACTS + "/batch/read", json=body)
        assert read.status_code == 200, id_property
        assert [r["id"] for r in read.json()["results"]] == [a]
    both = api("POST", CONTACTS + "/batch/read", json={"inputs": [{"id": a}, {"id": b}]})
    assert [r["id"] for r in both.json()["results"]] == [a]
    for email in ("b@x.com", "b2@x.com"):
        found = api.by_email(email)
        assert found.status_code == 200 and found.json()["id"] == a
        assert found.json()["properties"]["email"] == "a@x.com"


def test_writes_by_the_merged_id_land_on_the_survivor_and_delete_does_not_follow(
    api: Api,
) -> None:
    a = api.create(email="a@x.com")
    b = api.create(email="b@x.com")
    api.merge(a, b)
    patched = api("PATCH", f"{CONTACTS}/{b}", json={"properties": {"city": "Oslo"}})
    assert patched.status_code == 200 and patched.json()["id"] == a
    updated = api(
        "POST",
        CONTACTS + "/batch/update",
        json={"inputs": [{"id": b, "properties": {"city": "Rome"}}]},
    )
    assert updated.status_code == 200 and updated.json()["results"][0]["id"] == a
    assert api.get(a, properties="city").json()["properties"]["city"] == "Rome"
    assert api("DELETE", f"{CONTACTS}/{b}").status_code == 204
    assert api.get(a).status_code == 200


def test_merges_chain_and_carry_earlier_merged_ids(api: Api) -> None:
    a = api.create(email="a@x.com")
    b = api.create(email="b@x.com")
    c = api.create(email="c@x.com")
    d = api.create(email="d@x.com")
    assert api.merge(b, c).json()["properties"]["hs_merged_object_ids"] == c
    assert api.merge(a, d).status_code == 200
    merged = api.merge(a, b).json()["properties"]
    assert merged["hs_merged_object_ids"] == f"{d};{b};{c}"
    assert merged["hs_additional_emails"] == "d@x.com;b@x.com;c@x.com"
    for old in (b, c, d):
        assert api.get(old).json()["id"] == a
    assert api.by_email("c@x.com").json()["id"] == a


def test_merge_into_a_contact_without_email_makes_the_merged_email_primary(api: Api) -> None:
    a = api.create(firstname="Ann")
    b = api.create(email="b@x.com")
    api.set_secondary(b, ["b2@x.com"])
    props = api.merge(a, b).json()["properties"]
    assert props["email"] == "b@x.com"
    assert props["hs_additional_emails"] == "b2@x.com"


def test_merge_moves_hutks_and_form_submissions(sandbox: RunningSandbox, api: Api) -> None:
    form = api(
        "POST",
        "/marketing/v3/forms",
        json={
            "name": "Signup",
            "fieldGroups": [
                {
                    "fields": [
                        {"objectTypeId": "0-1", "name": "email", "fieldType": "email"},
                    ]
                }
            ],
        },
    )
    assert form.status_code == 201, form.text
    submitted = requests.post(
        f"{sandbox.url}/submissions/v3/integration/submit/{sandbox.config.portal_id}/"
        f"{form.json()['id']}",
        json={
            "submittedAt": str(int(time.time() * 1000)),
            "fields": [{"objectTypeId": "0-1", "name": "email", "value": "b@x.com"}],
            "context": {"hutk": HUTK},
        },
        timeout=10,
    )
    assert submitted.status_code == 200, submitted.text
    a = api.create(email="a@x.com")
    b = api.by_email("b@x.com").json()["id"]
    api.merge(a, b)
    view = requests.get(sandbox.url + "/_sandbox/contacts/b@x.com", timeout=10).json()
    assert view["id"] == a
    assert view["hutks"] == [HUTK]
    assert [s["contactId"] for s in view["submissions"]] == [a]
    assert view["properties"]["num_conversion_events"] == "1"


def test_merge_on_the_date_based_path(api: Api) -> None:
    a = api.create(email="a@x.com")
    b = api.create(email="b@x.com")
    response = api(
        "POST",
        "/crm/objects/2026-03/contacts/merge",
        json={"primaryObjectId": a, "objectIdToMerge": b},
    )
    assert response.status_code == 200 and response.json()["id"] == a


def test_merging_a_contact_into_itself_is_a_validation_error(api: Api) -> None:
    a = api.create(email="a@x.com")
    b = api.create(email="b@x.com")
    same = api.merge(a, a)
    assert same.status_code == 400
    body = same.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["correlationId"]
    api.merge(a, b)
    again = api.merge(a, b)  # b is a now
    assert again.status_code == 400 and again.json()["category"] == "VALIDATION_ERROR"
    assert api.merge(b, a).status_code == 400


def test_merging_unknown_contacts_is_a_404(api: Api) -> None:
    a = api.create(email="a@x.com")
    for primary, merged in ((a, "999"), ("999", a), ("998", "999"), (a, "not-an-id")):
        response = api.merge(primary, merged)
        assert response.status_code == 404, (primary, merged)
        body = response.json()
        assert body["category"] == "OBJECT_NOT_FOUND" and body["correlationId"]
    assert api.get(a).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"primaryObjectId": "1"},
        {"objectIdToMerge": "1"},
        {"primaryObjectId": 1, "objectIdToMerge": 2},
        {"primaryObjectId": "", "objectIdToMerge": "2"},
        ["1", "2"],
    ],
)
def test_merge_bodies_of_the_wrong_shape_are_refused(api: Api, body: Any) -> None:
    api.create(email="a@x.com")
    api.create(email="b@x.com")
    response = api("POST", MERGE, json=body)
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert len(api("GET", CONTACTS).json()["results"]) == 2


def test_merge_needs_the_bearer_token(sandbox: RunningSandbox, api: Api) -> None:
    a = api.create(email="a@x.com")
    b = api.create(email="b@x.com")
    response = requests.post(
        sandbox.url + MERGE, json={"primaryObjectId": a, "objectIdToMerge": b}, timeout=10
    )
    assert response.status_code == 401
    assert api.get(b).json()["id"] == b


# -- reading the identity properties ------------------------------------------------------


def test_identity_properties_come_back_when_asked_for(api: Api) -> None:
    a = api.create(email="a@x.com")
    b = api.create(email="b@x.com")
    names = "hs_object_id,hs_additional_emails,hs_merged_object_ids"
    before = api.get(a, properties=names).json()["properties"]
    assert before["hs_object_id"] == a
    assert before["hs_additional_emails"] is None and before["hs_merged_object_ids"] is None
    plain = api.get(a).json()["properties"]
    assert "hs_additional_emails" not in plain and "hs_merged_object_ids" not in plain
    api.merge(a, b)
    after = api(
        "POST",
        CONTACTS + "/batch/read",
        json={"inputs": [{"id": a}], "properties": names.split(",")},
    ).json()["results"][0]["properties"]
    assert after["hs_object_id"] == a
    assert after["hs_additional_emails"] == "b@x.com"
    assert after["hs_merged_object_ids"] == b
    listed = api("GET", CONTACTS, params={"properties": names}).json()["results"][0]
    assert listed["properties"]["hs_merged_object_ids"] == b


# -- forms ----------------------------------------------------------------------------------


def test_a_form_submission_with_a_secondary_email_makes_it_the_primary(
    sandbox: RunningSandbox, api: Api
) -> None:
    form = api(
        "POST",
        "/marketing/v3/forms",
        json={
            "name": "Signup",
            "fieldGroups": [
                {
                    "fields": [
                        {"objectTypeId": "0-1", "name": "email", "fieldType": "email"},
                        {
                            "objectTypeId": "0-1",
                            "name": "firstname",
                            "fieldType": "single_line_text",
                        },
                    ]
                }
            ],
        },
    ).json()
    known = api.create(email="primary@x.com")
    api.set_secondary(known, ["second@x.com", "third@x.com"])
    submitted = requests.post(
        f"{sandbox.url}/submissions/v3/integration/submit/{sandbox.config.portal_id}/{form['id']}",
        json={
            "submittedAt": str(int(time.time() * 1000)),
            "fields": [
                {"objectTypeId": "0-1", "name": "email", "value": "Second@x.com"},
                {"objectTypeId": "0-1", "name": "firstname", "value": "Sec"},
            ],
        },
        timeout=10,
    )
    assert submitted.status_code == 200, submitted.text
    assert len(api("GET", CONTACTS).json()["results"]) == 1
    props = api.get(known, properties="email,firstname,hs_additional_emails").json()["properties"]
    assert props["email"] == "second@x.com"
    assert props["firstname"] == "Sec"
    assert props["hs_additional_emails"] == "third@x.com;primary@x.com"
    assert api.by_email("primary@x.com").json()["id"] == known
