"""Resuming after a crash counts every order exactly once: crashes injected at HubSpot calls (before
the request, or after HubSpot handled it and before the answer came back) and while reading the
input, then the real CLI killed with SIGKILL at random moments; a final run always leaves exactly
the values of one clean fold.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from hubmap import sql
from hubmap.sandbox import RunningSandbox
from tests.acceptance import changes, helpers
from tests.conftest import ROOT

KILLS = 4
KILL_LATENCY_MS = 60  # per sandbox request: makes a CLI run last a few seconds
RUN_TIMEOUT = 120
SLOW_HUBSPOT_MS = 2_500  # per request, while a second run is tried against the first


@pytest.fixture
def sandbox():  # type: ignore[no-untyped-def]
    running = helpers.start()
    yield running
    running.stop()


def _pre_existing(sandbox: RunningSandbox, mapping: Path, emails: list[str]) -> None:
    """Contacts HubSpot had before hubmap: a total of 5 and a count of 2 each (the baseline)."""
    helpers.apply(str(mapping), helpers.environ(sandbox))
    for email in emails:
        response = requests.post(
            f"{sandbox.url}/crm/v3/objects/contacts",
            json={"properties": {"email": email, "tiny_total": "5", "tiny_count": "2"}},
            headers={"Authorization": f"Bearer {helpers.TOKEN}"},
            timeout=10,
        )
        response.raise_for_status()


def _assert_with_baseline(
    sandbox: RunningSandbox, items: list[dict[str, Any]], with_baseline: set[str]
) -> None:
    want = helpers.expected(items)
    for email in with_baseline:
        want[email]["tiny_total"] += 5
        want[email]["tiny_count"] += 2
    got = {email: helpers.held(values) for email, values in helpers.contacts(sandbox).items()}
    assert got == want


@pytest.mark.parametrize(
    "call, after_send",
    [
        (3, False),
        (3, True),  # reading a batch of contacts
        (4, False),
        (4, True),  # the first upsert: before it, and after HubSpot wrote it
        (6, True),
        (9, False),
        (11, True),
    ],
)
def test_a_crash_at_a_hubspot_call_then_a_run_to_the_end_is_exact(
    tmp_path: Path, sandbox, call: int, after_send: bool, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 121), contacts_count=23)
    source = helpers.write_orders(tmp_path / "orders.ndjson", items)
    baseline = {"buyer0@example.com", "buyer1@example.com", "buyer7@example.com"}
    _pre_existing(sandbox, mapping, sorted(baseline))
    state = new_state("state.db")
    # calls: 1 property list, 2 group list (both exist), then read/upsert per batch of 4
    assert helpers.run_until_crash(
        mapping, sandbox, state, source, call=call, after_send=after_send, batch=4, workers=1
    )
    final = helpers.run(mapping, source, sandbox, state, options={"batch": 4})
    assert final.drift == 0  # what hubmap was writing is not someone's edit
    assert final.ok
    _assert_with_baseline(sandbox, items, baseline)


def test_crashes_while_counting_and_writing_several_times_then_exact(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 301), contacts_count=41)
    source = helpers.write_orders(tmp_path / "orders.ndjson", items)
    state = new_state("state.db")
    assert helpers.run_until_crash(mapping, sandbox, state, source, record=130, count_chunk=50)
    assert helpers.run_until_crash(
        mapping, sandbox, state, source, call=5, after_send=True, count_chunk=50, batch=5, workers=3
    )
    assert helpers.run_until_crash(mapping, sandbox, state, source, record=290, count_chunk=7)
    assert helpers.run_until_crash(mapping, sandbox, state, source, call=8, batch=3, workers=2)
    final = helpers.run(mapping, source, sandbox, state)
    assert final.ok and final.drift == 0
    helpers.assert_hubspot_holds(sandbox, items)


# -- the real CLI, killed --------------------------------------------------------------------


def _cli(
    mapping: Path, source: Path, state: Path, sandbox: RunningSandbox, *extra: str
) -> subprocess.Popen[str]:
    env = {**os.environ, **helpers.environ(sandbox), "PYTHONPATH": str(ROOT / "engine")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hubmap.cli",
            "run",
            str(mapping),
            "--input",
            str(source),
            "--state",
            str(state),
            "--rejects",
            str(source.with_suffix(".rejects")),
            "--workers",
            "1",
            "--format",
            "json",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _progress(state: Path | str) -> tuple[int, int]:
    """(orders counted, contacts written) so far, read beside the running process."""
    if not sql.is_url(state) and not Path(state).exists():
        return (0, 0)
    db = sql.connect(state, timeout=10)
    try:
        orders = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        written = db.execute("SELECT COUNT(*) FROM contacts WHERE dirty=0").fetchone()[0]
        return int(orders), int(written)
    except sql.DatabaseError:  # tables not created yet
        return (0, 0)
    finally:
        db.close()


def _wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the run did not get there in time")
        time.sleep(0.02)


@pytest.mark.slow
def test_the_cli_killed_at_random_moments_then_run_to_the_end_is_exact(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 4001), contacts_count=1500)
    source = helpers.write_orders(tmp_path / "orders.ndjson", items)
    state = new_state("state.db")
    sandbox.configure(latency_ms=KILL_LATENCY_MS)
    rng = random.Random(int(os.environ.get("HUBMAP_KILL_SEED", "1")))
    seen: list[tuple[int, int]] = []
    for kill in range(KILLS):
        process = _cli(mapping, source, state, sandbox)
        if kill == 0:  # anywhere early: provisioning or counting
            time.sleep(rng.uniform(0.3, 1.5))
        else:  # mid-write: after some contacts were confirmed
            _wait_for(lambda: _progress(state)[1] > seen[-1][1] if seen else True)
            time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=RUN_TIMEOUT)  # reaps it: its lock is now a dead process's
        seen.append(_progress(state))
    print("progress at each kill (orders counted, contacts confirmed):", seen)
    assert any(0 < written < 1500 for _, written in seen), seen  # some kills were mid-way

    final = _cli(mapping, source, state, sandbox)
    out, err = final.communicate(timeout=RUN_TIMEOUT)
    assert final.returncode == 0, err
    sandbox.configure(latency_ms=0)
    helpers.assert_hubspot_holds(sandbox, items)
    assert _progress(state) == (4000, 1500)


@pytest.mark.slow
def test_changing_orders_with_the_cli_killed_at_random_moments_end_exact(
    tmp_path: Path, sandbox, new_state
) -> None:
    """Versions, stale copies, withdrawals and refunds, with SIGKILLs while counting and while
    writing: the run to the end leaves the fold over each order's latest version."""
    mapping = changes.write_mapping(tmp_path)
    rng = random.Random(int(os.environ.get("HUBMAP_KILL_SEED", "2")))
    records = changes.every_record(changes.history(7, orders=1500, contacts=600))
    feed = records + rng.sample(records, len(records) // 2)  # repeats and stale copies
    rng.shuffle(feed)
    source = helpers.write_orders(tmp_path / "changes.ndjson", feed)
    state = new_state("state.db")
    sandbox.configure(latency_ms=KILL_LATENCY_MS)
    seen: list[tuple[int, int]] = []
    for kill in range(KILLS):
        process = _cli(mapping, source, state, sandbox)
        time.sleep(rng.uniform(0.3, 2.5))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=RUN_TIMEOUT)
        seen.append(_progress(state))
    print("progress at each kill (orders stored, contacts confirmed):", seen)
    assert any(orders > 0 for orders, _ in seen), seen  # killed after taking records in
    assert any(written < 600 for _, written in seen), seen  # ... and before the end
    final = _cli(mapping, source, state, sandbox)
    out, err = final.communicate(timeout=RUN_TIMEOUT)
    assert final.returncode == 0, err
    sandbox.configure(latency_ms=0)
    got = {email: changes.held(values) for email, values in helpers.contacts(sandbox).items()}
    assert {e: v for e, v in got.items() if v} == changes.expected(feed)


@pytest.mark.slow
def test_a_second_cli_run_on_the_same_state_is_refused_while_the_first_runs(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    items = helpers.orders(range(1, 801), contacts_count=400)
    source = helpers.write_orders(tmp_path / "orders.ndjson", items)
    state = new_state("state.db")
    # slow enough that the first run outlasts the second's start-up on a busy machine: its reads
    # (made while it counts) and its upserts each wait this long for HubSpot
    sandbox.configure(latency_ms=SLOW_HUBSPOT_MS)
    first = _cli(mapping, source, state, sandbox)
    _wait_for(lambda: _progress(state)[0] > 0)
    second = _cli(mapping, source, state, sandbox)
    _, err = second.communicate(timeout=RUN_TIMEOUT)
    assert second.returncode == 2
    assert "another hubmap run" in err
    out, err = first.communicate(timeout=RUN_TIMEOUT)
    assert first.returncode == 0, err
    sandbox.configure(latency_ms=0)
    helpers.assert_hubspot_holds(sandbox, items)
