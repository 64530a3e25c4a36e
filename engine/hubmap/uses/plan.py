"""`hubmap plan`: what the orders in an input would write, per contact (HubSpot's values unknown:
every contact is shown as if HubSpot had nothing yet).

A contacts mapping's records go through a run's count phase (`ContactsSync.count`: the same
versions, refunds and folds) into a temporary state file, deleted afterwards; the contacts are
then read back one at a time, in key order, while they are printed.  So memory does not grow
with the input: contacts live on disk, and `plan_streamed` keeps rejected and skipped records in
a temporary file too.  A forms mapping (one submission per order, printed in arrival order) is
planned in memory (`hubmap.plan.plan_outcomes`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from hubmap import sync
from hubmap.catalogs import load_catalogs
from hubmap.evaluate import CompiledMapping, OrderValues, RefundValues, Rejected, Skipped
from hubmap.fold import ContactFolder
from hubmap.inputs import read_documents
from hubmap.mapping import load_mapping
from hubmap.plan import (
    ContactPlan,
    Plan,
    ValuesSeen,
    never_given_warning,
    plan_outcomes,
    taken_in,
)
from hubmap.state import StateStore
from hubmap.sync import Tally
from hubmap.types import CoercionError
from hubmap.uses.contacts import ContactsSync, Fences, SyncOptions
from hubmap.uses.job import Job
from hubmap.uses.outcome import EXIT_OK, EXIT_PROBLEMS, Outcome, outcome_of
from hubmap.uses.rejects import RejectSink
from hubmap.uses.summary import Progress, Summary

SCOPE = "plan"  # the one scope of a plan's temporary state

T = TypeVar("T")


class Sink(Protocol[T]):
    """Where a plan keeps its rejected or skipped records: a list, or a `Spool`."""

    def append(self, item: T) -> None: ...
    def __iter__(self) -> Iterator[T]: ...
    def __len__(self) -> int: ...


class Spool(Generic[T]):
    """Items kept in a temporary file as JSON lines of their fields (`fields`), read back in
    order as `make(*fields)`: however many there are, they cost no memory."""

    def __init__(self, path: Path, fields: Callable[[T], list[Any]], make: Callable[..., T]):
        self.path = path
        self.fields = fields
        self.make = make
        self.count = 0
        self.file = path.open("w", encoding="utf-8")

    def append(self, item: T) -> None:
        self.file.write(json.dumps(self.fields(item), ensure_ascii=False, default=str) + "\n")
        self.count += 1

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[T]:
        self.file.flush()
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                yield self.make(*json.loads(line))

    def close(self) -> None:
        self.file.close()


def _rejected_fields(r: Rejected) -> list[Any]:
    return [r.where, r.reason, r.order_id, r.property_name, r.code]


def _skipped_fields(s: Skipped) -> list[Any]:
    return [s.where, s.order_id, s.reason, s.version]


class StoredPlan:
    """A plan whose contacts are in a temporary state: the same fields as `hubmap.plan.Plan`,
    but `contacts` is read once, as it is iterated (a contact HubSpot could not hold goes to
    `unwritable` then).  `close()` deletes the temporary state."""

    def __init__(
        self,
        compiled: CompiledMapping,
        rejected: Sink[Rejected],
        skipped: Sink[Skipped],
        folder: Path | None,
    ):
        self.folder = ContactFolder(compiled)
        self.rejected = rejected
        self.skipped = skipped
        self.records = 0
        self.orders = Tally()
        self.refunds_waiting = 0
        self.warnings: list[str] = []
        self.params: list[Any] = []  # the mapping's parameters, as used
        self.unwritable: list[tuple[str, str]] = []
        self.submissions: list[OrderValues] = []  # a contacts mapping submits no form
        self._place = folder
        self.state: StateStore | None = None

    @property
    def contacts(self) -> Iterator[ContactPlan]:
        assert self.state is not None
        before: dict[str, str | None] = {}
        self.unwritable = []  # found again by each reading
        for contact, acc, orders in self.state.folded_contacts(SCOPE):
            try:
                after = sync.wire_values(self.folder, self.folder.load(acc), before)
            except CoercionError as unwritable:
                self.unwritable.append((contact, str(unwritable)))
                continue
            yield ContactPlan(contact, sync.changes(self.folder, before, after), after, orders)

    def close(self) -> None:
        for sink in (self.rejected, self.skipped):
            if isinstance(sink, Spool):
                sink.close()
        if self.state is not None:
            self.state.close()
            self.state = None
        if self._place is not None:
            shutil.rmtree(self._place, ignore_errors=True)
            self._place = None


def count_into_state(
    compiled: CompiledMapping,
    outcomes: Iterable[OrderValues | Rejected | Skipped | RefundValues],
    plan: StoredPlan,
    place: Path,
) -> None:
    """Take the records through a run's count phase into a new state file in `place`."""
    state = plan.state = StateStore(place / "plan.db")
    state.db.execute("PRAGMA synchronous=OFF")  # a temporary file: nothing to keep on a crash
    run_id = state.start_run(SCOPE, compiled.mapping.file, "plan")
    lock = threading.Lock()
    summary = Summary()
    job = Job(
        compiled,
        None,
        state,
        SCOPE,
        run_id,
        summary,
        RejectSink(state, SCOPE, run_id, None, lock),
        Progress(),
        lock,
    )
    # only the count phase: no client, so no contact is read while counting, and no fence
    counting = ContactsSync(job, SyncOptions(early_reads=0), Fences(ours="", ledger=""))

    counting.count(taken_in(outcomes, plan))
    plan.orders = summary.orders
    plan.refunds_waiting = state.refunds_waiting(SCOPE)


