"""`hubmap run` end to end: the CLI as a subprocess, over real HTTP, against the local HubSpot
stand-in. Contact values are compared with an independent computation (Decimal, plain Python)
over generated orders; 429 storms and 5xx faults are survived with exact values; the access token
never appears in any output; `--sandbox` works from an empty folder."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from hubmap.sandbox import SandboxConfig, start_sandbox
from tests.conftest import MAPPINGS, ROOT

MAPPING = MAPPINGS / "shopify-orders-contacts.yaml"
TOKEN = "pat-na1-Zq9xUNIQUE7731-test"  # distinctive: searched for in every output
CENTS = Decimal("0.01")
STORM_LIMIT = 3  # requests per second left to the run in the 429 storm
OFFSETS = [
    timezone.utc,
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=9)),
    timezone(timedelta(hours=-9, minutes=-30)),
]
TITLES = ["Café crème", "Ünïcode tee", "漢字 mug", "Socks (3 pairs)", "Zoë's bag", "Crème brûlée"]


# -- orders and what HubSpot must hold after them, computed independently ------------------------


def generate_orders(contacts: int, orders: int, seed: int) -> list[dict]:
    """Shopify-shaped orders, shuffled: mixed-case emails, offsets, refunds, cents, unicode."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    minutes = rng.sample(range(400_000), orders)  # distinct instants: "latest" is unambiguous
    result = []
    for n in range(orders):
        person = rng.randrange(contacts)
        email = f"Kund.{person}@Exämple.com" if person % 3 == 0 else f"kunde{person}@example.com"
        if rng.random() < 0.5:
            email = email.upper() if rng.random() < 0.5 else email.lower()
        moment = (start + timedelta(minutes=minutes[n])).astimezone(rng.choice(OFFSETS))
        items = [
            {
                "sku": f"SKU-{rng.randrange(30)}",
                "title": rng.choice(TITLES),
                "vendor": rng.choice(["Ätna", "Acme"]),
                "price": "1.00",
            }
            for _ in range(rng.randrange(0, 4))
        ]
        order = {
            "id": 10_000 + n,
            "name": f"#{10_000 + n}",
            "email": email,
            "created_at": moment.isoformat(),
            "currency": "USD",
            "financial_status": rng.choice(["paid", "paid", "authorized", "partially_refunded"]),
            "cancelled_at": None,
            "total_price": f"{rng.randrange(1, 40_000) / 100:.2f}",
            "line_items": items,
        }
        if order["financial_status"] == "partially_refunded":
            order["refunds"] = [
                {
                    "id": 90_000 + n,
                    "order_id": 10_000 + n,
                    "transactions": [
                        {
                            "kind": "refund",
                            "status": "success",
                            "amount": "0.05",
                            "currency": "USD",
                        },
                        {
                            "kind": "refund",
                            "status": "failure",
                            "amount": "1.00",
                            "currency": "USD",
                        },
                    ],
                }
            ]
        if rng.random() < 0.05:
            order["cancelled_at"] = moment.isoformat()  # skipped by the mapping
        result.append(order)
    rng.shuffle(result)
    return result


@dataclass
class Expected:
    total: Decimal = Decimal(0)
    count: int = 0
    orders: list[dict] = field(default_factory=list)


def expected_contacts(orders: list[dict]) -> dict[str, dict[str, str]]:
    per_contact: dict[str, Expected] = {}
    for order in orders:
        if order["cancelled_at"] is not None or order["financial_status"] == "voided":
            continue
        contact = per_contact.setdefault(order["email"].strip().lower(), Expected())
        refunded = sum(
            (
                Decimal(t["amount"])
                for r in order.get("refunds", [])
                for t in r["transactions"]
                if t["kind"] == "refund" and t["status"] == "success"
            ),
            Decimal(0),
        )
        contact.total += Decimal(order["total_price"]) - refunded
        contact.count += 1
        contact.orders.append(order)
    result = {}
    for email, contact in per_contact.items():
        newest_first = sorted(
            contact.orders, key=lambda o: datetime.fromisoformat(o["created_at"]), reverse=True
        )
        skus: list[str] = []
        for order in newest_first:
            for item in order["line_items"]:
                if item["sku"] not in skus:
                    skus.append(item["sku"])
        local_dates = [o["created_at"][:10] for o in contact.orders]  # the order's own calendar
        result[email] = {
            "total_value_of_orders": str(contact.total.quantize(CENTS)),
            "total_number_of_orders": str(contact.count),
            "last_order_value": str(Decimal(newest_first[0]["total_price"]).quantize(CENTS)),
            "last_order_date": newest_first[0]["created_at"][:10],
            "first_order_date": min(local_dates),
            "skus_bought": ";".join(skus[:100]) or None,
        }
    return result


