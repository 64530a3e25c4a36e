"""Evaluate a mapping over one record: order id, time, contact key and typed property values.

Pure: the mapping's expressions are compiled once (`CompiledMapping`), then each record gives an
`OrderValues`, or a `Rejected` naming the property and the reason, or a `Skipped` when the
mapping's `records.when` leaves it out.  A bad record never stops the caller and never raises.

The records' versions are read as `hubmap.versions.version_key` text.  With `refunds`, a document
that `refunds.match` recognises gives `RefundValues` (and no orders), and an order record gives its
embedded refunds (`refunds.in_order`) right after its own outcome; `outcomes` yields all of them
in input order.

`records.group_by` joins line-item rows into orders before they are evaluated (`record_stream`):
records with the same key that follow one another become one record, the first record's fields
plus `rows` (all of its records, in input order).  It streams: a group closes once
`GROUP_WINDOW` records with other keys have passed since its last record (so a few rows in
between do not split an order), and memory holds only the open groups.  Rows whose group already
closed are rejected (HM508) with their reason rather than counted as a second order with the same
id, which the ledger would skip; the keys of the last `CLOSED_KEYS_REMEMBERED` closed groups are
kept for that check.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Union

from hubmap import types, versions
from hubmap.contact_keys import Refused, contact_key
from hubmap.expressions import ExpressionError, budget, compile_source, truthy
from hubmap.expressions.functions import CATALOGS, LETS, RecordLets
from hubmap.inputs import Document, InputError
from hubmap.mapping.model import FormsTarget, Mapping, MergeRule, PropertySpec, RefundsSpec, Source


# A deliberately plain check: something@domain.tld, no spaces.  HubSpot refuses worse ones.
@dataclass(frozen=True)
class OrderValues:
    """What one order contributes: typed values by property, plus what identifies it."""

    where: str
    order_id: str
    time: datetime
    contact: str
    # typed values by property; None for an overwrite property this order has no value for (a
    # property whose `when` is false for the order is left out: the order takes no part in it)
    values: dict[str, Any]
    context: dict[str, str] = field(default_factory=dict)  # forms: hutk, pageUri ...
    version: str | None = None  # records.version as version_key text
    raw: Any = field(default=None, compare=False, repr=False)  # the record, kept for a replay


@dataclass(frozen=True)
class RefundValues:
    """What one refund adds to the number values of the order it names."""

    where: str
    refund_id: str
    order_id: str
    values: dict[str, Any]
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Rejected:
    where: str
    reason: str
    order_id: str | None = None
    property_name: str | None = None
    code: str = "HM501"
    raw: Any = field(default=None, compare=False, repr=False)  # kept so it can be replayed

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", readable_reason(self.reason))
        if self.order_id is not None and len(self.order_id) > MAX_ID_SHOWN:
            object.__setattr__(self, "order_id", _clip(self.order_id, MAX_ID_SHOWN))

    @property
    def record(self) -> str:
        return self.order_id if self.order_id is not None else self.where


@dataclass(frozen=True)
class Skipped:
    where: str
    order_id: str | None
    reason: str
    version: str | None = None  # a newer version that is skipped withdraws a counted order

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", readable_reason(self.reason))


Outcome = Union[OrderValues, Rejected, Skipped, RefundValues]
Evaluator = Callable[[Any], Any]

MAX_REASON_LENGTH = 300
MAX_ID_SHOWN = 120

_NEVER_EMPTY = frozenset({int, float, Decimal, bool, dict, tuple})  # never == [] nor == ""


def readable_reason(reason: str) -> str:
    """A reason a person can read: never empty, a long run of digits shown by its length, and at
    most `MAX_REASON_LENGTH` characters (the record itself is in the reject file)."""
    text = " ".join(str(reason or "").split())
    if not text:
        return "no reason was given (an internal error without a message: please report it)"
    text = _LONG_NUMBER.sub(lambda m: f"{m.group()[:8]}… ({len(m.group())} digits)", text)
    return _clip(text, MAX_REASON_LENGTH)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_LONG_NUMBER = re.compile(r"\d{25,}")

GROUP_ROWS_KEY = "rows"
"""records.group_by: the field of a grouped record that holds all of its records."""

GROUP_WINDOW = 1_000
"""records.group_by: records with other keys that may come between two rows of one group."""

CLOSED_KEYS_REMEMBERED = 100_000
"""records.group_by: how many closed groups' keys are kept to reject their late rows (bounded, so
memory stays flat; a key that comes back later still is not counted twice: the ledger knows it)."""

FORM_CONTEXT_KEYS = {
    "hutk": "hutk",
    "page_uri": "pageUri",
    "page_name": "pageName",
    "ip_address": "ipAddress",
}


class CompiledMapping:
    """A mapping with every expression compiled once, ready to evaluate many records.
    `catalogs`: the mapping's catalogs, loaded (`hubmap.catalogs`), for `lookup`."""

    def __init__(self, mapping: Mapping, catalogs: Any = None):
        self.mapping = mapping
        self.catalogs = catalogs
        records = mapping.records
        self.path = _compile(records.path)
        self.group_by = _compile(records.group_by)
        self.when = _compile(records.when)
        self.require = [(compile_source(r.that), r.reason) for r in records.require]
        self.order_id = compile_source(records.id)
        self.time = compile_source(records.time)
        self.contact = compile_source(records.contact)
        self.version = _compile(records.version)
        self.lets = {name: compile_source(source) for name, source in mapping.lets}
        self.cuts = _Cuts()
        self.refunds = (
            _CompiledRefunds(mapping.refunds, mapping, catalogs) if mapping.refunds else None
        )
        self.by_record: list[tuple[PropertySpec, Evaluator, Evaluator | None]] = [
            (spec, compile_source(spec.source), _compile(spec.when))
            for spec in mapping.properties
            if spec.source is not None
        ]
        # what each property's evaluation needs, worked out once: its name, its typed converter,
        # whether an empty value is refused or clears it, whether a text may be cut
        converters: dict[Any, Callable[[Any], Any]] = {}  # one per way of typing a value
        self._properties = [
            (
                spec.name,
                evaluator,
                condition,
                _converter(spec, mapping.timezone, converters),
                spec.required,
                spec.merge is MergeRule.OVERWRITE,
                spec.type == types.STRING,
            )
            for spec, evaluator, condition in self.by_record
        ]
        self._is_forms = mapping.is_forms
        self._embedded_refunds = self.refunds is not None and self.refunds.in_order is not None
        self.derived: list[tuple[PropertySpec, Evaluator]] = [
            (spec, compile_source(spec.derive))
            for spec in mapping.properties
            if spec.derive is not None
        ]
        self.context: list[tuple[str, Evaluator]] = []
        if isinstance(mapping.target, FormsTarget):
            for key, wire_key in FORM_CONTEXT_KEYS.items():
                source = getattr(mapping.target, key)
                if source is not None:
                    self.context.append((wire_key, compile_source(source)))
        self.match_on = "email" if mapping.is_forms else mapping.target.match_on  # type: ignore

    # -- records -------------------------------------------------------------------------

    def records(
        self, item: Document | InputError
    ) -> Iterator[tuple[Any, str] | Rejected | RefundValues]:
        """The records of one input document, each with where it came from."""
        if isinstance(item, InputError):
            yield Rejected(item.where, item.reason, code="HM502")
            return
        data = item.data
        if self.refunds is not None and self.refunds.is_document(data):
            yield from self.refunds.records(data, item.where)
            return
        if self.path is not None:
            try:
                data = self.path(data)
            except ExpressionError as error:
                yield Rejected(item.where, f"records.path: {error}", code="HM501")
                return
            if data is None:
                yield Rejected(
                    item.where,
                    f"the document has nothing at records.path '{self.mapping.records.path.text}'",
                    code="HM503",
                )  # type: ignore
                return
        if not isinstance(data, list):  # one record: the document itself, or what path found
            if (
                data is not item.data
                and self.refunds is not None
                and self.refunds.is_document(data)
            ):
                yield from self.refunds.records(data, item.where)
            else:
                yield data, item.where  # (the document itself was not a refund, seen above)
            return
        records = data
        for index, record in enumerate(records):
            where = f"{item.where}#{index}" if len(records) > 1 else item.where
            if self.refunds is not None and self.refunds.is_document(record):
                yield from self.refunds.records(record, where)  # a refund in a list of orders
            else:
                yield record, where

    def record_stream(
        self, documents: Iterable[Document | InputError]
    ) -> Iterator[tuple[Any, str] | Rejected | RefundValues]:
        """The records of all documents, in order; joined by records.group_by when it is set."""
        items = (item for document in documents for item in self.records(document))
        if self.group_by is None:
            yield from items
        else:
            yield from _Grouper(self.group_by).groups(items)

    def outcomes(self, documents: Iterable[Document | InputError]) -> Iterator[Outcome]:
        """Every record of every document evaluated, in input order; a rejected record keeps
        what a replay needs (`raw_of`), and an order's embedded refunds follow it."""
        for item in self.record_stream(documents):
            if isinstance(item, (Rejected, RefundValues)):
                yield item
                continue
            record, where = item
            try:
                result = self.evaluate(record, where)
            except Exception as error:  # noqa: BLE001 - as in `guarded`: a bug costs one record
                result = _bug(error, where)
            kind = type(result)
            if kind is Rejected:
                yield replace(result, raw=self.raw_of(record))
            elif kind is OrderValues and self._is_forms:
                # a failed submission is kept for a replay
                yield replace(result, raw=self.raw_of(record))
            else:
                yield result
            if (
                self._embedded_refunds
                and (kind is OrderValues or kind is Skipped)
                and result.order_id is not None
            ):
                yield from self.refunds.embedded(record, where, result.order_id)  # type: ignore

    def raw_of(self, record: Any) -> Any:
        """What to keep of a record so it can be replayed: a group's rows (grouped again on
        replay), otherwise the record itself."""
        if self.group_by is not None and isinstance(record, dict) and GROUP_ROWS_KEY in record:
            return record[GROUP_ROWS_KEY]
        return record

    # -- one record ----------------------------------------------------------------------

    def evaluate(self, record: Any, where: str) -> Outcome:
        token = _catalogs_for_one(self.catalogs)
        lets = LETS.set(RecordLets(self.lets, record) if self.lets else None)
        try:
            return budget.run(self._evaluate, record, where)  # bounded (expressions/budget.py)
        except (budget.TimeUp, budget.OverBudget) as error:  # past a bound between expressions
            return Rejected(where, budget.reason(error), code="HM501")
        finally:
            LETS.reset(lets)
            CATALOGS.reset(token)

    def _evaluate(self, record: Any, where: str) -> Outcome:
        if not isinstance(record, dict):
            return Rejected(where, f"a record must be an object, not {_kind(record)}", code="HM503")
        order_id: str | None = None
        try:
            order_id = _order_id(self.order_id(record))
            if order_id is None:
                return self._without_id(record, where)
            version: str | None = None
            if self.version is not None:
                raw_version = self.version(record)
                if raw_version is not None and raw_version != "":
                    version = versions.version_key(raw_version, self.mapping.timezone)
            if self.when is not None and not truthy(self.when(record)):
                return Skipped(where, order_id, "records.when is false", version)
            for condition, reason in self.require:
                if not truthy(condition(record)):
                    return Rejected(where, reason, order_id, code="HM507")
            if self.version is not None and version is None:
                return Rejected(
                    where,
                    "the order has no version (records.version gave nothing)",
                    order_id,
                    code="HM503",
                )
            raw_time = self.time(record)
            if raw_time is None:
                return Rejected(
                    where,
                    "the order has no time (records.time gave nothing)",
                    order_id,
                    code="HM503",
                )
            try:
                time = types.parse_timestamp(raw_time, self.mapping.timezone)
            except types.CoercionError as error:
                return Rejected(where, f"order time: {error}", order_id, code="HM504")
            contact = self._contact(self.contact(record))
            if isinstance(contact, str) and contact.startswith("!"):
                return Rejected(
                    where, contact[1:], order_id, property_name=self.match_on, code="HM505"
                )
        except ExpressionError as error:
            return Rejected(where, str(error), order_id, code="HM501")

        values: dict[str, Any] = {}
        for name, evaluator, condition, convert, required, overwrite, may_cut in self._properties:
            try:
                if condition is not None and not truthy(condition(record)):
                    continue
                raw = evaluator(record)
            except ExpressionError as error:
                return Rejected(where, str(error), order_id, property_name=name, code="HM501")
            kind = type(raw)
            if (
                raw is None
                or ((kind is str or kind is list) and not raw)
                or (kind not in _NEVER_EMPTY and (raw == [] or raw == ""))
            ):  # none, [] or ""
                if required:
                    return Rejected(
                        where,
                        "no value, and the property is required",
                        order_id,
                        property_name=name,
                        code="HM506",
                    )
                if overwrite:
                    values[name] = None  # this purchase has none: the value is cleared
                continue
            try:
                typed = convert(raw)  # types.coerce for this property
            except types.CoercionError as error:
                return Rejected(where, str(error), order_id, property_name=name, code="HM504")
            if typed is None or typed == []:
                if overwrite:
                    values[name] = None
                continue
            # only a text property's value can hold a text cut to HubSpot's limit (a `CutText`,
            # alone or in a tuple of items): a plain text has none
            if may_cut and type(typed) is not str:
                typed = self._note_cuts(typed, name, order_id or where)
            values[name] = typed

        context: dict[str, str] = {}
        for wire_key, evaluator in self.context:
            try:
                value = evaluator(record)
            except ExpressionError as error:
                return Rejected(
                    where, str(error), order_id, property_name=f"context.{wire_key}", code="HM501"
                )
            if value not in (None, ""):
                context[wire_key] = _text(value)
        return OrderValues(where, order_id, time, contact, values, context, version)

    def _without_id(self, record: dict[str, Any], where: str) -> Outcome:
        """A record without an id: the mapping's own `when` and `require` speak first (a
        refund, a draft, an event envelope are often what they are about), else say what the
        record looks like, so the user can tell what was sent."""
        if self.when is not None and not truthy(self.when(record)):
            return Skipped(where, None, "records.when is false")
        for condition, reason in self.require:
            if not truthy(condition(record)):
                return Rejected(where, reason, code="HM507")
        return Rejected(
            where,
            f"the order has no id (records.id gave nothing); the record has {_shape(record)}",
            code="HM503",
        )

    def _note_cuts(self, typed: Any, name: str, record: str) -> Any:
        """`typed` with texts cut to HubSpot's limit made plain, each cut remembered for a
        warning (`take_warnings`)."""
        if isinstance(typed, types.CutText):
            self.cuts.note(name, record, typed.length)
            return str(typed)
        if isinstance(typed, tuple) and any(isinstance(t, types.CutText) for t in typed):
            for item in typed:
                if isinstance(item, types.CutText):
                    self.cuts.note(name, record, item.length)
            return tuple(str(t) for t in typed)
        return typed

    def take_warnings(self) -> list[str]:
        """What evaluation cut or could not find since the last call, as summary warnings."""
        taken = self.cuts.take_warnings()
        if self.catalogs is not None:
            taken += self.catalogs.take_warnings()
        return taken

    def _contact(self, raw: Any) -> str:
        """The normalised contact key, or '!reason' when the record has no usable one."""
        if raw is None or raw == "":
            return f"!no contact key ({self.match_on}): records.contact gave nothing"
        key = contact_key(raw if type(raw) is str else _text(raw), self.match_on)
        if isinstance(key, Refused):
            return f"!{key.reason}"
        return key

    # -- after merging ------------------------------------------------------------------

    def derive(self, merged: dict[str, Any]) -> dict[str, Any]:
        """Derived properties computed from a contact's merged (typed) values."""
        token = _catalogs_for_one(self.catalogs)
        try:
            return budget.run(self._derive, merged)
        except (budget.TimeUp, budget.OverBudget):
            return {}  # as for a derive expression that fails: no derived values
        finally:
            CATALOGS.reset(token)

    def _derive(self, merged: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        data = {name: _json_like(value) for name, value in merged.items()}
        for spec, evaluator in self.derived:
            try:
                raw = evaluator(data)
                typed = types.coerce(raw, spec, self.mapping.timezone) if raw is not None else None
            except (ExpressionError, types.CoercionError):
                typed = None
            if typed is not None:
                result[spec.name] = typed
        return result


class _CompiledRefunds:
    """`refunds` compiled: which documents are refunds, and each refund's id, order and values."""

    def __init__(self, spec: RefundsSpec, mapping: Mapping, catalogs: Any = None):
        self.spec = spec
        self.mapping = mapping
        self.catalogs = catalogs
        self.match = _compile(spec.match)
        self.path = _compile(spec.path)
        self.in_order = _compile(spec.in_order)
        self.id = compile_source(spec.id)
        self.order = _compile(spec.order)
        self.values = [
            (mapping.property(name), compile_source(source)) for name, source in spec.values
        ]

    def is_document(self, data: Any) -> bool:
        if self.match is None or not isinstance(data, dict):
            return False
        try:
            return truthy(self.match(data))
        except ExpressionError:
            return False

    def records(self, data: Any, where: str) -> Iterator[RefundValues | Rejected]:
        if self.path is not None:
            try:
                data = self.path(data)
            except ExpressionError as error:
                yield Rejected(where, f"refunds.path: {error}", code="HM501", raw=data)
                return
        items = data if isinstance(data, list) else [data]
        for index, item in enumerate(items):
            at = f"{where}#{index}" if len(items) > 1 else where
            yield guarded(lambda: self.evaluate(item, at, None), at)

    def embedded(self, order: Any, where: str, order_id: str) -> Iterator[RefundValues | Rejected]:
        assert self.in_order is not None
        try:
            found = self.in_order(order)
        except ExpressionError as error:
            yield Rejected(f"{where} refunds", f"refunds.in_order: {error}", order_id, code="HM501")
            return
        if found is None:
            return
        items = found if isinstance(found, list) else [found]
        for index, item in enumerate(items):
            at = f"{where} refund #{index}"
            yield guarded(lambda: self.evaluate(item, at, order_id), at, order_id)

    def evaluate(self, refund: Any, where: str, order_id: str | None) -> RefundValues | Rejected:
        token = _catalogs_for_one(self.catalogs)
        try:
            return budget.run(self._evaluate, refund, where, order_id)
        except (budget.TimeUp, budget.OverBudget) as error:
            return Rejected(where, budget.reason(error), order_id, code="HM501", raw=refund)
        finally:
            CATALOGS.reset(token)

    def _evaluate(self, refund: Any, where: str, order_id: str | None) -> RefundValues | Rejected:
        if not isinstance(refund, dict):
            return Rejected(
                where, f"a refund must be an object, not {_kind(refund)}", code="HM503", raw=refund
            )
        refund_id: str | None = None
        try:
            refund_id = _order_id(self.id(refund))
            if refund_id is None:
                return Rejected(
                    where,
                    "the refund has no id (refunds.id gave nothing)",
                    code="HM503",
                    raw=refund,
                )
            if self.order is not None:
                order_id = _order_id(self.order(refund)) or order_id
            if order_id is None:
                return Rejected(
                    where,
                    "the refund names no order (refunds.order gave nothing)",
                    f"refund {refund_id}",
                    code="HM503",
                    raw=refund,
                )
            values: dict[str, Any] = {}
            for spec, evaluator in self.values:
                raw = evaluator(refund)
                if raw is None or raw == "":
                    continue
                try:
                    typed = types.coerce(raw, spec, self.mapping.timezone)
                except types.CoercionError as error:
                    return Rejected(
                        where,
                        str(error),
                        f"refund {refund_id}",
                        property_name=spec.name,
                        code="HM504",
                        raw=refund,
                    )
                if typed is not None:
                    values[spec.name] = typed
        except ExpressionError as error:
            return Rejected(
                where,
                str(error),
                f"refund {refund_id}" if refund_id else None,
                code="HM501",
                raw=refund,
            )
        return RefundValues(where, refund_id, order_id, values, raw=refund)


class _Group:
    """The rows of one open group, and when its key was last seen."""

    __slots__ = ("key", "last", "late", "rows", "wheres")

    def __init__(self, key: str, late: bool):
        self.key = key
        self.late = late  # the key's group had already closed: these rows are rejected
        self.rows: list[Any] = []
        self.wheres: list[str] = []
        self.last = 0


class _Grouper:
    """Joins a stream of records into groups by key (see the module docstring)."""

    def __init__(self, key: Evaluator):
        self.key = key
        self.open: OrderedDict[str, _Group] = OrderedDict()  # least recently seen first
        self.closed: OrderedDict[str, None] = OrderedDict()

    def groups(
        self, items: Iterable[tuple[Any, str] | Rejected | RefundValues]
    ) -> Iterator[tuple[Any, str] | Rejected | RefundValues]:
        for position, item in enumerate(items):
            if isinstance(item, (Rejected, RefundValues)):
                yield item
                continue
            record, where = item
            key = self._key(record, where)
            if isinstance(key, Rejected):
                yield key
                continue
            group = self.open.get(key)
            if group is None:
                group = self.open[key] = _Group(key, late=key in self.closed)
            else:
                self.open.move_to_end(key)
            group.rows.append(record)
            group.wheres.append(where)
            group.last = position
            while self.open:
                oldest = next(iter(self.open.values()))
                if position - oldest.last <= GROUP_WINDOW:
                    break
                yield self._close(oldest)
        while self.open:
            yield self._close(next(iter(self.open.values())))

    def _key(self, record: Any, where: str) -> str | Rejected:
        if not isinstance(record, dict):
            return Rejected(
                where,
                f"records.group_by needs records that are objects, not {_kind(record)}",
                code="HM503",
            )
        try:
            key = _order_id(self.key(record))
        except ExpressionError as error:
            return Rejected(where, f"records.group_by: {error}", code="HM501", raw=record)
        if key is None:
            return Rejected(
                where,
                "the record has no group key (records.group_by gave nothing)",
                code="HM503",
                raw=record,
            )
        return key

    def _close(self, group: _Group) -> tuple[Any, str] | Rejected:
        del self.open[group.key]
        where = _span(group.wheres)
        if group.late:
            return Rejected(
                where,
                f"{len(group.rows)} row(s) of '{group.key}' came after that group was "
                f"already read ({GROUP_WINDOW:,} or more other records in between); they are "
                "not counted: put the rows of one order together",
                group.key,
                code="HM508",
                raw=group.rows,
            )
        self.closed[group.key] = None
        if len(self.closed) > CLOSED_KEYS_REMEMBERED:
            self.closed.popitem(last=False)
        record = dict(group.rows[0])
        record[GROUP_ROWS_KEY] = group.rows
        return record, where


def _span(wheres: list[str]) -> str:
    """Where a group came from: 'file.csv:12-15' for rows of one file, else first .. last."""
    first, last = wheres[0], wheres[-1]
    if len(wheres) == 1:
        return first
    name, _, line = first.rpartition(":")
    last_name, _, last_line = last.rpartition(":")
    if name and name == last_name and line.isdigit() and last_line.isdigit():
        return f"{first}-{last_line}"
    return f"{first} .. {last}"


def _json_like(value: Any) -> Any:
    """Merged values as JMESPath sees data: lists for item tuples, ISO text for dates."""
    if isinstance(value, tuple):
        return [_json_like(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _converter(
    spec: PropertySpec, default_tz: str | None, known: dict[Any, Callable[[Any], Any]]
) -> Callable[[Any], Any]:
    """`types.converter` for `spec`, shared by the properties that type values alike (what
    `types.coerce` reads of a property): a converter remembers its last value, and one order's
    total often feeds several properties."""
    key = (spec.type, spec.is_list, spec.options, spec.timezone, spec.decimals)
    if key not in known:
        known[key] = types.converter(spec, default_tz)
    return known[key]


def _compile(source: Source | None) -> Evaluator | None:
    return compile_source(source) if source is not None else None


def guarded(evaluation: Callable[[], Any], where: str, order_id: str | None = None) -> Any:
    """`evaluation()`, or - when hubmap itself fails on a record, which is a bug - a rejected
    record saying so: a bug must cost one record (kept for a replay), never the whole run."""
    try:
        return evaluation()
    except Exception as error:  # noqa: BLE001 - the one place a bug becomes a reject
        return _bug(error, where, order_id)


def _bug(error: Exception, where: str, order_id: str | None = None) -> Rejected:
    return Rejected(
        where,
        f"hubmap could not evaluate this record ({type(error).__name__}: "
        f"{error}); please report it with the record",
        order_id,
        code="HM509",
    )


def _order_id(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    return (raw if type(raw) is str else _text(raw)).strip() or None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        value = Decimal(str(value))
    if isinstance(value, Decimal):
        return types.plain_number_text(value)
    return str(value)


def _kind(value: Any) -> str:
    return {list: "a list", str: "text", type(None): "null"}.get(type(value), type(value).__name__)


def _catalogs_for_one(catalogs: Any) -> Any:
    """Hand `catalogs` to the lookups of one record's (refund's, contact's) evaluation; the token
    resets them after."""
    if catalogs is not None:
        catalogs.start_record()
    return CATALOGS.set(catalogs)


class _Cuts:
    """Texts cut to HubSpot's limit, by property: how many, and the first record of each."""

    def __init__(self) -> None:
        self.by_property: dict[str, tuple[int, str, int]] = {}  # count, first record, length

    def note(self, name: str, record: str, length: int) -> None:
        count, first, longest = self.by_property.get(name, (0, record, 0))
        self.by_property[name] = (count + 1, first, max(longest, length))

    def take_warnings(self) -> list[str]:
        taken = [
            f"{name}: {count} value(s) longer than HubSpot stores ({types.MAX_VALUE_LENGTH:,} "
            f"characters; the longest {longest:,}) were cut to fit, ending in '…' (first: "
            f"record {first}); the orders still count"
            for name, (count, first, longest) in sorted(self.by_property.items())
        ]
        self.by_property.clear()
        return taken


def _shape(record: dict[str, Any]) -> str:
    """What a record looks like, in a few words: its first fields."""
    if not record:
        return "no fields at all"
    names = [_clip(str(name), 30) for name in list(record)[:8]]
    more = f" and {len(record) - 8} more" if len(record) > 8 else ""
    return f"the fields {', '.join(names)}{more}"
