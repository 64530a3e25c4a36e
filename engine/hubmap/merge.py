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
orders' part, so it is counted exactly once however partial folds are combined.

`Rule.open(acc)` gives a *running* accumulator: a mutable one that takes orders in place
(`put`), for the fast path of folding a contact's orders one after another.  It holds what the
rule's part holds, without building objects per order (a prepend keeps every item's newest
position in a dict and sorts only when asked), and `freeze()` gives exactly the Accumulator that
`add` would have built from the same contributions (so the stored form does not change).  The result never
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
from datetime import date, datetime, timedelta, timezone
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from functools import lru_cache
from operator import itemgetter
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
_ZERO = Decimal(0)  # the sum of no orders (Decimals are immutable: one is shared)

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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def running_key(time: datetime, order_id: str) -> tuple[int, tuple[int, int, str, str]]:
    """`order_key` as running accumulators compare it: the same order, with the time as whole
    microseconds since 1970 (an aware datetime's instant, exactly), which compare faster."""
    return ((time - _EPOCH) // _MICROSECOND, id_key(order_id))


def key_time(key: tuple[int, tuple[int, int, str, str]]) -> datetime:
    """The order time of a running key (in UTC: the same instant)."""
    return _EPOCH + key[0] * _MICROSECOND


def key_order_id(key: tuple[int, tuple[int, int, str, str]]) -> str:
    """The order id of a running key (`id_key` ends with it)."""
    return key[1][3]


STORED_KEYS_CACHED = 4_096
"""Stored order times and ids whose running keys are kept (a contact's accumulators name the
same few orders over and over: every overwrite property holds the latest)."""


@lru_cache(maxsize=STORED_KEYS_CACHED)
def stored_key(time: str, order_id: str) -> tuple[int, tuple[int, int, str, str]]:
    """The running key of a stored order time (ISO text) and id."""
    return running_key(datetime.fromisoformat(time), order_id)


@lru_cache(maxsize=STORED_KEYS_CACHED)
def stored_time(micros: int) -> str:
    """The stored text of a running key's time (ISO, UTC), as `_stamp_dump` writes it."""
    return (_EPOCH + micros * _MICROSECOND).isoformat()


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

    def add_value(
        self, acc: Accumulator[P], value: Any, time: datetime, order_id: str
    ) -> Accumulator[P]:
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

    def open(self, acc: Accumulator[P] | None = None) -> Running:
        """A running accumulator holding `acc` (none: `empty()`), see the module docstring."""
        raise NotImplementedError

    def dump(self, acc: Accumulator[P]) -> dict[str, Any]:
        return self.stored_form(acc.has_baseline, acc.baseline, self.dump_part(acc.part))

    def stored_form(self, has_baseline: bool, baseline: Any, part: Any) -> dict[str, Any]:
        """The JSON-able form of an accumulator whose part is dumped already (`part`)."""
        data: dict[str, Any] = {"v": DUMP_VERSION, "rule": self.name, "part": part}
        if has_baseline:
            data["baseline"] = encode_value(baseline)
        return data

    def load(self, data: dict[str, Any]) -> Accumulator[P]:
        has_baseline, baseline = self.stored_baseline(data)
        return Accumulator(has_baseline, baseline, self.load_part(data["part"]))

    def stored_baseline(self, data: dict[str, Any]) -> tuple[bool, Any]:
        """Whether a stored accumulator took the baseline in, and the baseline (checking that
        `data` is one of this rule's)."""
        if data.get("v") != DUMP_VERSION or data.get("rule") != self.name:
            raise ValueError(f"not a stored '{self.name}' accumulator: {data!r}")
        has_baseline = "baseline" in data
        return has_baseline, decode_value(data["baseline"]) if has_baseline else None

    def open_stored(self, data: dict[str, Any]) -> Running:
        """`open(load(data))`: a running accumulator from the stored form."""
        return self.open(self.load(data))


class _Latest(Rule[Stamped | None]):
    """The value of the latest (or, with `earliest`, the first) order by order key."""

    earliest = False

    def empty_part(self) -> Stamped | None:
        return None

    def unit(self, contribution: Contribution) -> Stamped | None:
        return Stamped(contribution.time, contribution.order_id, contribution.value)

    def add_value(
        self, acc: Accumulator[Stamped | None], value: Any, time: datetime, order_id: str
    ) -> Accumulator[Stamped | None]:
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

    def finish(self, has_baseline: bool, baseline: Any, part: Stamped | None) -> Any:
        return self.finish_held(
            baseline, part is not None, part.value if part is not None else None
        )

    def finish_held(self, baseline: Any, held: bool, value: Any) -> Any:
        """The result from the baseline and the held order's value (`held`: one is held)."""
        raise NotImplementedError

    def dump_part(self, part: Stamped | None) -> Any:
        return _stamp_dump(part)

    def load_part(self, data: Any) -> Stamped | None:
        return _stamp_load(data)

    def open(self, acc: Accumulator[Stamped | None] | None = None) -> RunningLatest:
        return (RunningEarliest if self.earliest else RunningLatest)(self, acc)

    def open_stored(self, data: dict[str, Any]) -> RunningLatest:
        # straight from the stored stamp: no Stamped is built
        has_baseline, baseline = self.stored_baseline(data)
        running = self.open(Accumulator(has_baseline, baseline, None))
        if data["part"] is not None:
            time, order_id, value = data["part"]
            running.key, running.value = stored_key(time, str(order_id)), decode_value(value)
        return running


class LatestKnown(_Latest):
    name = "latest_known"

    def finish_held(self, baseline: Any, held: bool, value: Any) -> Any:
        return value if held else baseline


class Overwrite(LatestKnown):
    """The latest order's value, or None when the latest order has none."""

    name = "overwrite"
    takes_none = True

    def add(
        self, acc: Accumulator[Stamped | None], contribution: Contribution
    ) -> Accumulator[Stamped | None]:
        return Accumulator(
            acc.has_baseline, acc.baseline, self.combine_parts(acc.part, self.unit(contribution))
        )

    def add_value(
        self, acc: Accumulator[Stamped | None], value: Any, time: datetime, order_id: str
    ) -> Accumulator[Stamped | None]:
        held = acc.part
        if held is not None:
            key = order_key(time, order_id)
            if key != held.key() and key < held.key():
                return acc  # the held order is later: nothing to build
        return self.add(acc, Contribution(value, time, order_id))


class SetOnce(_Latest):
    name = "set_once"
    earliest = True

    def finish_held(self, baseline: Any, held: bool, value: Any) -> Any:
        if baseline is not None:
            return baseline
        return value if held else None


@dataclass(frozen=True, slots=True)
class SumPart:
    count: int
    total: Decimal


class Sum(Rule[SumPart]):
    name = "sum"

    def empty_part(self) -> SumPart:
        return SumPart(0, _ZERO)

    def unit(self, contribution: Contribution) -> SumPart:
        return SumPart(1, parse_decimal(contribution.value))

    def add_value(
        self, acc: Accumulator[SumPart], value: Any, time: datetime, order_id: str
    ) -> Accumulator[SumPart]:
        if value is None:
            return acc
        part = acc.part  # combine_parts(part, unit) without building the unit
        return Accumulator(
            acc.has_baseline,
            acc.baseline,
            SumPart(part.count + 1, _EXACT.add(part.total, parse_decimal(value))),
        )

    def combine_parts(self, a: SumPart, b: SumPart) -> SumPart:
        return SumPart(a.count + b.count, _EXACT.add(a.total, b.total))

    def finish(self, has_baseline: bool, baseline: Any, part: SumPart) -> Any:
        return self.finish_total(baseline, part.count, part.total)

    def finish_total(self, baseline: Any, count: int, total: Decimal) -> Any:
        """The result from the baseline and the orders' count and total."""
        if not count:
            return baseline
        if baseline is None:
            return total
        return _EXACT.add(parse_decimal(baseline), total)

    def dump_part(self, part: SumPart) -> Any:
        return [part.count, str(part.total)]

    def load_part(self, data: Any) -> SumPart:
        # hubmap's own exact text: a sum may exceed what HubSpot holds (said when written)
        return SumPart(int(data[0]), Decimal(data[1]))

    def open(self, acc: Accumulator[SumPart] | None = None) -> RunningSum:
        return RunningSum(self, acc)


_ONE_FORM = (str, date)
"""Types whose equal values have one stored form (`encode_value`): no tie-break is needed."""


class _Extreme(Rule[Any]):
    largest = False

    def empty_part(self) -> Any:
        return None

    def unit(self, contribution: Contribution) -> Any:
        return contribution.value

    def add_value(
        self, acc: Accumulator[Any], value: Any, time: datetime, order_id: str
    ) -> Accumulator[Any]:
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
            if type(a) is type(b) and type(a) in _ONE_FORM:
                return a  # equal, so written the same: the choice below would take `a`
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

    def open(self, acc: Accumulator[Any] | None = None) -> RunningExtreme:
        return RunningExtreme(self, acc)


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

    def add_value(
        self, acc: Accumulator[tuple[PrependItem, ...]], value: Any, time: datetime, order_id: str
    ) -> Accumulator[tuple[PrependItem, ...]]:
        if value is None:
            return acc
        return Accumulator(
            acc.has_baseline,
            acc.baseline,
            self.combine_parts(acc.part, self._unit(value, time, order_id)),
        )

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
        return self.finish_items(baseline, [i.item for i in part])

    def finish_items(self, baseline: Any, items: list[str]) -> Any:
        """The result from the baseline and the part's items (newest first, capped)."""
        if not items and baseline is None:
            return None
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

    def open(self, acc: Accumulator[tuple[PrependItem, ...]] | None = None) -> RunningPrepend:
        return RunningPrepend(self, acc)

    def open_stored(self, data: dict[str, Any]) -> RunningPrepend:
        # straight from the stored items: no PrependItem is built for each
        has_baseline, baseline = self.stored_baseline(data)
        running = RunningPrepend(self, Accumulator(has_baseline, baseline, ()))
        for item, time, order_id, index in data["part"]:
            running.newest[str(item)] = (stored_key(time, str(order_id)), -int(index))
        return running


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


# ---------------------------------------------------------------------- running accumulators


class Running:
    """A mutable accumulator of one rule (see the module docstring).  `put` takes one order's
    value with its key (`running_key(time, order_id)`, worked out once per order by the
    caller), time (aware) and id (text)."""

    __slots__ = ("baseline", "has_baseline", "rule")

    def __init__(self, rule: Rule[Any], acc: Accumulator[Any] | None):
        self.rule = rule
        self.has_baseline = acc is not None and acc.has_baseline
        self.baseline = acc.baseline if acc is not None else None

    def put(self, value: Any, key: tuple[Any, ...], time: datetime, order_id: str) -> None:
        raise NotImplementedError

    def part(self) -> Any:
        raise NotImplementedError

    def freeze(self) -> Accumulator[Any]:
        """The immutable accumulator of what was put (what `Rule.add` would have built)."""
        return Accumulator(self.has_baseline, self.baseline, self.part())

    def dump(self) -> dict[str, Any]:
        """The stored form: `rule.dump(self.freeze())`."""
        return self.rule.stored_form(self.has_baseline, self.baseline, self.dump_part())

    def dump_part(self) -> Any:
        return self.rule.dump_part(self.part())

    def result(self, baseline: Any = None) -> Any:
        """The rule's result, joined with `baseline` (a typed HubSpot value) when there is one:
        `rule.result(rule.combine(rule.from_baseline(baseline), self.freeze()))`."""
        if baseline is None:
            return self.finish(self.has_baseline, self.baseline)
        return self.finish(True, baseline)

    def finish(self, has_baseline: bool, baseline: Any) -> Any:
        return self.rule.finish(has_baseline, baseline, self.part())


class RunningLatest(Running):
    """overwrite and latest_known: the latest order's running key (its time and id) and value."""

    __slots__ = ("key", "takes_none", "value")

    def __init__(self, rule: _Latest, acc: Accumulator[Stamped | None] | None):
        super().__init__(rule, acc)
        self.takes_none = rule.takes_none
        held = acc.part if acc is not None else None
        self.key = running_key(held.time, held.order_id) if held is not None else None
        self.value = held.value if held is not None else None

    def put(self, value: Any, key: tuple[Any, ...], time: datetime, order_id: str) -> None:
        if value is None and not self.takes_none:
            return
        held = self.key
        if held is None or key > held:
            self.key, self.value = key, value
        elif key == held:
            self._same_order(value, key)

    def _same_order(self, value: Any, key: tuple[Any, ...]) -> None:
        """The held order again: the rule's fixed choice between its values."""
        mine = self.part()
        if (
            self.rule.combine_parts(mine, Stamped(key_time(key), key_order_id(key), value))
            is not mine
        ):
            self.key, self.value = key, value

    def part(self) -> Stamped | None:
        if self.key is None:
            return None
        return Stamped(key_time(self.key), key_order_id(self.key), self.value)

    def dump_part(self) -> Any:
        # _stamp_dump of `part()`, without building the Stamped
        if self.key is None:
            return None
        return [stored_time(self.key[0]), key_order_id(self.key), encode_value(self.value)]

    def result(self, baseline: Any = None) -> Any:
        rule: _Latest = self.rule  # type: ignore[assignment]
        return rule.finish_held(
            self.baseline if baseline is None else baseline, self.key is not None, self.value
        )


class RunningEarliest(RunningLatest):
    """set_once: the first order's running key and value."""

    __slots__ = ()

    def put(self, value: Any, key: tuple[Any, ...], time: datetime, order_id: str) -> None:
        if value is None and not self.takes_none:
            return
        held = self.key
        if held is None or key < held:
            self.key, self.value = key, value
        elif key == held:
            self._same_order(value, key)


class RunningSum(Running):
    __slots__ = ("count", "total")

    def __init__(self, rule: Sum, acc: Accumulator[SumPart] | None):
        super().__init__(rule, acc)
        if acc is None:
            self.count, self.total = 0, _ZERO  # the empty part
        else:
            self.count, self.total = acc.part.count, acc.part.total

    def put(self, value: Any, key: tuple[Any, ...], time: datetime, order_id: str) -> None:
        if value is None:
            return
        self.count += 1
        self.total = _EXACT.add(self.total, parse_decimal(value))

    def part(self) -> SumPart:
        return SumPart(self.count, self.total)

    def result(self, baseline: Any = None) -> Any:
        rule: Sum = self.rule  # type: ignore[assignment]
        return rule.finish_total(
            self.baseline if baseline is None else baseline, self.count, self.total
        )


class RunningExtreme(Running):
    __slots__ = ("held",)

    def __init__(self, rule: _Extreme, acc: Accumulator[Any] | None):
        super().__init__(rule, acc)
        self.held = acc.part if acc is not None else None

    def put(self, value: Any, key: tuple[Any, ...], time: datetime, order_id: str) -> None:
        if value is not None:
            self.held = self.rule._pick(self.held, value)  # type: ignore[attr-defined]

    def part(self) -> Any:
        return self.held


PRUNE_SLACK = 16
"""Items a running prepend holds beyond twice its cap before it drops those past the cap."""


class RunningPrepend(Running):
    """Every item's newest position (item -> (order's running key, -index)), unsorted: sorted
    and capped only when the part or the result is asked for.  Items past the cap are dropped now
    and then; as the cap is a prefix of the newest-first list, that changes no later result."""

    __slots__ = ("limit", "newest")

    def __init__(self, rule: Prepend, acc: Accumulator[tuple[PrependItem, ...]] | None):
        super().__init__(rule, acc)
        self.newest: dict[str, tuple[tuple[Any, ...], int]] = {
            i.item: (running_key(i.time, i.order_id), -i.index)
            for i in (acc.part if acc is not None else ())
        }
        self.limit = 2 * rule.max_items + PRUNE_SLACK

    def put(self, value: Any, key: tuple[Any, ...], time: datetime, order_id: str) -> None:
        if value is None:
            return
        newest = self.newest
        for index, item in enumerate(value if isinstance(value, tuple | list) else (value,)):
            if item is None:
                continue
            text = item if type(item) is str else str(item)
            if text == "":
                continue
            stamp = (key, -index)  # larger is newer, as PrependItem.key
            held = newest.get(text)
            if held is None or stamp > held:
                newest[text] = stamp
        if len(newest) > self.limit:
            self.newest = dict(self._capped())

    def _capped(self) -> list[tuple[str, tuple[tuple[Any, ...], int]]]:
        """The items as `Prepend._cap` keeps them: newest first, capped by count and length."""
        ordered = sorted(self.newest.items(), key=itemgetter(1), reverse=True)
        max_items = self.rule.max_items  # type: ignore[attr-defined]
        return _length_prefix([text for text, _ in ordered[:max_items]], ordered, keep_blocker=True)

    def part(self) -> tuple[PrependItem, ...]:
        return tuple(
            PrependItem(text, key_time(key), key_order_id(key), -minus_index)
            for text, (key, minus_index) in self._capped()
        )

    def dump_part(self) -> Any:
        # Prepend.dump_part of `part()`, without building a PrependItem per item
        return [
            [text, stored_time(key[0]), key_order_id(key), -minus_index]
            for text, (key, minus_index) in self._capped()
        ]

    def finish(self, has_baseline: bool, baseline: Any) -> Any:
        rule: Prepend = self.rule  # type: ignore[assignment]
        return rule.finish_items(baseline, [text for text, _ in self._capped()])


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
