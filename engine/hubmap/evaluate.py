"""Evaluate a mapping over one record: order id, time, contact key and typed property values.

Pure: the mapping's expressions are compiled once (`CompiledMapping`), then each record gives an
`OrderValues`, or a `Rejected` naming the property and the reason, or a `Skipped` when the
mapping's `records.when` leaves it out.  A bad record never stops the caller and never raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Union

from hubmap import types
from hubmap.expressions import ExpressionError, compile_source, truthy
from hubmap.inputs import Document, InputError
from hubmap.mapping.model import FormsTarget, Mapping, PropertySpec, Source

# A deliberately plain check: something@domain.tld, no spaces.  HubSpot refuses worse ones.
EMAIL = re.compile(r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,.]{2,}$")


@dataclass(frozen=True)
class OrderValues:
    """What one order contributes: typed values by property, plus what identifies it."""

    where: str
    order_id: str
    time: datetime
    contact: str
    values: dict[str, Any]
    context: dict[str, str] = field(default_factory=dict)  # forms: hutk, pageUri ...


@dataclass(frozen=True)
class Rejected:
    where: str
    reason: str
    order_id: str | None = None
    property_name: str | None = None
    code: str = "HM501"
    raw: Any = field(default=None, compare=False, repr=False)  # kept so it can be replayed

    @property
    def record(self) -> str:
        return self.order_id if self.order_id is not None else self.where


@dataclass(frozen=True)
class Skipped:
    where: str
    order_id: str | None
    reason: str


Outcome = Union[OrderValues, Rejected, Skipped]
Evaluator = Callable[[Any], Any]

FORM_CONTEXT_KEYS = {"hutk": "hutk", "page_uri": "pageUri", "page_name": "pageName",
                     "ip_address": "ipAddress"}


class CompiledMapping:
    """A mapping with every expression compiled once, ready to evaluate many records."""

    def __init__(self, mapping: Mapping):
        self.mapping = mapping
        records = mapping.records
        self.path = _compile(records.path)
        self.when = _compile(records.when)
        self.require = [(compile_source(r.that), r.reason) for r in records.require]
        self.order_id = compile_source(records.id)
        self.time = compile_source(records.time)
        self.contact = compile_source(records.contact)
        self.by_record: list[tuple[PropertySpec, Evaluator, Evaluator | None]] = [
            (spec, compile_source(spec.source), _compile(spec.when))
            for spec in mapping.properties
            if spec.source is not None
        ]
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

    def records(self, item: Document | InputError) -> Iterator[tuple[Any, str] | Rejected]:
        """The records of one input document, each with where it came from."""
        if isinstance(item, InputError):
            yield Rejected(item.where, item.reason, code="HM502")
            return
        data = item.data
        if self.path is not None:
            try:
                data = self.path(data)
            except ExpressionError as error:
                yield Rejected(item.where, f"records.path: {error}", code="HM501")
                return
            if data is None:
                yield Rejected(item.where, f"the document has nothing at records.path "
                               f"'{self.mapping.records.path.text}'", code="HM503")  # type: ignore
                return
        if isinstance(data, list):
            for index, record in enumerate(data):
                yield record, f"{item.where}#{index}" if len(data) > 1 else item.where
        else:
            yield data, item.where

    # -- one record ----------------------------------------------------------------------

    def evaluate(self, record: Any, where: str) -> Outcome:
        if not isinstance(record, dict):
            return Rejected(where, f"a record must be an object, not {_kind(record)}",
                            code="HM503")
        order_id: str | None = None
        try:
            order_id = _order_id(self.order_id(record))
            if order_id is None:
                return Rejected(where, "the order has no id (records.id gave nothing)",
                                code="HM503")
            if self.when is not None and not truthy(self.when(record)):
                return Skipped(where, order_id, "records.when is false")
            for condition, reason in self.require:
                if not truthy(condition(record)):
                    return Rejected(where, reason, order_id, code="HM507")
            raw_time = self.time(record)
            if raw_time is None:
                return Rejected(where, "the order has no time (records.time gave nothing)",
                                order_id, code="HM503")
            try:
                time = types.parse_timestamp(raw_time, self.mapping.timezone)
            except types.CoercionError as error:
                return Rejected(where, f"order time: {error}", order_id, code="HM504")
            contact = self._contact(self.contact(record))
            if isinstance(contact, str) and contact.startswith("!"):
                return Rejected(where, contact[1:], order_id, property_name=self.match_on,
                                code="HM505")
        except ExpressionError as error:
            return Rejected(where, str(error), order_id, code="HM501")

        values: dict[str, Any] = {}
        for spec, evaluator, condition in self.by_record:
            try:
                if condition is not None and not truthy(condition(record)):
                    continue
                raw = evaluator(record)
            except ExpressionError as error:
                return Rejected(where, str(error), order_id, property_name=spec.name, code="HM501")
            if raw is None or raw == [] or raw == "":
                if spec.required:
                    return Rejected(where, "no value, and the property is required", order_id,
                                    property_name=spec.name, code="HM506")
                continue
            try:
                typed = types.coerce(raw, spec, self.mapping.timezone)
            except types.CoercionError as error:
                return Rejected(where, str(error), order_id, property_name=spec.name, code="HM504")
            if typed is None or typed == []:
                continue
            values[spec.name] = typed

        context: dict[str, str] = {}
        for wire_key, evaluator in self.context:
            try:
                value = evaluator(record)
            except ExpressionError as error:
                return Rejected(where, str(error), order_id, property_name=f"context.{wire_key}",
                                code="HM501")
            if value not in (None, ""):
                context[wire_key] = _text(value)
        return OrderValues(where, order_id, time, contact, values, context)

    def _contact(self, raw: Any) -> str:
        """The normalised contact key, or '!reason' when the record has no usable one."""
        if raw is None or raw == "":
            return f"!no contact key ({self.match_on}): records.contact gave nothing"
        key = _text(raw).strip()
        if self.match_on == "email":
            key = key.lower()
            if not EMAIL.match(key):
                return f"!'{key}' is not a valid email address"
        return key

    # -- after merging ------------------------------------------------------------------

    def derive(self, merged: dict[str, Any]) -> dict[str, Any]:
        """Derived properties computed from a contact's merged (typed) values."""
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


def _json_like(value: Any) -> Any:
    """Merged values as JMESPath sees data: lists for item tuples, ISO text for dates."""
    if isinstance(value, tuple):
        return [_json_like(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _compile(source: Source | None) -> Evaluator | None:
    return compile_source(source) if source is not None else None


def _order_id(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    return _text(raw).strip() or None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        value = Decimal(str(value))
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return str(value.quantize(Decimal(1)))
        return format(value.normalize(), "f")
    return str(value)


def _kind(value: Any) -> str:
    return {list: "a list", str: "text", type(None): "null"}.get(type(value), type(value).__name__)
