"""A full disk, a damaged state file, a token that cannot be sent: each ends in a clear message
(exit 2, no traceback), and the same command run again afterwards is exact.

The disk fills for real: the hubmap process runs with a file-size limit (RLIMIT_FSIZE, SIGXFSZ
ignored), so SQLite's and Python's writes fail as on a full disk, at the state file or the reject
file.  The stand-in HubSpot runs in the test process, outside the limit.  Expected values come
from counting the generated orders, not from hubmap.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from hubmap.sandbox import SandboxConfig, start_sandbox
from tests.conftest import MAPPINGS, ROOT

TOKEN = "failing-disks-token"
MAPPING = MAPPINGS / "quickstart-contacts.yaml"
CONTACTS = 200


def _orders(count: int) -> list[dict]:
    return [
        {
            "order_id": f"A-{n}",
            "placed_at": "2025-03-02T18:30:00+01:00",
            "status": "paid",
            "currency": "EUR",
            "total": f"{n % 7}.{n % 100:02d}",
            "customer": {"email": f"c{n % CONTACTS}@example.com"},
            "items": [{"sku": f"S{n}"}],
        }
        for n in range(count)
    ]


def _expected(orders: list[dict]) -> dict[str, tuple[str, str]]:
    counts: Counter[str] = Counter()
    totals: dict[str, Decimal] = {}
    for order in orders:
        email = order["customer"]["email"]
        counts[email] += 1
        totals[email] = totals.get(email, Decimal(0)) + Decimal(order["total"])
    return {email: (str(counts[email]), f"{totals[email]:.2f}") for email in counts}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    orders = _orders(1_200)
    (tmp_path / "orders.ndjson").write_text(
        "".join(json.dumps(o) + "\n" for o in orders), encoding="utf-8"
    )
    return tmp_path


@pytest.fixture
def sandbox(tmp_path: Path):  # type: ignore[no-untyped-def]
    with start_sandbox(tmp_path / "stand-in.db", config=SandboxConfig(token=TOKEN)) as running:
        yield running


def _limited(size: int | None):  # type: ignore[no-untyped-def]
    def apply() -> None:
        if size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write then fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def _run(
    folder: Path, url: str, *extra: str, limit: int | None = None, token: str = TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env.update(
        PYTHONPATH=str(ROOT / "engine"),
        HUBSPOT_ACCESS_TOKEN=token,
        HUBSPOT_API_BASE=url,
        NO_COLOR="1",
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hubmap.cli",
            "run",
            str(MAPPING),
            "--input",
            "orders.ndjson",
            *extra,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limited(limit),
    )


def _contacts(sandbox) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    dumped = requests.get(f"{sandbox.url}/_sandbox/dump", timeout=10).json()
    return {
        c["properties"]["email"]: (
            c["properties"].get("total_number_of_orders"),
            c["properties"].get("total_value_of_orders"),
        )
        for c in dumped["contacts"]
    }


def _orders_in(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "orders.ndjson").read_text().splitlines()]


@pytest.mark.parametrize("limit", [60_000, 250_000, 700_000])
def test_a_full_disk_under_the_state_ends_clearly_and_the_rerun_is_exact(folder, sandbox, limit):
    full = _run(folder, sandbox.url, limit=limit)
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr
    assert "run the same command again" in full.stderr and "hubmap-state.db" in full.stderr
    again = _run(folder, sandbox.url)
    assert again.returncode == 0, again.stderr
    assert _contacts(sandbox) == _expected(_orders_in(folder))
    once_more = _run(folder, sandbox.url)  # and nothing is counted twice afterwards
    assert once_more.returncode == 0 and "0 new" in once_more.stdout
    assert _contacts(sandbox) == _expected(_orders_in(folder))


def test_a_full_disk_under_the_reject_file_ends_clearly_and_the_rerun_is_exact(folder, sandbox):
    with (folder / "orders.ndjson").open("a", encoding="utf-8") as stream:
        stream.write("not json\n")  # one reject to write
    full = _run(folder, sandbox.url, "--rejects", "/dev/full")
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr
    assert "cannot write '/dev/full': the disk is full" in full.stderr
    again = _run(folder, sandbox.url)
    assert again.returncode == 1, again.stderr  # the bad line is a reject: a partial run
    assert "rejected: 1" in again.stdout
    good = [
        json.loads(line)
        for line in (folder / "orders.ndjson").read_text().splitlines()
        if line.startswith("{")
    ]
    assert _contacts(sandbox) == _expected(good)


def test_a_damaged_state_file_is_named_and_a_rebuild_is_exact(folder, sandbox):
    first = _run(folder, sandbox.url)
    assert first.returncode == 0, first.stderr
    state = folder / "hubmap-state.db"
    with closing(sqlite3.connect(state)) as db:  # the last connection: the WAL is checkpointed
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        try:
            pages = [
                n
                for (n,) in db.execute(
                    "SELECT pageno FROM dbstat WHERE name='orders' AND pagetype='leaf' "
                    "ORDER BY pageno"
                )
            ]
        except sqlite3.OperationalError:
            pytest.skip(
                "this Python's SQLite has no dbstat table (SQLITE_ENABLE_DBSTAT_VTAB) "
                "to find a page of the orders table"
            )
    with state.open("r+b") as stream:  # a page in the middle of the orders table goes bad
        stream.seek((pages[len(pages) // 2] - 1) * page_size)  # (every order is read again)
        stream.write(b"\xff" * page_size)
    damaged = _run(folder, sandbox.url)
    assert damaged.returncode == 2, damaged.stderr
    assert "Traceback" not in damaged.stderr
    assert "is damaged" in damaged.stderr and "--rebuild" in damaged.stderr
    shutil.move(state, folder / "damaged.db")
    for wal in folder.glob("hubmap-state.db-*"):
        wal.unlink()
    rebuilt = _run(folder, sandbox.url, "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert _contacts(sandbox) == _expected(_orders_in(folder))


def test_a_token_with_a_character_no_header_can_carry_is_refused_clearly(folder, sandbox):
    done = _run(folder, sandbox.url, token="pat-na1-\u00e4bc\u20ac")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "HUBSPOT_ACCESS_TOKEN holds a character" in done.stderr and "U+00E4" in done.stderr
