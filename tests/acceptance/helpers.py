"""Shared pieces of the exactly-once tests: a sandbox with its environment, a tiny mapping, orders
made from their ids alone, and an independent computation of what HubSpot must hold.

An order's content depends only on its id (and a seed), so overlapping inputs repeat the same
orders; its time is not monotonic in the id, so file order is never time order.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hubmap import sql
from hubmap.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from hubmap.sandbox.app import dump_store
from hubmap.uses import apply as applying
from hubmap.uses import replay as replaying
from hubmap.uses import run as running
from hubmap.uses import status as stating
from hubmap.uses.summary import Summary

TOKEN = "exactly-once-test-token"
PORTAL_ID = 1234567
UNLIMITED = 1_000_000  # rate limits out of the way: these tests are about counting
SKUS = 12
PREPEND_CAP = 10

TINY_MAPPING = """\
version: 1
name: {name}
records:
  id: id
  time: at
  contact: email
{records_extra}
target:
  kind: contacts
  match_on: email
group:
  name: ecommerce
  label: E-commerce
properties:
  tiny_total:
    label: Tiny total
    type: number
    from: amount
    merge: {total_merge}
  tiny_count:
    label: Tiny count
    type: number
    value: 1
    merge: sum
  tiny_last_sku:
    label: Tiny last SKU
    type: string
    from: sku
  tiny_first_sku:
    label: Tiny first SKU
    type: string
    from: sku
    merge: set_once
  tiny_first_date:
    label: Tiny first date
    type: datetime
    from: at
    merge: min
  tiny_skus:
    label: Tiny SKUs
    type: string
    from: sku
    merge: prepend
    max_items: {cap}
{extra}"""

NUMBERS = ("tiny_total", "tiny_count")


def write_mapping(
    folder: Path,
    *,
    name: str = "tiny-orders",
    extra: str = "",
    records_extra: str = "",
    total_merge: str = "sum",
    file_name: str = "tiny.yaml",
) -> Path:
    path = folder / file_name
    path.write_text(
        TINY_MAPPING.format(
            name=name,
            extra=extra,
            records_extra=records_extra,
            total_merge=total_merge,
            cap=PREPEND_CAP,
        ),
        encoding="utf-8",
    )
    return path


def start(**config: Any) -> RunningSandbox:
    settings: dict[str, Any] = {
        "token": TOKEN,
        "portal_id": PORTAL_ID,
        "rate_limit_max": UNLIMITED,
        "forms_rate_limit_max": UNLIMITED,
    }
    settings.update(config)
    return start_sandbox(config=SandboxConfig(**settings))


def environ(sandbox: RunningSandbox) -> dict[str, str]:
    return {
        "HUBSPOT_ACCESS_TOKEN": TOKEN,
        "HUBSPOT_API_BASE": sandbox.url,
        "HUBSPOT_FORMS_BASE": sandbox.url,
        "HUBSPOT_PORTAL_ID": str(PORTAL_ID),
        "HUBSPOT_RATE_LIMIT_MAX": str(UNLIMITED),
    }


def run(
    mapping: Path, orders_file: Path, sandbox: RunningSandbox, state: Path, **options: Any
) -> Summary:
    """`hubmap run`'s use-case; what stopped it is raised."""
    return run_env(mapping, orders_file, environ(sandbox), state, **options)


def run_env(
    mapping: Path | str,
    orders_file: Path | str,
    env: dict[str, str],
    state: Path | str,
    **options: Any,
) -> Summary:
    return (
        running.run(str(mapping), str(orders_file), environ=env, state_path=str(state), **options)
        .unwrap()
        .summary
    )


def replay(mapping: Path | str, env: dict[str, str], state_path: Path | str) -> Summary:
    return replaying.replay(str(mapping), env, state_path=str(state_path)).unwrap().summary


def status(state: Path | str) -> dict[str, Any]:
    return stating.status(str(state)).unwrap()


