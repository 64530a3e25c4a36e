"""Benchmark: many workers on one PostgreSQL, many portals, HubSpot's real limit.

    PYTHONPATH=engine python bench/bench_workers.py [--portals 20] [--events 2000]
        [--workers 1,2,4] [--latency-ms 80] [--backfill 20000] [--postgres URL]

1. **Webhooks end to end.**  For each number of workers: a fresh database, the stand-in's
   `--portals` portals behind one address (each with HubSpot's Pro limit, 190 requests per
   10 s, and `--latency-ms` added to every call), one `hubmap serve --no-worker` intake that
   takes `--events` signed Shopify webhooks spread over the portals (one route and token per
   portal; each webhook a new customer's order), then the workers (`hubmap worker`, each a
   process) started together.  It prints the events per second from the workers' start until
   every job is sent, the HubSpot calls and the share answered 429 (the most of any portal),
   and checks that every portal holds exactly its orders.
2. **A single-machine backfill, SQLite against PostgreSQL.**  `hubmap run` of `--backfill`
   realistic Shopify orders (bench_plan.generate) into a fresh SQLite file and into a fresh
   PostgreSQL database, against a stand-in with no limit: wall and CPU seconds of each.

PostgreSQL is the server at `--postgres` (a database is created per measurement), else one this
bench starts itself (tests/postgres_server.py: Debian's `postgresql` package).  The load
generator, the stand-in, the database server and the workers share this machine's CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "engine"), str(ROOT), str(ROOT / "bench")]

from bench_plan import generate
from tests import postgres_server

from hubmap import sql
from hubmap.sandbox import SandboxConfig, start_sandbox
from hubmap.sandbox.portals import RunningPortals
from hubmap.serve.auth import signature

MAPPING = ROOT / "mappings" / "shopify-orders-contacts.yaml"
ORDER = ROOT.parent / "shared" / "data" / "shopify" / "order.json"
SECRET = "bench-shopify-secret"
URL_LINE = re.compile(r"hubmap serve on (http://\S+?);")


def new_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{server.rsplit('/', 1)[0]}/{name}"


def write_config(folder: Path, database: str, portals: int) -> Path:
    lines = [
        "listen: {host: 127.0.0.1, port: 0, threads: 8}",
        f"state: {database}",
        f"queue: {database}",
        "worker:",
        "  batch_size: 100",
        "  poll_seconds: 0.05",
        "  batch_every_seconds: 0.2",
        "routes:",
    ]
    for n in range(portals):
        lines += [
            f"  /shop-{n}:",
            "    auth: shopify",
            "    secret_env: BENCH_SECRET",
            f"    hubspot_token_env: PORTAL_{n}_TOKEN",
            f"    mappings: [{MAPPING}]",
        ]
    path = folder / "serve.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    stream = log.open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", "hubmap.cli", *args], env=env, stdout=stream, stderr=stream, cwd=ROOT
    )
    if args[0] != "serve":
        return process, ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = URL_LINE.findall(log.read_text())
        if found:
            return process, found[-1]
        time.sleep(0.05)
    raise SystemExit(f"the intake did not start:\n{log.read_text()}")


def jobs(database: str) -> dict[str, int]:
    db = sql.connect(database)
    try:
        return {
            r[0]: int(r[1]) for r in db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        }
    finally:
        db.close()


def webhooks(server: str, workers: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    database = new_database(server, f"bench_workers_{workers}")
    configs = [
        SandboxConfig(
            token=f"bench-portal-{n}",
            portal_id=3000 + n,
            rate_limit_max=190,
            rate_limit_interval_ms=10_000,
            latency_ms=args.latency_ms,
        )
        for n in range(args.portals)
    ]
    order = json.loads(ORDER.read_text())
    with RunningPortals(configs) as portals:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "engine"),
            "BENCH_SECRET": SECRET,
            "HUBSPOT_API_BASE": portals.url,
            "HUBSPOT_FORMS_BASE": portals.url,
            **{f"PORTAL_{n}_TOKEN": f"bench-portal-{n}" for n in range(args.portals)},
        }
        config = str(write_config(folder, database, args.portals))
        subprocess.run(
            [sys.executable, "-m", "hubmap.cli", "state", "migrate", "--state", database],
            env=env,
            check=True,
            capture_output=True,
        )
        intake, url = start(
            ["serve", "--no-worker", "--config", config], env, folder / f"intake-{workers}.log"
        )

        def post(n: int) -> int:
            body = json.dumps(
                {"order": {**order["order"], "id": 5_000_000 + n, "email": f"buyer{n}@example.com"}}
            ).encode()
            return requests.post(
                f"{url}/shop-{n % args.portals}",
                data=body,
                timeout=30,
                headers={
                    "X-Shopify-Hmac-Sha256": signature(SECRET.encode(), body),
                    "X-Shopify-Webhook-Id": f"bench-{n}",
                    "X-Shopify-Topic": "orders/create",
                },
            ).status_code

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, range(args.events)))
        assert answers.count(200) == args.events, "some webhooks were not accepted"
        started = time.monotonic()
        running = [
            start(["worker", "--config", config], env, folder / f"worker-{workers}-{n}.log")[0]
            for n in range(workers)
        ]
        while jobs(database).get("sent", 0) < args.events:
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"not done after {args.timeout} s: {jobs(database)}")
            time.sleep(0.2)
        seconds = time.monotonic() - started
        for process in [*running, intake]:
            process.terminate()
            process.wait(30)
        stats = portals.stats()
        held = sum(
            len(
                requests.get(portals.admin_url(3000 + n) + "/_sandbox/dump", timeout=60).json()[
                    "contacts"
                ]
            )
            for n in range(args.portals)
        )
    calls = {p: s["total"] for p, s in stats.items()}
    limited = {p: s["rateLimited"] for p, s in stats.items()}
    return {
        "workers": workers,
        "events": args.events,
        "seconds": seconds,
        "events_per_second": args.events / seconds,
        "calls": sum(calls.values()),
        "rate_limited": sum(limited.values()),
        "worst_429_share": max(limited[p] / calls[p] if calls[p] else 0 for p in calls),
        "contacts": held,
    }


def backfill(server: str, orders: int, folder: Path) -> list[dict[str, Any]]:
    source = folder / "backfill.ndjson"
    with source.open("w") as out:
        for order in generate(orders, max(1, orders // 4)):
            out.write(json.dumps(order) + "\n")
    rows = []
    for name, state in (
        ("SQLite", str(folder / "backfill.db")),
        ("PostgreSQL", new_database(server, "bench_backfill")),
    ):
        with start_sandbox(
            folder / f"backfill-{name}.sandbox.db",
            config=SandboxConfig(
                token="bench-token", rate_limit_max=100_000, rate_limit_interval_ms=1000
            ),
        ) as stand_in:
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT / "engine"),
                "HUBSPOT_ACCESS_TOKEN": "bench-token",
                "HUBSPOT_API_BASE": stand_in.url,
                "HUBSPOT_FORMS_BASE": stand_in.url,
            }
            started, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "hubmap.cli",
                    "run",
                    str(MAPPING),
                    "--input",
                    str(source),
                    "--state",
                    state,
                    "--rejects",
                    str(folder / "rejects.ndjson"),
                    "--format",
                    "json",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode not in (0, 1):
            raise SystemExit(f"the {name} backfill failed:\n{done.stderr[-2000:]}")
        summary = json.loads(done.stdout)
        rows.append(
            {
                "state": name,
                "orders": orders,
                "seconds": wall,
                "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                "new": summary["new"],
                "contacts": summary["contacts_created"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portals", type=int, default=20)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--latency-ms", type=float, default=80)
    parser.add_argument("--backfill", type=int, default=20_000)
    parser.add_argument("--postgres", default=os.environ.get("HUBMAP_BENCH_POSTGRES"))
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    folder_started = None
    server = args.postgres
    if server is None:
        server, folder_started = postgres_server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="hubmap-bench-workers-") as folder:
            print(
                f"webhooks: {args.events} over {args.portals} portals, HubSpot's limit "
                f"190 per 10 s per portal, {args.latency_ms:g} ms added per call"
            )
            print(
                f"{'workers':>8} {'events/s':>9} {'seconds':>8} {'calls':>6} {'429s':>5} "
                f"{'worst 429 share':>16} {'contacts':>9}"
            )
            for workers in [int(w) for w in args.workers.split(",")]:
                row = webhooks(server, workers, args, Path(folder))
                print(
                    f"{row['workers']:>8} {row['events_per_second']:>9.1f} "
                    f"{row['seconds']:>8.1f} {row['calls']:>6} {row['rate_limited']:>5} "
                    f"{row['worst_429_share']:>16.2%} {row['contacts']:>9}"
                )
                if row["contacts"] != args.events:
                    print(
                        f"  wrong: {row['contacts']} contacts in the portals for "
                        f"{args.events} webhooks of new customers"
                    )
                    return 1
            if args.backfill:
                print(f"\nbackfill: hubmap run of {args.backfill} orders, stand-in without limit")
                for row in backfill(server, args.backfill, Path(folder)):
                    print(
                        f"  {row['state']:<10} {row['seconds']:7.1f} s wall  "
                        f"{row['cpu']:7.1f} s CPU of hubmap  "
                        f"{row['orders'] / row['seconds']:7.0f} orders/s  "
                        f"({row['new']} new orders, {row['contacts']} contacts)"
                    )
    finally:
        if folder_started is not None:
            postgres_server.stop(folder_started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
