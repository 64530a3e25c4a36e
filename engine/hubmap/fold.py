"""Fold a contact's orders into its property values, and write them as HubSpot text (pure).

A contact's values are one fold, per property and merge rule, over the current contributions of
its counted orders - each order's typed values with its refunds added (`adjusted`) - joined with
the baseline (what HubSpot held before hubmap first wrote).  `ContactFolder.add` is the fast path
for a new order; `ContactFolder.fold` folds a contact's orders afresh.  As the merge rules are
associative folds, both give the same accumulators.  A contact's accumulators (`Accs`) are the
rules' running accumulators (`merge.Running`), which take orders in place; their stored form
(`dump`, `load`) is the rules' immutable accumulators, as before.

`Cutoffs` leave orders out of one property's fold: after someone edited a non-sum value in
HubSpot (drift), the orders HubSpot had confirmed are inside the edited value (`contact`, by the
sequence number of the order's stored version); a property added to a mapping later counts only
orders first stored after it was added (`started`, by the sequence number of the order's first
version).

Every folded property has a final value; None means "no value", written as "" - the empty string
clears a CRM property - so a last-purchase property the latest order lacks, or a total whose
orders were all withdrawn, does not keep an old value.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Context, Inexact, InvalidOperation, Overflow
from typing import Any, NamedTuple

from hubmap import merge, types
from hubmap.evaluate import CompiledMapping
from hubmap.mapping.model import PropertySpec

Accs = dict[str, merge.Running]

_EXACT = Context(prec=merge.SUM_PRECISION, traps=[Inexact, InvalidOperation, Overflow])


class OrderPart(NamedTuple):
    """One counted order as the fold sees it: typed values (refunds added) and stored sequence
    numbers (of this version, and of the order's first version).  A tuple: one is made per
    order, so it must be cheap to build."""

    order_id: str
    time: datetime
    values: MappingType[str, Any]
    seq: int = 0
    first_seq: int = 0


@dataclass(frozen=True)
class Cutoffs:
    contact: MappingType[str, int] = field(default_factory=dict)  # drift, by version seq
    started: MappingType[str, int] = field(default_factory=dict)  # added later, by first seq

    def __bool__(self) -> bool:
        return bool(self.contact) or bool(self.started)

    def excludes(self, name: str, part: OrderPart) -> bool:
        return part.seq <= self.contact.get(name, 0) or part.first_seq <= self.started.get(name, 0)


NO_CUTOFFS = Cutoffs()


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

    # -- folding -------------------------------------------------------------------------

    def add(self, accs: Accs, part: OrderPart, cutoffs: Cutoffs = NO_CUTOFFS) -> Accs:
        """`accs` with one more order, added in place (and returned)."""
        time = part.time
        if time.tzinfo is None or time.utcoffset() is None:
            raise ValueError("an order's time must carry a time zone")
        order_id = str(part.order_id)
        key = merge.running_key(time, order_id)  # once per order, not per property
        rules = self.rules
        if not cutoffs:  # the usual case: an accumulator held is one of a rule of the mapping
            for name, value in part.values.items():
                acc = accs.get(name)
                if acc is None:
                    rule = rules.get(name)
                    if rule is None:
                        continue  # a property no longer in the mapping
                    acc = accs[name] = rule.open()
                acc.put(value, key, time, order_id)
            return accs
        for name, value in part.values.items():
            rule = rules.get(name)
            if rule is None or cutoffs.excludes(name, part):
                continue  # a property no longer in the mapping, or cut off
            acc = accs.get(name)
            if acc is None:
                acc = accs[name] = rule.open()
            acc.put(value, key, time, order_id)
        return accs

    def fold(self, parts: Iterable[OrderPart], cutoffs: Cutoffs = NO_CUTOFFS) -> Accs:
        """The accumulators of a contact's orders, folded afresh."""
        accs: Accs = {}
        for part in parts:
            self.add(accs, part, cutoffs)
        return accs

    def combine(self, a: Accs, b: Accs) -> Accs:
        """Two contacts' folds joined (new accumulators; `a` and `b` are left as they were)."""
        result = {name: self.rules[name].open(acc.freeze()) for name, acc in a.items()}
        for name, acc in b.items():
            rule = self.rules[name]
            frozen = acc.freeze()
            result[name] = rule.open(
                rule.combine(result[name].freeze(), frozen) if name in result else frozen
            )
        return result

    def adjusted(
        self, values: MappingType[str, Any], refunds: Iterable[MappingType[str, Any]]
    ) -> dict[str, Any]:
        """An order's values with its refunds' amounts added (to the values the order has)."""
        result = dict(values)
        for refund in refunds:
            for name, amount in refund.items():
                if result.get(name) is not None and amount is not None:
                    result[name] = _EXACT.add(
                        types.parse_decimal(result[name]), types.parse_decimal(amount)
                    )
        return result

    # -- final values and HubSpot text ---------------------------------------------------

    def final_values(self, accs: Accs, baseline: MappingType[str, str | None]) -> dict[str, Any]:
        """Typed values to hold in HubSpot, for every folded and derived property (None: no
        value): the baseline (HubSpot's text values) joined with the orders."""
        values: dict[str, Any] = {}
        for name, rule in self.rules.items():
            acc = accs.get(name)
            if acc is None:
                acc = rule.open()
            base = self.parse_wire(name, baseline.get(name)) if baseline else None
            try:
                values[name] = acc.result(base)
            except types.CoercionError as error:  # a sum beyond what a number holds
                raise types.CoercionError(f"{name}: {error}") from None
        if self.compiled.derived:
            derived = self.compiled.derive({k: v for k, v in values.items() if v is not None})
            for spec, _ in self.compiled.derived:
                values[spec.name] = derived.get(spec.name)
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
        """HubSpot text for each value; "" (which clears a CRM value) for none.  A value that
        cannot be written (a contact's sum beyond what a HubSpot number holds) raises
        CoercionError naming its property: the caller fails that contact, not the run."""
        wire: dict[str, str] = {}
        for name, value in values.items():
            try:
                wire[name] = "" if value is None else types.to_wire(value, self.specs[name])
            except types.CoercionError as error:
                raise types.CoercionError(f"{name}: {error}") from None
        return wire

    def same(self, name: str, a: str | None, b: str | None) -> bool:
        """Whether two HubSpot text values mean the same (20.10 and 20.1 do; "" and none do)."""
        if a == b:
            return True
        if not a or not b:  # no value on one side only: never the same (see parse_wire)
            return not a and not b
        parsed = self.parse_wire(name, a)
        return parsed is not None and parsed == self.parse_wire(name, b)

    # -- stored forms --------------------------------------------------------------------

    def dump(self, accs: Accs) -> dict[str, Any]:
        return {name: acc.dump() for name, acc in accs.items()}

    def load(self, data: MappingType[str, Any]) -> Accs:
        """Stored accumulators; those of properties no longer in the mapping are left out."""
        return {
            name: self.rules[name].open_stored(raw)
            for name, raw in data.items()
            if name in self.rules
        }


def encode_values(values: MappingType[str, Any]) -> dict[str, Any]:
    """Typed values as JSON-able data (an order's or a refund's stored contribution)."""
    return {name: merge.encode_value(value) for name, value in values.items()}


def decode_values(data: MappingType[str, Any]) -> dict[str, Any]:
    return {name: merge.decode_value(value) for name, value in data.items()}
