"""The client's calls over a mock transport: request shapes, paths, batching, per-item errors,
retry decisions (with a fake sleep), logging without the token."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from hubmap.hubspot import (
    DailyLimitReached,
    DuplicateKeyError,
    HubSpotAuthError,
    HubSpotClient,
    HubSpotConfigError,
    HubSpotConnectionError,
    HubSpotError,
    HubSpotRejected,
    HubSpotServerError,
    HubSpotSettings,
    HubSpotValidationError,
    MockTransport,
    RateLimiter,
    Response,
    RetryPolicy,
)

TOKEN = "pat-na1-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def make_client(handler, *, version="v3", retry=None, records=None, portal_id="42"):
    settings = HubSpotSettings(
        access_token=TOKEN,
        api_base="https://api.test",
        forms_base="https://forms.test",
        api_version=version,
        portal_id=portal_id,
    )
    transport = MockTransport(handler)
    sleeps: list[float] = []
    client = HubSpotClient(
        settings,
        transport=transport,
        limiter=RateLimiter(max_requests=10_000, interval=1.0),
        retry=retry or RetryPolicy(max_attempts=4, backoff_base=0.01, jitter=0.0),
        on_request=None if records is None else records.append,
        sleep=sleeps.append,
    )
    return client, transport, sleeps


def upsert_echo(method, url, json=None, **kw):
    results = [
        {"id": str(1000 + i), "new": i % 2 == 0, "properties": {"email": item["id"].lower()}}
        for i, item in enumerate(json["inputs"])
    ]
    return Response.of_json(200, {"status": "COMPLETE", "results": results})


# ---------------------------------------------------------------------- contacts


def test_batch_upsert_chunks_250_inputs_into_3_calls():
    client, transport, _ = make_client(upsert_echo)
    inputs = {f"user{i}@example.com": {"firstname": f"U{i}"} for i in range(250)}
    result = client.batch_upsert_contacts(inputs)
    assert [len(r["json"]["inputs"]) for r in transport.requests] == [100, 100, 50]
    assert all(r["path"] == "/crm/v3/objects/contacts/batch/upsert" for r in transport.requests)
    first = transport.requests[0]["json"]["inputs"][0]
    assert first == {
        "idProperty": "email",
        "id": "user0@example.com",
        "properties": {"firstname": "U0"},
    }
    assert len(result.results) == 250 and not result.errors
    assert result.result_for("USER0@example.com").id == "1000"
    assert result.result_for("user0@example.com").new is True


def test_date_based_version_is_used_in_every_crm_path():
    def handler(method, url, json=None, **kw):
        if url.endswith("/batch/upsert"):
            return upsert_echo(method, url, json=json)
        return Response.of_json(200, {"results": []})

    client, transport, _ = make_client(handler, version="2026-03")
    client.batch_upsert_contacts({"a@x.com": {"firstname": "A"}})
    client.batch_read_contacts(["a@x.com"])
    client.list_properties("contacts")
    client.list_groups("contacts")
    assert [r["path"] for r in transport.requests] == [
        "/crm/objects/2026-03/contacts/batch/upsert",
        "/crm/objects/2026-03/contacts/batch/read",
        "/crm/properties/2026-03/contacts",
        "/crm/properties/2026-03/contacts/groups",
    ]


def test_duplicate_keys_exact_repeats_are_folded_conflicting_ones_raise():
    client, transport, _ = make_client(upsert_echo)
    result = client.batch_upsert_contacts(
        [
            {"id": "a@x.com", "properties": {"firstname": "A"}},
            {"id": "A@X.com", "properties": {"firstname": "A"}},
            {"id": "b@x.com", "properties": {"firstname": "B"}},
        ]
    )
    assert [i["id"] for i in transport.requests[0]["json"]["inputs"]] == ["a@x.com", "b@x.com"]
    assert len(result.results) == 2
    with pytest.raises(DuplicateKeyError) as info:
        client.batch_upsert_contacts(
            [
                {"id": "a@x.com", "properties": {"firstname": "A"}},
                {"id": "a@X.com", "properties": {"firstname": "Other"}},
            ]
        )
    assert info.value.keys == ["a@X.com"]
    assert len(transport.requests) == 1  # nothing sent for the bad batch


def test_values_must_be_strings():
    client, transport, _ = make_client(upsert_echo)
    with pytest.raises(TypeError, match="amount"):
        client.batch_upsert_contacts({"a@x.com": {"amount": 12.5}})
    assert transport.requests == []


def test_207_per_item_errors_are_mapped_back_to_their_inputs():
    def handler(method, url, json=None, **kw):
        ok = [i for i in json["inputs"] if i["id"].lower() != "bad@x.com"]
        return Response.of_json(
            207,
            {
                "status": "COMPLETE",
                "results": [
                    {"id": str(n), "new": False, "properties": {"email": i["id"]}}
                    for n, i in enumerate(ok)
                ],
                "numErrors": 1,
                "errors": [
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": "gold-ish was not one of the allowed options",
                        "code": "INVALID_OPTION",
                        "context": {"ids": ["bad@x.com"], "propertyName": ["tier"]},
                    }
                ],
            },
        )

    client, transport, _ = make_client(handler)
    result = client.batch_upsert_contacts(
        {
            "good@x.com": {"tier": "gold"},
            "Bad@x.com": {"tier": "gold-ish"},
            "fine@x.com": {"tier": "gold"},
        }
    )
    assert set(result.results) == {"good@x.com", "fine@x.com"}
    error = result.error_for("bad@x.com")
    assert error is not None
    assert error.key == "Bad@x.com"  # the caller's spelling
    assert error.code == "INVALID_OPTION"
    assert error.property_names == ["tier"]
    assert len(transport.requests) == 1


def test_batch_rejected_whole_is_split_until_the_bad_input_is_isolated():
    def handler(method, url, json=None, **kw):
        if any(i["id"] == "bad@x.com" for i in json["inputs"]):
            return Response.of_json(
                400,
                {
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "correlationId": "cid",
                    "message": 'Property values were not valid: [{"isValid":false,"message":"4,68 was not a valid number.","error":"INVALID_INTEGER","name":"amount"}]',
                },
            )
        return upsert_echo(method, url, json=json)

    client, transport, _ = make_client(handler)
    keys = [f"u{i}@x.com" for i in range(9)]
    keys.insert(4, "bad@x.com")
    result = client.batch_upsert_contacts({k: {"amount": "1"} for k in keys})
    assert set(result.errors) == {"bad@x.com"}
    assert result.errors["bad@x.com"].property_names == ["amount"]
    assert result.errors["bad@x.com"].status == 400
    assert set(result.results) == set(keys) - {"bad@x.com"}
    assert len(transport.requests) <= 2 * len(keys)


def test_batch_read_returns_found_by_email_and_not_found_ids():
    def handler(method, url, json=None, params=None, **kw):
        assert json["idProperty"] == "email"
        assert "email" in json["properties"] and "firstname" in json["properties"]
        assert params == {"archived": "false"}
        results, missing = [], []
        for item in json["inputs"]:
            if item["id"].lower().startswith("known"):
                results.append(
                    {"id": "7", "properties": {"email": item["id"].lower(), "firstname": "K"}}
                )
            else:
                missing.append(item["id"])
        return Response.of_json(
            207,
            {
                "status": "COMPLETE",
                "results": results,
                "numErrors": 1,
                "errors": [
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
                        "context": {"ids": missing},
                    }
                ],
            },
        )

    client, transport, _ = make_client(handler)
    ids = ["Known1@x.com", "nobody@x.com"] + [f"known{i}@x.com" for i in range(2, 150)]
    result = client.batch_read_contacts(ids, properties=["firstname"])
    assert len(transport.requests) == 2  # 150 ids -> 100 + 50
    assert result.not_found == ["nobody@x.com"]
    assert result.get("KNOWN1@X.COM")["properties"]["firstname"] == "K"
    assert len(result.found) == 149


def test_get_contact_by_email_encodes_the_path_and_returns_none_when_missing():
    def handler(method, url, params=None, **kw):
        if "missing" in url:
            return Response.of_json(
                404,
                {
                    "status": "error",
                    "message": "not found",
                    "category": "OBJECT_NOT_FOUND",
                    "correlationId": "x",
                },
            )
        return Response.of_json(200, {"id": "5", "properties": {"email": "a+b@x.com"}})

    client, transport, _ = make_client(handler)
    assert client.get_contact("a+b@x.com", properties=["email", "tier"])["id"] == "5"
    sent = transport.requests[0]
    assert sent["path"] == "/crm/v3/objects/contacts/a%2Bb%40x.com"
    assert sent["params"] == {"properties": "email,tier", "idProperty": "email"}
    assert client.get_contact("missing@x.com") is None
    assert client.get_contact("512")["id"] == "5"
    assert "idProperty" not in transport.requests[-1]["params"]


# ---------------------------------------------------------------------- properties


def test_property_calls():
    created = {}

    def handler(method, url, json=None, **kw):
        path = url.split("api.test", 1)[1]
        if path == "/crm/v3/properties/contacts/groups" and method == "POST":
            if json["name"] in created:
                return Response.of_json(
                    409,
                    {
                        "status": "error",
                        "message": "group exists",
                        "category": "CONFLICT",
                        "correlationId": "c",
                    },
                )
            created[json["name"]] = json
            return Response.of_json(201, json)
        if path == "/crm/v3/properties/contacts/batch/create":
            return Response.of_json(201, {"status": "COMPLETE", "results": json["inputs"]})
        if path == "/crm/v3/properties/contacts/hm_tier" and method == "PATCH":
            return Response.of_json(200, {"name": "hm_tier", **json})
        if path == "/crm/v3/properties/contacts/nope":
            return Response.of_json(
                404,
                {
                    "status": "error",
                    "message": "no such property",
                    "category": "OBJECT_NOT_FOUND",
                    "correlationId": "c",
                },
            )
        raise AssertionError(path)

    client, transport, _ = make_client(handler)
    assert client.create_group("contacts", "hubmap", "hubmap") is True
    assert client.create_group("contacts", "hubmap", "hubmap") is False  # 409: exists
    defs = [
        {
            "name": f"hm_p{i}",
            "label": f"P{i}",
            "type": "string",
            "fieldType": "text",
            "groupName": "hubmap",
        }
        for i in range(130)
    ]
    result = client.create_properties_batch("contacts", defs)
    assert len(result.created) == 130 and not result.errors
    assert [len(r["json"]["inputs"]) for r in transport.requests[2:]] == [100, 30]
    patched = client.update_property(
        "contacts", "hm_tier", {"options": [{"label": "Gold", "value": "gold"}]}
    )
    assert transport.requests[-1]["method"] == "PATCH"
    assert patched["options"][0]["value"] == "gold"
    assert client.get_property("contacts", "nope") is None


def test_property_batch_207_errors_keyed_by_property_name():
    def handler(method, url, json=None, **kw):
        return Response.of_json(
            207,
            {
                "status": "COMPLETE",
                "results": [d for d in json["inputs"] if d["name"] != "hm_bad"],
                "errors": [
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": "fieldType date is not valid for type number",
                        "context": {"propertyName": ["hm_bad"]},
                    }
                ],
            },
        )

    client, _, _ = make_client(handler)
    defs = [
        {"name": n, "label": n, "type": "number", "fieldType": f, "groupName": "g"}
        for n, f in [("hm_ok", "number"), ("hm_bad", "date")]
    ]
    result = client.create_properties_batch("contacts", defs)
    assert [d["name"] for d in result.created] == ["hm_ok"]
    assert list(result.errors) == ["hm_bad"]
    assert "not valid" in result.errors["hm_bad"].message


# ---------------------------------------------------------------------- forms


def test_submit_form_secure_and_public():
    def handler(method, url, json=None, headers=None, **kw):
        return Response.of_json(200, {"inlineMessage": "Thanks"})

    client, transport, _ = make_client(handler)
    answer = client.submit_form(
        None,
        "form-guid",
        {"email": "a@x.com", "hm_last_products": "shoes;bags"},
        {"hutk": "abc123", "pageUri": "https://shop.example/checkout", "pageName": None},
        datetime(2024, 5, 16, tzinfo=timezone.utc),
        legal_consent={"consent": {"consentToProcess": True, "text": "I agree"}},
    )
    assert answer == {"inlineMessage": "Thanks"}
    sent = transport.requests[0]
    assert sent["url"] == "https://forms.test/submissions/v3/integration/secure/submit/42/form-guid"
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert sent["json"] == {
        "fields": [
            {"objectTypeId": "0-1", "name": "email", "value": "a@x.com"},
            {"objectTypeId": "0-1", "name": "hm_last_products", "value": "shoes;bags"},
        ],
        "submittedAt": "1715817600000",
        "context": {"hutk": "abc123", "pageUri": "https://shop.example/checkout"},
        "legalConsentOptions": {"consent": {"consentToProcess": True, "text": "I agree"}},
    }
    client.submit_form(
        "42", "g", [{"objectTypeId": "0-2", "name": "name", "value": "Acme"}], secure=False
    )
    public = transport.requests[1]
    assert public["url"] == "https://forms.test/submissions/v3/integration/submit/42/g"
    assert "Authorization" not in public["headers"]


def test_submit_form_needs_a_portal():
    client, _, _ = make_client(lambda *a, **k: Response.of_json(200, {}), portal_id=None)
    with pytest.raises(HubSpotConfigError, match="HUBSPOT_PORTAL_ID"):
        client.submit_form(None, "g", {"email": "a@x.com"})


def test_form_validation_error_names_fields():
    body = {
        "status": "error",
        "message": "The request is not valid",
        "correlationId": "c",
        "errors": [
            {
                "message": "Error in 'fields.firstname'. Required field 'firstname' is missing",
                "errorType": "REQUIRED_FIELD",
            }
        ],
    }
    client, transport, _ = make_client(lambda *a, **k: Response.of_json(400, body))
    with pytest.raises(HubSpotValidationError) as info:
        client.submit_form("42", "g", {"email": "a@x.com"})
    assert info.value.property_names == ["firstname"]
    assert len(transport.requests) == 1  # 400: not retried


def test_get_form_uses_marketing_v3():
    client, transport, _ = make_client(
        lambda *a, **k: Response.of_json(200, {"id": "g", "fieldGroups": []})
    )
    assert client.get_form("g")["id"] == "g"
    assert transport.requests[0]["path"] == "/marketing/v3/forms/g"


# ---------------------------------------------------------------------- retry decisions


def scripted(*responses):
    queue = list(responses)

    def handler(*args, **kwargs):
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def test_server_errors_retry_with_growing_backoff_then_succeed():
    client, _, sleeps = make_client(
        scripted(
            Response.of_json(502, {}),
            Response(503, {}, b"<html>"),
            Response.of_json(200, {"results": []}),
        ),
        retry=RetryPolicy(max_attempts=5, backoff_base=0.1, jitter=0.0),
    )
    assert client.list_properties() == []
    assert sleeps == [0.1, 0.2]
    stats = client.stats()
    assert (stats.calls, stats.retries, stats.server_errors) == (3, 2, 2)


def test_retry_after_is_honoured_for_5xx():
    client, _, sleeps = make_client(
        scripted(
            Response.of_json(503, {}, {"Retry-After": "3"}), Response.of_json(200, {"results": []})
        )
    )
    client.list_groups()
    assert sleeps == [3.0]


def test_gives_up_after_max_attempts_with_server_error():
    client, transport, _ = make_client(
        scripted(*[Response.of_json(500, {"message": "boom", "correlationId": "z"})] * 3),
        retry=RetryPolicy(max_attempts=3, backoff_base=0.0),
    )
    with pytest.raises(HubSpotServerError) as info:
        client.list_groups()
    assert info.value.attempts == 3 and len(transport.requests) == 3


def test_gives_up_when_total_wait_would_exceed_budget():
    client, transport, sleeps = make_client(
        scripted(Response.of_json(503, {}, {"Retry-After": "60"})),
        retry=RetryPolicy(max_attempts=5, max_total_wait=10.0),
    )
    with pytest.raises(HubSpotServerError):
        client.list_groups()
    assert sleeps == [] and len(transport.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_client_errors_are_not_retried(status):
    client, transport, sleeps = make_client(
        scripted(
            Response.of_json(
                status, {"status": "error", "message": "no", "category": "X", "correlationId": "c"}
            )
        )
    )
    with pytest.raises(HubSpotRejected):
        client.create_property("contacts", {"name": "x"})
    assert len(transport.requests) == 1 and sleeps == []


def test_daily_limit_stops_at_once():
    body = {
        "status": "error",
        "message": "You have reached your daily limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c",
        "policyName": "DAILY",
        "groupName": "g",
    }
    client, transport, _ = make_client(scripted(Response.of_json(429, body)))
    with pytest.raises(DailyLimitReached):
        client.batch_upsert_contacts({"a@x.com": {"firstname": "A"}})
    assert len(transport.requests) == 1
    assert client.stats().rate_limited == 1 and client.stats().retries == 0


def test_secondly_limit_waits_about_a_second():
    body = {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c",
    }
    client, _, sleeps = make_client(
        scripted(Response.of_json(429, body), Response.of_json(200, {"results": []}))
    )
    client.list_groups()
    assert sleeps == [1.0]


def test_dropped_connection_on_post_is_retried():
    client, transport, _ = make_client(
        scripted(
            HubSpotConnectionError("connection failed", method="POST"),
            upsert_echo("POST", "", json={"inputs": [{"id": "a@x.com"}]}),
        )
    )
    result = client.batch_upsert_contacts({"a@x.com": {"firstname": "A"}})
    assert result.result_for("a@x.com") is not None
    assert len(transport.requests) == 2 and client.stats().transport_errors == 1


def test_auth_error_in_a_batch_raises_instead_of_failing_items():
    body = {
        "status": "error",
        "message": "expired",
        "category": "EXPIRED_AUTHENTICATION",
        "correlationId": "c",
    }
    client, transport, _ = make_client(lambda *a, **k: Response.of_json(401, body))
    with pytest.raises(HubSpotAuthError):
        client.batch_upsert_contacts({f"u{i}@x.com": {"firstname": "A"} for i in range(5)})
    assert len(transport.requests) == 1


# ---------------------------------------------------------------------- the token stays secret


def test_token_never_in_repr_errors_or_logs(caplog):
    echo = {
        "status": "error",
        "message": f"Bad token Bearer {TOKEN}",
        "category": "INVALID_AUTHENTICATION",
        "correlationId": "c",
        "errors": [{"message": f"{TOKEN} rejected"}],
    }
    records = []
    client, transport, _ = make_client(lambda *a, **k: Response.of_json(401, echo), records=records)
    caplog.set_level(logging.DEBUG, logger="hubmap.hubspot")
    with pytest.raises(HubSpotAuthError) as info:
        client.list_properties()
    assert transport.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"  # it is sent ...
    assert TOKEN not in str(info.value)  # ... and never shown
    assert TOKEN not in repr(info.value)
    assert TOKEN not in str(info.value.to_dict())
    assert TOKEN not in repr(client)
    assert TOKEN not in caplog.text
    assert "GET /crm/v3/properties/contacts -> 401" in caplog.text
    assert records and all(TOKEN not in str(r) and TOKEN not in repr(r) for r in records)
    assert records[0].method == "GET" and records[0].path == "/crm/v3/properties/contacts"
    assert records[0].status == 401


def test_redirects_are_not_followed():
    client, transport, _ = make_client(
        lambda *a, **k: Response(301, {"Location": "https://elsewhere.example/"}, b"")
    )
    with pytest.raises(HubSpotError) as info:
        client.list_groups()
    assert info.value.status == 301 and len(transport.requests) == 1
