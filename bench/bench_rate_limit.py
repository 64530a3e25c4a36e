"""Benchmark: whether HubSpot's rate limit is the only bottleneck of `hubmap run`.

Runs `hubmap run` (the command, in a process of its own) on new contacts - one order each - into
the local HubSpot stand-in, served by another process under a rolling limit with added latency,
and measures END TO END, from the command's start to its end, against the time the limit allows
for the calls it made (calls / rate). Also checked: the calls against the lower bound
(provisioning, then one batch read and one batch upsert per 100 new contacts), the 429s, and how
many requests were in flight at once.

    PYTHONPATH=engine python bench/bench_rate_limit.py --rate-limit 190 --interval-ms 10000 \\
        --latency-ms 80 --contacts 40000          # HubSpot's Pro limit, tens of thousands
    PYTHONPATH=engine python bench/bench_rate_limit.py --rate-limit 10 --interval-ms 10000 \\
        --contacts 1000                           # 1 call/s: keep the contacts few

Targets: end to end >= 95 % of the allowed rate, 429s <= 1 % of the calls, reads and upserts
at the lower bound. A rolling window lets the first `max` calls go at once, so a run can take
less time than calls / rate (a share above 100 %).

Not a test: it prints figures, and exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "mappings" / "shopify-orders-contacts.yaml"
TOKEN = "bench-token"
BATCH = 100  # HubSpot's batch size: one read and one upsert per this many contacts
CONTACT_CALLS = "/objects/contacts/batch/"
TARGET_RATE_SHARE = 0.95
TARGET_429_SHARE = 0.01
STARTUP_SECONDS = 20.0


def write_orders(path: Path, contacts: int, per_contact: int, seed: int = 7) -> int:
    """NDJSON orders in Shopify's shape, shuffled; returns how many were written."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    orders = []
    for c in range(contacts):
        for n in range(per_contact):
            orders.append(
                {
                    "id": c * per_contact + n + 1,
                    "name": f"#{c * per_contact + n + 1}",
                    "email": f"Customer{c}@Example.com",
                    "created_at": (start + timedelta(minutes=rng.randrange(500_000))).isoformat(),
                    "currency": "USD",
                    "financial_status": "paid",
                    "cancelled_at": None,
                    "total_price": f"{rng.randrange(100, 50_000) / 100:.2f}",
                    "line_items": [
                        {
                            "sku": f"SKU-{rng.randrange(40)}",
                            "title": "Item",
                            "vendor": "Acme",
                            "price": "1.00",
                        }
                    ],
                }
            )
    rng.shuffle(orders)
    with path.open("w", encoding="utf-8") as out:
        for order in orders:
            out.write(json.dumps(order) + "\n")
    return len(orders)


# -- the stand-in, in a process of its own ---------------------------------------------------


