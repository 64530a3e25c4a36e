"""Fold orders into per-contact property values, and say what would change (pure, no I/O).

`ContactFolder` holds the merge rule of every property of a mapping and folds `OrderValues` into a
contact's accumulators; `final_values` joins a contact's HubSpot baseline with its accumulators and
computes derived properties; `changes` compares the result with what HubSpot holds.  `plan_outcomes`
does all of it for a stream of evaluated records, which is what `hubmap plan` and `hubmap test`
print and what the run's state store keeps, one contact at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping as MappingType
from dataclasses import dataclass, field
from typing import Any

from hubmap import merge, types
from hubmap.evaluate import CompiledMapping, OrderValues, Rejected, Skipped
from hubmap.mapping.model import PropertySpec

Accs = dict[str, merge.Accumulator[Any]]


class ContactFolder:
    """The merge rules of one mapping, applied to one contact's orders at a time."""

    def __init__(self, compiled: CompiledMapping):
        self.compiled = compiled
        self.specs: dict[str, PropertySpec] = {s.name: s for s in compiled.mapping.properties}
        self.rules = {
            spec.name: merge.rule_for(spec)
            for spec in compiled.mapping.properties
            if spec.source is not None
        }

    def empty(self) -> Accs:
        return {}

    def add(self, accs: Accs, order: OrderValues) -> Accs:
        """The accumulators with one more order (a new dict; `accs` is left as it was)."""
        time = order.time
        if time.tzinfo is None or time.utcoffset() is None:
            raise ValueError("an order's time must carry a time zone")
        order_id = str(order.order_id)
        rules = self.rules
        result = dict(accs)
        for name, value in order.values.items():
            rule = rules[name]
            acc = result.get(name)
            result[name] = rule.add_value(acc if acc is not None else rule.empty(), value, time,
                                          order_id)
        return result

    def combine(self, a: Accs, b: Accs) -> Accs:
        result = dict(a)
        for name, acc in b.items():
            result[name] = self.rules[name].combine(result[name], acc) if name in result else acc
        return result

    def final_values(self, accs: Accs, baseline: MappingType[str, str | None]) -> dict[str, Any]:
        """Typed values to hold in HubSpot: baseline (HubSpot's text values) joined with orders."""
        values: dict[str, Any] = {}
        for name, rule in self.rules.items():
            acc = accs.get(name) or rule.empty()
            base = self.parse_wire(name, baseline.get(name))
            if base is not None:
                acc = rule.combine(rule.from_baseline(base), acc)
            value = rule.result(acc)
            if value is not None:
                values[name] = value
        values.update(self.compiled.derive(values))
        return values

    def parse_wire(self, name: str, text: str | None) -> Any:
        """A HubSpot text value as a typed value; unreadable or empty values count as none."""
        if text is None or text == "":
            return None
        try:
            return types.from_wire(text, self.specs[name])
        except types.CoercionError:
            return None

    def to_wire(self, values: MappingType[str, Any]) -> dict[str, str]:
        return {name: types.to_wire(value, self.specs[name]) for name, value in values.items()}

    def same(self, name: str, a: str | None, b: str | None) -> bool:
        """Whether two HubSpot text values mean the same (20.10 and 20.1 do)."""
        if a == b:
            return True
        return self.parse_wire(name, a) == self.parse_wire(name, b) and (
            self.parse_wire(name, a) is not None)

    def dump(self, accs: Accs) -> dict[str, Any]:
        return {name: self.rules[name].dump(acc) for name, acc in accs.items()}

    def load(self, data: MappingType[str, Any]) -> Accs:
        """Stored accumulators; those of properties no longer in the mapping are left out."""
        return {name: self.rules[name].load(raw) for name, raw in data.items()
                if name in self.rules}


@dataclass(frozen=True)
class Change:
    before: str | None
    after: str


@dataclass
class ContactPlan:
    contact: str
    changes: dict[str, Change]
    values: dict[str, str]  # every value to hold, changed or not
    orders: int


@dataclass
class Plan:
    contacts: list[ContactPlan] = field(default_factory=list)
    submissions: list[OrderValues] = field(default_factory=list)  # forms: one per record
    rejected: list[Rejected] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    records: int = 0


def changes(folder: ContactFolder, before: MappingType[str, str | None],
            after: MappingType[str, str]) -> dict[str, Change]:
    return {
        name: Change(before.get(name), value)
        for name, value in after.items()
        if not folder.same(name, before.get(name), value)
    }


def plan_outcomes(
    compiled: CompiledMapping,
    outcomes: Iterable[OrderValues | Rejected | Skipped],
    current: MappingType[str, MappingType[str, str | None]] | None = None,
    default_current: MappingType[str, str | None] | None = None,
) -> Plan:
    """Fold evaluated records per contact.  `current` holds HubSpot's values per contact key (the
    baseline); `default_current` is used for contacts not in it (an example's `existing`)."""
    folder = ContactFolder(compiled)
    plan = Plan()
    per_contact: dict[str, Accs] = {}
    counts: dict[str, int] = {}
    seen: set[str] = set()  # as in a run, an order id counts once
    for outcome in outcomes:
        plan.records += 1
        if isinstance(outcome, Rejected):
            plan.rejected.append(outcome)
        elif isinstance(outcome, Skipped):
            plan.skipped.append(outcome)
        elif outcome.order_id in seen:
            plan.skipped.append(Skipped(outcome.where, outcome.order_id,
                                        "the order id came before in this input; counted once"))
        elif compiled.mapping.is_forms:
            seen.add(outcome.order_id)
            plan.submissions.append(outcome)
        else:
            seen.add(outcome.order_id)
            per_contact[outcome.contact] = folder.add(per_contact.get(outcome.contact, {}),
                                                      outcome)
            counts[outcome.contact] = counts.get(outcome.contact, 0) + 1
    for contact in sorted(per_contact):
        before = dict((current or {}).get(contact) or default_current or {})
        after = folder.to_wire(folder.final_values(per_contact[contact], before))
        plan.contacts.append(
            ContactPlan(contact, changes(folder, before, after), after, counts[contact]))
    return plan


def submission_fields(compiled: CompiledMapping, order: OrderValues) -> dict[str, str]:
    """A form submission's fields: the contact key and this purchase's values, as HubSpot text."""
    folder = ContactFolder(compiled)
    fields = {compiled.mapping.target.email_field: order.contact}  # type: ignore[union-attr]
    fields.update(folder.to_wire(order.values))
    return fields
