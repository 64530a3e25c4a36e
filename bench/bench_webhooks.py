"""Benchmark: webhooks accepted per second by `hubmap serve`, and the time from acknowledgement to
the HubSpot write.

The server runs as `hubmap serve --config FILE` in its own process (waitress, the SQLite queue
with synchronous=FULL: every 200 is on disk first); the local HubSpot stand-in runs in this
process with HubSpot's rate limit; the load generator is a few processes of threads posting
signed Shopify orders/create webhooks (the real payload of ../shared/data/shopify/order.json,
each under its own order id and email) over loopback.

1. intake: `--no-worker`, as fast as the generator can post -> accepted webhooks/s and the
   answer time percentiles;
2. end to end: the worker on, webhooks at a steady rate -> seconds from the commit that precedes
   the 200 to HubSpot's confirmation of the contact (the queue's received_at and done_at), and
   a check that every contact in the stand-in has exactly one order.

    PYTHONPATH=engine python bench/bench_webhooks.py [--requests 4000] [--concurrency 16]
        [--rate 50] [--seconds 10]

Not a test: it prints figures (and exits 1 when an accepted webhook is missing in HubSpot).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from hubmap.sandbox import SandboxConfig, start_sandbox
from hubmap.serve.auth import signature

ROOT = Path(__file__).resolve().parent.parent
ORDER = ROOT.parent / "shared" / "data" / "shopify" / "order.json"
MAPPING = ROOT / "mappings" / "shopify-orders-contacts.yaml"
SECRET = "bench-shopify-secret"
HUBSPOT_TOKEN = "bench-token"
URL_LINE = re.compile(r"hubmap serve on (http://\S+?);")


def webhook(order: dict, number: int) -> tuple[bytes, dict[str, str]]:
    order["order"].update(id=10_000_000 + number, email=f"buyer{number}@example.com")
    body = json.dumps(order).encode()
    return body, {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                  "X-Shopify-Webhook-Id": f"bench-{number}",
                  "X-Shopify-Hmac-Sha256": signature(SECRET.encode(), body)}


def _post_range(args: tuple[str, int, int, int, float]) -> list[tuple[float, float, int]]:
    """One generator process: post webhooks start..stop with `threads` threads (each its own
    session); at `rate` per second across all processes when rate > 0.  Returns (sent, answer
    seconds, status) per request."""
    url, start, stop, threads, interval = args
    order = json.loads(ORDER.read_bytes())
    prepared = [webhook(order, n) for n in range(start, stop)]
    local = threading.local()
    began = time.perf_counter()

    def post(index: int) -> tuple[float, float, int]:
        if interval:
            delay = began + index * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        body, headers = prepared[index]
        sent = time.time()
        t0 = time.perf_counter()
        answer = session.post(url, data=body, headers=headers, timeout=30)
        return sent, time.perf_counter() - t0, answer.status_code

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(post, range(len(prepared))))


def load(url: str, total: int, concurrency: int, processes: int, rate: float = 0.0,
         offset: int = 0) -> tuple[float, list[tuple[float, float, int]]]:
    per = total // processes
    interval = processes / rate if rate else 0.0
    jobs = [(url, offset + p * per, offset + (p + 1) * per, max(1, concurrency // processes),
             interval) for p in range(processes)]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = [r for part in pool.map(_post_range, jobs) for r in part]
    return time.perf_counter() - started, results


def start_server(config: Path, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    seen = log.stat().st_size if log.exists() else 0
    with log.open("a") as stream:
        process = subprocess.Popen([sys.executable, "-m", "hubmap.cli", "serve", "--config",
                                    str(config), *extra], cwd=ROOT, env=env, stdout=stream,
                                   stderr=stream)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = URL_LINE.findall(log.read_text()[seen:])
        if found:
            process.url = found[-1]  # type: ignore[attr-defined]
            return process
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rate", type=float, default=50.0, help="webhooks/s in phase 2")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of phase 2")
    parser.add_argument("--threads", type=int, default=8, help="server request threads")
    args = parser.parse_args()
    if not ORDER.exists():
        raise SystemExit(f"missing {ORDER}")
    folder = Path(tempfile.mkdtemp(prefix="hubmap-bench-webhooks-"))
    sandbox = start_sandbox(config=SandboxConfig(token=HUBSPOT_TOKEN))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "engine"), "SHOPIFY_SECRET": SECRET,
           "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN, "HUBSPOT_API_BASE": sandbox.url,
           "HUBSPOT_FORMS_BASE": sandbox.url, "HUBSPOT_PORTAL_ID": "1234567"}
    config = folder / "serve.yaml"
    config.write_text(f"listen: {{host: 127.0.0.1, port: 0, threads: {args.threads}}}\n"
                      f"state: {folder / 'state.db'}\nqueue: {folder / 'queue.db'}\n"
                      "worker: {poll_seconds: 0.05}\n"
                      f"routes:\n  /shopify:\n    auth: shopify\n    secret_env: SHOPIFY_SECRET\n"
                      f"    mappings: [{MAPPING}]\n")
    log = folder / "serve.log"
    print(f"{os.cpu_count()} CPUs; queue and state in {folder}; server log {log}")
    try:
        # 1. intake only
        server = start_server(config, env, log, "--no-worker")
        url = server.url + "/shopify"  # type: ignore[attr-defined]
        load(url, 200, args.concurrency, args.processes, offset=9_000_000)  # warm up
        cpu_before = cpu_seconds(server.pid)
        seconds, results = load(url, args.requests, args.concurrency, args.processes)
        server_cpu = cpu_seconds(server.pid) - cpu_before
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        ok = [r for r in results if r[2] == 200]
        answers = [r[1] for r in ok]
        print(f"intake: {len(ok):,}/{len(results):,} webhooks accepted (committed, "
              f"synchronous=FULL) in {seconds:.2f} s = {len(ok) / seconds:,.0f} webhooks/s "
              f"with {args.concurrency} concurrent senders; answer p50 "
              f"{statistics.median(answers) * 1000:.1f} ms, p99 "
              f"{percentile(answers, 0.99) * 1000:.1f} ms; server CPU "
              f"{server_cpu / len(ok) * 1000:.2f} ms per webhook (the load generator shares the "
              "CPUs)")
        (folder / "queue.db").unlink()
        for suffix in ("-wal", "-shm"):
            Path(str(folder / "queue.db") + suffix).unlink(missing_ok=True)

        # 2. end to end at a steady rate, HubSpot (the stand-in) healthy
        server = start_server(config, env, log)
        url = server.url + "/shopify"  # type: ignore[attr-defined]
        total = int(args.rate * args.seconds)
        seconds, results = load(url, total, args.concurrency, args.processes, rate=args.rate,
                                offset=20_000_000)
        accepted = sum(1 for r in results if r[2] == 200)
        deadline = time.monotonic() + 120
        with sqlite3.connect(folder / "queue.db") as db:
            while time.monotonic() < deadline:
                done = db.execute("SELECT COUNT(*) FROM jobs WHERE status='sent'").fetchone()[0]
                if done >= accepted:
                    break
                time.sleep(0.1)
            latencies = [r[0] for r in db.execute(
                "SELECT j.done_at - e.received_at FROM jobs j JOIN events e ON e.id=j.event_id "
                "WHERE j.status='sent'")]
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        stats = sandbox.stats()
        contacts = requests.get(sandbox.url + "/_sandbox/dump", timeout=60).json()["contacts"]
        orders = {c["properties"]["email"]: c["properties"].get("total_number_of_orders")
                  for c in contacts}
        bench = {e: n for e, n in orders.items() if e.startswith("buyer2")}
        print(f"end to end: {accepted:,} webhooks at {args.rate:g}/s for {seconds:.1f} s; "
              f"{len(latencies):,} sent; acknowledgement -> HubSpot write p50 "
              f"{statistics.median(latencies) * 1000:.0f} ms, p95 "
              f"{percentile(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms;"
              f" HubSpot calls {stats.get('total', stats.get('requests_total', '?'))}")
        missing = accepted - sum(1 for n in bench.values() if n == "1")
        print(f"contacts with exactly one order: {len(bench) - missing:,}/{accepted:,}")
        return 1 if missing else 0
    finally:
        sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