class RequestTimes:
    """WSGI middleware: when each request came in and was answered (`GET /_bench/requests`)."""

    def __init__(self, app: Any):
        self.app = app
        self.lock = threading.Lock()
        self.spans: list[tuple[float, float, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/_bench/requests":
            with self.lock:
                body = json.dumps(self.spans).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        began = time.time()
        try:
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.spans.append((began, time.time(), path))


def serve_stand_in(port: int, db_path: str) -> None:
    from werkzeug.serving import WSGIRequestHandler, make_server

    from hubmap.sandbox.app import SandboxApp
    from hubmap.sandbox.config import SandboxConfig
    from hubmap.sandbox.store import Store

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any) -> None:
            pass

    app = SandboxApp(Store(db_path), SandboxConfig(token=TOKEN))
    make_server(
        "127.0.0.1", port, RequestTimes(app), threaded=True, request_handler=Quiet
    ).serve_forever()


@contextmanager
def stand_in(db_path: Path, config: dict[str, Any]) -> Iterator[str]:
    """The stand-in in a process of its own (as HubSpot is), configured; yields its address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, __file__, "--serve", str(port), str(db_path)]
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONPATH": str(ROOT / "engine")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


# -- the figures -------------------------------------------------------------------------------


def in_flight(spans: list[tuple[float, float, str]]) -> tuple[int, float]:
    """The most requests in flight at once, and the mean number in flight while any was."""
    events = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    level = most = 0
    busy = weighted = 0.0
    last = events[0][0] if events else 0.0
    for at, step in events:
        if level:
            busy += at - last
            weighted += level * (at - last)
        level += step
        most = max(most, level)
        last = at
    return most, (weighted / busy if busy else 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--orders-per-contact", type=int, default=1)
    parser.add_argument("--rate-limit", type=int, default=190, help="requests per window")
    parser.add_argument("--interval-ms", type=int, default=10_000, help="the rolling window")
    parser.add_argument("--latency-ms", type=float, default=80, help="added by the stand-in")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hubmap-bench-") as folder:
        orders_path = Path(folder) / "orders.ndjson"
        orders = write_orders(orders_path, args.contacts, args.orders_per_contact)
        config = {
            "token": TOKEN,
            "rate_limit_max": args.rate_limit,
            "rate_limit_interval_ms": args.interval_ms,
            "latency_ms": args.latency_ms,
        }
        with stand_in(Path(folder) / "sandbox.db", config) as url:
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT / "engine"),
                "HUBSPOT_ACCESS_TOKEN": TOKEN,
                "HUBSPOT_API_BASE": url,
                "HUBSPOT_FORMS_BASE": url,
            }
            command = [
                sys.executable,
                "-m",
                "hubmap.cli",
                "run",
                str(MAPPING),
                "--input",
                str(orders_path),
                "--state",
                str(Path(folder) / "state.db"),
                "--rejects",
                str(Path(folder) / "rejected.ndjson"),
                "--format",
                "json",
                "--workers",
                str(args.workers),
            ]
            began, started = time.time(), time.monotonic()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            wall = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command's (reaped) only
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if done.returncode not in (0, 1):
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            summary = json.loads(done.stdout)
            served = requests.get(f"{url}/_sandbox/stats", timeout=10).json()
            spans = requests.get(f"{url}/_bench/requests", timeout=10).json()
            stored = len(requests.get(f"{url}/_sandbox/dump", timeout=120).json()["contacts"])

    rate = args.rate_limit / (args.interval_ms / 1000)  # allowed requests per second
    calls = summary["calls"]
    allowed = calls / rate
    share = allowed / wall
    batches = math.ceil(args.contacts / BATCH)
    hubspot = [s for s in spans if not s[2].startswith("/_")]
    reads = [s for s in hubspot if s[2].endswith(CONTACT_CALLS + "read")]
    upserts = [s for s in hubspot if s[2].endswith(CONTACT_CALLS + "upsert")]
    provisioning = len(hubspot) - len(reads) - len(upserts)
    lower_bound = provisioning + 2 * batches
    rate_limited = served["rateLimited"]
    share_429 = rate_limited / calls if calls else 0.0
    most, mean = in_flight(hubspot)

    def at(spans_: list[Any], which: int) -> str:
        return f"{spans_[which][0 if which == 0 else 1] - began:.1f} s" if spans_ else "-"

    print(
        f"contacts: {args.contacts} ({stored} in the stand-in), orders: {orders}, "
        f"workers: {args.workers}, added latency: {args.latency_ms:g} ms"
    )
    print(f"rate limit: {args.rate_limit} per {args.interval_ms} ms = {rate:g} calls/s")
    print(
        f"calls made: {calls} (stand-in served {len(hubspot)}); lower bound {lower_bound} "
        f"({provisioning} provisioning + {len(reads)} reads + {len(upserts)} upserts; "
        f"2 x {batches} batches)"
    )
    print(f"429s: {rate_limited} = {share_429:.2%} of calls (client retries: {summary['retries']})")
    print(
        f"reads from {at(reads, 0)} to {at(reads, -1)}, upserts from {at(upserts, 0)} to "
        f"{at(upserts, -1)} after the command's start; requests in flight: up to {most}, "
        f"{mean:.2f} on average while any was"
    )
    print(
        f"end to end: {wall:.2f} s; the limit allows {allowed:.2f} s for {calls} calls "
        f"(calls / rate) -> {share:.1%} of the allowed rate (target >= "
        f"{TARGET_RATE_SHARE:.0%}); 429s target <= {TARGET_429_SHARE:.0%} of calls"
    )
    print(
        f"the command's CPU time: {cpu:.2f} s = {cpu / allowed:.0%} of the time the limit "
        "allows (it runs on about one core, Python's GIL: above 100 % this machine cannot "
        "meet the target, however idle)"
    )
    ok = (
        stored == args.contacts
        and done.returncode == 0
        and share >= TARGET_RATE_SHARE
        and share_429 <= TARGET_429_SHARE
        and len(reads) == len(upserts) == batches
    )
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_stand_in(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(main())