def write_ndjson(path: Path, orders: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in orders), encoding="utf-8"
    )
    return path


def stored_contacts(url: str) -> dict[str, dict[str, str | None]]:
    dump = requests.get(f"{url}/_sandbox/dump", timeout=30).json()
    return {c["properties"]["email"]: c["properties"] for c in dump["contacts"]}


def assert_exact(url: str, orders: list[dict]) -> None:
    expected = expected_contacts(orders)
    stored = stored_contacts(url)
    assert sorted(stored) == sorted(expected)
    for email, values in expected.items():
        got = {name: stored[email].get(name) for name in values}
        assert got == values, email


# -- running the CLI ------------------------------------------------------------------------------


def hubmap(
    *args: str,
    cwd: Path,
    token: str | None = TOKEN,
    url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env.update(PYTHONPATH=str(ROOT / "engine"), NO_COLOR="1")
    if token is not None:
        env["HUBSPOT_ACCESS_TOKEN"] = token
    if url is not None:
        env.update(HUBSPOT_API_BASE=url, HUBSPOT_FORMS_BASE=url, HUBSPOT_PORTAL_ID="1234567")
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "hubmap.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run(tmp_path: Path, url: str, orders: Path, *extra: str, token: str | None = TOKEN):
    return hubmap(
        "run",
        str(MAPPING),
        "--input",
        str(orders),
        "--state",
        str(tmp_path / "state.db"),
        "--rejects",
        str(tmp_path / "rejected.ndjson"),
        *extra,
        cwd=tmp_path,
        token=token,
        url=url,
    )


@pytest.fixture
def sandbox(tmp_path):
    with start_sandbox(tmp_path / "sandbox.db", config=SandboxConfig(token=TOKEN)) as running:
        yield running


# -- the tests ------------------------------------------------------------------------------------


def test_contacts_hold_exactly_the_independently_computed_values(tmp_path, sandbox):
    every = generate_orders(contacts=60, orders=1200, seed=1)
    orders, more = every[:900], every[900:]
    result = run(
        tmp_path, sandbox.url, write_ndjson(tmp_path / "orders.ndjson", orders), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    skipped = sum(1 for o in orders if o["cancelled_at"] is not None)
    assert (summary["new"], summary["skipped"], summary["rejected"]) == (
        len(orders) - skipped,
        skipped,
        0,
    )
    assert summary["contacts_created"] == len(expected_contacts(orders))
    assert_exact(sandbox.url, orders)

    # The same file again changes nothing; new orders add to the totals, old ones never twice.
    both = write_ndjson(tmp_path / "both.ndjson", orders + more)
    again = run(tmp_path, sandbox.url, both, "--format", "json")
    assert again.returncode == 0, again.stderr
    # every record of the first file is known now, the cancelled ones too (as withdrawn)
    assert json.loads(again.stdout)["unchanged"] == len(orders)
    assert_exact(sandbox.url, orders + more)


def test_429_storms_and_5xx_faults_are_survived_with_exact_values(tmp_path, sandbox):
    sandbox.configure(rate_limit_max=1000, rate_limit_interval_ms=1000, error_rate=0.2, seed=5)
    orders = generate_orders(contacts=500, orders=900, seed=2)
    path = write_ndjson(tmp_path / "orders.ndjson", orders)
    # Once contacts are being written the portal's budget drops to 3 per second (another app
    # took the rest): the client, still believing in 1000, runs into a storm of 429s.  The drop
    # happens inside the stand-in at the first contacts call, so no timing can let the writes
    # slip through before it.
    admit = sandbox.app._gatekeep

    def storm_from_the_first_contacts_call(route, request, args, config):  # type: ignore[no-untyped-def]
        if "/objects/contacts" in request.path and config.rate_limit_max != STORM_LIMIT:
            config = sandbox.configure(rate_limit_max=STORM_LIMIT)
        return admit(route, request, args, config)

    sandbox.app._gatekeep = storm_from_the_first_contacts_call
    try:
        result = run(tmp_path, sandbox.url, path, "--workers", "8")
    finally:
        sandbox.app._gatekeep = admit
    assert result.returncode == 0, result.stderr
    printed = re.search(
        r"HubSpot calls: (\d+) \((\d+) answered 429, (\d+) retried\)", result.stdout
    )
    assert printed, result.stdout
    calls, rate_limited, retried = map(int, printed.groups())
    assert rate_limited > 0 and retried >= rate_limited, result.stderr
    assert calls >= 4 + 2 * 5  # provisioning, then a read and an upsert per 100 contacts
    assert sandbox.stats()["faults"]["gatewayErrors"] > 0
    sandbox.configure(error_rate=0.0, rate_limit_max=1000)
    assert_exact(sandbox.url, orders)


def _assert_plain(result: subprocess.CompletedProcess[str], token: str) -> str:
    output = result.stdout + result.stderr
    assert token not in output
    assert "Traceback" not in output
    return output


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_the_token_never_appears_in_any_output(tmp_path, sandbox, output_format):
    orders = write_ndjson(tmp_path / "orders.ndjson", generate_orders(5, 20, seed=3))
    ok = run(tmp_path, sandbox.url, orders, "--format", output_format)
    assert ok.returncode == 0, ok.stderr
    _assert_plain(ok, TOKEN)

    wrong = "pat-na1-WRONGtoken-4242-test"
    refused = run(tmp_path, sandbox.url, orders, "--format", output_format, token=wrong)
    assert refused.returncode != 0
    assert "401" in _assert_plain(refused, wrong)

    not_a_url = run(tmp_path, "ftp://nowhere", orders, "--format", output_format)
    assert not_a_url.returncode == 2
    _assert_plain(not_a_url, TOKEN)


def test_an_unreachable_hubspot_is_a_plain_error_after_the_retries(tmp_path):
    orders = write_ndjson(tmp_path / "orders.ndjson", generate_orders(5, 20, seed=3))
    closed_port = "http://127.0.0.1:9"
    unreachable = run(tmp_path, closed_port, orders, "--format", "json")
    assert unreachable.returncode == 2
    assert "HUBSPOT_API_BASE" in _assert_plain(unreachable, TOKEN)


def test_a_missing_token_is_a_plain_configuration_error(tmp_path, sandbox):
    orders = write_ndjson(tmp_path / "orders.ndjson", generate_orders(5, 20, seed=3))
    result = run(tmp_path, sandbox.url, orders, token=None)
    assert result.returncode == 2
    output = _assert_plain(result, TOKEN)
    assert "HUBSPOT_ACCESS_TOKEN" in output
    assert stored_contacts(sandbox.url) == {}


def test_a_wrong_token_stops_run_with_exit_2(tmp_path, sandbox):
    orders = write_ndjson(tmp_path / "orders.ndjson", generate_orders(5, 20, seed=3))
    wrong = "pat-na1-WRONGtoken-4242-test"
    result = run(tmp_path, sandbox.url, orders, token=wrong)
    _assert_plain(result, wrong)
    assert result.returncode == 2


@pytest.mark.parametrize("command", [["apply"], ["validate", "--portal"]])
def test_a_wrong_token_is_plain_for_apply_and_validate_portal(tmp_path, sandbox, command):
    wrong = "pat-na1-WRONGtoken-4242-test"
    refused = hubmap(*command, str(MAPPING), cwd=tmp_path, token=wrong, url=sandbox.url)
    _assert_plain(refused, wrong)
    assert refused.returncode == 2


def test_sandbox_run_from_an_empty_folder_then_show_the_contact(tmp_path):
    orders = generate_orders(contacts=4, orders=30, seed=4)
    path = write_ndjson(tmp_path / "orders.ndjson", orders)
    folder = tmp_path / "empty"
    folder.mkdir()
    result = hubmap("run", str(MAPPING), "--input", str(path), "--sandbox", cwd=folder, token=None)
    assert result.returncode == 0, result.stderr
    assert "hubmap-state-sandbox.db" in result.stdout
    email, values = next(iter(expected_contacts(orders).items()))
    shown = hubmap(
        "sandbox", "show", email.upper(), "--db", "hubmap-state-sandbox.db", cwd=folder, token=None
    )
    assert shown.returncode == 0, shown.stderr
    properties = json.loads(shown.stdout)["properties"]
    assert {name: properties.get(name) for name in values} == values
    missing = hubmap(
        "sandbox",
        "show",
        "nobody@example.com",
        "--db",
        "hubmap-state-sandbox.db",
        cwd=folder,
        token=None,
    )
    assert missing.returncode == 1
