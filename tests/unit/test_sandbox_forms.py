"""The sandbox's forms endpoints and Forms API submissions over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hubmap.sandbox import RunningSandbox, SandboxConfig, start_sandbox

TOKEN = "test-token"
PORTAL = 4242
HUTK = "0123456789abcdef0123456789abcdef"
DAY_MS = 86_400_000


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(config=SandboxConfig(token=TOKEN, portal_id=PORTAL)) as running:
        yield running


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def form_id(sandbox: RunningSandbox, session: requests.Session) -> str:
    session.post(
        sandbox.url + "/crm/v3/properties/contacts",
        headers=AUTH,
        timeout=10,
        json={
            "name": "hm_order_total",
            "label": "Order total",
            "type": "number",
            "fieldType": "number",
            "groupName": "contactinformation",
        },
    )
    response = session.post(
        sandbox.url + "/marketing/v3/forms",
        headers=AUTH,
        timeout=10,
        json={
            "name": "Checkout",
            "fieldGroups": [
                {
                    "fields": [
                        {
                            "objectTypeId": "0-1",
                            "name": "email",
                            "fieldType": "email",
                            "required": True,
                        },
                        {
                            "objectTypeId": "0-1",
                            "name": "firstname",
                            "fieldType": "single_line_text",
                        },
                        {"objectTypeId": "0-1", "name": "hm_order_total", "fieldType": "number"},
                        {"objectTypeId": "0-2", "name": "name", "fieldType": "single_line_text"},
                    ]
                }
            ],
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submission(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "submittedAt": str(int(time.time() * 1000)),
        "fields": [
            {"objectTypeId": "0-1", "name": "email", "value": "Jane@Example.com"},
            {"objectTypeId": "0-1", "name": "firstname", "value": "Jane"},
            {"objectTypeId": "0-1", "name": "hm_order_total", "value": "99.50"},
            {"objectTypeId": "0-2", "name": "name", "value": "Acme"},
        ],
        "context": {
            "hutk": HUTK,
            "pageUri": "https://shop.example/checkout",
            "pageName": "Checkout",
            "ipAddress": "203.0.113.7",
        },
    }
    body.update(changes)
    return body


def submit(
    sandbox: RunningSandbox, session: requests.Session, form: str, body: Any, portal: int = PORTAL
) -> requests.Response:
    return session.post(
        f"{sandbox.url}/submissions/v3/integration/submit/{portal}/{form}", json=body, timeout=10
    )


def error_types(response: requests.Response) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "error" and body["message"] == "The request is not valid"
    assert body["correlationId"]
    return [e["errorType"] for e in body["errors"]]


def test_form_definitions_are_created_read_and_listed(
    sandbox: RunningSandbox, session: requests.Session, form_id: str
) -> None:
    form = session.get(f"{sandbox.url}/marketing/v3/forms/{form_id}", headers=AUTH, timeout=10)
    assert form.json()["fieldGroups"][0]["fields"][0]["required"] is True
    listed = session.get(f"{sandbox.url}/marketing/v3/forms", headers=AUTH, timeout=10).json()
    assert [f["id"] for f in listed["results"]] == [form_id]
    assert session.get(f"{sandbox.url}/marketing/v3/forms/{form_id}", timeout=10).status_code == 401


def test_a_form_field_must_be_an_existing_contact_property(
    sandbox: RunningSandbox, session: requests.Session
) -> None:
    response = session.post(
        sandbox.url + "/marketing/v3/forms",
        headers=AUTH,
        timeout=10,
        json={
            "name": "Bad",
            "fieldGroups": [
                {
                    "fields": [
                        {"objectTypeId": "0-1", "name": "nope", "fieldType": "single_line_text"}
                    ]
                }
            ],
        },
    )
    assert response.status_code == 400


def test_a_valid_submission_creates_the_contact_and_records_the_hutk(
    sandbox: RunningSandbox, session: requests.Session, form_id: str
) -> None:
    response = submit(sandbox, session, form_id, submission())
    assert response.status_code == 200
    assert response.json() == {"inlineMessage": "Thanks for submitting the form."}
    contact = session.get(
        sandbox.url + "/crm/v3/objects/contacts/jane@example.com",
        headers=AUTH,
        params={
            "idProperty": "email",
            "properties": "firstname,hm_order_total,num_conversion_events,"
            "recent_conversion_event_name",
        },
        timeout=10,
    ).json()["properties"]
    assert contact["firstname"] == "Jane"
    assert contact["hm_order_total"] == "99.50"
    assert contact["num_conversion_events"] == "1"
    assert contact["recent_conversion_event_name"] == "Checkout"
    view = session.get(sandbox.url + "/_sandbox/contacts/JANE@example.com", timeout=10).json()
    assert view["hutks"] == [HUTK]
    assert view["submissions"][0]["context"]["pageUri"] == "https://shop.example/checkout"
    # a second submission updates the same contact
    body = submission(
        fields=[
            {"objectTypeId": "0-1", "name": "email", "value": "jane@example.com"},
            {"objectTypeId": "0-1", "name": "firstname", "value": "Janet"},
        ]
    )
    assert submit(sandbox, session, form_id, body).status_code == 200
    dumped = session.get(sandbox.url + "/_sandbox/dump", timeout=10).json()
    assert len(dumped["contacts"]) == 1 and len(dumped["submissions"]) == 2
    assert dumped["contacts"][0]["properties"]["firstname"] == "Janet"
    assert dumped["contacts"][0]["properties"]["num_conversion_events"] == "2"


def test_fields_not_on_the_form_are_refused(
    sandbox: RunningSandbox, session: requests.Session, form_id: str
) -> None:
    body = submission()
    body["fields"] += [
        {"objectTypeId": "0-1", "name": "city", "value": "Oslo"},
        {"objectTypeId": "0-2", "name": "domain", "value": "acme.com"},
    ]
    response = submit(sandbox, session, form_id, body)
    assert error_types(response) == ["FIELD_NOT_IN_FORM_DEFINITION"] * 2
    messages = [e["message"] for e in response.json()["errors"]]
    assert messages[0].startswith("Error in 'fields.city'.")
    assert messages[1].startswith("Error in 'fields.0-2/domain'.")
    assert session.get(sandbox.url + "/_sandbox/dump", timeout=10).json()["submissions"] == []


def test_required_fields_must_be_present(
    sandbox: RunningSandbox, session: requests.Session, form_id: str
) -> None:
    body = submission(fields=[{"objectTypeId": "0-1", "name": "firstname", "value": "Jane"}])
    response = submit(sandbox, session, form_id, body)
    assert error_types(response) == ["REQUIRED_FIELD"]
    assert "Required field 'email' is missing" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"hutk": "not-a-cookie"}, "INVALID_HUTK"),
        ({"hutk": HUTK.upper()}, "INVALID_HUTK"),
        ({"ipAddress": "300.1.1.1"}, "INVALID_IP_ADDRESS"),
        ({"pageUri": "/checkout"}, "INVALID_PAGE_URI"),
    ],
)
def test_context_is_checked(
    sandbox: RunningSandbox,
    session: requests.Session,
    form_id: str,
    context: dict[str, str],
    expected: str,
) -> None:
    assert error_types(submit(sandbox, session, form_id, submission(context=context))) == [expected]


def test_submitted_at_older_than_a_month_is_refused(
    sandbox: RunningSandbox, session: requests.Session, form_id: str
) -> None:
    old = str(int(time.time() * 1000) - 31 * DAY_MS)
    assert error_types(submit(sandbox, session, form_id, submission(submittedAt=old))) == [
        "INVALID_METADATA"
    ]
    recent = str(int(time.time() * 1000) - 29 * DAY_MS)
    assert submit(sandbox, session, form_id, submission(submittedAt=recent)).status_code == 200


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("email", "jane-at-example", "INVALID_EMAIL"),
        ("hm_order_total", "1,5", "INVALID_NUMBER"),
        ("hm_order_total", "1e3", "INVALID_NUMBER"),
    ],
)
def test_values_are_checked(
    sandbox: RunningSandbox,
    session: requests.Session,
    form_id: str,
    name: str,
    value: str,
    expected: str,
) -> None:
    body = submission()
    for field in body["fields"]:
        if field["name"] == name:
            field["value"] = value
    assert error_types(submit(sandbox, session, form_id, body)) == [expected]


def test_values_must_be_strings(
    sandbox: RunningSandbox, session: requests.Session, form_id: str
) -> None:
    body = submission()
    body["fields"][2]["value"] = 99.5
    assert submit(sandbox, session, form_id, body).status_code == 400


def test_more_than_1000_fields_are_refused(
    sandbox: RunningSandbox, session: requests.Session, form_id: str
) -> None:
    body = submission(fields=[{"name": "firstname", "value": "x"}] * 1001)
    assert error_types(submit(sandbox, session, form_id, body)) == [
        "MAX_NUMBER_OF_SUBMITTED_VALUES_EXCEEDED"
    ]


@pytest.mark.parametrize(
    ("legal", "expected"),
    [
        ({"consent": {"consentToProcess": True}}, ["MISSING_PROCESSING_CONSENT_TEXT"]),
        ({"consent": {"text": "I agree"}}, ["MISSING_PROCESSING_CONSENT"]),
        (
            {
                "consent": {
                    "consentToProcess": True,
                    "text": "ok",
                    "communications": [
                        {"value": True, "subscriptionTypeId": 1, "text": "a"},
                        {"value": True, "subscriptionTypeId": 1, "text": "b"},
                    ],
                }
            },
            ["DUPLICATE_SUBSCRIPTION_TYPE_ID"],
        ),
        (
            {"legitimateInterest": {"value": True, "subscriptionTypeId": 1, "legalBasis": "LEAD"}},
            ["MISSING_LEGITIMATE_INTEREST_TEXT"],
        ),
        (
            {
                "legitimateInterest": {
                    "value": True,
                    "subscriptionTypeId": 1,
                    "legalBasis": "FRIEND",
                    "text": "x",
                }
            },
            ["INVALID_LEGAL_OPTION_FORMAT"],
        ),
        ({"consent": {}, "legitimateInterest": {}}, ["INVALID_LEGAL_OPTION_FORMAT"]),
    ],
)
def test_legal_consent_options_are_checked(
    sandbox: RunningSandbox,
    session: requests.Session,
    form_id: str,
    legal: dict[str, Any],
    expected: list[str],
) -> None:
    response = submit(sandbox, session, form_id, submission(legalConsentOptions=legal))
    assert error_types(response) == expected


def test_valid_legal_consent_is_accepted(
    sandbox: RunningSandbox, session: requests.Session, form_id: str
) -> None:
    legal = {
        "consent": {
            "consentToProcess": True,
            "text": "I agree",
            "communications": [{"value": True, "subscriptionTypeId": 999, "text": "Send me news"}],
        }
    }
    assert (
        submit(sandbox, session, form_id, submission(legalConsentOptions=legal)).status_code == 200
    )


def test_unknown_portal_or_form_is_404(
    sandbox: RunningSandbox, session: requests.Session, form_id: str
) -> None:
    assert submit(sandbox, session, form_id, submission(), portal=1).status_code == 404
    assert submit(sandbox, session, "no-such-form", submission()).status_code == 404


def test_secure_submit_needs_the_token(
    sandbox: RunningSandbox, session: requests.Session, form_id: str
) -> None:
    url = f"{sandbox.url}/submissions/v3/integration/secure/submit/{PORTAL}/{form_id}"
    assert session.post(url, json=submission(), timeout=10).status_code == 401
    ok = session.post(url, json=submission(), headers=AUTH, timeout=10)
    assert ok.status_code == 200
    assert "X-HubSpot-RateLimit-Remaining" in ok.headers


# -- hutk, required and hidden fields (the stand-in's rules: see hubmap.sandbox.forms) ----------


@pytest.mark.parametrize(
    "hutk", ["not-a-cookie", HUTK.upper(), HUTK[:-1], HUTK + "0", "g" * 32, " " + HUTK[1:]]
)
def test_an_invalid_hutk_fails_the_whole_submission_in_hubspot_words(
    sandbox: RunningSandbox, session: requests.Session, form_id: str, hutk: str
) -> None:
    response = submit(sandbox, session, form_id, submission(context={"hutk": hutk}))
    assert error_types(response) == ["INVALID_HUTK"]
    assert response.json()["errors"][0]["message"] == (
        f"Error in 'context.hutk'. '{hutk}' is not a valid Hutk"
    )
    dumped = session.get(sandbox.url + "/_sandbox/dump", timeout=10).json()
    assert dumped["submissions"] == [] and dumped["contacts"] == []
    # the same submission without the hutk lands, on the email
    assert submit(sandbox, session, form_id, submission(context={})).status_code == 200
    view = session.get(sandbox.url + "/_sandbox/contacts/jane@example.com", timeout=10).json()
    assert view["hutks"] == []


def _form(sandbox: RunningSandbox, session: requests.Session, fields: list[dict[str, Any]]):
    return session.post(
        sandbox.url + "/marketing/v3/forms",
        headers=AUTH,
        timeout=10,
        json={"name": "Hidden", "fieldGroups": [{"fields": fields}]},
    )


EMAIL_FIELD = {"objectTypeId": "0-1", "name": "email", "fieldType": "email", "required": True}


def test_hidden_fields_are_on_the_form_and_take_values(
    sandbox: RunningSandbox, session: requests.Session
) -> None:
    created = _form(
        sandbox,
        session,
        [
            EMAIL_FIELD,
            {
                "objectTypeId": "0-1",
                "name": "firstname",
                "fieldType": "single_line_text",
                "hidden": True,
            },
        ],
    )
    assert created.status_code == 201, created.text
    form = created.json()
    assert [f["hidden"] for f in form["fieldGroups"][0]["fields"]] == [False, True]
    body = submission(
        fields=[
            {"objectTypeId": "0-1", "name": "email", "value": "hid@example.com"},
            {"objectTypeId": "0-1", "name": "firstname", "value": "Hidde"},
        ]
    )
    assert submit(sandbox, session, form["id"], body).status_code == 200
    view = session.get(sandbox.url + "/_sandbox/contacts/hid@example.com", timeout=10).json()
    assert view["properties"]["firstname"] == "Hidde"
    # left out, a hidden field that is not required is no problem
    body = submission(fields=[{"objectTypeId": "0-1", "name": "email", "value": "h@example.com"}])
    assert submit(sandbox, session, form["id"], body).status_code == 200


def test_a_hidden_required_field_is_required_of_the_api(
    sandbox: RunningSandbox, session: requests.Session
) -> None:
    created = _form(
        sandbox,
        session,
        [
            EMAIL_FIELD,
            {
                "objectTypeId": "0-1",
                "name": "firstname",
                "fieldType": "single_line_text",
                "hidden": True,
                "required": True,
                "defaultValue": "Shopper",
            },
        ],
    )
    assert created.status_code == 201, created.text
    body = submission(fields=[{"objectTypeId": "0-1", "name": "email", "value": "h@example.com"}])
    response = submit(sandbox, session, created.json()["id"], body)
    assert error_types(response) == ["REQUIRED_FIELD"]
    assert response.json()["errors"][0]["message"] == (
        "Error in 'fields.firstname'. Required field 'firstname' is missing"
    )


def test_hidden_must_be_a_boolean(sandbox: RunningSandbox, session: requests.Session) -> None:
    response = _form(
        sandbox,
        session,
        [
            EMAIL_FIELD,
            {
                "objectTypeId": "0-1",
                "name": "firstname",
                "fieldType": "single_line_text",
                "hidden": "yes",
            },
        ],
    )
    assert response.status_code == 400
