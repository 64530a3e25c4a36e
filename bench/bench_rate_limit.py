"""Benchmark: how close `hubmap run` gets to HubSpot's rate limit without tripping it.

Syncs thousands of new contacts (one batch read and one batch upsert per 100) into the local
HubSpot stand-in, served by a process of its own, under a tight rolling limit, then prints the
calls made against the lower bound, the 429s and their share of the calls, and how much of the
allowed rate the run used. Targets: at least 95 % of the allowed rate, 429s at most 1 % of calls.

    PYTHONPATH=engine python bench/bench_rate_limit.py [--contacts 5000] [--orders-per-contact 1]
        [--rate-limit 50] [--interval-ms 5000] [--workers 4] [--latency-ms 0]

The client's limiter holds each request's slot until one window after its answer (it never risks
a 429), so every window costs about one round trip: the share used is roughly
window / (window + round trip + 1 %). The default window (5 s) keeps that ratio near HubSpot's
(10 s windows, round trips of 100-300 ms); a 1 s window shows the cost tenfold.

Not a test: it prints figures, and exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from hubmap.hubspot import HubSpotClient, HubSpotSettings, RequestRecord
from hubmap.inputs import read_documents
from hubmap.mapping import load_mapping
from hubmap.state import StateStore
from hubmap.uses.contacts import SyncOptions
from hubmap.uses.run import sync_documents

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "mappings" / "shopify-orders-contacts.yaml"
TOKEN = "bench-token"
BATCH = 100  # HubSpot's batch size: one read and one upsert per this many contacts
# which portal (account details), list properties, list groups, create the group, create properties
PROVISIONING_CALLS = 5
TARGET_RATE_SHARE = 0.95
TARGET_429_SHARE = 0.01
STARTUP_SECONDS = 10.0


def write_orders(path: Path, contacts: int, per_contact: int, seed: int = 7) -> int:
    """NDJSON orders in Shopify's shape, shuffled; returns how many were written."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    orders = []
    for c in range(contacts):
        for n in range(per_contact):
            orders.append({
                "id": c * per_contact + n + 1,
                "name": f"#{c * per_contact + n + 1}",
                "email": f"Customer{c}@Example.com",
                "created_at": (start + timedelta(minutes=rng.randrange(500_000))).isoformat(),
                "currency": "USD",
                "financial_status": "paid",
                "cancelled_at": None,
                "total_price": f"{rng.randrange(100, 50_000) / 100:.2f}",
                "line_items": [{"sku": f"SKU-{rng.randrange(40)}", "title": "Item",
                                "vendor": "Acme", "price": "1.00"}],
            })
    rng.shuffle(orders)
    with path.open("w", encoding="utf-8") as out:
        for order in orders:
            out.write(json.dumps(order) + "\n")
    return len(orders)


@contextmanager
def sandbox_process(db_path: Path, config: dict[str, Any]) -> Iterator[str]:
    """The stand-in in a process of its own (as HubSpot is), configured; yields its address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "hubmap.cli", "sandbox", "--port", str(port), "--db", str(db_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "engine")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                requests.post(f"{url}/_sandbox/config", json=config, timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the stand-in did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class SendTimes:
    """When each attempt was sent (its answer time minus its round trip), by path."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str]] = []

    def __call__(self, record: RequestRecord) -> None:
        self.sent.append((time.monotonic() - record.elapsed, record.path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--orders-per-contact", type=int, default=1)
    parser.add_argument("--rate-limit", type=int, default=50, help="requests per window")
    parser.add_argument("--interval-ms", type=int, default=5000, help="the rolling window")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=0, help="added by the stand-in")
    args = parser.parse_args(argv)
    mapping = load_mapping(str(MAPPING))
    times = SendTimes()

    with tempfile.TemporaryDirectory(prefix="hubmap-bench-") as folder:
        orders_path = Path(folder) / "orders.ndjson"
        orders = write_orders(orders_path, args.contacts, args.orders_per_contact)
        config = {"token": TOKEN, "rate_limit_max": args.rate_limit,
                  "rate_limit_interval_ms": args.interval_ms, "latency_ms": args.latency_ms}
        with sandbox_process(Path(folder) / "sandbox.db", config) as url:
            settings = HubSpotSettings.from_env({"HUBSPOT_ACCESS_TOKEN": TOKEN,
                                                 "HUBSPOT_API_BASE": url,
                                                 "HUBSPOT_FORMS_BASE": url})
            state = StateStore(Path(folder) / "state.db")
            started = time.monotonic()
            with HubSpotClient(settings, on_request=times) as client:
                summary = sync_documents(mapping, client, state,
                                         read_documents(str(orders_path)), environ={},
                                         input_name=str(orders_path),
                                         options=SyncOptions(workers=args.workers))
            wall = time.monotonic() - started
            state.close()
            served = requests.get(f"{url}/_sandbox/stats", timeout=10).json()
            stored = len(requests.get(f"{url}/_sandbox/dump", timeout=60).json()["contacts"])

    # The write phase: from the first contact call (after provisioning and the local counting).
    sends = sorted(at for at, path in times.sent if "/objects/" in path)
    write_calls = len(sends)
    span = sends[-1] - sends[0] if write_calls > 1 else 0.0
    rate = args.rate_limit / (args.interval_ms / 1000)  # allowed requests per second
    calls = summary.calls
    batches = math.ceil(args.contacts / BATCH)
    lower_bound = PROVISIONING_CALLS + 2 * batches
    rate_limited = served["rateLimited"]
    # A rolling window lets call k + max go no sooner than one window after call k: the mean of
    # those gaps against the window is the share of the allowed rate used (bursts, the local
    # work between a batch's read and its upsert, and the tail of the run do not distort it).
    window = args.interval_ms / 1000
    gaps = [sends[k + args.rate_limit] - sends[k] for k in range(write_calls - args.rate_limit)]
    mean_gap = statistics.fmean(gaps) if gaps else window
    rate_share = window / mean_gap
    share_429 = rate_limited / calls if calls else 0.0

    print(f"contacts: {args.contacts} ({stored} in the stand-in), orders: {orders}, "
          f"properties: {len(mapping.properties)}, workers: {args.workers}, "
          f"added latency: {args.latency_ms:g} ms")
    print(f"rate limit: {args.rate_limit} per {args.interval_ms} ms = {rate:g} calls/s")
    print(f"calls made: {calls} (stand-in served {served['total']}); lower bound {lower_bound} "
          f"({PROVISIONING_CALLS} provisioning + 2 x {batches} batches)")
    print(f"429s: {rate_limited} = {share_429:.2%} of calls (client retries: {summary.retries})")
    print(f"write phase: {write_calls} calls sent over {span:.2f} s (calls / rate = "
          f"{write_calls / rate:.2f} s); whole run {wall:.2f} s, local counting included")
    print(f"call k+{args.rate_limit} went {mean_gap:.3f} s after call k on average "
          f"(shortest {min(gaps, default=window):.3f} s; the limit allows {window:.3f} s)")
    print(f"share of the allowed rate used: {rate_share:.1%} (target >= {TARGET_RATE_SHARE:.0%});"
          f" 429s target <= {TARGET_429_SHARE:.0%} of calls")
    ok = (stored == args.contacts and summary.ok and rate_share >= TARGET_RATE_SHARE
          and share_429 <= TARGET_429_SHARE)
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
