"""Contacts read from HubSpot while the input is still being counted (`uses.contacts.EarlyReads`):
the reads overlap counting, the calls stay at the lower bound, and every guarantee of the write
phase holds - a foreign fence anywhere stops the run before its first write, a failed read fails
only its contacts, the daily limit stops the run with the input counted and nothing written."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hubmap.hubspot.transport import RequestsTransport, Response
from hubmap.inputs import read_documents
from hubmap.problems import HubmapError
from tests.acceptance import helpers

READ = "/objects/contacts/batch/read"
UPSERT = "/objects/contacts/batch/upsert"
UPDATE = "/objects/contacts/batch/update"


@pytest.fixture
def sandbox() -> Iterator[Any]:
    running = helpers.start()
    yield running
    running.stop()


class Counted:
    """The documents of an NDJSON file, counting how many were taken."""

    def __init__(self, path: Path):
        self.path = path
        self.taken = 0

    def __iter__(self) -> Iterator[Any]:
        for document in read_documents(str(self.path)):
            self.taken += 1
            yield document


class Recording:
    """A real transport that notes each call's path (and, with `documents`, how many input
    documents were taken when it was sent); `answer(path, number)` may answer a call instead."""

    def __init__(self, documents: Counted | None = None, answer: Any = None):
        self.inner = RequestsTransport()
        self.documents = documents
        self.answer = answer
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def send(self, method: str, url: str, **kwargs: Any) -> Any:
        path = url.split("?", 1)[0]
        with self.lock:
            self.calls.append((path, self.documents.taken if self.documents else 0))
            number = sum(1 for p, _ in self.calls if p.endswith(READ))
        made = self.answer(path, number) if self.answer else None
        return made if made is not None else self.inner.send(method, url, **kwargs)

    def close(self) -> None:
        self.inner.close()

    def count(self, suffix: str) -> int:
        return sum(1 for path, _ in self.calls if path.endswith(suffix))


def job(
    tmp_path: Path, sandbox: Any, transport: Recording, state: str = "state.db", **options: Any
) -> Any:
    return helpers.runner(
        helpers.write_mapping(tmp_path), sandbox, tmp_path / state, transport=transport, **options
    )


def run(runner: Any, documents: Any) -> Any:
    try:
        return runner.run(documents)
    finally:
        runner.client.close()
        runner.state.close()


def test_contacts_are_read_while_the_input_is_still_being_counted(tmp_path, sandbox):
    items = helpers.orders(range(1, 301), contacts_count=150)
    documents = Counted(helpers.write_orders(tmp_path / "orders.ndjson", items))
    transport = Recording(documents)
    summary = run(job(tmp_path, sandbox, transport, count_chunk=30, batch=10, workers=2), documents)
    assert summary.ok, summary.failures
    sent_while_counting = [
        taken for path, taken in transport.calls if path.endswith(READ) and taken < len(items)
    ]
    assert sent_while_counting  # the reads did not wait for the end of the input
    batches = math.ceil(150 / 10)
    assert transport.count(READ) == transport.count(UPSERT) == batches  # the lower bound
    helpers.assert_hubspot_holds(sandbox, items)


def test_reading_early_or_not_writes_the_same_values_with_the_same_calls(tmp_path, sandbox):
    items = helpers.orders(range(1, 121), contacts_count=45)
    path = helpers.write_orders(tmp_path / "orders.ndjson", items)
    early, late = Recording(), Recording()
    run(job(tmp_path, sandbox, early, count_chunk=20, batch=10), read_documents(str(path)))
    first = {email: helpers.held(values) for email, values in helpers.contacts(sandbox).items()}
    sandbox.reset()
    run(
        job(tmp_path, sandbox, late, state="late.db", count_chunk=20, batch=10, early_reads=0),
        read_documents(str(path)),
    )
    assert {
        email: helpers.held(values) for email, values in helpers.contacts(sandbox).items()
    } == first
    assert len(early.calls) == len(late.calls)
    helpers.assert_hubspot_holds(sandbox, items)


def test_a_foreign_fence_in_the_last_batch_stops_the_run_before_any_write(tmp_path, sandbox):
    items = helpers.orders(range(1, 201), contacts_count=100)
    last = max(item["email"] for item in items)
    mine = [item for item in items if item["email"] == last]
    # another state writes the contact that sorts last: its fence is not this state's
    run(
        job(tmp_path, sandbox, Recording(), state="other.db"),
        read_documents(str(helpers.write_orders(tmp_path / "other.ndjson", mine))),
    )
    before = helpers.contacts(sandbox)
    transport = Recording()
    with pytest.raises(HubmapError) as stopped:
        run(
            job(tmp_path, sandbox, transport, batch=10, workers=3),
            read_documents(str(helpers.write_orders(tmp_path / "orders.ndjson", items))),
        )
    assert {p.code for p in stopped.value.problems} == {"HM708"}
    assert transport.count(READ) == 10 and transport.count(UPSERT) == 0
    assert helpers.contacts(sandbox) == before


def test_a_failed_early_read_fails_only_its_contacts_and_the_next_run_writes_them(
    tmp_path, sandbox
):
    items = helpers.orders(range(1, 81), contacts_count=40)
    path = helpers.write_orders(tmp_path / "orders.ndjson", items)

    def refuse_the_second_read(path_: str, number: int) -> Response | None:
        if path_.endswith(READ) and number == 2:
            return Response(
                400,
                {"Content-Type": "application/json"},
                json.dumps(
                    {"status": "error", "message": "refused", "category": "VALIDATION_ERROR"}
                ).encode(),
            )
        return None

    transport = Recording(answer=refuse_the_second_read)
    summary = run(job(tmp_path, sandbox, transport, batch=10), read_documents(str(path)))
    assert summary.contacts_failed == 10
    assert summary.contacts_created == 30
    assert all("reading the contacts failed" in reason for _, reason in summary.failures)
    again = run(job(tmp_path, sandbox, Recording(), batch=10), read_documents(str(path)))
    assert again.ok and again.contacts_created == 10
    helpers.assert_hubspot_holds(sandbox, items)


def test_the_daily_limit_met_while_counting_stops_the_run_before_any_write(tmp_path, sandbox):
    items = helpers.orders(range(1, 61), contacts_count=30)
    path = helpers.write_orders(tmp_path / "orders.ndjson", items)

    def daily_limit(path_: str, number: int) -> Response | None:
        if path_.endswith(READ):
            return Response(
                429,
                {"Content-Type": "application/json"},
                json.dumps(
                    {
                        "status": "error",
                        "message": "You have reached your daily limit.",
                        "policyName": "DAILY",
                        "category": "RATE_LIMITS",
                    }
                ).encode(),
            )
        return None

    transport = Recording(answer=daily_limit)
    summary = run(job(tmp_path, sandbox, transport, batch=10), read_documents(str(path)))
    assert summary.stopped
    assert summary.orders.new == len(items)  # the input was counted to its end
    assert transport.count(UPSERT) == 0 and helpers.contacts(sandbox) == {}
    again = run(job(tmp_path, sandbox, Recording(), batch=10), read_documents(str(path)))
    assert again.ok and again.contacts_created == 30
    helpers.assert_hubspot_holds(sandbox, items)


@pytest.mark.parametrize("held_bytes", [3_000, 0])
def test_contacts_past_the_memory_held_are_read_and_loaded_when_written(tmp_path, held_bytes):
    # The answers of early reads and the prepared writes wait packed, within a byte budget;
    # the contacts past it are read in the write phase and loaded from the state to be sent:
    # the same values, with the same (fewest) calls, as a run that holds every one.
    before, later = helpers.orders(range(1, 151)), helpers.orders(range(151, 451))
    for item in before + later:
        item["email"] = f"buyer{item['id'] % 150}@example.com"
    history = helpers.write_orders(tmp_path / "before.ndjson", before)
    everything = helpers.write_orders(tmp_path / "everything.ndjson", before + later)
    values, calls = [], []
    for budget in (10_000_000, held_bytes):
        sandbox = helpers.start()  # contacts that exist, written by this state's history
        try:
            state = f"state-{budget}.db"
            run(
                job(tmp_path, sandbox, Recording(), state=state, batch=10),
                read_documents(str(history)),
            )
            transport = Recording()
            summary = run(
                job(
                    tmp_path,
                    sandbox,
                    transport,
                    state=state,
                    batch=10,
                    count_chunk=30,
                    early_reads=60,
                    held_bytes=budget,
                ),
                read_documents(str(everything)),
            )
            assert summary.ok, summary.failures
            assert summary.contacts_updated == 150
            helpers.assert_hubspot_holds(sandbox, before + later)
            values.append(
                {email: helpers.held(v) for email, v in helpers.contacts(sandbox).items()}
            )
            calls.append((transport.count(READ), transport.count(UPSERT), transport.count(UPDATE)))
        finally:
            sandbox.stop()
    assert values[0] == values[1]
    assert calls[0] == calls[1] == (15, 0, 15)  # by record id: they exist
