"""`hubmap run` with a forms mapping, end to end over real HTTP: with `--sandbox`, and against a
stand-in where the form was made beforehand (POST /marketing/v3/forms). Each order becomes one
submission carrying the visitor's hutk and the page context; a mapping that writes a field the
form lacks is refused before anything is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from hubmap.sandbox import SandboxConfig, start_sandbox
from tests.conftest import ROOT

TOKEN = "forms-test-token"
PORTAL = "1234567"
PAGE = "https://shop.example/checkout"

MAPPING = """\
version: 1
name: checkout-form
records:
  id: "to_string(id)"
  time: created_at
  contact: email
target:
  kind: forms
  portal_id: "${HUBSPOT_PORTAL_ID}"
  form_guid: "${HUBSPOT_FORM_GUID}"
  context:
    hutk: "note_attributes[?name=='hubspotutk'].value | [0]"
    page_uri: landing_site
    page_name: {value: Checkout}
    ip_address: browser_ip
properties:
  last_order_value:
    type: number
    from: total_price
    decimals: 2
  last_products_bought:
    type: string
    from: "join(';', line_items[].title)"
"""


def checkouts(count: int) -> list[dict]:
    """Recent checkouts (HubSpot refuses submissions back-dated by more than about a month)."""
    now = datetime.now(timezone.utc)
    return [
        {
            "id": 500 + n,
            "email": f"Zoë.{n}@Example.com",
            "created_at": (now - timedelta(hours=n + 1))
            .astimezone(timezone(timedelta(hours=-5)))
            .isoformat(),
            "total_price": f"{10 + n}.5",
            "landing_site": PAGE,
            "browser_ip": f"203.0.113.{n + 1}",
            "note_attributes": [{"name": "hubspotutk", "value": f"{n + 1:032x}"}],
            "line_items": [{"title": "Café crème"}, {"title": "Mug"}],
        }
        for n in range(count)
    ]


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "checkout-form.yaml").write_text(MAPPING, encoding="utf-8")
    (tmp_path / "checkouts.ndjson").write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in checkouts(3)), encoding="utf-8"
    )
    return tmp_path


def hubmap(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    full.update(PYTHONPATH=str(ROOT / "engine"), NO_COLOR="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "hubmap.cli", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run(folder: Path, *extra: str, env: dict[str, str] | None = None):
    return hubmap(
        "run", "checkout-form.yaml", "--input", "checkouts.ndjson", *extra, cwd=folder, env=env
    )


def assert_submissions(submissions: list[dict], form_id: str | None = None) -> None:
    by_email = {
        next(f["value"] for f in s["fields"] if f["name"] == "email"): s for s in submissions
    }
    assert sorted(by_email) == [f"zoë.{n}@example.com" for n in range(3)]
    for n in range(3):
        submission = by_email[f"zoë.{n}@example.com"]
        assert submission["context"] == {
            "hutk": f"{n + 1:032x}",
            "pageUri": PAGE,
            "pageName": "Checkout",
            "ipAddress": f"203.0.113.{n + 1}",
        }
        assert {f["name"]: f["value"] for f in submission["fields"]} == {
            "email": f"zoë.{n}@example.com",
            "last_order_value": f"{10 + n}.50",
            "last_products_bought": "Café crème;Mug",
        }
        if form_id is not None:
            assert submission["formId"] == form_id


def test_sandbox_forms_run_stores_one_submission_per_order_with_its_context(folder):
    result = run(folder, "--sandbox")
    assert result.returncode == 0, result.stderr
    assert "form submissions: 3 sent, 0 failed" in result.stdout
    dumped = hubmap("sandbox", "dump", "--db", "hubmap-state-sandbox.db", cwd=folder)
    assert dumped.returncode == 0, dumped.stderr
    assert_submissions(json.loads(dumped.stdout)["submissions"])

    shown = hubmap(
        "sandbox", "show", "ZOË.1@example.com", "--db", "hubmap-state-sandbox.db", cwd=folder
    )
    contact = json.loads(shown.stdout)
    assert contact["hutks"] == [f"{2:032x}"]
    assert contact["properties"]["last_order_value"] == "11.50"

    again = run(folder, "--sandbox")  # the same orders: nothing is submitted twice
    assert again.returncode == 0, again.stderr
    dumped = json.loads(
        hubmap("sandbox", "dump", "--db", "hubmap-state-sandbox.db", cwd=folder).stdout
    )
    assert len(dumped["submissions"]) == 3
    assert len(dumped["forms"]) == 1  # the sandbox form made by the first run is used again


@pytest.fixture
def sandbox(tmp_path):
    with start_sandbox(tmp_path / "sandbox.db", config=SandboxConfig(token=TOKEN)) as running:
        yield running


def environment(sandbox, form_id: str) -> dict[str, str]:
    return {
        "HUBSPOT_ACCESS_TOKEN": TOKEN,
        "HUBSPOT_API_BASE": sandbox.url,
        "HUBSPOT_FORMS_BASE": sandbox.url,
        "HUBSPOT_PORTAL_ID": PORTAL,
        "HUBSPOT_FORM_GUID": form_id,
    }


def make_form(sandbox, folder: Path, fields: list[str]) -> str:
    """Create the properties (`hubmap apply`), then a form with `fields`, as HubSpot users do."""
    applied = hubmap("apply", "checkout-form.yaml", cwd=folder, env=environment(sandbox, "unused"))
    assert applied.returncode == 0, applied.stderr
    field_types = {
        "email": "email",
        "last_order_value": "number",
        "last_products_bought": "single_line_text",
    }
    response = requests.post(
        f"{sandbox.url}/marketing/v3/forms",
        timeout=10,
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={
            "name": "Checkout",
            "formType": "hubspot",
            "fieldGroups": [
                {
                    "groupType": "default_group",
                    "fields": [
                        {
                            "name": name,
                            "objectTypeId": "0-1",
                            "label": name,
                            "required": name == "email",
                            "fieldType": field_types[name],
                        }
                        for name in fields
                    ],
                }
            ],
        },
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def test_forms_run_against_a_form_made_beforehand(folder, sandbox):
    form_id = make_form(sandbox, folder, ["email", "last_order_value", "last_products_bought"])
    result = run(folder, env=environment(sandbox, form_id))
    assert result.returncode == 0, result.stderr
    dump = requests.get(f"{sandbox.url}/_sandbox/dump", timeout=10).json()
    assert_submissions(dump["submissions"], form_id)


def test_a_field_missing_from_the_form_is_refused_before_sending(folder, sandbox):
    form_id = make_form(sandbox, folder, ["email", "last_order_value"])
    result = run(folder, env=environment(sandbox, form_id))
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr
    line = MAPPING.splitlines().index("  last_products_bought:") + 1
    assert f"checkout-form.yaml:{line}:" in result.stderr
    assert "HM606" in result.stderr and "last_products_bought" in result.stderr
    dump = requests.get(f"{sandbox.url}/_sandbox/dump", timeout=10).json()
    assert dump["submissions"] == [] and dump["contacts"] == []