def _stored_plan(
    mapping_path: str, input_path: str, input_format: str | None, place: Path, spooled: bool
) -> StoredPlan | Plan:
    """The records counted into a temporary state in `place` (a forms mapping: a Plan in
    memory); `spooled`: rejected and skipped records kept in files there, not in lists."""
    mapping = load_mapping(mapping_path)
    compiled = CompiledMapping(mapping, load_catalogs(mapping))
    seen = ValuesSeen()
    outcomes = seen.watch(compiled.outcomes(read_documents(input_path, input_format)))
    if mapping.is_forms:
        in_memory = plan_outcomes(compiled, outcomes)
        in_memory.warnings = compiled.take_warnings() + _never_given(seen, compiled)
        in_memory.params = list(mapping.params)
        return in_memory
    rejected: Sink[Rejected] = []
    skipped: Sink[Skipped] = []
    if spooled:
        rejected = Spool(place / "rejected.ndjson", _rejected_fields, Rejected)
        skipped = Spool(place / "skipped.ndjson", _skipped_fields, Skipped)
    plan = StoredPlan(compiled, rejected, skipped, place)
    plan.params = list(mapping.params)
    try:
        count_into_state(compiled, outcomes, plan, place)
        plan.warnings = compiled.take_warnings() + _never_given(seen, compiled)
    except BaseException:
        plan.close()
        raise
    return plan


def _never_given(seen: ValuesSeen, compiled: CompiledMapping) -> list[str]:
    return [never_given_warning(name, "input record") for name in seen.never_given(compiled)]


def exit_code(plan: Plan | StoredPlan) -> int:
    """Known once a StoredPlan's contacts were read (they say which cannot be written)."""
    return EXIT_PROBLEMS if len(plan.rejected) or plan.unwritable else EXIT_OK


def plan_streamed(mapping_path: str, input_path: str, input_format: str | None = None) -> Outcome:
    """`hubmap plan` as the CLI prints it: the value is a StoredPlan (or, for a forms mapping, a
    Plan) to print and then close; its exit class is `exit_code(value)` once printed."""

    def work() -> StoredPlan | Plan:
        place = Path(tempfile.mkdtemp(prefix="hubmap-plan-"))
        try:
            stored = _stored_plan(mapping_path, input_path, input_format, place, spooled=True)
        except BaseException:
            shutil.rmtree(place, ignore_errors=True)
            raise
        if isinstance(stored, Plan):
            shutil.rmtree(place, ignore_errors=True)
        return stored

    return outcome_of(work, lambda _: EXIT_OK, mapping_path)


def plan(mapping_path: str, input_path: str, input_format: str | None = None) -> Outcome:
    """`hubmap plan` for library callers: the whole Plan in memory (the rejected and skipped
    records as evaluated, with their raw records)."""

    def work() -> Plan:
        place = Path(tempfile.mkdtemp(prefix="hubmap-plan-"))
        try:
            stored = _stored_plan(mapping_path, input_path, input_format, place, spooled=False)
            if isinstance(stored, Plan):
                return stored
            try:
                result = Plan(
                    contacts=list(stored.contacts),
                    rejected=list(stored.rejected),
                    skipped=list(stored.skipped),
                    records=stored.records,
                    orders=stored.orders,
                    refunds_waiting=stored.refunds_waiting,
                    warnings=stored.warnings,
                    unwritable=stored.unwritable,
                )
            finally:
                stored.close()
            return result
        finally:
            shutil.rmtree(place, ignore_errors=True)

    return outcome_of(work, exit_code, mapping_path)
