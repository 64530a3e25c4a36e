"""Property provisioning end to end, over real HTTP against the local HubSpot stand-in: what
`hubmap run` / `hubmap apply` create (types, field types, options, group) and when, what they
refuse (a property of another type: nothing written at all), and `hubmap validate --portal`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from hubmap.sandbox import SandboxConfig, start_sandbox
from tests.conftest import ROOT

TOKEN = "provisioning-test-token"
GROUP = "shop_orders"

MAPPING = """\
version: 1
name: provisioning
records:
  id: "to_string(id)"
  time: created_at
  contact: email
target:
  kind: contacts
  match_on: email
group:
  name: shop_orders
  label: Shop orders
properties:
  lifetime_value:
    type: number
    from: total
    merge: sum
    decimals: 2
  first_order_date:
    type: date
    from: created_at
    merge: min
  last_order_at:
    type: datetime
    from: created_at
    merge: max
  vip:
    type: bool
    from: vip
  tier:
    type: enumeration
    options: [gold, {value: silver, label: Silver}, bronze]
    from: tier
  colours:
    type: enumeration
    multiple: true
    options: [red, green]
    from: "items[].colour"
    merge: prepend
  skus_bought:
    type: string
    from: "items[].sku"
    merge: prepend
"""
# name -> (type, fieldType) HubSpot must hold after provisioning
EXPECTED_TYPES = {
    "lifetime_value": ("number", "number"),
    "first_order_date": ("date", "date"),
    "last_order_at": ("datetime", "date"),
    "vip": ("bool", "booleancheckbox"),
    "tier": ("enumeration", "select"),
    "colours": ("enumeration", "checkbox"),
    "skus_bought": ("string", "textarea"),
}
FENCE = "hubmap_fence_provisioning"  # the mapping's fence: which state wrote a contact
ORDERS = [
    {
        "id": 1,
        "email": "Ann@Example.com",
        "created_at": "2024-05-01T10:00:00+02:00",
        "total": "10.10",
        "vip": True,
        "tier": "gold",
        "items": [{"sku": "A", "colour": "red"}],
    },
    {
        "id": 2,
        "email": "bob@example.com",
        "created_at": "2024-05-02T10:00:00Z",
        "total": "5.00",
        "vip": False,
        "tier": "silver",
        "items": [{"sku": "B", "colour": "green"}],
    },
]


@pytest.fixture
def sandbox(tmp_path):
    with start_sandbox(tmp_path / "sandbox.db", config=SandboxConfig(token=TOKEN)) as running:
        yield running


@pytest.fixture
def mapping(tmp_path) -> Path:
    path = tmp_path / "provisioning.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    (tmp_path / "orders.ndjson").write_text(
        "".join(json.dumps(o) + "\n" for o in ORDERS), encoding="utf-8"
    )
    return path


def hubmap(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env.update(
        PYTHONPATH=str(ROOT / "engine"),
        HUBSPOT_ACCESS_TOKEN=TOKEN,
        HUBSPOT_API_BASE=url,
        HUBSPOT_FORMS_BASE=url,
        NO_COLOR="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "hubmap.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run(mapping: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return hubmap(
        "run",
        str(mapping),
        "--input",
        str(mapping.parent / "orders.ndjson"),
        "--state",
        str(mapping.parent / "state.db"),
        *extra,
        url=url,
        cwd=mapping.parent,
    )


def api(sandbox, method: str, path: str, body=None) -> requests.Response:
    return requests.request(
        method,
        sandbox.url + path,
        json=body,
        timeout=10,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


def custom_properties(sandbox) -> dict[str, dict]:
    dump = requests.get(sandbox.url + "/_sandbox/dump", timeout=10).json()
    return {p["name"]: p for p in dump["properties"]}


def contacts(sandbox) -> list[dict]:
    return requests.get(sandbox.url + "/_sandbox/dump", timeout=10).json()["contacts"]


def test_run_creates_the_properties_first_with_their_types_in_the_group(sandbox, mapping):
    result = run(mapping, sandbox.url, "--format", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert sorted(summary["properties_created"]) == sorted([*EXPECTED_TYPES, FENCE])

    # Every property call came before the first contact call.
    endpoints = [r["endpoint"] for r in sandbox.stats()["requests"]]
    first_contact = next(i for i, e in enumerate(endpoints) if e.startswith("contacts."))
    assert "properties.batch_create" in endpoints[:first_contact]
    assert all(not e.startswith(("properties.", "groups.")) for e in endpoints[first_contact:])

    made = custom_properties(sandbox)
    assert {name: (p["type"], p["fieldType"]) for name, p in made.items()} == {
        **EXPECTED_TYPES,
        FENCE: ("string", "textarea"),
    }
    assert {p["groupName"] for p in made.values()} == {GROUP}
    groups = api(sandbox, "GET", "/crm/v3/properties/contacts/groups").json()["results"]
    assert {"name": GROUP, "label": "Shop orders"}.items() <= next(
        g for g in groups if g["name"] == GROUP
    ).items()
    assert [o["value"] for o in made["tier"]["options"]] == ["gold", "silver", "bronze"]
    assert made["tier"]["options"][1]["label"] == "Silver"
    assert [o["value"] for o in made["colours"]["options"]] == ["red", "green"]
    ann = next(c for c in contacts(sandbox) if c["properties"]["email"] == "ann@example.com")
    assert ann["properties"]["tier"] == "gold"
    assert ann["properties"]["vip"] == "true"
    assert ann["properties"]["first_order_date"] == "2024-05-01"


def test_a_second_run_creates_nothing(sandbox, mapping):
    assert run(mapping, sandbox.url).returncode == 0
    before = len(sandbox.stats()["requests"])
    second = run(mapping, sandbox.url, "--format", "json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["properties_created"] == []
    later = [r["endpoint"] for r in sandbox.stats()["requests"][before:]]
    assert later and not [
        e
        for e in later
        if e.startswith(("properties.", "groups.")) and not e.endswith((".list", ".get"))
    ]


def test_missing_enumeration_options_are_added_and_existing_ones_kept(sandbox, mapping):
    created = api(
        sandbox,
        "POST",
        "/crm/v3/properties/contacts",
        {
            "name": "tier",
            "label": "Tier",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": "contactinformation",
            "options": [
                {"label": "Platinum", "value": "platinum", "displayOrder": 0},
                {"label": "Gold", "value": "gold", "displayOrder": 1},
            ],
        },
    )
    assert created.status_code == 201, created.text

    result = hubmap("apply", str(mapping), url=sandbox.url, cwd=mapping.parent)
    assert result.returncode == 0, result.stderr
    assert "tier" in result.stdout  # "added options to tier"
    options = [o["value"] for o in custom_properties(sandbox)["tier"]["options"]]
    assert options == ["platinum", "gold", "silver", "bronze"]
    again = hubmap("apply", str(mapping), url=sandbox.url, cwd=mapping.parent)
    assert again.returncode == 0 and "added options" not in again.stdout


def test_a_property_of_another_type_is_refused_and_nothing_is_written(sandbox, mapping):
    created = api(
        sandbox,
        "POST",
        "/crm/v3/properties/contacts",
        {
            "name": "lifetime_value",
            "label": "Lifetime value",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
        },
    )
    assert created.status_code == 201, created.text

    result = run(mapping, sandbox.url)
    # The portal refused and nothing was written: exit 1, as for a refused `hubmap apply`.
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    line = MAPPING.splitlines().index("  lifetime_value:") + 1
    assert re.search(
        rf"provisioning\.yaml:{line}:\d+: error HM601 .*'lifetime_value'.*string", result.stderr
    ), result.stderr
    assert contacts(sandbox) == []
    assert list(custom_properties(sandbox)) == ["lifetime_value"]
    groups = api(sandbox, "GET", "/crm/v3/properties/contacts/groups").json()["results"]
    assert GROUP not in {g["name"] for g in groups}
    writes = [
        r
        for r in sandbox.stats()["requests"]
        if r["method"] != "GET" and r["endpoint"] != "properties.create"
    ]
    assert writes == []


def test_validate_portal_reports_a_type_clash_with_its_position(sandbox, mapping):
    api(
        sandbox,
        "POST",
        "/crm/v3/properties/contacts",
        {
            "name": "first_order_date",
            "label": "First order",
            "type": "number",
            "fieldType": "number",
            "groupName": "contactinformation",
        },
    )
    result = hubmap("validate", "--portal", str(mapping), url=sandbox.url, cwd=mapping.parent)
    assert result.returncode == 1, result.stderr
    line = MAPPING.splitlines().index("  first_order_date:") + 1
    assert re.search(
        rf"provisioning\.yaml:{line}:\d+: error HM601 .*first_order_date", result.stdout
    ), result.stdout
    assert len(custom_properties(sandbox)) == 1  # validate writes nothing


def test_validate_portal_reports_missing_properties_as_warnings(sandbox, mapping):
    result = hubmap(
        "validate",
        "--portal",
        "--format",
        "json",
        str(mapping),
        url=sandbox.url,
        cwd=mapping.parent,
    )
    assert result.returncode == 0, result.stderr
    problems = json.loads(result.stdout)
    problems = problems["problems"] if isinstance(problems, dict) else problems
    missing = {p["code"] for p in problems}
    assert missing == {"HM603"}
    assert len(problems) == len(EXPECTED_TYPES)
    assert all(p["severity"] == "warning" for p in problems)
    assert custom_properties(sandbox) == {}


@pytest.mark.parametrize("wording", ["conflict", "validation"])
def test_a_lost_answer_to_the_batch_create_is_not_a_failure(
    tmp_path, mapping, monkeypatch, wording
):
    """The stand-in creates the properties but drops its answer (seed 0 drops that one write);
    the client sends the batch again and hears "already exists" (as a 409 conflict, or in a
    validation error's words, as HubSpot may say it).  hubmap reads the definitions again: they
    are there, with the right types, so apply succeeds and says they were created."""
    from hubmap.sandbox import errors
    from hubmap.sandbox.properties import Properties

    if wording == "validation":
        monkeypatch.setattr(
            Properties,
            "_taken",
            staticmethod(
                lambda name: errors.validation_error(f"Property named '{name}' already exists.")
            ),
        )
    config = SandboxConfig(token=TOKEN, drop_after_write_rate=0.5, seed=0)
    with start_sandbox(tmp_path / "lossy.db", config=config) as lossy:
        done = hubmap("apply", str(mapping), url=lossy.url, cwd=tmp_path)
        stats = lossy.app.stats.snapshot()
        made = custom_properties(lossy)
    assert done.returncode == 0, done.stderr
    assert "HM605" not in done.stdout + done.stderr
    assert re.search(r"created \d+ propert", done.stdout) and "created 0" not in done.stdout
    assert {"lifetime_value", "first_order_date", "skus_bought"} <= set(made)
    assert made["first_order_date"]["type"] == "date"
    assert stats["faults"]["droppedAfterWrite"] >= 1  # an answer was lost indeed
    assert stats["byEndpoint"].get("properties.batch_create", 0) >= 2  # and the batch sent again