def apply(mapping: Path | str, env: dict[str, str]) -> Any:
    return applying.apply(str(mapping), env).unwrap()


def contacts(sandbox: RunningSandbox) -> dict[str, dict[str, str]]:
    """Every contact in the sandbox by email, with its non-empty property values."""
    data = dump_store(sandbox.store, sandbox.app.contacts)
    return {
        c["properties"]["email"]: {k: v for k, v in c["properties"].items() if v not in (None, "")}
        for c in data["contacts"]
    }


def order(order_id: int, *, contacts_count: int = 7, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(f"{seed}:{order_id}")
    at = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(
        hours=(order_id * 37) % 1009, minutes=rng.randrange(60)
    )
    return {
        "id": order_id,
        "email": f"buyer{order_id % contacts_count}@example.com",
        "at": at.isoformat().replace("+00:00", "Z"),
        "amount": f"{rng.randrange(1, 100_000) / 100:.2f}",
        "sku": f"SKU-{rng.randrange(SKUS)}",
    }


def orders(ids: Iterable[int], **kwargs: Any) -> list[dict[str, Any]]:
    return [order(i, **kwargs) for i in ids]


def write_orders(path: Path, items: Iterable[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item) + "\n")
    return path


def parse_time(text: str) -> datetime:
    """An ISO time as HubSpot shows it, or epoch milliseconds as hubmap sends it."""
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=timezone.utc)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _key(item: dict[str, Any]) -> tuple[datetime, int]:
    return (parse_time(item["at"]), int(item["id"]))


