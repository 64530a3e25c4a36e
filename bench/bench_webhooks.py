"""Benchmark: webhooks accepted per second by `hubmap serve`, and the time from acknowledgement to
the HubSpot write.

The server runs as `hubmap serve --config FILE` in its own process (waitress, the SQLite queue
with synchronous=FULL: every 200 is on disk first); the local HubSpot stand-in runs in this
process with HubSpot's rate limit (190 requests per 10 s); the load generator is a few processes
of threads, each thread with a keep-alive connection, posting signed Shopify orders/create
webhooks (the real payload of ../shared/data/shopify/order.json, each under its own order id and
email) over loopback.  The generator and the stand-in share the machine's CPUs with the server,
so the figures are a floor for the server on a machine of its own.

1. intake: `--no-worker`, as fast as the generator can post -> accepted webhooks/s, the answer
   time percentiles, and a check that every accepted webhook is in the queue file, once;
2. end to end: the worker on (a thread of `hubmap serve`, or with `--worker-process` a
   `hubmap worker` of its own beside `hubmap serve --no-worker`), webhooks at a steady rate
   (`--rate`, default 1,000/s) -> seconds from the commit that precedes the 200 to HubSpot's
   confirmation of the contact (the queue's received_at and done_at), the rate at which the
   worker got them all to HubSpot, CPU per webhook, and a check that every accepted webhook's
   contact is in the stand-in with exactly one order.

    PYTHONPATH=engine python bench/bench_webhooks.py [--requests 10000] [--concurrency 32]
        [--processes 2] [--rate 1000] [--seconds 5] [--threads 8] [--batch-size 100]
        [--only intake|end-to-end] [--worker-process]

Each new contact costs HubSpot two calls per 100 (a batch read and a batch upsert), so 1,000 new
contacts a second need 20 calls a second: just above HubSpot's 19 (190 per 10 s).  The end-to-end
phase is therefore a burst that fits in HubSpot's window (the default 5 s: 5,000 contacts, about
100 calls); a longer one measures HubSpot's limit, not hubmap.

Exits 1 when intake is under 1,000 accepted/s, when the end-to-end p95 is 1 s or more, or when
an accepted webhook is missing or counted twice.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from hubmap.sandbox import SandboxConfig, start_sandbox
from hubmap.serve.auth import signature

ROOT = Path(__file__).resolve().parent.parent
ORDER = ROOT.parent / "shared" / "data" / "shopify" / "order.json"
MAPPING = ROOT / "mappings" / "shopify-orders-contacts.yaml"
SECRET = "bench-shopify-secret"
HUBSPOT_TOKEN = "bench-token"
URL_LINE = re.compile(r"hubmap serve on (http://\S+?);")
INTAKE_TARGET = 1000.0  # accepted webhooks per second
LATENCY_TARGET = 1.0  # seconds, p95 from acknowledgement to HubSpot's confirmation
# webhook numbers of each phase
INTAKE_OFFSET, WARM_UP_OFFSET, END_TO_END_OFFSET = 0, 9_000_000, 20_000_000


def webhook(order: dict, number: int) -> tuple[bytes, dict[str, str]]:
    order["order"].update(id=10_000_000 + number, email=f"buyer{number}@example.com")
    body = json.dumps(order).encode()
    return body, {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": f"bench-{number}",
        "X-Shopify-Hmac-Sha256": signature(SECRET.encode(), body),
    }


def http_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The whole HTTP/1.1 request, built before the clock starts."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive connection that posts a prepared request and reads the status; a small
    client, so the generator takes as little of the shared CPUs as it can."""

    def __init__(self, host: str, port: int):
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.buffer = b""

    def post(self, request: bytes) -> int:
        """The answer's status, or 0 when the connection failed (it is opened again next)."""
        try:
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=60)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.buffer = b""
            self.sock.sendall(request)
            return self._answer()
        except OSError:
            self.close()
            return 0

    def _answer(self) -> int:
        assert self.sock is not None
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(fields.get("content-length", "0"))
        while len(self.buffer) < length:
            self._receive()
        self.buffer = self.buffer[length:]
        if fields.get("connection") == "close":
            self.close()
        return int(lines[0].split(" ", 2)[1])

    def _receive(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        self.buffer += data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


def _post_range(
    args: tuple[str, int, int, int, float],
) -> tuple[list[tuple[float, float, int]], float]:
    """One generator process: post webhooks start..stop with `threads` threads (each its own
    connection); at one per `interval` seconds from this process when interval > 0.  Returns
    (sent, answer seconds, status) per request, and this process's CPU seconds while posting."""
    url, start, stop, threads, interval = args
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    order = json.loads(ORDER.read_bytes())
    prepared = [
        http_request(parts.netloc, parts.path, *webhook(order, n)) for n in range(start, stop)
    ]
    results: list[tuple[float, float, int]] = [(0.0, 0.0, 0)] * len(prepared)
    next_index = iter(range(len(prepared)))  # next() on a range iterator is atomic in CPython
    cpu_before = time.process_time()
    began = time.perf_counter()

    def sender() -> None:
        connection = Connection(host, port)
        for index in next_index:
            if interval:
                delay = began + index * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            sent = time.time()
            t0 = time.perf_counter()
            status = connection.post(prepared[index])
            results[index] = (sent, time.perf_counter() - t0, status)
        connection.close()

    workers = [threading.Thread(target=sender) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results, time.process_time() - cpu_before


def load(
    url: str, total: int, concurrency: int, processes: int, rate: float = 0.0, offset: int = 0
) -> tuple[float, list[tuple[float, float, int]], float]:
    """Post `total` webhooks numbered from `offset`: (wall seconds, per-request results,
    generator CPU seconds)."""
    per = total // processes
    interval = processes / rate if rate else 0.0
    jobs = [
        (url, offset + p * per, offset + (p + 1) * per, max(1, concurrency // processes), interval)
        for p in range(processes)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_ready, range(processes))  # the processes are up before the clock starts
        started = time.perf_counter()
        parts = pool.map(_post_range, jobs)
    seconds = time.perf_counter() - started
    return seconds, [r for part, _ in parts for r in part], sum(cpu for _, cpu in parts)


def _ready(_: int) -> None:
    pass


def start_server(config: Path, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    seen = log.stat().st_size if log.exists() else 0
    with log.open("a") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "hubmap.cli", "serve", "--config", str(config), *extra],
            cwd=ROOT,
            env=env,
            stdout=stream,
            stderr=stream,
        )
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


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def queued_deliveries(queue_db: Path) -> list[str]:
    with sqlite3.connect(queue_db) as db:
        return [r[0] for r in db.execute("SELECT delivery_id FROM events")]


def remove_queue(queue_db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(queue_db) + suffix).unlink(missing_ok=True)


def intake(
    args: argparse.Namespace, config: Path, env: dict[str, str], log: Path, queue_db: Path
) -> bool:
    """Phase 1; True when the target is met and every accepted webhook is stored once."""
    server = start_server(config, env, log, "--no-worker")
    url = server.url + "/shopify"  # type: ignore[attr-defined]
    load(url, 400, args.concurrency, args.processes, offset=WARM_UP_OFFSET)
    cpu_before = cpu_seconds(server.pid)
    seconds, results, generator_cpu = load(
        url, args.requests, args.concurrency, args.processes, offset=INTAKE_OFFSET
    )
    server_cpu = cpu_seconds(server.pid) - cpu_before
    stop_server(server)
    ok = [r for r in results if r[2] == 200]
    answers = [r[1] for r in ok]
    rate = len(ok) / seconds
    stored = [d for d in queued_deliveries(queue_db) if int(d.split("-")[1]) < WARM_UP_OFFSET]
    accepted = {f"bench-{INTAKE_OFFSET + i}" for i, r in enumerate(results) if r[2] == 200}
    lost = len(accepted - set(stored))
    doubled = len(stored) - len(set(stored))
    print(
        f"intake: {len(ok):,}/{len(results):,} webhooks accepted (each committed, "
        f"synchronous=FULL, before its 200) in {seconds:.2f} s = {rate:,.0f} accepted/s "
        f"(target >= {INTAKE_TARGET:,.0f}) with {args.concurrency} concurrent senders and "
        f"{args.threads} server threads"
    )
    print(
        f"  answer time p50 {ms(statistics.median(answers))}, p95 "
        f"{ms(percentile(answers, 0.95))}, p99 {ms(percentile(answers, 0.99))}; server CPU "
        f"{ms(server_cpu / len(ok))} per webhook; load generator CPU "
        f"{ms(generator_cpu / len(results))} per request ({args.processes} processes on the "
        f"same {os.cpu_count()} CPUs as the server)"
    )
    print(
        f"  queue file: {len(stored):,} events stored, {lost} accepted ones missing, "
        f"{doubled} stored twice"
    )
    remove_queue(queue_db)
    return rate >= INTAKE_TARGET and not lost and not doubled


def end_to_end(
    args: argparse.Namespace,
    config: Path,
    env: dict[str, str],
    log: Path,
    queue_db: Path,
    sandbox: object,
) -> bool:
    """Phase 2; True when p95 is under the target and every accepted webhook's contact has
    exactly one order in HubSpot."""
    if args.worker_process:  # `hubmap serve --no-worker` and `hubmap worker`: a GIL each
        server = start_server(config, env, log, "--no-worker")
        with log.open("a") as stream:
            worker = subprocess.Popen(
                [sys.executable, "-m", "hubmap.cli", "worker", "--config", str(config)],
                cwd=ROOT,
                env=env,
                stdout=stream,
                stderr=stream,
            )
        processes = [server, worker]
    else:
        server = start_server(config, env, log)
        processes = [server]
    url = server.url + "/shopify"  # type: ignore[attr-defined]
    total = int(args.rate * args.seconds)
    cpu_before = sum(cpu_seconds(p.pid) for p in processes)
    seconds, results, generator_cpu = load(
        url, total, args.concurrency, args.processes, rate=args.rate, offset=END_TO_END_OFFSET
    )
    accepted = sum(1 for r in results if r[2] == 200)
    first_sent = min(r[0] for r in results)
    deadline = time.monotonic() + 300
    with sqlite3.connect(queue_db) as db:
        while time.monotonic() < deadline:
            done = db.execute("SELECT COUNT(*) FROM jobs WHERE status='sent'").fetchone()[0]
            if done >= accepted:
                break
            time.sleep(0.1)
        latencies = [
            r[0]
            for r in db.execute(
                "SELECT j.done_at - e.received_at FROM jobs j JOIN events e ON e.id=j.event_id "
                "WHERE j.status='sent'"
            )
        ]
        last_done = db.execute("SELECT MAX(done_at) FROM jobs").fetchone()[0] or time.time()
    server_cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu_before
    for process in processes:
        stop_server(process)
    stats = sandbox.stats()  # type: ignore[attr-defined]
    contacts = requests.get(
        sandbox.url + "/_sandbox/dump",  # type: ignore[attr-defined]
        timeout=60,
    ).json()["contacts"]
    orders = {
        c["properties"]["email"]: c["properties"].get("total_number_of_orders") for c in contacts
    }
    wanted = {
        f"buyer{END_TO_END_OFFSET + i}@example.com" for i, r in enumerate(results) if r[2] == 200
    }
    missing = sum(1 for email in wanted if email not in orders)
    wrong = sum(1 for email in wanted if email in orders and orders[email] != "1")
    p95 = percentile(latencies, 0.95) if latencies else float("inf")
    answers = [r[1] for r in results if r[2] == 200]
    where = (
        "`hubmap serve --no-worker` + `hubmap worker`"
        if args.worker_process
        else "`hubmap serve` (worker thread)"
    )
    print(
        f"end to end, {where}: {accepted:,}/{total:,} webhooks accepted at "
        f"{args.rate:,.0f}/s asked ({accepted / seconds:,.0f}/s posted) for {seconds:.1f} s; "
        f"{len(latencies):,} sent to HubSpot, the last {last_done - first_sent:.1f} s after "
        f"the first post ({len(latencies) / max(last_done - first_sent, 1e-9):,.0f}/s end to "
        f"end)"
    )
    print(
        f"  acknowledgement -> HubSpot's confirmation p50 "
        f"{ms(statistics.median(latencies)) if latencies else '-'}, p95 {ms(p95)}, max "
        f"{ms(max(latencies)) if latencies else '-'} (target p95 < {LATENCY_TARGET:g} s); "
        f"answer time p50 {ms(statistics.median(answers))}, p95 "
        f"{ms(percentile(answers, 0.95))}"
    )
    print(
        f"  CPU per webhook: hubmap {ms(server_cpu / max(accepted, 1))} (intake + worker, until "
        f"all were sent), load generator {ms(generator_cpu / len(results))}; the stand-in "
        f"runs in this process; all on the same {os.cpu_count()} CPUs; HubSpot calls "
        f"{stats['total']} ({stats['rateLimited']} answered 429)"
    )
    print(
        f"  contacts with exactly one order: {len(wanted) - missing - wrong:,}/{len(wanted):,}"
        f" ({missing} missing, {wrong} with another count)"
    )
    return p95 < LATENCY_TARGET and not missing and not wrong and len(latencies) >= accepted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="webhooks in phase 1")
    parser.add_argument("--concurrency", type=int, default=32, help="senders at once")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--rate", type=float, default=1000.0, help="webhooks/s in phase 2")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of phase 2")
    parser.add_argument("--threads", type=int, default=8, help="server request threads")
    parser.add_argument("--batch-size", type=int, default=100, help="the worker's batch_size")
    parser.add_argument("--only", choices=("intake", "end-to-end"), help="run one phase")
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="phase 2 with `hubmap serve --no-worker` and `hubmap worker`",
    )
    args = parser.parse_args()
    if not ORDER.exists():
        raise SystemExit(f"missing {ORDER}")
    folder = Path(tempfile.mkdtemp(prefix="hubmap-bench-webhooks-"))
    sandbox = start_sandbox(config=SandboxConfig(token=HUBSPOT_TOKEN))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "engine"),
        "SHOPIFY_SECRET": SECRET,
        "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN,
        "HUBSPOT_API_BASE": sandbox.url,
        "HUBSPOT_FORMS_BASE": sandbox.url,
        "HUBSPOT_PORTAL_ID": "1234567",
    }
    config = folder / "serve.yaml"
    queue_db = folder / "queue.db"
    config.write_text(
        f"listen: {{host: 127.0.0.1, port: 0, threads: {args.threads}}}\n"
        f"state: {folder / 'state.db'}\nqueue: {queue_db}\n"
        f"worker: {{poll_seconds: 0.05, batch_size: {args.batch_size}}}\n"
        f"routes:\n  /shopify:\n    auth: shopify\n    secret_env: SHOPIFY_SECRET\n"
        f"    mappings: [{MAPPING}]\n"
    )
    log = folder / "serve.log"
    print(
        f"{os.cpu_count()} CPUs shared by the server, the load generator and the HubSpot "
        f"stand-in; queue and state in {folder}; server log {log}"
    )
    try:
        passed = True
        if args.only in (None, "intake"):
            passed = intake(args, config, env, log, queue_db) and passed
        if args.only in (None, "end-to-end"):
            passed = end_to_end(args, config, env, log, queue_db, sandbox) and passed
        return 0 if passed else 1
    finally:
        sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
