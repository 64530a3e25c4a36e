"""The sandbox's rate limits, injected faults, admin endpoints and file helpers over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hubmap.sandbox import ConfigError, SandboxConfig, dump, show_contact, start_sandbox

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONTACTS = "/crm/v3/objects/contacts"
WINDOW_MS = 200


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def test_rate_limit_counts_down_then_answers_429_like_hubspot(session: requests.Session) -> None:
    config = SandboxConfig(token=TOKEN, rate_limit_max=5, rate_limit_interval_ms=WINDOW_MS)
    with start_sandbox(config=config) as sandbox:
        remaining = []
        for _ in range(5):
            response = session.get(sandbox.url + CONTACTS + "/1", headers=AUTH, timeout=10)
            assert response.status_code == 404
            assert response.headers["X-HubSpot-RateLimit-Max"] == "5"
            assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == str(WINDOW_MS)
            remaining.append(int(response.headers["X-HubSpot-RateLimit-Remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        limited = session.get(sandbox.url + CONTACTS + "/1", headers=AUTH, timeout=10)
        assert limited.status_code == 429
        body = limited.json()
        assert body["status"] == "error"
        assert body["errorType"] == "RATE_LIMIT"
        assert body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert body["correlationId"] and body["groupName"]
        assert "Retry-After" not in limited.headers
        assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        time.sleep(WINDOW_MS / 1000 + 0.05)
        assert (
            session.get(sandbox.url + CONTACTS + "/1", headers=AUTH, timeout=10).status_code == 404
        )
        stats = session.get(sandbox.url + "/_sandbox/stats", timeout=10).json()
        assert stats["rateLimited"] == 1
        assert stats["byEndpoint"]["contacts.read"] == 7
        assert len(stats["requests"]) == 7 and all("at" in r for r in stats["requests"])


def test_daily_limit_answers_429_with_the_daily_policy(session: requests.Session) -> None:
    with start_sandbox(config=SandboxConfig(token=TOKEN, daily_limit=2)) as sandbox:
        for expected in ("1", "0"):
            response = session.get(sandbox.url + CONTACTS + "/1", headers=AUTH, timeout=10)
            assert response.headers["X-HubSpot-RateLimit-Daily-Remaining"] == expected
        limited = session.get(sandbox.url + CONTACTS + "/1", headers=AUTH, timeout=10)
        assert limited.status_code == 429
        assert limited.json()["policyName"] == "DAILY"


def test_the_public_forms_endpoint_has_its_own_budget(session: requests.Session) -> None:
    config = SandboxConfig(
        token=TOKEN, rate_limit_max=2, forms_rate_limit_max=1, rate_limit_interval_ms=10_000
    )
    with start_sandbox(config=config) as sandbox:
        url = f"{sandbox.url}/submissions/v3/integration/submit/{config.portal_id}/nope"
        assert session.post(url, json={}, timeout=10).status_code == 404
        assert session.post(url, json={}, timeout=10).status_code == 429
        assert (
            session.get(sandbox.url + CONTACTS + "/1", headers=AUTH, timeout=10).status_code == 404
        )


def _statuses(error_rate: float, seed: int, count: int) -> list[int]:
    config = SandboxConfig(token=TOKEN, error_rate=error_rate, seed=seed)
    with start_sandbox(config=config) as sandbox, requests.Session() as session:
        return [
            session.get(sandbox.url + CONTACTS + "/1", headers=AUTH, timeout=10).status_code
            for _ in range(count)
        ]


def test_injected_gateway_errors_follow_the_rate_and_the_seed() -> None:
    statuses = _statuses(0.3, seed=7, count=200)
    faults = [s for s in statuses if s in (502, 503)]
    assert 35 <= len(faults) <= 85
    assert set(statuses) <= {404, 502, 503} and 502 in faults and 503 in faults
    assert _statuses(0.3, seed=7, count=200) == statuses
    assert _statuses(0.3, seed=8, count=200) != statuses


def test_an_injected_fault_has_a_hubspot_like_body_and_is_counted(
    session: requests.Session,
) -> None:
    config = SandboxConfig(token=TOKEN, error_rate=1.0, seed=1)
    with start_sandbox(config=config) as sandbox:
        response = session.post(
            sandbox.url + CONTACTS,
            json={"properties": {"email": "a@x.com"}},
            headers=AUTH,
            timeout=10,
        )
        assert response.status_code in (502, 503)
        body = response.json()
        assert body["status"] == "error" and body["category"] and body["correlationId"]
        stats = session.get(sandbox.url + "/_sandbox/stats", timeout=10).json()
        assert stats["faults"]["gatewayErrors"] == 1
        assert sandbox.store.find_contact_by_email("a@x.com") is None  # nothing was done


def test_drop_after_write_commits_but_sends_no_response(session: requests.Session) -> None:
    config = SandboxConfig(token=TOKEN, drop_after_write_rate=1.0, seed=3)
    with start_sandbox(config=config) as sandbox:
        with pytest.raises(requests.ConnectionError):
            session.post(
                sandbox.url + CONTACTS,
                json={"properties": {"email": "a@x.com"}},
                headers=AUTH,
                timeout=10,
            )
        # reads are never dropped
        read = session.get(
            sandbox.url + CONTACTS + "/a@x.com?idProperty=email", headers=AUTH, timeout=10
        )
        assert read.status_code == 200
        assert (
            session.get(sandbox.url + "/_sandbox/stats", timeout=10).json()["faults"][
                "droppedAfterWrite"
            ]
            == 1
        )


def test_admin_config_changes_settings_at_runtime(session: requests.Session) -> None:
    with start_sandbox(config=SandboxConfig(token=TOKEN)) as sandbox:
        changed = session.post(
            sandbox.url + "/_sandbox/config",
            timeout=10,
            json={"rate_limit_max": 1, "rate_limit_interval_ms": 60_000},
        )
        assert changed.json()["rate_limit_max"] == 1
        assert sandbox.config.rate_limit_max == 1
        assert (
            session.get(sandbox.url + CONTACTS + "/1", headers=AUTH, timeout=10).status_code == 404
        )
        assert (
            session.get(sandbox.url + CONTACTS + "/1", headers=AUTH, timeout=10).status_code == 429
        )
        bad = session.post(sandbox.url + "/_sandbox/config", json={"nope": 1}, timeout=10)
        assert bad.status_code == 400
        bad = session.post(sandbox.url + "/_sandbox/config", json={"error_rate": 2}, timeout=10)
        assert bad.status_code == 400
        assert session.get(sandbox.url + "/_sandbox/config", timeout=10).json()["token"] == TOKEN


def test_admin_reset_forgets_data_and_counts(session: requests.Session) -> None:
    with start_sandbox(config=SandboxConfig(token=TOKEN)) as sandbox:
        session.post(
            sandbox.url + CONTACTS,
            json={"properties": {"email": "a@x.com"}},
            headers=AUTH,
            timeout=10,
        )
        assert len(session.get(sandbox.url + "/_sandbox/dump", timeout=10).json()["contacts"]) == 1
        assert session.post(sandbox.url + "/_sandbox/reset", timeout=10).status_code == 200
        dumped = session.get(sandbox.url + "/_sandbox/dump", timeout=10).json()
        assert dumped["contacts"] == [] and dumped["submissions"] == []
        assert session.get(sandbox.url + "/_sandbox/stats", timeout=10).json()["total"] == 0
        names = [
            p["name"]
            for p in session.get(
                sandbox.url + "/crm/v3/properties/contacts", headers=AUTH, timeout=10
            ).json()["results"]
        ]
        assert "email" in names


def test_latency_is_added(session: requests.Session) -> None:
    with start_sandbox(config=SandboxConfig(token=TOKEN, latency_ms=100)) as sandbox:
        started = time.monotonic()
        session.get(sandbox.url + CONTACTS + "/1", headers=AUTH, timeout=10)
        assert time.monotonic() - started >= 0.1


def test_show_contact_and_dump_read_a_database_file(
    tmp_path: Path, session: requests.Session
) -> None:
    db = tmp_path / "portal.sqlite3"
    with start_sandbox(db, config=SandboxConfig(token=TOKEN)) as sandbox:
        session.post(
            sandbox.url + CONTACTS,
            json={"properties": {"email": "a@x.com", "city": "Rome"}},
            headers=AUTH,
            timeout=10,
        )
    contact = show_contact(db, "A@X.com")
    assert contact is not None and contact["properties"]["city"] == "Rome"
    assert show_contact(db, "nobody@x.com") is None
    assert [c["properties"]["email"] for c in dump(db)["contacts"]] == ["a@x.com"]
    with start_sandbox(db, config=SandboxConfig(token=TOKEN)) as sandbox:  # data persists
        assert (
            session.get(
                sandbox.url + CONTACTS + "/a@x.com?idProperty=email", headers=AUTH, timeout=10
            ).status_code
            == 200
        )
    with pytest.raises(FileNotFoundError):
        dump(tmp_path / "missing.sqlite3")


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ConfigError):
        SandboxConfig(error_rate=1.5)
    with pytest.raises(ConfigError):
        SandboxConfig().with_changes({"max_batch": "100"})