def expected(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the tiny mapping must leave in HubSpot, computed without hubmap: each order id once."""
    unique = {int(i["id"]): i for i in items}
    per_contact: dict[str, list[dict[str, Any]]] = {}
    for item in unique.values():
        per_contact.setdefault(item["email"], []).append(item)
    result = {}
    for email, mine in per_contact.items():
        mine.sort(key=_key)
        newest_first: list[str] = []
        for item in reversed(mine):
            if item["sku"] not in newest_first:
                newest_first.append(item["sku"])
        result[email] = {
            "tiny_total": sum((Decimal(i["amount"]) for i in mine), Decimal(0)),
            "tiny_count": Decimal(len(mine)),
            "tiny_last_sku": mine[-1]["sku"],
            "tiny_first_sku": mine[0]["sku"],
            "tiny_first_date": parse_time(mine[0]["at"]),
            "tiny_skus": newest_first[:PREPEND_CAP],
        }
    return result


def held(values: dict[str, str]) -> dict[str, Any]:
    """A contact's tiny-mapping values as HubSpot holds them, typed like `expected`."""
    result: dict[str, Any] = {}
    for name, text in values.items():
        if name in NUMBERS:
            result[name] = Decimal(text)
        elif name == "tiny_first_date":
            result[name] = parse_time(text)
        elif name == "tiny_skus":
            result[name] = text.split(";")
        elif name.startswith("tiny_"):
            result[name] = text
    return result


def assert_hubspot_holds(sandbox: RunningSandbox, items: Iterable[dict[str, Any]]) -> None:
    want = expected(items)
    got = {email: held(values) for email, values in contacts(sandbox).items()}
    assert got == want


# -- crashes -----------------------------------------------------------------------------------


class Crash(BaseException):
    """The process dies here (a BaseException: no `except Exception` of hubmap catches it)."""


class CrashingTransport:
    """A real transport that dies at call number `at`: before sending it, or (`after_send`) once
    HubSpot has handled it, so its answer is lost.  After that every call dies too, as nothing
    of a dead process runs on."""

    def __init__(self, at: int, after_send: bool = False):
        import threading

        from hubmap.hubspot.transport import RequestsTransport

        self.inner = RequestsTransport()
        self.at = at
        self.after_send = after_send
        self.calls = 0
        self.crashed = False
        self._lock = threading.Lock()

    def send(self, method: str, url: str, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
            number = self.calls
        if self.crashed or number > self.at or (number == self.at and not self.after_send):
            self.crashed = True
            raise Crash(f"crashed before call {number}")
        response = self.inner.send(method, url, **kwargs)
        if number == self.at:
            self.crashed = True
            raise Crash(f"crashed after call {number}")
        return response

    def close(self) -> None:
        self.inner.close()


def crashing_documents(path: Path, after: int) -> Any:
    """The documents of an NDJSON file, dying after `after` of them."""
    from hubmap.inputs import read_documents

    for number, document in enumerate(read_documents(str(path)), start=1):
        if number > after:
            raise Crash(f"crashed reading record {number}")
        yield document


class Job:
    """A run's pipeline over its own state store and client, fed documents directly (close
    `.state` and `.client` after)."""

    def __init__(
        self,
        mapping: Path,
        sandbox: RunningSandbox,
        state_path: Path,
        *,
        transport: Any = None,
        dry_run: bool = False,
        rebuild: bool = False,
        workers: int = 4,
        **options: Any,
    ):
        from hubmap.hubspot import HubSpotClient, HubSpotSettings
        from hubmap.mapping import load_mapping
        from hubmap.state import StateStore
        from hubmap.uses.contacts import SyncOptions

        self.mapping = load_mapping(str(mapping))
        self.env = environ(sandbox)
        self.client = HubSpotClient(HubSpotSettings.from_env(self.env), transport=transport)
        self.state = StateStore(state_path)
        self.dry_run = dry_run
        self.rebuild = rebuild
        self.options = SyncOptions(workers=workers, **options)

    def run(self, documents: Any) -> Summary:
        return running.sync_documents(
            self.mapping,
            self.client,
            self.state,
            documents,
            environ=self.env,
            input_name="(test)",
            dry_run=self.dry_run,
            rebuild=self.rebuild,
            options=self.options,
        )


def runner(
    mapping: Path,
    sandbox: RunningSandbox,
    state_path: Path,
    *,
    transport: Any = None,
    **options: Any,
) -> Job:
    options.pop("input_path", None)
    return Job(mapping, sandbox, state_path, transport=transport, **options)


def run_until_crash(
    mapping: Path,
    sandbox: RunningSandbox,
    state_path: Path,
    source: Path,
    *,
    call: int | None = None,
    after_send: bool = False,
    record: int | None = None,
    **options: Any,
) -> bool:
    """One run that dies at HubSpot call `call` or input record `record`; True if it died."""
    from hubmap.inputs import read_documents

    transport = CrashingTransport(call, after_send) if call is not None else None
    job = runner(mapping, sandbox, state_path, transport=transport, **options)
    documents = (
        crashing_documents(source, record) if record is not None else read_documents(str(source))
    )
    try:
        job.run(documents)
    except Crash:
        return True
    finally:
        job.client.close()
        job.state.close()
    return False


# -- states in either backend ---------------------------------------------------------------


def forget_state(state: Path | str) -> None:
    """The state is lost: a SQLite file deleted (with its sidecar files, if any were left), or a
    PostgreSQL database emptied of every table."""
    if sql.is_url(state):
        db = sql.connect(state)
        try:
            db.script("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            db.close()
        return
    for path in (Path(state), Path(f"{state}-wal"), Path(f"{state}-shm")):
        path.unlink(missing_ok=True)


def copy_state(source: Path | str, copy: Path | str) -> None:
    """A copy of a closed state as it is now (a file copied, or a database made from it)."""
    if not sql.is_url(source):
        assert not Path(f"{source}-wal").exists()  # closed: the file alone is the whole state
        shutil.copyfile(source, copy)
        return
    import psycopg

    server, name = str(source).rsplit("/", 1)
    copy_name = str(copy).rsplit("/", 1)[1]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{copy_name}"')
        admin.execute(f'CREATE DATABASE "{copy_name}" TEMPLATE "{name}"')
