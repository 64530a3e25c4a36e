"""The sandbox's `GET /account-info/v3/details` over real HTTP: the configured portal per sandbox."""

from __future__ import annotations

import requests

from hubmap.sandbox import SandboxConfig, start_sandbox

TOKEN = "test-token"
DETAILS = "/account-info/v3/details"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_account_details_answer_the_configured_portal_and_hubspots_fields() -> None:
    with start_sandbox(config=SandboxConfig(token=TOKEN, portal_id=4242)) as sandbox:
        response = requests.get(sandbox.url + DETAILS, headers=AUTH, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["portalId"] == 4242
    assert {
        key: body[key] for key in body if key not in ("utcOffset", "utcOffsetMilliseconds")
    } == {
        "portalId": 4242,
        "timeZone": "US/Eastern",
        "companyCurrency": "USD",
        "additionalCurrencies": [],
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
        "accountType": "STANDARD",
    }
    assert body["utcOffsetMilliseconds"] in (-18_000_000, -14_400_000)  # EST or EDT
    assert body["utcOffset"] in ("-05:00", "-04:00")
    assert "X-HubSpot-RateLimit-Remaining" in response.headers


def test_two_sandboxes_with_different_portal_ids_each_answer_their_own() -> None:
    with (
        start_sandbox(config=SandboxConfig(token=TOKEN, portal_id=111)) as first,
        start_sandbox(config=SandboxConfig(token=TOKEN, portal_id=222)) as second,
    ):
        assert first.url != second.url
        ids = [
            requests.get(s.url + DETAILS, headers=AUTH, timeout=10).json()["portalId"]
            for s in (first, second)
        ]
    assert ids == [111, 222]


def test_the_portal_id_follows_a_runtime_config_change() -> None:
    with start_sandbox(config=SandboxConfig(token=TOKEN)) as sandbox:
        default = requests.get(sandbox.url + DETAILS, headers=AUTH, timeout=10).json()
        assert default["portalId"] == SandboxConfig().portal_id
        changed = requests.post(sandbox.url + "/_sandbox/config", json={"portal_id": 9}, timeout=10)
        assert changed.status_code == 200
        assert requests.get(sandbox.url + DETAILS, headers=AUTH, timeout=10).json()["portalId"] == 9


def test_the_date_based_path_answers_the_same() -> None:
    with start_sandbox(config=SandboxConfig(token=TOKEN, portal_id=77)) as sandbox:
        response = requests.get(
            sandbox.url + "/account-info/2026-03/details", headers=AUTH, timeout=10
        )
    assert response.status_code == 200 and response.json()["portalId"] == 77


def test_account_details_need_the_bearer_token() -> None:
    with start_sandbox(config=SandboxConfig(token=TOKEN)) as sandbox:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = requests.get(sandbox.url + DETAILS, headers=headers, timeout=10)
            assert response.status_code == 401
            body = response.json()
            assert body["category"] == "INVALID_AUTHENTICATION" and body["correlationId"]
            assert "portalId" not in body


def test_account_details_count_against_the_rate_limit() -> None:
    with start_sandbox(config=SandboxConfig(token=TOKEN, rate_limit_max=1)) as sandbox:
        assert requests.get(sandbox.url + DETAILS, headers=AUTH, timeout=10).status_code == 200
        limited = requests.get(sandbox.url + DETAILS, headers=AUTH, timeout=10)
    assert limited.status_code == 429
    body = limited.json()
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_other_methods_on_account_details_are_refused() -> None:
    with start_sandbox(config=SandboxConfig(token=TOKEN)) as sandbox:
        response = requests.post(sandbox.url + DETAILS, headers=AUTH, json={}, timeout=10)
    assert response.status_code == 405
    assert response.json()["status"] == "error"
