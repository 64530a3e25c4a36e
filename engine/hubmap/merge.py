"""Merge rules as pure, associative folds: how a contact's orders combine into one property value.

For each property and contact there is an accumulator.  Each order contributes a
`Contribution(value, time, order_id)` (value already typed by `hubmap.types.coerce`); the contact's
existing HubSpot value, if any, is the *baseline*.  Every rule offers:

    empty()                    the accumulator of no orders and no baseline
    from_baseline(typed)       the accumulator of the baseline alone (None: HubSpot has no value)
    add(acc, contribution)     one more order
    combine(a, b)              two partial folds joined: associative, so batching, resuming and
                               parallel folds cannot change the result; commutative too, except
                               that when both sides carry a baseline the left one is kept
    result(acc)                the typed value to write, or None
    dump(acc) / load(data)     JSON-able form of an accumulator (for the state store) and back

Accumulators are immutable (frozen dataclasses of tuples).  The baseline is held apart from the
orders' part, so it is counted exactly once however partial folds are combined.  The result never
depends on the order in which contributions arrive, only on their order times and ids:

- order key: orders are ordered by order time, then by order id.  Ids made only of digits compare
  as numbers ("999" < "1000", "007" == "7" then by text), other ids as text, and any digit id sorts
  before any other id.  The baseline is older than every order.
- overwrite: the value of the latest order (by order key), also when that order has none (then
  the result is None: the property is cleared, so "last purchase" values all come from one
  purchase); the baseline if there is no order.
- latest_known: the value of the latest order that has one; the baseline if none has.
- sum: the exact Decimal sum of all orders plus the baseline (once).
- prepend: items of newer orders first, the order inside one purchase kept, each item once at its
  newest position, at most `spec.max_items` items and at most `MAX_VALUE_LENGTH` characters once
  joined with ';' (the oldest items are dropped; the cut is a prefix, so capping partial folds
  gives the same result as capping the whole).  Baseline items come after every order's items, in
  their stored order.
- min / max: the smallest / largest value (numbers, dates, datetimes, texts), baseline included.
- set_once: the baseline if HubSpot has a value (it stays forever); otherwise the value of the
  *first order by order time* (ties by the smaller order id) - not the first to arrive, so the
  result is the same whatever order the orders are read in.

A contribution whose value is None (the order has no value for the property) is ignored by every
rule but overwrite (`takes_none`), for which it is the latest order's answer: no value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from hubmap.types import LIST_SEPARATOR, MAX_VALUE_LENGTH, parse_decimal

if TYPE_CHECKING:
    from hubmap.mapping.model import PropertySpec

DUMP_VERSION = 1
"""Version of the JSON form of accumulators; `load` refuses others."""

UTC = timezone.utc

SUM_PRECISION = 1_000
"""Digits kept by sums: far beyond any order total, so additions are exact (Inexact would trap)."""

_EXACT = Context(prec=SUM_PRECISION, traps=[Inexact, InvalidOperation, Overflow])

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Contribution:
    """One order's typed value for one property, with the order's time (aware) and id."""

    value: Any
    time: datetime
    order_id: str

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("a contribution's time must carry a time zone")
        object.__setattr__(self, "order_id", str(self.order_id))


ID_KEYS_CACHED = 4_096
"""Order ids whose sort keys are kept (one order's id is used once per property)."""


@lru_cache(maxsize=ID_KEYS_CACHED)
def id_key(order_id: str) -> tuple[int, int, str, str]:
    """Sort key for order ids: digit-only ids numerically, then others as text."""
    if order_id.isdigit() and order_id.isascii():
        significant = order_id.lstrip("0")
        return (0, len(significant), significant, order_id)
    return (1, 0, order_id, order_id)


def order_key(time: datetime, order_id: str) -> tuple[datetime, tuple[int, int, str, str]]:
    """The total order of orders: by time, then by id."""
    return (time, id_key(order_id))


@dataclass(frozen=True, slots=True)
class Stamped:
    """A value with the time and id of the order it came from."""

    time: datetime
    order_id: str
    value: Any
    _key: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", order_key(self.time, self.order_id))

    def key(self) -> tuple[Any, ...]:
        return self._key


@dataclass(frozen=True, slots=True)
class Accumulator(Generic[P]):
    """What a rule keeps for one property of one contact.

    `has_baseline` tells whether the HubSpot value was taken in (even when it was empty), so a
    baseline is never taken twice; `part` is the rule's summary of the orders seen.
    """

    has_baseline: bool
    baseline: Any
    part: P


# --------------------------------------------------------------------------- value codecs


def encode_value(value: Any) -> Any:
    """A typed value as JSON-able data (for the state store); `decode_value` reads it back."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, int):
        return {"decimal": str(value)}
    if isinstance(value, datetime):
        return {"datetime": value.astimezone(UTC).isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, tuple | list):
        return {"items": [encode_value(v) for v in value]}
    raise TypeError(f"cannot store a {type(value).__name__} in an accumulator")


def decode_value(data: Any) -> Any:
    if data is None or isinstance(data, bool | str):
        return data
    if isinstance(data, dict) and len(data) == 1:
        ((kind, raw),) = data.items()
        if kind == "decimal":
            return Decimal(raw)  # hubmap's own exact text: HubSpot's limits apply when written
        if kind == "datetime":
            return datetime.fromisoformat(raw)
        if kind == "date":
            return date.fromisoformat(raw)
        if kind == "items":
            return tuple(decode_value(v) for v in raw)
    raise ValueError(f"not a stored value: {data!r}")


def _stamp_dump(stamped: Stamped | None) -> Any:
    if stamped is None:
        return None
    return [stamped.time.astimezone(UTC).isoformat(), stamped.order_id, encode_value(stamped.value)]


def _stamp_load(data: Any) -> Stamped | None:
    if data is None:
        return None
    time, order_id, value = data
    return Stamped(datetime.fromisoformat(time), str(order_id), decode_value(value))


def _value_order(value: Any) -> str:
    """A deterministic tie-break between different values of the same order (should not happen)."""
    return repr(encode_value(value))


# ------------------------------------------------------------------------------- the rules


class Rule(Generic[P]):
    """A merge rule: an associative fold over contributions, with a baseline kept apart."""

    name = ""
    takes_none = False  # whether an order without a value still counts (overwrite)

    def __init__(self, spec: PropertySpec | None = None):
        self.spec = spec

    # -- the part over orders (overridden per rule)
    def empty_part(self) -> P:
        raise NotImplementedError

    def unit(self, contribution: Contribution) -> P:
        raise NotImplementedError

    def combine_parts(self, a: P, b: P) -> P:
        raise NotImplementedError

    def finish(self, has_baseline: bool, baseline: Any, part: P) -> Any:
        raise NotImplementedError

    def dump_part(self, part: P) -> Any:
        raise NotImplementedError

    def load_part(self, data: Any) -> P:
        raise NotImplementedError

    # -- the fold
    def empty(self) -> Accumulator[P]:
        return Accumulator(False, None, self.empty_part())

    def from_baseline(self, value: Any) -> Accumulator[P]:
        return Accumulator(True, value, self.empty_part())

    def add(self, acc: Accumulator[P], contribution: Contribution) -> Accumulator[P]:
        if contribution.value is None:
            return acc
        return Accumulator(
            acc.has_baseline, acc.baseline, self.combine_parts(acc.part, self.unit(contribution))
        )

    def add_value(self, acc: Accumulator[P], value: Any, time: datetime,
                  order_id: str) -> Accumulator[P]:
        """`add` of one order's value, for callers that checked `time` (aware) and `order_id`
        (text) once per order; rules override it to skip building objects, never to differ."""
        if value is None:
            return acc
        return self.add(acc, Contribution(value, time, order_id))

    def combine(self, a: Accumulator[P], b: Accumulator[P]) -> Accumulator[P]:
        keep = a if a.has_baseline else b
        return Accumulator(keep.has_baseline, keep.baseline, self.combine_parts(a.part, b.part))

    def result(self, acc: Accumulator[P]) -> Any:
        return self.finish(acc.has_baseline, acc.baseline, acc.part)

    def dump(self, acc: Accumulator[P]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": DUMP_VERSION,
            "rule": self.name,
            "part": self.dump_part(acc.part),
        }
        if acc.has_baseline:
            data["baseline"] = encode_value(acc.baseline)
        return data

    def load(self, data: dict[str, Any]) -> Accumulator[P]:
        if data.get("v") != DUMP_VERSION or data.get("rule") != self.name:
            raise ValueError(f"not a stored '{self.name}' accumulator: {data!r}")
        has_baseline = "baseline" in data
        baseline = decode_value(data["baseline"]) if has_baseline else None
        return Accumulator(has_baseline, baseline, self.load_part(data["part"]))


class _Latest(Rule[Stamped | None]):
    """The value of the latest (or, with `earliest`, the first) order by order key."""

    earliest = False

    def empty_part(self) -> Stamped | None:
        return None

    def unit(self, contribution: Contribution) -> Stamped | None:
        return Stamped(contribution.time, contribution.order_id, contribution.value)

    def add_value(self, acc: Accumulator[Stamped | None], value: Any, time: datetime,
                  order_id: str) -> Accumulator[Stamped | None]:
        held = acc.part
        if value is not None and held is not None:
            key = order_key(time, order_id)
            if key != held.key() and (key > held.key()) == self.earliest:
                return acc  # the held order wins (see combine_parts): nothing to build
        return super().add_value(acc, value, time, order_id)

    def combine_parts(self, a: Stamped | None, b: Stamped | None) -> Stamped | None:
        if a is None:
            return b
        if b is None:
            return a
        ka, kb = a.key(), b.key()
        if ka == kb:  # the same order: a fixed choice between its values
            ka, kb = (ka, _value_order(a.value)), (kb, _value_order(b.value))
        if self.earliest:
            return a if ka <= kb else b
        return a if ka >= kb else b

    def dump_part(self, part: Stamped | None) -> Any:
        return _stamp_dump(part)

    def load_part(self, data: Any) -> Stamped | None:
        return _stamp_load(data)


class LatestKnown(_Latest):
    name = "latest_known"

    def finish(self, has_baseline: bool, baseline: Any, part: Stamped | None) -> Any:
        return part.value if part is not None else baseline


class Overwrite(LatestKnown):
    """The latest order's value, or None when the latest order has none."""

    name = "overwrite"
    takes_none = True

    def add(self, acc: Accumulator[Stamped | None],
            contribution: Contribution) -> Accumulator[Stamped | None]:
        return Accumulator(
            acc.has_baseline, acc.baseline, self.combine_parts(acc.part, self.unit(contribution)))

    def add_value(self, acc: Accumulator[Stamped | None], value: Any, time: datetime,
                  order_id: str) -> Accumulator[Stamped | None]:
        held = acc.part
        if held is not None:
            key = order_key(time, order_id)
            if key != held.key() and key < held.key():
                return acc  # the held order is later: nothing to build
        return self.add(acc, Contribution(value, time, order_id))


class SetOnce(_Latest):
    name = "set_once"
    earliest = True

    def finish(self, has_baseline: bool, baseline: Any, part: Stamped | None) -> Any:
        if baseline is not None:
            return baseline
        return part.value if part is not None else None


@dataclass(frozen=True, slots=True)
class SumPart:
    count: int
    total: Decimal


class Sum(Rule[SumPart]):
    name = "sum"

    def empty_part(self) -> SumPart:
        return SumPart(0, Decimal(0))

    def unit(self, contribution: Contribution) -> SumPart:
        return SumPart(1, parse_decimal(contribution.value))

    def add_value(self, acc: Accumulator[SumPart], value: Any, time: datetime,
                  order_id: str) -> Accumulator[SumPart]:
        if value is None:
            return acc
        part = acc.part  # combine_parts(part, unit) without building the unit
        return Accumulator(acc.has_baseline, acc.baseline, SumPart(
            part.count + 1, _EXACT.add(part.total, parse_decimal(value))))

    def combine_parts(self, a: SumPart, b: SumPart) -> SumPart:
        return SumPart(a.count + b.count, _EXACT.add(a.total, b.total))

    def finish(self, has_baseline: bool, baseline: Any, part: SumPart) -> Any:
        if not part.count:
            return baseline
        if baseline is None:
            return part.total
        return _EXACT.add(parse_decimal(baseline), part.total)

    def dump_part(self, part: SumPart) -> Any:
        return [part.count, str(part.total)]

    def load_part(self, data: Any) -> SumPart:
        # hubmap's own exact text: a sum may exceed what HubSpot holds (said when written)
        return SumPart(int(data[0]), Decimal(data[1]))


class _Extreme(Rule[Any]):
    largest = False

    def empty_part(self) -> Any:
        return None

    def unit(self, contribution: Contribution) -> Any:
        return contribution.value

    def add_value(self, acc: Accumulator[Any], value: Any, time: datetime,
                  order_id: str) -> Accumulator[Any]:
        if value is None:
            return acc
        picked = self._pick(acc.part, value)
        return acc if picked is acc.part else Accumulator(acc.has_baseline, acc.baseline, picked)

    def _pick(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        if a == b:  # equal values written differently (1.0, 1.00): a fixed choice
            return a if _value_order(a) <= _value_order(b) else b
        if self.largest:
            return max(b, a)
        return min(b, a)

    def combine_parts(self, a: Any, b: Any) -> Any:
        return self._pick(a, b)

    def finish(self, has_baseline: bool, baseline: Any, part: Any) -> Any:
        return self._pick(baseline, part)

    def dump_part(self, part: Any) -> Any:
        return encode_value(part)

    def load_part(self, data: Any) -> Any:
        return decode_value(data)


class Min(_Extreme):
    name = "min"


class Max(_Extreme):
    name = "max"
    largest = True


@dataclass(frozen=True, slots=True)
class PrependItem:
    """One item at its newest position: the order it came from and its index inside that order."""

    item: str
    time: datetime
    order_id: str
    index: int
    _key: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # larger is newer: later orders first, then earlier positions inside one order
        object.__setattr__(self, "_key", (order_key(self.time, self.order_id), -self.index))

    def key(self) -> tuple[Any, ...]:
        return self._key


class Prepend(Rule[tuple[PrependItem, ...]]):
    """Newest items first, each once, capped by count and by the joined length."""

    name = "prepend"

    def __init__(self, spec: PropertySpec | None = None, max_items: int | None = None):
        super().__init__(spec)
        if max_items is None:
            max_items = spec.max_items if spec is not None else 50
        self.max_items = max_items

    def empty_part(self) -> tuple[PrependItem, ...]:
        return ()

    def unit(self, contribution: Contribution) -> tuple[PrependItem, ...]:
        return self._unit(contribution.value, contribution.time, contribution.order_id)

    def _unit(self, values: Any, time: datetime, order_id: str) -> tuple[PrependItem, ...]:
        items = values if isinstance(values, tuple | list) else (values,)
        found = [
            PrependItem(str(item), time, order_id, index)
            for index, item in enumerate(items)
            if item is not None and str(item) != ""
        ]
        return self._cap(found)

    def add_value(self, acc: Accumulator[tuple[PrependItem, ...]], value: Any, time: datetime,
                  order_id: str) -> Accumulator[tuple[PrependItem, ...]]:
        if value is None:
            return acc
        return Accumulator(acc.has_baseline, acc.baseline,
                           self.combine_parts(acc.part, self._unit(value, time, order_id)))

    def _cap(self, items: Iterable[PrependItem]) -> tuple[PrependItem, ...]:
        newest: dict[str, PrependItem] = {}
        for item in items:
            held = newest.get(item.item)
            if held is None or item.key() > held.key():
                newest[item.item] = item
        ordered = sorted(newest.values(), key=PrependItem.key, reverse=True)
        return tuple(
            _length_prefix([i.item for i in ordered[: self.max_items]], ordered, keep_blocker=True)
        )

    def combine_parts(
        self, a: tuple[PrependItem, ...], b: tuple[PrependItem, ...]
    ) -> tuple[PrependItem, ...]:
        return self._cap(a + b)

    def finish(self, has_baseline: bool, baseline: Any, part: tuple[PrependItem, ...]) -> Any:
        if not part and baseline is None:
            return None
        items = [i.item for i in part]
        seen = set(items)
        for item in baseline or ():
            if item and item not in seen:
                seen.add(item)
                items.append(item)
        items = items[: self.max_items]
        return tuple(_length_prefix(items, items))

    def dump_part(self, part: tuple[PrependItem, ...]) -> Any:
        return [[i.item, i.time.astimezone(UTC).isoformat(), i.order_id, i.index] for i in part]

    def load_part(self, data: Any) -> tuple[PrependItem, ...]:
        return tuple(
            PrependItem(str(item), datetime.fromisoformat(time), str(order_id), int(index))
            for item, time, order_id, index in data
        )


def _length_prefix(texts: list[str], values: list[Any], keep_blocker: bool = False) -> list[Any]:
    """The longest prefix of `values` whose `texts`, joined with ';', fit in one HubSpot value.

    With `keep_blocker`, the first value that does not fit is kept too: a partial fold must remember
    that something newer than the rest filled the value, or an older item (a baseline item, or one
    from another batch) could later take its place.
    """
    total = 0
    for count, text in enumerate(texts):
        total += len(text) + (len(LIST_SEPARATOR) if count else 0)
        if total > MAX_VALUE_LENGTH:
            return values[: count + 1] if keep_blocker else values[:count]
    return values[: len(texts)]


RULES: dict[str, type[Rule[Any]]] = {
    rule.name: rule for rule in (Overwrite, LatestKnown, Sum, Prepend, Min, Max, SetOnce)
}
"""Every merge rule by its name in the mapping (`merge:`)."""


def rule_for(spec: PropertySpec) -> Rule[Any]:
    """The merge rule of a property."""
    name = str(getattr(spec.merge, "value", spec.merge))
    return RULES[name](spec)


def fold(spec: PropertySpec, contributions: Iterable[Contribution], baseline: Any = None) -> Any:
    """The merged value of `contributions` over `baseline` for property `spec`."""
    rule = rule_for(spec)
    acc = rule.from_baseline(baseline) if baseline is not None else rule.empty()
    for contribution in contributions:
        acc = rule.add(acc, contribution)
    return rule.result(acc)
