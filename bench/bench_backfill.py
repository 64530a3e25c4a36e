"""Benchmark: backfill a real transaction history into the local HubSpot stand-in.

Runs `mappings/online-retail-contacts.yaml` over the UCI "Online Retail" per-day CSV files (one
row per line item; `records.group_by` joins each invoice's rows into one order) with the same
library calls as `hubmap run --sandbox`, then prints rows/s, invoices/s, the HubSpot calls made
against the lower bound (provisioning, plus one batch read and one batch upsert per 100
contacts), the peak memory (the process's maximum resident set size), and whether every
customer's values in the stand-in equal an independent computation (csv + Decimal, written
apart from the mapping).  `--scaling` runs itself on growing numbers of days, one process each,
to show whether memory stays flat as the history grows.

    PYTHONPATH=engine python bench/bench_backfill.py [--input FOLDER] [--days N] [--workers 4]
    PYTHONPATH=engine python bench/bench_backfill.py --scaling 30,90,271

Not a test: it prints figures (and exits 1 when a total does not match).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from hubmap.inputs import read_documents
from hubmap.mapping import load_mapping
from hubmap.sandbox import dump
from hubmap.state import StateStore
from hubmap.uses.contacts import SyncOptions
from hubmap.uses.context import connect
from hubmap.uses.run import sync_documents

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "mappings" / "online-retail-contacts.yaml"
DEFAULT_INPUT = ROOT.parent / "shared" / "data" / "online_retail" / "by-day"
BATCH = 100  # HubSpot's batch size: one read and one upsert per this many contacts
# which portal (account details), list properties, list groups, create the group, create properties
PROVISIONING_CALLS = 5
KEY_PROPERTY = "shop_customer_id"


# ------------------------------------------------------------------ independent computation


@dataclass
class Expected:
    """What a customer's contact should hold, computed straight from the CSV rows."""

    value: Decimal = Decimal(0)
    orders: set[str] = field(default_factory=set)
    cancellations: set[str] = field(default_factory=set)
    first_day: str | None = None
    last_day: str | None = None


def expected_per_customer(files: list[Path]) -> tuple[dict[str, Expected], int, int]:
    """Per customer: value (sum of Quantity x UnitPrice, cancellations included), order and
    cancellation invoices, first and last order day; plus the numbers of rows and invoices."""
    customers: dict[str, Expected] = {}
    rows = 0
    invoices: set[str] = set()
    for path in files:
        with path.open(newline="", encoding="utf-8") as stream:
            for row in csv.DictReader(stream):
                rows += 1
                invoice = row["InvoiceNo"]
                invoices.add(invoice)
                if not row["CustomerID"] or invoice.startswith("A"):
                    continue
                customer = str(int(Decimal(row["CustomerID"])))
                entry = customers.setdefault(customer, Expected())
                entry.value += Decimal(row["Quantity"]) * Decimal(row["UnitPrice"])
                if invoice.startswith("C"):
                    entry.cancellations.add(invoice)
                    continue
                entry.orders.add(invoice)
                day = row["InvoiceDate"][:10]
                entry.first_day = min(entry.first_day or day, day)
                entry.last_day = max(entry.last_day or day, day)
    return customers, rows, len(invoices)


def mismatches(expected: dict[str, Expected], contacts: list[dict]) -> list[str]:
    """Differences between the stand-in's contacts and the independent computation."""
    found = {c["properties"].get(KEY_PROPERTY): c["properties"] for c in contacts}
    problems = [f"contact {key} should not exist" for key in found if key not in expected]
    for key, want in expected.items():
        have = found.get(key)
        if have is None:
            problems.append(f"customer {key}: no contact")
            continue
        checks = {
            "total_value_of_orders": (want.value, _number(have.get("total_value_of_orders"))),
            "total_number_of_orders": (
                len(want.orders),
                _number(have.get("total_number_of_orders")) or 0,
            ),
            "total_number_of_cancellations": (
                len(want.cancellations),
                _number(have.get("total_number_of_cancellations")) or 0,
            ),
            "first_order_date": (want.first_day, have.get("first_order_date")),
            "last_order_date": (want.last_day, have.get("last_order_date")),
        }
        for name, (wanted, got) in checks.items():
            if wanted != got:
                problems.append(f"customer {key}: {name} is {got}, expected {wanted}")
    return problems


def _number(text: str | None) -> Decimal | None:
    return Decimal(text) if text not in (None, "") else None


# ------------------------------------------------------------------------------- the run


def day_files(folder: Path, days: int | None) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".csv")
    return files[:days] if days else files


