"""Values that used to pass wrong, sink an order or stop a run: each is now a counted order with
a warning, a rejected record with its reason, or one failed contact with its reason.

- A display text longer than HubSpot stores is cut to fit with a warning; the order counts.
- Contact addresses HubSpot would refuse or misfile are rejected with the fix; the NFC and NFD
  spellings of one address are one contact.
- A contact's sum beyond what a HubSpot number holds fails that contact, not the run.
- A record without an id lets the mapping's own `require` speak, else says what it looks like;
  no reason is empty or mostly a long number.
Every test that feeds bad data checks that every record is accounted for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import requests

from hubmap.plan import Plan
from hubmap.sandbox import SandboxConfig, start_sandbox
from hubmap.uses import plan as planning
from tests.conftest import MAPPINGS, ROOT

QUICKSTART = MAPPINGS / "quickstart-contacts.yaml"
SHOPIFY = MAPPINGS / "shopify-orders-contacts.yaml"
TOKEN = "bad-values-token"


def _order(n: object, email: str, total: str = "10.00", **extra: object) -> dict:
    return {
        "order_id": n,
        "placed_at": "2025-03-02T18:30:00+01:00",
        "status": "paid",
        "currency": "EUR",
        "total": total,
        "customer": {"email": email},
        "items": [{"sku": "MUG"}],
        **extra,
    }


def _plan(tmp_path: Path, mapping: Path, records: list[dict]) -> Plan:
    source = tmp_path / "orders.ndjson"
    source.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    plan = planning.plan(str(mapping), str(source)).value
    assert plan is not None
    o = plan.orders
    counted = o.new + o.changed + o.unchanged + o.stale + o.withdrawn
    assert counted + len(plan.skipped) + len(plan.rejected) == len(records)  # none lost
    return plan


def test_a_display_text_longer_than_hubspot_stores_is_cut_and_the_order_counts(tmp_path):
    items = [
        {
            "title": f"Product number {n:05d} of a long catalogue",
            "sku": f"SKU-{n:05d}",
            "price": "1.00",
            "quantity": 1,
        }
        for n in range(10_000)
    ]
    order = {
        "id": 1,
        "email": "big@example.com",
        "created_at": "2024-05-01T10:00:00Z",
        "currency": "USD",
        "financial_status": "paid",
        "total_price": "10000.00",
        "name": "#1",
        "line_items": items,
    }
    plan = _plan(tmp_path, SHOPIFY, [order])
    (contact,) = plan.contacts
    assert contact.values["total_value_of_orders"] == "10000.00"  # the sum still counts
    assert contact.values["total_number_of_orders"] == "1"
    shown = contact.values["last_products_bought"]
    assert len(shown) == 65_536 and shown.endswith("…")
    assert shown.startswith("Product number 00000 of a long catalogue;Product number 00001")
    (warning,) = [w for w in plan.warnings if w.startswith("last_products_bought:")]
    assert "cut to fit" in warning and "the orders still count" in warning


def test_addresses_hubspot_would_refuse_or_misfile_are_rejected_with_the_fix(tmp_path):
    bad = [
        "<ann@example.com>",
        "mailto:ann@example.com",
        "ann\x00@example.com",
        "an\u200bn@example.com",
        "ann\u202e@example.com",
        "x" * 300 + "@example.com",
    ]
    plan = _plan(tmp_path, QUICKSTART, [_order(f"B-{n}", email) for n, email in enumerate(bad)])
    assert not plan.contacts
    reasons = {r.order_id: r.reason for r in plan.rejected}
    assert (
        "write 'ann@example.com'" in reasons["B-0"] and "write 'ann@example.com'" in reasons["B-1"]
    )
    assert "U+0000" in reasons["B-2"] and "ZERO WIDTH SPACE" in reasons["B-3"]
    assert "RIGHT-TO-LEFT OVERRIDE" in reasons["B-4"] and "300 characters" in reasons["B-5"]
    assert all(r.property_name == "email" and r.code == "HM505" for r in plan.rejected)


def test_the_nfc_and_nfd_spellings_of_one_address_are_one_contact(tmp_path):
    nfc = unicodedata.normalize("NFC", "Zoë@Example.com")
    nfd = unicodedata.normalize("NFD", "zoë@example.com")
    assert nfc.lower() != nfd
    plan = _plan(tmp_path, QUICKSTART, [_order("N-1", nfc, "1.10"), _order("N-2", nfd, "2.20")])
    (contact,) = plan.contacts
    assert contact.contact == unicodedata.normalize("NFC", "zoë@example.com")
    assert contact.values["total_value_of_orders"] == "3.30"


def test_a_record_without_an_id_lets_the_mappings_reasons_speak_first(tmp_path):
    refund = {"refund": {"id": 5, "order_id": 7, "amount": "2.00"}}  # not an order at all
    no_id = {**_order(None, "kim@example.com"), "order_id": None}
    plan = _plan(tmp_path, QUICKSTART, [refund, no_id])
    first, second = plan.rejected
    assert first.reason == "the order is not in EUR, the shop's currency"  # its require
    assert second.reason.startswith(
        "the order has no id (records.id gave nothing); the "
        "record has the fields order_id, placed_at, status"
    )


def test_reasons_are_never_empty_nor_mostly_a_number(tmp_path):
    huge = "9" * 400
    plan = _plan(tmp_path, QUICKSTART, [_order("H-1", "kim@example.com", total=huge)])
    (rejected,) = plan.rejected
    assert len(rejected.reason) <= 300 and "a number of 400 digits" in rejected.reason
    assert "9" * 30 not in rejected.reason


def test_a_sum_beyond_a_hubspot_number_fails_that_contact_not_the_run(tmp_path):
    big = "9" * 40 + ".99"  # each order fits; thirty of them do not
    records = [_order(f"S-{n}", "rich@example.com", big) for n in range(30)] + [
        _order("S-ok", "kim@example.com", "5.00")
    ]
    plan = _plan(tmp_path, QUICKSTART, records)
    assert [c.contact for c in plan.contacts] == ["kim@example.com"]
    ((contact, reason),) = plan.unwritable
    assert contact == "rich@example.com" and reason.startswith("total_value_of_orders: ")
    assert "too large" in reason and len(reason) < 300

    with start_sandbox(tmp_path / "stand-in.db", config=SandboxConfig(token=TOKEN)) as sandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
        env.update(
            PYTHONPATH=str(ROOT / "engine"),
            HUBSPOT_ACCESS_TOKEN=TOKEN,
            HUBSPOT_API_BASE=sandbox.url,
            NO_COLOR="1",
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "hubmap.cli",
                "run",
                str(QUICKSTART),
                "--input",
                "orders.ndjson",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        contacts = requests.get(f"{sandbox.url}/_sandbox/dump", timeout=10).json()["contacts"]
    assert done.returncode == 1, done.stderr  # partial: one contact failed
    assert "Traceback" not in done.stderr
    assert "1 created" in done.stdout and "1 failed" in done.stdout
    assert (
        "failed rich@example.com: its values cannot be written: total_value_of_orders"
        in done.stdout
    )
    assert [c["properties"]["email"] for c in contacts] == ["kim@example.com"]
