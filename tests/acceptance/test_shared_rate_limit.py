"""One HubSpot rate limit shared by processes writing through one PostgreSQL: three processes,
each with four threads calling as fast as they may, stay together within the portal's limit
(≤ 1 % answered 429), where each one alone would assume the whole budget is its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from hubmap.sandbox import SandboxConfig, start_sandbox

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "shared-limit-test-token"
LIMIT, WINDOW_MS = 10, 1000
PROCESSES, THREADS, CALLS = 3, 4, 40  # calls per process

CALLER = """
import sys
from concurrent.futures import ThreadPoolExecutor
from hubmap.hubspot import HubSpotError
from hubmap.uses.context import connect
environ = {"HUBSPOT_ACCESS_TOKEN": sys.argv[2], "HUBSPOT_API_BASE": sys.argv[1],
           "HUBSPOT_RATE_LIMIT_MAX": sys.argv[4], "HUBSPOT_RATE_LIMIT_INTERVAL_MS": sys.argv[5]}
state = sys.argv[3] if sys.argv[3] != "-" else None
failed = []

def call(_):
    try:
        conn.client.list_groups()
    except HubSpotError as error:  # given up after its retries: counted, not fatal here
        failed.append(error)

with connect(environ, state=state) as conn:
    with ThreadPoolExecutor(int(sys.argv[6])) as pool:
        list(pool.map(call, range(int(sys.argv[7]))))
    print(conn.client.stats().rate_limited, len(failed))
"""


def callers(url: str, state: str) -> tuple[float, list[int]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "engine")}
    args = [url, TOKEN, state, str(LIMIT), str(WINDOW_MS), str(THREADS), str(CALLS)]
    started = time.monotonic()
    running = [
        subprocess.Popen(
            [sys.executable, "-c", CALLER, *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    answers = [p.communicate(timeout=120) for p in running]
    for process, (_, err) in zip(running, answers):
        assert process.returncode == 0, err
    return time.monotonic() - started, [int(out.split()[1]) for out, _ in answers]


def test_processes_sharing_a_postgresql_state_share_the_rate_limit(
    tmp_path: Path, postgres_url: str
) -> None:
    config = SandboxConfig(token=TOKEN, rate_limit_max=LIMIT, rate_limit_interval_ms=WINDOW_MS)
    with start_sandbox(tmp_path / "sandbox.db", config=config) as sandbox:
        seconds, failed = callers(sandbox.url, postgres_url)
        stats = sandbox.stats()
    calls = PROCESSES * CALLS
    assert failed == [0] * PROCESSES
    assert stats["rateLimited"] <= calls // 100, stats  # at most 1 % answered 429
    assert stats["total"] == calls  # every call made once: none was retried after a 429
    # together they took at least the time the limit allows for their calls (how close they
    # come to it is bench_workers.py's business, not a test's)
    assert seconds >= (calls - LIMIT) / LIMIT * WINDOW_MS / 1000, seconds


def test_without_a_shared_state_the_same_processes_overrun_it(tmp_path: Path) -> None:
    """What the shared limit prevents: alone, each process takes the whole budget at first."""
    config = SandboxConfig(token=TOKEN, rate_limit_max=LIMIT, rate_limit_interval_ms=WINDOW_MS)
    with start_sandbox(tmp_path / "sandbox.db", config=config) as sandbox:
        callers(sandbox.url, "-")
        stats = sandbox.stats()
    assert stats["rateLimited"] > PROCESSES * CALLS // 100, stats