def backfill(files: list[Path], work: Path, workers: int) -> dict:
    """Run the mapping over `files` (as one input folder) into a fresh stand-in."""
    folder = work / "input"
    folder.mkdir()
    for path in files:
        (folder / path.name).symlink_to(path)
    mapping = load_mapping(str(MAPPING))
    sandbox_db = str(work / "sandbox.db")
    state = StateStore(work / "state.db")
    try:
        with connect({}, sandbox=True, sandbox_db=sandbox_db, mapping=mapping) as conn:
            started = time.perf_counter()
            summary = sync_documents(
                mapping,
                conn.client,
                state,
                read_documents(str(folder)),
                environ=conn.environ,
                input_name=str(folder),
                reject_file=str(work / "rejected.ndjson"),
                options=SyncOptions(workers=workers),
            )
            seconds = time.perf_counter() - started
        orders = state.count_orders(state.scopes()[0])
    finally:
        state.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # before the check's own work
    state_bytes = sum(p.stat().st_size for p in work.glob("state.db*"))
    return {
        "summary": summary,
        "seconds": seconds,
        "peak_mib": peak_kib / 1024,
        "contacts": dump(sandbox_db)["contacts"],
        "state_bytes": state_bytes,
        "orders_stored": orders,
    }


def one(args: argparse.Namespace) -> int:
    files = day_files(Path(args.input), args.days)
    with tempfile.TemporaryDirectory(prefix="hubmap-bench-backfill-") as tmp:
        result = backfill(files, Path(tmp), args.workers)
    summary = result["summary"]
    expected, rows, invoices = expected_per_customer(files)
    problems = mismatches(expected, result["contacts"])
    contacts = len(result["contacts"])
    lower_bound = PROVISIONING_CALLS + 2 * math.ceil(contacts / BATCH)
    figures = {
        "days": len(files),
        "rows": rows,
        "invoices": invoices,
        "records": summary.records,
        "new": summary.new,
        "rejected": summary.rejected,
        "skipped": summary.skipped,
        "unchanged": summary.unchanged,
        "contacts": contacts,
        "state_bytes": result["state_bytes"],
        "state_bytes_per_order": round(result["state_bytes"] / max(1, result["orders_stored"])),
        "seconds": round(result["seconds"], 2),
        "rows_per_second": round(rows / result["seconds"]),
        "invoices_per_second": round(invoices / result["seconds"]),
        "calls": summary.calls,
        "calls_lower_bound": lower_bound,
        "peak_rss_mib": round(result["peak_mib"], 1),
        "customers_checked": len(expected),
        "mismatches": len(problems),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"{figures['days']} days, {rows:,} rows, {invoices:,} invoices -> "
            f"{summary.new:,} orders counted, {summary.rejected:,} rejected "
            f"(no CustomerID), {summary.skipped} skipped, {contacts:,} contacts"
        )
        print(
            f"time {figures['seconds']} s: {figures['rows_per_second']:,} rows/s, "
            f"{figures['invoices_per_second']:,} invoices/s"
        )
        print(
            f"HubSpot calls {summary.calls} (lower bound {lower_bound}: "
            f"{PROVISIONING_CALLS} provisioning + 2 x {math.ceil(contacts / BATCH)} batches)"
        )
        print(f"peak memory (max RSS, stand-in in the same process) {figures['peak_rss_mib']} MiB")
        print(
            f"state file {figures['state_bytes']:,} bytes for {result['orders_stored']:,} "
            f"orders: {figures['state_bytes_per_order']:,} bytes per order (all tables)"
        )
        print(
            f"per-customer totals vs independent computation: "
            f"{'all ' + str(len(expected)) + ' match' if not problems else 'MISMATCH'}"
        )
        for problem in problems[:20]:
            print("  " + problem)
    return 1 if problems else 0


def scaling(args: argparse.Namespace) -> int:
    print(f"{'days':>5} {'rows':>8} {'invoices':>8} {'rows/s':>7} {'peak MiB':>9} {'match':>6}")
    status = 0
    for days in (int(d) for d in args.scaling.split(",")):
        command = [
            sys.executable,
            __file__,
            "--input",
            args.input,
            "--days",
            str(days),
            "--workers",
            str(args.workers),
            "--json",
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, env=dict(os.environ), check=False
        )
        if done.returncode not in (0, 1) or not done.stdout.strip():
            print(done.stderr, file=sys.stderr)
            return 2
        f = json.loads(done.stdout.strip().splitlines()[-1])
        status |= done.returncode
        print(
            f"{f['days']:>5} {f['rows']:>8} {f['invoices']:>8} {f['rows_per_second']:>7} "
            f"{f['peak_rss_mib']:>9} {'yes' if not f['mismatches'] else 'NO':>6}"
        )
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT))
    parser.add_argument("--days", type=int, default=None, help="only the first N day files")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--scaling", help="comma-separated day counts, one process each")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not Path(args.input).is_dir():
        print(f"no input folder at {args.input}", file=sys.stderr)
        return 2
    return scaling(args) if args.scaling else one(args)


if __name__ == "__main__":
    sys.exit(main())
