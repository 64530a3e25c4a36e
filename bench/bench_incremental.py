"""Benchmark: an incremental run costs what it changes, not what the state holds.

Builds once a state of N contacts (default 100,000: one realistic Shopify order each, from
`bench_plan.generate`, through `hubmap run` into the local HubSpot stand-in served by this
process, no rate limit), then times runs of 100 new orders (100 new contacts) on a copy of that
state and on an empty state, alternately, each in a process of its own and each with emails of
its own (so every run creates its contacts).  Per run it takes the processor time of
`hubmap.uses.run.run` alone (without starting Python and importing hubmap) and its wall time,
and prints the medians of both kinds and their ratio.

Target (exit 1 when missed): the run on the full state takes at most 1.5x the processor time of
the run on the empty state.

    PYTHONPATH=engine python bench/bench_incremental.py [--contacts 100000] [--new 100]
        [--repeats 5] [--work FOLDER]

With `--work`, the built state (and the stand-in's data) is kept there and used again by the next
call with the same `--contacts`.  Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_plan import generate  # the same realistic orders as the plan benchmark

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "mappings" / "shopify-orders-contacts.yaml"
TOKEN = "bench-token"
UNLIMITED = 1_000_000
TARGET_RATIO = 1.5


def write_orders(path: Path, count: int, emails: str, first_id: int) -> None:
    """`count` orders, one per contact (`emails` formatted with the order's number), ids from
    `first_id` on (a refund now and then, a few rejected or skipped, as generated)."""
    with path.open("w", encoding="utf-8") as out:
        for number, order in enumerate(generate(count, count, seed=first_id)):
            order["id"] = first_id + number
            order["name"] = f"#{first_id + number}"
            for refund in order.get("refunds", []):
                refund["id"] = 10 * (first_id + number)
                refund["order_id"] = order["id"]
            order["email"] = emails.format(number)
            out.write(json.dumps(order, default=str) + "\n")


def environ(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "engine"),
        "HUBSPOT_ACCESS_TOKEN": TOKEN,
        "HUBSPOT_API_BASE": url,
        "HUBSPOT_FORMS_BASE": url,
        "HUBSPOT_RATE_LIMIT_MAX": str(UNLIMITED),
    }


def timed_run(source: Path, state: Path, url: str) -> dict[str, Any]:
    """One run in a process of its own (this file with --child): its figures."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(source), str(state)],
        env=environ(url),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"the run failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def child(source: str, state: str) -> int:
    from hubmap.uses import run as running

    cpu, wall = time.process_time(), time.monotonic()
    outcome = running.run(
        str(MAPPING),
        source,
        environ=dict(os.environ),
        state_path=state,
        reject_file=str(Path(state).with_suffix(".rejected.ndjson")),
    )
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    summary = outcome.unwrap().summary
    print(
        json.dumps(
            {"cpu": cpu, "wall": wall, "created": summary.contacts_created, "calls": summary.calls}
        )
    )
    return 0


def build(folder: Path, contacts: int, url: str) -> Path:
    """The base state of `contacts` contacts (kept in `folder` for the next call)."""
    state = folder / f"base-{contacts}.db"
    if state.exists():
        print(f"using the state built before: {state}")
        return state
    source = folder / "base.ndjson"
    write_orders(source, contacts, "base.{}@example.com", 1_000_000)
    started = time.monotonic()
    figures = timed_run(source, folder / "building.db", url)
    (folder / "building.db").rename(state)
    source.unlink()
    print(
        f"built a state of {contacts:,} contacts in {time.monotonic() - started:.0f} s "
        f"({figures['created']:,} contacts created)"
    )
    return state


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100, help="new orders per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", default=None, help="keep the built state here")
    args = parser.parse_args(argv)

    from hubmap.sandbox import SandboxConfig, start_sandbox

    keep = Path(args.work) if args.work else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    folder = keep or Path(tempfile.mkdtemp(prefix="hubmap-bench-incremental-"))
    sandbox = start_sandbox(
        folder / f"sandbox-{args.contacts}.db",
        config=SandboxConfig(token=TOKEN, rate_limit_max=UNLIMITED, daily_limit=10 * UNLIMITED),
    )
    figures: dict[str, list[dict[str, Any]]] = {"empty": [], "full": []}
    try:
        base = build(folder, args.contacts, sandbox.url)
        runs = folder / "runs"
        shutil.rmtree(runs, ignore_errors=True)
        runs.mkdir()
        for repeat in range(args.repeats):
            for kind in ("empty", "full"):  # alternately, so a busy moment hits both
                number = 2 * repeat + (kind == "full")
                source = runs / f"new-{number}.ndjson"
                write_orders(
                    source,
                    args.new,
                    f"new.{number}.{{}}@example.com",
                    10_000_000 + number * 10 * args.new,
                )
                state = runs / f"state-{number}.db"
                if kind == "full":
                    shutil.copyfile(base, state)
                figures[kind].append(timed_run(source, state, sandbox.url))
                for path in runs.glob(f"state-{number}.db*"):
                    path.unlink()
    finally:
        sandbox.stop()
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    cpu = {kind: statistics.median(f["cpu"] for f in runs_) for kind, runs_ in figures.items()}
    wall = {kind: statistics.median(f["wall"] for f in runs_) for kind, runs_ in figures.items()}
    created = {kind: {f["created"] for f in runs_} for kind, runs_ in figures.items()}
    print(
        f"{args.new} new orders, median of {args.repeats} runs each "
        f"(processor time of the run, without starting Python; wall time on a shared machine)"
    )
    for kind, label in (("empty", "empty state"), ("full", f"state of {args.contacts:,} contacts")):
        print(
            f"  {label:>28}: {cpu[kind]:6.3f} s cpu  {wall[kind]:6.3f} s wall  "
            f"contacts created {sorted(created[kind])}"
        )
    ratio = cpu["full"] / cpu["empty"]
    print(
        f"  ratio full / empty: {ratio:.2f} cpu, {wall['full'] / wall['empty']:.2f} wall "
        f"(target: cpu at most {TARGET_RATIO})"
    )
    if ratio > TARGET_RATIO:
        print(
            f"MISSED: the run on {args.contacts:,} contacts costs {ratio:.2f}x the run on an "
            "empty state"
        )
        return 1
    print("target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
