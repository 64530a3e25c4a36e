"""HubSpot's error bodies become structured errors naming the properties and form fields."""

from __future__ import annotations

import pytest

from hubmap.hubspot import (
    DailyLimitReached,
    HubSpotAuthError,
    HubSpotConflict,
    HubSpotError,
    HubSpotNotFound,
    HubSpotRateLimited,
    HubSpotRejected,
    HubSpotServerError,
    HubSpotValidationError,
    parse_error_body,
)
from hubmap.hubspot.errors import error_from_body

TOKEN = "pat-na1-secret-token-0000"

CRM_VALIDATION = {
    "status": "error",
    "message": "Property values were not valid",
    "correlationId": "c0ffee00-1111-2222-3333-444455556666",
    "category": "VALIDATION_ERROR",
    "errors": [
        {
            "message": "1.42e-14 was not a valid number.",
            "code": "INVALID_INTEGER",
            "context": {"propertyName": ["amount"]},
        },
        {
            "message": "gold-ish was not one of the allowed options",
            "code": "INVALID_OPTION",
            "context": {"propertyName": ["tier"]},
        },
    ],
}

PROPERTY_VALUES_MESSAGE = {
    "status": "error",
    "message": (
        'Property values were not valid: [{"isValid":false,"message":"1715823535865 is at '
        '01:38:55.865 UTC, not midnight!","error":"INVALID_DATE","name":"hm_last_order_date"},'
        '{"isValid":false,"message":"Email address a@b is invalid","error":"INVALID_EMAIL",'
        '"name":"email"}]'
    ),
    "correlationId": "abc",
    "category": "VALIDATION_ERROR",
}

FORMS_400 = {
    "status": "error",
    "message": "The request is not valid",
    "correlationId": "f0f0",
    "errors": [
        {
            "message": "Error in 'fields.firstname'. Required field 'firstname' is missing",
            "errorType": "REQUIRED_FIELD",
        },
        {
            "message": "Error in 'fields.0-2/name'. This field is not in the form definition",
            "errorType": "FIELD_NOT_IN_FORM_DEFINITION",
        },
    ],
}


def test_crm_validation_body_names_properties():
    _, category, correlation_id, details = parse_error_body(CRM_VALIDATION)
    assert category == "VALIDATION_ERROR"
    assert correlation_id.startswith("c0ffee00")
    assert [(d.property_name, d.code) for d in details] == [
        ("amount", "INVALID_INTEGER"),
        ("tier", "INVALID_OPTION"),
    ]


def test_property_values_message_is_parsed_into_properties():
    error = error_from_body(400, PROPERTY_VALUES_MESSAGE)
    assert isinstance(error, HubSpotValidationError)
    assert error.property_names == ["hm_last_order_date", "email"]
    assert error.errors[0].code == "INVALID_DATE"
    assert "not midnight" in error.errors[0].message


def test_forms_errors_name_fields_and_object_types():
    error = error_from_body(400, FORMS_400, method="POST", path="/submissions/v3/x")
    assert isinstance(error, HubSpotValidationError)
    assert error.property_names == ["firstname", "name"]
    assert [d.code for d in error.errors] == ["REQUIRED_FIELD", "FIELD_NOT_IN_FORM_DEFINITION"]
    assert error.errors[1].object_type_id == "0-2"
    assert error.errors[0].object_type_id == ""
    assert error.correlation_id == "f0f0"


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, {"message": "bad"}, HubSpotValidationError),
        (401, {"category": "EXPIRED_AUTHENTICATION", "message": "expired"}, HubSpotAuthError),
        (403, {"category": "MISSING_SCOPES", "message": "scope"}, HubSpotAuthError),
        (404, {"category": "OBJECT_NOT_FOUND", "message": "nope"}, HubSpotNotFound),
        (409, {"category": "CONFLICT", "message": "exists"}, HubSpotConflict),
        (415, {"message": "media"}, HubSpotRejected),
        (429, {"policyName": "TEN_SECONDLY_ROLLING", "message": "x"}, HubSpotRateLimited),
        (
            429,
            {"policyName": "DAILY", "message": "You have reached your daily limit."},
            DailyLimitReached,
        ),
        (502, "<html>Bad gateway</html>", HubSpotServerError),
    ],
)
def test_status_picks_the_class(status, body, cls):
    error = error_from_body(status, body)
    assert type(error) is cls
    assert error.status == status
    assert isinstance(error, HubSpotError)


def test_daily_is_a_rate_limit_and_carries_the_policy():
    error = error_from_body(
        429, {"policyName": "DAILY", "message": "daily", "errorType": "RATE_LIMIT"}
    )
    assert isinstance(error, HubSpotRateLimited)
    assert error.policy_name == "DAILY"


def test_conflict_exposes_existing_id():
    error = error_from_body(
        409,
        {
            "status": "error",
            "message": "Contact already exists. Existing ID: 37765128953",
            "correlationId": "x",
            "category": "CONFLICT",
        },
    )
    assert isinstance(error, HubSpotConflict)
    assert error.existing_id == "37765128953"


def test_str_is_useful_and_never_contains_an_echoed_token():
    body = {
        "status": "error",
        "message": f"Authentication credentials not found: Bearer {TOKEN}",
        "category": "INVALID_AUTHENTICATION",
        "correlationId": "cid-1",
        "errors": [{"message": f"token {TOKEN} is invalid"}],
    }
    error = error_from_body(
        401,
        body,
        method="GET",
        path="/crm/v3/objects/contacts",
        redact=lambda t: t.replace(TOKEN, "***"),
    )
    text = str(error)
    assert TOKEN not in text
    assert TOKEN not in repr(error)
    assert TOKEN not in str(error.to_dict())
    assert error.body is None  # the raw body echoed the token, so it is not kept
    assert "GET /crm/v3/objects/contacts" in text and "HTTP 401" in text and "cid-1" in text


def test_non_json_body_still_makes_an_error():
    error = error_from_body(503, "")
    assert isinstance(error, HubSpotServerError)
    assert "503" in str(error)
