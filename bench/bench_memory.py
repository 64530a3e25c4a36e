"""Benchmark: memory of `hubmap plan` and `hubmap run`, and the state's size, as the shop grows.

For each point (orders / contacts) it writes realistic Shopify orders (`bench_plan.generate`:
line items, refunds, a few rejected and skipped orders) as one NDJSON file, then runs, each in a
process of its own, `hubmap plan --format json` (output to /dev/null) and `hubmap run` into a
fresh state, against the local HubSpot stand-in served by this process (no rate limit), and
prints per command its peak memory (the child's maximum resident set size, from wait4) and its
CPU seconds; and the state file's bytes per contact (the contacts table with its indexes) and per
order (orders and refunds with their indexes), from SQLite's dbstat.  Several points make a
scaling row: flat memory shows as the same peak at every size.

Targets (exit 1 when one is missed): peak RSS of `plan` and of `run` at most 300 MiB at every
point (the issue's point is 1,000,000 orders / 250,000 contacts), and at most 2 KiB per contact
in the state (the per-order versions come on top, shown per order).

    PYTHONPATH=engine python bench/bench_memory.py [--orders 20000,60000] [--contacts N,M]
    PYTHONPATH=engine python bench/bench_memory.py --orders 1000000 --contacts 250000

`--contacts` defaults to a quarter of each orders figure.  With `--existing` the contacts
already exist in HubSpot, written by this state: a first run takes the first half of the
orders (not measured), and the run measured takes them all - as a daily run over a shop's
history, its early reads answer records with values and fences (held in memory until they are
written), and its writes update them.  Not a test: it prints figures.

    PYTHONPATH=engine python bench/bench_memory.py --orders 300000 --existing
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hubmap.sandbox import SandboxConfig, start_sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_plan import generate  # the same orders as the plan benchmark

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "mappings" / "shopify-orders-contacts.yaml"
TOKEN = "bench-token"
UNLIMITED = 1_000_000  # requests per window: the stand-in and the client never wait
TARGET_PEAK_MIB = 300
TARGET_BYTES_PER_CONTACT = 2048
CONTACT_PARTS = ("contacts", "sqlite_autoindex_contacts_1", "contacts_dirty_key", "contacts_record")
ORDER_PARTS = (
    "orders",
    "sqlite_autoindex_orders_1",
    "orders_contact_status",
    "refunds",
    "sqlite_autoindex_refunds_1",
    "refunds_order",
)


@dataclass
class Child:
    """One command in its own process."""

    exit_code: int
    peak_mib: float
    cpu_seconds: float
    wall_seconds: float


def run_child(args: list[str], env: dict[str, str], stdout: int | None = None) -> Child:
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "hubmap.cli", *args],
        env=env,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Child(
        process.returncode,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        time.monotonic() - started,
    )


def write_orders(path: Path, orders: int, contacts: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for order in generate(orders, contacts):
            out.write(json.dumps(order, default=str) + "\n")


def state_sizes(path: Path) -> dict[str, float]:
    """Bytes per contact (contacts and their indexes) and per order (orders, refunds and their
    indexes), and the whole file per contact."""
    db = sqlite3.connect(path)
    try:
        pages = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        contacts = db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] or 1
        orders = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] or 1
    finally:
        db.close()
    return {
        "contacts": contacts,
        "orders": orders,
        "per_contact": sum(pages.get(n, 0) for n in CONTACT_PARTS) / contacts,
        "per_order": sum(pages.get(n, 0) for n in ORDER_PARTS) / orders,
        "file_per_contact": sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        / contacts,
    }


def measure(orders: int, contacts: int, work: Path, existing: bool = False) -> dict[str, object]:
    source = work / f"orders-{orders}.ndjson"
    write_orders(source, orders, contacts)
    history = None
    if existing:  # the first half: what an earlier run counted and wrote
        history = work / f"history-{orders}.ndjson"
        with source.open(encoding="utf-8") as every, history.open("w", encoding="utf-8") as out:
            for number, line in enumerate(every):
                if number >= orders // 2:
                    break
                out.write(line)
    # a stand-in of its own: the contacts of another point carry another state's fences
    sandbox = start_sandbox(
        work / f"sandbox-{orders}.db",
        config=SandboxConfig(token=TOKEN, rate_limit_max=UNLIMITED, daily_limit=10 * UNLIMITED),
    )
    try:
        plan, run = _commands(source, work, sandbox.url, orders, history)
    finally:
        sandbox.stop()
    sizes = state_sizes(work / f"state-{orders}.db")
    source.unlink()
    if history is not None:
        history.unlink()
    return {"orders": orders, "contacts": contacts, "plan": plan, "run": run, **sizes}


def _commands(
    source: Path, work: Path, url: str, orders: int, history: Path | None = None
) -> tuple[Child, Child]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "engine"),
        "HUBSPOT_ACCESS_TOKEN": TOKEN,
        "HUBSPOT_API_BASE": url,
        "HUBSPOT_FORMS_BASE": url,
        "HUBSPOT_RATE_LIMIT_MAX": str(UNLIMITED),
    }
    with open(os.devnull, "wb") as sink:
        plan = run_child(
            ["plan", str(MAPPING), "--input", str(source), "--format", "json"],
            env,
            stdout=sink.fileno(),
        )
    state = work / f"state-{orders}.db"
    for orders_in in ([history] if history is not None else []) + [source]:
        run = run_child(
            [
                "run",
                str(MAPPING),
                "--input",
                str(orders_in),
                "--state",
                str(state),
                "--rejects",
                str(work / f"rejected-{orders}.ndjson"),
                "--format",
                "json",
            ],
            env,
        )
        if orders_in is history and run.exit_code not in (0, 1):
            raise SystemExit(f"the first run (the history) exited {run.exit_code}")
    return plan, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", default="20000,60000", help="comma-separated points")
    parser.add_argument("--contacts", default=None, help="per point (default: orders / 4)")
    parser.add_argument("--work", default=None, help="folder for the files (default: temporary)")
    parser.add_argument(
        "--existing",
        action="store_true",
        help="the contacts exist in HubSpot, written by a first run over the "
        "first half of the orders; the second run, over all, is measured",
    )
    args = parser.parse_args(argv)
    points = [int(n) for n in args.orders.split(",")]
    contacts = (
        [int(n) for n in args.contacts.split(",")]
        if args.contacts
        else [max(1, n // 4) for n in points]
    )
    if len(contacts) != len(points):
        parser.error("--contacts needs one figure per --orders point")

    with tempfile.TemporaryDirectory(prefix="hubmap-bench-memory-", dir=args.work) as folder:
        rows = []
        for orders, people in zip(points, contacts):
            rows.append(measure(orders, people, Path(folder), args.existing))
            _print_row(rows[-1], header=len(rows) == 1)

    failed = []
    for row in rows:
        for name in ("plan", "run"):
            child: Child = row[name]  # type: ignore[assignment]
            if child.exit_code not in (0, 1):  # 1: some records were rejected, as expected
                failed.append(f"{name} of {row['orders']} orders exited {child.exit_code}")
            if child.peak_mib > TARGET_PEAK_MIB:
                failed.append(
                    f"{name} of {row['orders']} orders peaked at "
                    f"{child.peak_mib:.0f} MiB (target {TARGET_PEAK_MIB})"
                )
        if float(row["per_contact"]) > TARGET_BYTES_PER_CONTACT:  # type: ignore[arg-type]
            failed.append(
                f"the state of {row['orders']} orders holds "
                f"{row['per_contact']:.0f} bytes per contact "
                f"(target {TARGET_BYTES_PER_CONTACT})"
            )
    for reason in failed:
        print(f"MISSED: {reason}")
    if not failed:
        print(
            f"targets met: peak RSS <= {TARGET_PEAK_MIB} MiB, state <= "
            f"{TARGET_BYTES_PER_CONTACT} bytes per contact"
        )
    return 1 if failed else 0


def _print_row(row: dict[str, object], header: bool) -> None:
    if header:
        print(
            f"{'orders':>9} {'contacts':>9} | {'plan MiB':>8} {'cpu s':>7} | "
            f"{'run MiB':>8} {'cpu s':>7} {'wall s':>7} | {'B/contact':>9} {'B/order':>8} "
            f"{'file B/contact':>14}"
        )
    plan: Child = row["plan"]  # type: ignore[assignment]
    run: Child = row["run"]  # type: ignore[assignment]
    print(
        f"{row['orders']:>9,} {row['contacts']:>9,} | {plan.peak_mib:>8.0f} "
        f"{plan.cpu_seconds:>7.1f} | {run.peak_mib:>8.0f} {run.cpu_seconds:>7.1f} "
        f"{run.wall_seconds:>7.1f} | {row['per_contact']:>9.0f} {row['per_order']:>8.0f} "
        f"{row['file_per_contact']:>14.0f}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
