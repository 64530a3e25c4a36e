"""What records would write, per contact or per form submission (pure, no I/O).

`plan_outcomes` takes evaluated records in arrival order through the same decisions as a run
(`hubmap.sync.MemoryLedger`: versions, withdrawals, refunds, folds) and gives each contact's
values before -> after, the submissions a forms mapping would make, and the rejected and skipped
records.  It is what `hubmap plan` prints and what `hubmap test` compares with an example's
expectations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from typing import Any, Protocol

from hubmap import sync
from hubmap.evaluate import CompiledMapping, OrderValues, RefundValues, Rejected, Skipped
from hubmap.fold import ContactFolder
from hubmap.sync import Change, Tally
from hubmap.types import CoercionError

PLAN_CHUNK = 2_000  # records taken into the ledger at a time, as a run does


@dataclass
class ContactPlan:
    contact: str
    changes: dict[str, Change]
    values: dict[str, str]  # every value to hold, changed or not ("" for no value)
    orders: int


@dataclass
class Plan:
    contacts: list[ContactPlan] = field(default_factory=list)
    submissions: list[OrderValues] = field(default_factory=list)  # forms: one per order
    rejected: list[Rejected] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    records: int = 0
    orders: Tally = field(default_factory=Tally)
    refunds_waiting: int = 0
    warnings: list[str] = field(default_factory=list)  # catalog keys not found ...
    params: list[Any] = field(default_factory=list)  # the mapping's parameters, as used
    # contacts whose values HubSpot could not hold (a sum too large), with the reason
    unwritable: list[tuple[str, str]] = field(default_factory=list)


def plan_outcomes(
    compiled: CompiledMapping,
    outcomes: Iterable[OrderValues | Rejected | Skipped | RefundValues],
    current: MappingType[str, MappingType[str, str | None]] | None = None,
    default_current: MappingType[str, str | None] | None = None,
) -> Plan:
    """Fold evaluated records per contact.  `current` holds HubSpot's values per contact key (the
    baseline); `default_current` is used for contacts not in it (an example's `existing`)."""
    folder = ContactFolder(compiled)
    ledger = sync.MemoryLedger(folder, compiled.mapping.records.version is not None)
    plan = Plan()
    chunk: list[OrderValues | Skipped | RefundValues] = []
    for outcome in taken_in(outcomes, plan):
        chunk.append(outcome)
        if len(chunk) >= PLAN_CHUNK:
            ledger.take(chunk)
            chunk = []
    ledger.take(chunk)
    plan.orders = ledger.tally
    plan.refunds_waiting = ledger.refunds_waiting()
    if compiled.mapping.is_forms:
        plan.submissions = ledger.first_versions()
        return plan
    for contact in ledger.contacts():
        before = dict((current or {}).get(contact) or default_current or {})
        try:
            after = sync.wire_values(folder, ledger.accs[contact], before)
        except CoercionError as unwritable:
            plan.unwritable.append((contact, str(unwritable)))
            continue
        plan.contacts.append(
            ContactPlan(
                contact, sync.changes(folder, before, after), after, ledger.order_count(contact)
            )
        )
    return plan


class Tallied(Protocol):
    """What `taken_in` keeps: a `Plan`, or a plan whose records are kept elsewhere."""

    records: int
    rejected: Any  # list-like: append()
    skipped: Any


class ValuesSeen:
    """Which properties any record gave a value: one that none gives is most often an
    expression that reads the wrong field (said as a warning by `hubmap plan` and `test`)."""

    def __init__(self) -> None:
        self.given: set[str] = set()
        self.records = 0

    def watch(self, outcomes: Iterable[Any]) -> Iterator[Any]:
        for outcome in outcomes:
            if isinstance(outcome, (OrderValues, RefundValues)):
                self.records += 1
                self.given.update(k for k, v in outcome.values.items() if v is not None)
            yield outcome

    def never_given(self, compiled: CompiledMapping) -> list[str]:
        """The properties with a source that no order gave a value (none when no order)."""
        if not self.records:
            return []
        return [
            spec.name
            for spec in compiled.mapping.properties
            if spec.source is not None and spec.name not in self.given
        ]


def never_given_warning(name: str, where: str) -> str:
    return (
        f"property {name} got no value from any {where}: check its from: (the field it "
        "reads) and its when:"
    )


def taken_in(
    outcomes: Iterable[OrderValues | Rejected | Skipped | RefundValues], plan: Tallied
) -> Iterator[OrderValues | Skipped | RefundValues]:
    """The records a ledger takes in: all but the rejected ones.  Each record is counted in
    `plan.records`, the rejected and skipped ones kept in the plan."""
    for outcome in outcomes:
        plan.records += 1
        if isinstance(outcome, Rejected):
            plan.rejected.append(outcome)
            continue
        if isinstance(outcome, Skipped):
            plan.skipped.append(outcome)
        yield outcome


def submission_fields(
    compiled: CompiledMapping, folder: ContactFolder, order: OrderValues
) -> dict[str, str]:
    """A form submission's fields: the contact key and this purchase's values, as HubSpot text
    (values the order lacks are left out: a submission sets values, it does not clear them)."""
    fields = {compiled.mapping.target.email_field: order.contact}  # type: ignore[union-attr]
    fields.update(folder.to_wire({k: v for k, v in order.values.items() if v is not None}))
    return fields
