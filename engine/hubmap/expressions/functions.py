"""The functions mapping authors call on shop data, and the errors an expression can raise.

Plain Python, shared by JMESPath expressions (`jmes.py` calls them) and Jinja templates
(`templates.py` offers the same ones as filters), so both languages compute the same way.  Each
function is declared by its `@shop_function` decorator (`registry.py`): its arity, a summary, an
example that the test suite runs and its filter form, so the documentation cannot drift from the
code.

Numbers are exact: every function that reads a number accepts ints, Decimals, floats (by their
shortest text, so 0.1 stays 0.1) and numeric texts such as "19.99", and returns `decimal.Decimal`,
never a float.  A null argument to an arithmetic function gives null (a missing price makes a
missing total, not an error); a text that is not a number is an error.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any

from hubmap.expressions import budget
from hubmap.expressions.errors import ExpressionError
from hubmap.expressions.registry import (
    FUNCTION_DOCS,
    FUNCTIONS,
    Filter,
    ShopFunction,
    jmespath_function,
    shop_function,
)
from hubmap.types import (
    CoercionError,
    calendar_date,
    describe,
    format_decimal,
    parse_decimal,
    parse_timestamp,
    text_of,
    zone,
)

MAX_TEXT_LENGTH = budget.MAX_TEXT_LENGTH
"""No function builds a text longer than this (a guard against runaway expressions)."""

KEY_NODE_BYTES = 72
"""About the memory one part of a value takes in its comparison key (`plain_key`)."""

MAX_ROUND_DECIMALS = 12
"""round_to() rounds to at most this many decimal places (the mapping's `decimals` limit)."""

DIVISION_PRECISION = 28
"""Significant digits of a division result (other arithmetic is exact)."""

CENTS_PER_UNIT = 100

MAX_TIMESTAMP_LENGTH = 64
"""The longest text date() and timestamp() read (the longest real form, RFC 2822 with a zone
name, has about 40 characters; converting a very long number is slow)."""

_EXACT = Context(
    prec=400, rounding=ROUND_HALF_UP, Emax=10_000, Emin=-10_000, traps=[InvalidOperation, Overflow]
)
_DIVISION = Context(
    prec=DIVISION_PRECISION,
    rounding=ROUND_HALF_UP,
    Emax=10_000,
    Emin=-10_000,
    traps=[InvalidOperation, Overflow, DivisionByZero],
)


# ------------------------------------------------------------------------------------- helpers


def _number(value: Any, function: str) -> Decimal:
    try:
        return parse_decimal(value)
    except CoercionError as error:
        raise ExpressionError(f"{function}(): {error.message}") from None


def as_text(value: Any, function: str) -> str:
    if isinstance(value, list | dict):
        raise ExpressionError(f"{function}() needs a text, but got {describe(value)}")
    try:
        return text_of(value)
    except CoercionError as error:
        raise ExpressionError(f"{function}(): {error.message}") from None


def as_list(value: Any, function: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ExpressionError(f"{function}() needs a list, but got {describe(value)}")
    return list(value)


def _count(value: Any, function: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float | str):
        raise ExpressionError(f"{function}() needs a whole number, but got {describe(value)}")
    number = _number(value, function)
    if number != number.to_integral_value():
        raise ExpressionError(f"{function}() needs a whole number, but got {describe(value)}")
    return int(number)


def _exact(operation: Callable[[], Decimal], function: str) -> Decimal:
    try:
        return operation()
    except (InvalidOperation, Overflow):
        raise ExpressionError(f"{function}(): the result is too large") from None


def check_size(length: int, function: str) -> None:
    if length > MAX_TEXT_LENGTH:
        raise budget.OverBudget(
            f"{function}() would build a text of {length:,} characters; "
            f"the limit is {MAX_TEXT_LENGTH:,}"
        )


def plain_key(value: Any) -> Any:
    """A hashable key that treats equal numbers alike (1 == 1.0 == Decimal('1.00')).

    The key of a list or object is as large as the value read through (its repeated parts
    each time): its parts are counted, and their memory goes to the record's budget."""
    if not isinstance(value, list | tuple | dict):
        return _plain_key(value, None)
    budget.check_through(value, "comparing values")  # quick: each distinct part once
    parts = [0]
    try:
        key = _plain_key(value, parts)
    except RecursionError:
        raise budget.OverBudget("comparing values: the value is nested too deeply") from None
    budget.spend_bytes(parts[0] * KEY_NODE_BYTES, "comparing values")
    return key


_KEY_PARTS = budget.MAX_BUILT_BYTES // KEY_NODE_BYTES


def _plain_key(value: Any, parts: list[int] | None) -> Any:
    if parts is not None:
        parts[0] += 1
        if parts[0] > _KEY_PARTS:
            raise budget.OverBudget(
                f"comparing values: a value has more than {_KEY_PARTS:,} parts (its repeated "
                "parts counted each time); simplify the expression"
            )
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, int | float | Decimal):
        try:
            return ("number", parse_decimal(value).normalize(_EXACT))
        except (CoercionError, InvalidOperation, Overflow):
            return ("number", repr(value))
    if isinstance(value, list | tuple):
        return ("list", tuple(_plain_key(v, parts) for v in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((str(k), _plain_key(v, parts)) for k, v in value.items())))
    return (type(value).__name__, value)


# ----------------------------------------------------------------------------------- functions

D = Decimal  # short, for the examples


@shop_function(
    "number",
    arity=(1, 1),
    signature="number(value)",
    summary="An exact number from a number or a numeric text; an error for any other text.",
    example=("number(total_price)", {"total_price": "409.94"}, D("409.94")),
    filter=Filter(
        "value | number",
        "An exact number from a number or a numeric text.",
        ("{{ total_price | number + 1 }}", {"total_price": "409.94"}, "410.94"),
    ),
)
def number(value: Any) -> Decimal | None:
    if value is None:
        return None
    return _number(value, "number")


@shop_function(
    "to_number",
    arity=(1, 1),
    signature="to_number(value)",
    summary="Like number(), but null (instead of an error) when the value is not a number.",
    example=("to_number(note)", {"note": "n/a"}, None),
)
def to_number(value: Any) -> int | Decimal | None:
    # JMESPath's own to_number, made exact: null for anything that is not a number.
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return None
    if isinstance(value, int):
        return value
    try:
        result = parse_decimal(value)
    except CoercionError:
        return None
    integral_text = isinstance(value, str) and not any(c in value.lower() for c in ".e")
    if integral_text and result == result.to_integral_value():
        return int(result)
    return result


@shop_function(
    "money",
    arity=(2, 2),
    signature="money(text, decimal_separator)",
    summary="An amount written with a decimal comma or thousands separators; say which separator marks the decimals ('.' or ','). Currency signs and spaces are ignored.",
    example=("money(price, ',')", {"price": "1.234,50 €"}, D("1234.50")),
    filter=Filter(
        "text | money(decimal_separator)",
        "An amount written with a decimal comma or thousands separators.",
        ("{{ price | money(',') }}", {"price": "1.234,50"}, "1234.50"),
    ),
)
def money(text: Any, decimal_separator: Any) -> Decimal | None:
    if text is None:
        return None
    if decimal_separator not in (".", ","):
        raise ExpressionError(
            f"money() needs '.' or ',' as the decimal separator, not {describe(decimal_separator)}"
        )
    if not isinstance(text, str):
        return _number(text, "money")
    grouping = "," if decimal_separator == "." else "."
    cleaned = "".join(ch for ch in text if ch.isdigit() or ch in ".,+-")
    cleaned = cleaned.replace(grouping, "")
    if decimal_separator == ",":
        cleaned = cleaned.replace(",", ".")
    if not any(ch.isdigit() for ch in cleaned) or cleaned.count(".") > 1:
        raise ExpressionError(f"money(): {describe(text)} is not an amount")
    try:
        return parse_decimal(cleaned)
    except CoercionError:
        raise ExpressionError(f"money(): {describe(text)} is not an amount") from None


@shop_function(
    "add",
    arity=(2, 2),
    signature="add(a, b)",
    summary="a + b, exactly (null if either is null).",
    example=(
        "add(subtotal_price, total_tax)",
        {"subtotal_price": "398.00", "total_tax": "11.94"},
        D("409.94"),
    ),
    filter=Filter(
        "a | add(b)",
        "a + b, exactly.",
        ("{{ subtotal | add(tax) }}", {"subtotal": "398.00", "tax": "11.94"}, "409.94"),
    ),
)
def add(a: Any, b: Any) -> Decimal | None:
    if a is None or b is None:
        return None
    left, right = _number(a, "add"), _number(b, "add")
    try:
        return _EXACT.add(left, right)
    except (InvalidOperation, Overflow):
        raise ExpressionError("add(): the result is too large") from None


@shop_function(
    "subtract",
    arity=(2, 2),
    signature="subtract(a, b)",
    summary="a - b, exactly (null if either is null).",
    example=(
        "subtract(total_price, total_tax)",
        {"total_price": "409.94", "total_tax": "11.94"},
        D("398.00"),
    ),
    filter=Filter(
        "a | subtract(b)",
        "a - b, exactly.",
        ("{{ total | subtract(tax) }}", {"total": "409.94", "tax": "11.94"}, "398.00"),
    ),
)
def subtract(a: Any, b: Any) -> Decimal | None:
    if a is None or b is None:
        return None
    left, right = _number(a, "subtract"), _number(b, "subtract")
    try:
        return _EXACT.subtract(left, right)
    except (InvalidOperation, Overflow):
        raise ExpressionError("subtract(): the result is too large") from None


@shop_function(
    "multiply",
    arity=(2, 2),
    signature="multiply(a, b)",
    summary="a × b, exactly (null if either is null).",
    example=("multiply(price, quantity)", {"price": "19.99", "quantity": 3}, D("59.97")),
    filter=Filter(
        "a | multiply(b)",
        "a × b, exactly.",
        ("{{ price | multiply(quantity) }}", {"price": "19.99", "quantity": 3}, "59.97"),
    ),
)
def multiply(a: Any, b: Any) -> Decimal | None:
    if a is None or b is None:
        return None
    left, right = _number(a, "multiply"), _number(b, "multiply")
    try:
        return _EXACT.multiply(left, right)
    except (InvalidOperation, Overflow):
        raise ExpressionError("multiply(): the result is too large") from None


@shop_function(
    "divide",
    arity=(2, 2),
    signature="divide(a, b)",
    summary=f"a ÷ b to {DIVISION_PRECISION} significant digits; null when b is 0 or either is null.",
    example=("divide(total, count)", {"total": "10", "count": 4}, D("2.5")),
    filter=Filter(
        "a | divide(b)",
        "a ÷ b; nothing when b is 0.",
        ("{{ total | divide(4) }}", {"total": "10"}, "2.5"),
    ),
)
def divide(a: Any, b: Any) -> Decimal | None:
    if a is None or b is None:
        return None
    dividend, divisor = _number(a, "divide"), _number(b, "divide")
    if divisor == 0:
        return None
    return _exact(lambda: _DIVISION.divide(dividend, divisor), "divide")


@shop_function(
    "from_cents",
    arity=(1, 1),
    signature="from_cents(amount)",
    summary="An amount in cents (Stripe's minor units) as a whole amount.",
    example=("from_cents(amount_total)", {"amount_total": 1999}, D("19.99")),
    filter=Filter(
        "amount | from_cents",
        "An amount in cents as a whole amount.",
        ("{{ amount | from_cents }}", {"amount": 1999}, "19.99"),
    ),
)
def from_cents(amount: Any) -> Decimal | None:
    if amount is None:
        return None
    return _exact(
        lambda: _EXACT.divide(_number(amount, "from_cents"), Decimal(CENTS_PER_UNIT)), "from_cents"
    )


@shop_function(
    "sum_of",
    arity=(1, 1),
    signature="sum_of(list)",
    summary="The exact sum of a list of numbers or numeric texts; nulls are skipped, an empty list is 0.",
    example=(
        "sum_of(refunds[].total)",
        {"refunds": [{"total": "-16.20"}, {"total": "-8.10"}]},
        D("-24.30"),
    ),
    filter=Filter(
        "list | sum_of",
        "The exact sum of numbers or numeric texts (nulls skipped).",
        (
            "{{ refunds | map(attribute='total') | sum_of }}",
            {"refunds": [{"total": "-16.20"}, {"total": "-8.10"}]},
            "-24.30",
        ),
        of_list=True,
    ),
)
def sum_of(values: Any) -> Decimal:
    if values is None:
        return Decimal(0)
    if not isinstance(values, list | tuple):
        as_list(values, "sum_of")  # raises: not a list
    total = Decimal(0)
    add_exactly = _EXACT.add
    for value in values:
        if value is not None:
            number_ = _number(value, "sum_of")
            try:
                total = add_exactly(total, number_)
            except (InvalidOperation, Overflow):
                raise ExpressionError("sum_of(): the result is too large") from None
    return total


def _numbers_only(values: Any, function: str) -> list[Any]:
    numbers = as_list(values, function)
    for value in numbers:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ExpressionError(
                f"{function}() needs a list of numbers, but the list holds {describe(value)}; "
                "sum_of() also reads numeric texts"
            )
    return numbers


@shop_function(
    "sum",
    arity=(1, 1),
    signature="sum(list)",
    summary="The exact sum of a list of numbers (JMESPath's sum, without float drift).",
    example=("sum(amounts)", {"amounts": [0.1, 0.2]}, D("0.3")),
)
def exact_sum(values: Any) -> Decimal | int:
    # JMESPath's sum, made exact for Decimals and floats.
    numbers = _numbers_only(values, "sum")
    if all(isinstance(v, int) for v in numbers):
        return int(sum(numbers))
    return sum_of(numbers)


@shop_function(
    "avg",
    arity=(1, 1),
    signature="avg(list)",
    summary="The exact average of a list of numbers; null for an empty list.",
    example=("avg(scores)", {"scores": [1, 2]}, D("1.5")),
)
def exact_avg(values: Any) -> Decimal | None:
    numbers = _numbers_only(values, "avg")
    if not numbers:
        return None
    return divide(sum_of(numbers), len(numbers))


@shop_function(
    "round_to",
    arity=(2, 2),
    signature="round_to(number, places)",
    summary=f"The number rounded half up to 0–{MAX_ROUND_DECIMALS} decimal places.",
    example=("round_to(price, `1`)", {"price": "2.25"}, D("2.3")),
    filter=Filter(
        "number | round_to(places)",
        "The number rounded half up.",
        ("{{ price | round_to(1) }}", {"price": "2.25"}, "2.3"),
    ),
)
def round_to(value: Any, places: Any) -> Decimal | None:
    if value is None:
        return None
    count = _count(places, "round_to")
    if not 0 <= count <= MAX_ROUND_DECIMALS:
        raise ExpressionError(
            f"round_to() rounds to 0 to {MAX_ROUND_DECIMALS} decimal places, not {count}"
        )
    amount = _number(value, "round_to")
    return _exact(lambda: amount.quantize(Decimal(1).scaleb(-count), context=_EXACT), "round_to")


@shop_function(
    "lower",
    arity=(1, 1),
    signature="lower(text)",
    summary="The text in lower case.",
    example=("lower(email)", {"email": "Bob@Example.COM"}, "bob@example.com"),
    filter=Filter(
        "text | lower", "Lower case.", ("{{ email | lower }}", {"email": "Bob@X.COM"}, "bob@x.com")
    ),
)
def lower(text: Any) -> str | None:
    return None if text is None else as_text(text, "lower").lower()


@shop_function(
    "upper",
    arity=(1, 1),
    signature="upper(text)",
    summary="The text in upper case.",
    example=("upper(country)", {"country": "de"}, "DE"),
    filter=Filter(
        "text | upper", "Upper case.", ("{{ country | upper }}", {"country": "de"}, "DE")
    ),
)
def upper(text: Any) -> str | None:
    return None if text is None else as_text(text, "upper").upper()


@shop_function(
    "trim",
    arity=(1, 1),
    signature="trim(text)",
    summary="The text without spaces at either end.",
    example=("trim(name)", {"name": "  Bob "}, "Bob"),
    filter=Filter(
        "text | trim",
        "Without spaces at either end.",
        ("[{{ name | trim }}]", {"name": " Bob "}, "[Bob]"),
    ),
)
def trim(text: Any) -> str | None:
    return None if text is None else as_text(text, "trim").strip()


@shop_function(
    "unique",
    arity=(1, 1),
    signature="unique(list)",
    summary="The list without repeats, keeping the first of each.",
    example=(
        "unique(line_items[].vendor)",
        {"line_items": [{"vendor": "Apple"}, {"vendor": "Sony"}, {"vendor": "Apple"}]},
        ["Apple", "Sony"],
    ),
    filter=Filter(
        "list | unique",
        "The list without repeats, keeping the first of each (case matters).",
        ("{{ tags | unique | join(',') }}", {"tags": ["a", "b", "a", "A"]}, "a,b,A"),
        of_list=True,
    ),
)
def unique(values: Any) -> list[Any] | None:
    if values is None:
        return None
    seen: set[Any] = set()
    result = []
    for value in values if type(values) is list else as_list(values, "unique"):
        key = ("str", value) if type(value) is str else plain_key(value)  # (plain_key's own)
        if key not in seen:
            seen.add(key)
            result.append(value)
    return result


@shop_function(
    "first",
    arity=(1, 2),
    signature="first(list[, count])",
    summary="The first item of a list (null if empty); with a count, a list of the first `count` items.",
    example=("first(line_items[].sku, `1`)", {"line_items": [{"sku": "A"}, {"sku": "B"}]}, ["A"]),
    filter=Filter(
        "list | first(count=None)",
        "The first item; with a count, a list of the first items.",
        (
            "{{ line_items | map(attribute='sku') | first(1) | join }}",
            {"line_items": [{"sku": "A"}, {"sku": "B"}]},
            "A",
        ),
        of_list=True,
    ),
)
def first(values: Any, count: Any = None) -> Any:
    if values is None:
        return None
    items = as_list(values, "first")
    if count is None:
        return items[0] if items else None
    wanted = _count(count, "first")
    if wanted < 0:
        raise ExpressionError(f"first() needs a count of 0 or more, not {wanted}")
    return items[:wanted]


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


@shop_function(
    "coalesce",
    arity=(1, None),
    signature="coalesce(value, ...)",
    summary="The first value that is not null and not empty.",
    example=(
        "coalesce(shipping.phone, billing.phone)",
        {"shipping": {"phone": ""}, "billing": {"phone": "2022611000"}},
        "2022611000",
    ),
    filter=Filter(
        "value | coalesce(other, ...)",
        "The first value that is not null and not empty.",
        (
            "{{ shipping_phone | coalesce(billing_phone) }}",
            {"shipping_phone": None, "billing_phone": "2022611000"},
            "2022611000",
        ),
    ),
)
def coalesce(*values: Any) -> Any:
    for value in values:
        if not _is_empty(value):
            return value
    return None


@shop_function(
    "default",
    arity=(2, 2),
    signature="default(value, fallback)",
    summary="The value, or the fallback when it is null or empty.",
    example=("default(vendor, 'unknown')", {"vendor": None}, "unknown"),
)
def default(value: Any, fallback: Any) -> Any:
    return fallback if _is_empty(value) else value


def _check_timestamp(value: Any, function: str) -> None:
    if isinstance(value, str) and len(value) > MAX_TIMESTAMP_LENGTH:
        raise ExpressionError(
            f"{function}(): {describe(value)} is not a timestamp (it has {len(value):,} characters)"
        )


@shop_function(
    "date",
    arity=(1, 2),
    signature="date(timestamp[, time_zone])",
    summary="The calendar day (YYYY-MM-DD) written in a timestamp, or its day in the named time zone.",
    example=(
        "date(created_at, 'Europe/Berlin')",
        {"created_at": "2008-01-10T23:00:00-05:00"},
        "2008-01-11",
    ),
    filter=Filter(
        "timestamp | date(time_zone=None)",
        "The calendar day (YYYY-MM-DD) of a timestamp.",
        ("{{ created_at | date }}", {"created_at": "2008-01-10T11:00:00-05:00"}, "2008-01-10"),
    ),
)
def date(timestamp: Any, zone_name: Any = None) -> str | None:
    if timestamp is None or timestamp == "":
        return None
    _check_timestamp(timestamp, "date")
    if zone_name is not None and not isinstance(zone_name, str):
        raise ExpressionError(f"date() needs a time zone name, not {describe(zone_name)}")
    try:
        if zone_name:
            zone(zone_name)
        return calendar_date(timestamp, zone_name).isoformat()
    except CoercionError as error:
        raise ExpressionError(f"date(): {error.message}") from None


@shop_function(
    "timestamp",
    arity=(1, 2),
    signature="timestamp(value[, time_zone])",
    summary="A timestamp (ISO 8601, epoch seconds or milliseconds, RFC 2822) as ISO 8601 in UTC; naive times are read in the named zone (UTC if none).",
    example=(
        "timestamp(date_created)",
        {"date_created": "Fri, 02 Mar 2012 21:36:24 +0000"},
        "2012-03-02T21:36:24Z",
    ),
    filter=Filter(
        "value | timestamp(time_zone=None)",
        "A timestamp as ISO 8601 in UTC.",
        ("{{ created | timestamp }}", {"created": 1330724184}, "2012-03-02T21:36:24Z"),
    ),
)
def timestamp(value: Any, zone_name: Any = None) -> str | None:
    if value is None or value == "":
        return None
    _check_timestamp(value, "timestamp")
    if zone_name is not None and not isinstance(zone_name, str):
        raise ExpressionError(f"timestamp() needs a time zone name, not {describe(zone_name)}")
    try:
        moment = parse_timestamp(value, zone_name or None)
    except CoercionError as error:
        raise ExpressionError(f"timestamp(): {error.message}") from None
    return moment.isoformat().replace("+00:00", "Z")


@shop_function(
    "split",
    arity=(2, 2),
    signature="split(text, separator)",
    summary="The parts of a text between separators.",
    example=("split(tags, ', ')", {"tags": "gift, sale"}, ["gift", "sale"]),
    filter=Filter(
        "text | split(separator)",
        "The parts of a text.",
        ("{{ (tags | split(', '))[1] }}", {"tags": "gift, sale"}, "sale"),
    ),
)
def split(text: Any, separator: Any) -> list[str] | None:
    if text is None:
        return None
    sep = as_text(separator, "split")
    if not sep:
        raise ExpressionError("split() needs a separator that is not empty")
    return as_text(text, "split").split(sep)


@shop_function(
    "replace",
    arity=(3, 3),
    signature="replace(text, old, new)",
    summary="The text with every `old` replaced by `new`.",
    example=("replace(sku, '-', '')", {"sku": "WOO-ALBUM-1"}, "WOOALBUM1"),
    filter=Filter(
        "text | replace(old, new)",
        "Every `old` replaced by `new`.",
        ("{{ sku | replace('-', '') }}", {"sku": "WOO-ALBUM-1"}, "WOOALBUM1"),
    ),
)
def replace(text: Any, old: Any, new: Any) -> str | None:
    if text is None:
        return None
    subject, before, after = (as_text(v, "replace") for v in (text, old, new))
    hits = subject.count(before)
    check_size(len(subject) + hits * (len(after) - len(before)), "replace")
    return subject.replace(before, after)


@shop_function(
    "concat",
    arity=(1, None),
    signature="concat(value, ...)",
    summary="The values joined into one text (nulls skipped; numbers as written).",
    example=(
        "concat(first_name, ' ', last_name)",
        {"first_name": "Bob", "last_name": "Norman"},
        "Bob Norman",
    ),
)
def concat(*values: Any) -> str:
    parts = [as_text(v, "concat") for v in values if v is not None]
    check_size(sum(len(p) for p in parts), "concat")
    return "".join(parts)


@shop_function(
    "get",
    arity=(2, 2),
    signature="get(object, key)",
    summary="The value under a key, also for keys with spaces or odd characters.",
    example=(
        "get(@, 'custom engraving')",
        {"custom engraving": "Happy Birthday"},
        "Happy Birthday",
    ),
)
def get(obj: Any, key: Any) -> Any:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ExpressionError(f"get() needs an object, but got {describe(obj)}")
    return obj.get(as_text(key, "get"))


ATTRIBUTE_NAME_KEYS = ("name", "key")
ATTRIBUTE_VALUE_KEY = "value"


@shop_function(
    "attribute",
    arity=(2, 2),
    signature="attribute(list, name)",
    summary="The `value` of the entry whose `name` (or `key`) is `name`: Shopify note_attributes and line-item properties, WooCommerce meta_data.",
    example=(
        "attribute(note_attributes, 'colour')",
        {"note_attributes": [{"name": "colour", "value": "green"}]},
        "green",
    ),
    filter=Filter(
        "list | attribute(name)",
        "The value of the name/value (or key/value) entry called `name`.",
        (
            "{{ note_attributes | attribute('colour') }}",
            {"note_attributes": [{"name": "colour", "value": "green"}]},
            "green",
        ),
        of_list=True,
    ),
)
def attribute(entries: Any, name: Any) -> Any:
    if entries is None:
        return None
    wanted = as_text(name, "attribute")
    for entry in as_list(entries, "attribute"):
        if isinstance(entry, dict) and any(entry.get(k) == wanted for k in ATTRIBUTE_NAME_KEYS):
            return entry.get(ATTRIBUTE_VALUE_KEY)
    return None


@shop_function(
    "items_where",
    arity=(3, 3),
    signature="items_where(list, field, value)",
    summary="The entries of a list whose `field` equals `value`.",
    example=(
        "items_where(line_items, 'vendor', 'Apple')[].sku",
        {"line_items": [{"sku": "A1", "vendor": "Apple"}, {"sku": "S1", "vendor": "Sony"}]},
        ["A1"],
    ),
    filter=Filter(
        "list | items_where(field, value)",
        "The entries whose `field` equals `value`.",
        (
            "{{ line_items | items_where('quantity', 2) | join(attribute='sku') }}",
            {"line_items": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}]},
            "B",
        ),
        of_list=True,
    ),
)
def items_where(entries: Any, key: Any, value: Any) -> list[Any] | None:
    if entries is None:
        return None
    field = as_text(key, "items_where")
    wanted = plain_key(value)
    return [
        e
        for e in as_list(entries, "items_where")
        if isinstance(e, dict) and field in e and plain_key(e[field]) == wanted
    ]


@shop_function(
    "join",
    arity=(2, 2),
    signature="join(separator, list)",
    summary="The texts of a list joined with a separator.",
    example=("join(', ', line_items[].sku)", {"line_items": [{"sku": "A"}, {"sku": "B"}]}, "A, B"),
)
def join(separator: Any, values: Any) -> str | None:
    """JMESPath's join, but null in gives null out and null items are skipped (orders without
    line items, items without a SKU)."""
    if values is None:
        return None
    sep = as_text(separator, "join")
    items = values if type(values) is list else as_list(values, "join")
    texts = [v if type(v) is str else as_text(v, "join") for v in items if v is not None]
    check_size(sum(map(len, texts)) + len(sep) * max(len(texts) - 1, 0), "join")
    return sep.join(texts)


@shop_function(
    "to_string",
    arity=(1, 1),
    signature="to_string(value)",
    summary="A value as text: ids and amounts as written, lists and objects as JSON; null stays null.",
    example=("to_string(id)", {"id": 450789469}, "450789469"),
)
def to_text(value: Any) -> str | None:
    # JMESPath's to_string, made exact: ids and amounts as written, lists/objects as JSON.
    # Null stays null: a missing id must not become the text "null" (and look like a real one).
    if value is None:
        return None
    if isinstance(value, str):
        return value
    parts: list[str] = []
    try:
        _json_text(value, parts, [0])
    except RecursionError:
        raise budget.OverBudget("to_string(): the value is nested too deeply") from None
    return "".join(parts)


def _json_text(value: Any, parts: list[str], size: list[int]) -> None:
    """Append the JSON text of `value` to `parts`, stopping at MAX_TEXT_LENGTH (`size[0]`: the
    characters so far), so a value that repeats its parts cannot make a huge text."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | Decimal | float):
        text = format_decimal(parse_decimal(value)) if not isinstance(value, int) else str(value)
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list | tuple | dict):
        items = value.items() if isinstance(value, dict) else value
        _append("{" if isinstance(value, dict) else "[", parts, size)
        for index, item in enumerate(items):
            if index:
                _append(",", parts, size)
            if isinstance(value, dict):
                _append(json.dumps(str(item[0]), ensure_ascii=False) + ":", parts, size)
                item = item[1]
            _json_text(item, parts, size)
        text = "}" if isinstance(value, dict) else "]"
    else:
        text = as_text(value, "to_string")
    _append(text, parts, size)


def _append(text: str, parts: list[str], size: list[int]) -> None:
    size[0] += len(text)
    check_size(size[0], "to_string")
    parts.append(text)


@shop_function(
    "contains",
    arity=(2, 2),
    signature="contains(list_or_text, value)",
    summary="true if the list holds the value (or the text holds it).",
    example=("contains(tags, 'vip')", {"tags": ["new", "vip"]}, True),
)
def contains(subject: Any, search: Any) -> bool:
    # JMESPath's contains, without failing on a number searched in a text.
    if isinstance(subject, str):
        return isinstance(search, str) and search in subject
    if isinstance(subject, list):
        wanted = plain_key(search)
        return any(plain_key(item) == wanted for item in subject)
    raise ExpressionError(f"contains() needs a list or a text, but got {describe(subject)}")


@shop_function(
    "type",
    arity=(1, 1),
    signature="type(value)",
    summary="The kind of value: string, number, boolean, array, object or null.",
    example=("type(total_price)", {"total_price": "409.94"}, "string"),
)
def type_of(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, int | float | Decimal):
        return "number"
    return "null"


@shop_function(
    "without",
    arity=(2, 2),
    signature="without(list, exclude)",
    summary="The items of a list that are not in `exclude`, each once, in order: related products without those just bought.",
    example=(
        "without(upsell_ids, line_items[].product_id)",
        {"upsell_ids": [31, 36, 31, 81], "line_items": [{"product_id": 36}]},
        [31, 81],
    ),
)
def without(values: Any, exclude: Any) -> list[Any] | None:
    """The items of `values` not in `exclude`, each once, in order (null list gives null)."""
    if values is None:
        return None
    items = as_list(values, "without")
    check_size(len(items), "without")
    dropped = {plain_key(v) for v in as_list(exclude, "without")} if exclude is not None else set()
    kept: list[Any] = []
    seen: set[Any] = set()
    for item in items:
        key = plain_key(item)
        if item is None or key in dropped or key in seen:
            continue
        seen.add(key)
        kept.append(item)
    return kept


@shop_function(
    "one_each",
    arity=(2, 3),
    signature="one_each(lists, exclude[, count])",
    summary="count picks (one per list by default), pick i from list i: its first item not in `exclude` and not picked already; else the next new item of the lists in turn; else its list's first not in `exclude`; else null. An upsell for each top item, different ones where the lists allow.",
    example=(
        "one_each(items[].upsell_ids, items[].id, `3`)",
        {"items": [{"id": 1, "upsell_ids": [2, 5, 8]}, {"id": 2, "upsell_ids": [1, 5]}]},
        [5, 8, None],
    ),
)
def one_each(lists: Any, exclude: Any, count: Any = None) -> list[Any] | None:
    """`count` picks (one per list by default), pick i for list i: the list's first item that is
    not in `exclude` and not picked already.  A pick whose list has no such item takes the next
    new item of all the lists in turn; when there is none, its list's first item not in
    `exclude` (picked already); else null.  So each top item gets its own upsell, different ones
    where the lists allow, and an order of one item still gets three."""
    if lists is None:
        return None
    groups = [_candidates(group, exclude) for group in as_list(lists, "one_each")]
    wanted = len(groups) if count is None else _count(count, "one_each")
    check_size(wanted, "one_each")
    picks: list[Any] = [None] * wanted
    chosen: set[Any] = set()

    def take(item: Any, slot: int) -> None:
        picks[slot] = item
        chosen.add(plain_key(item))

    for slot in range(min(wanted, len(groups))):
        fresh = [item for item in groups[slot] if plain_key(item) not in chosen]
        if fresh:
            take(fresh[0], slot)
    in_turn = (
        item for round_ in itertools.zip_longest(*groups) for item in round_ if item is not None
    )
    for slot in range(wanted):
        if picks[slot] is not None:
            continue
        for item in in_turn:
            if plain_key(item) not in chosen:
                take(item, slot)
                break
        else:
            own = groups[slot] if slot < len(groups) else []
            picks[slot] = own[0] if own else None
    return picks


def _candidates(group: Any, exclude: Any) -> list[Any]:
    """The items of one list of `one_each` that may be picked: not null, not excluded, each once."""
    kept = without(group if isinstance(group, list) or group is None else [group], exclude)
    return kept or []


class RecordLets:
    """The `let:` values of one record: each worked out from the record when first asked for,
    then kept (`evaluators`: name -> compiled expression)."""

    def __init__(self, evaluators: dict[str, Callable[[Any], Any]], record: Any):
        self.evaluators = evaluators
        self.record = record
        self.known: dict[str, Any] = {}
        self.working: set[str] = set()

    def value(self, name: Any) -> Any:
        if name in self.known:
            return self.known[name]
        evaluator = self.evaluators.get(name) if isinstance(name, str) else None
        if evaluator is None:
            declared = ", ".join(sorted(self.evaluators)) or "none"
            raise ExpressionError(
                f"let({name!r}): the mapping's let: section names no such value (it has {declared})"
            )
        if name in self.working:
            raise ExpressionError(f"let('{name}') uses itself")
        self.working.add(name)
        try:
            value = evaluator(self.record)
        except ExpressionError as error:
            raise ExpressionError(f"let.{name}: {error}") from None
        finally:
            self.working.discard(name)
        self.known[name] = value
        return value


LETS: ContextVar[RecordLets | None] = ContextVar("hubmap_lets", default=None)
"""The `let:` values of the record being evaluated: set around each record's evaluation by
`CompiledMapping`, read by `let`."""


@shop_function(
    "let",
    arity=(1, 1),
    signature="let(name)",
    summary="The value the mapping's `let:` section names for this record, worked out once and shared by every property that uses it.",
    example=(
        "let('top_items')[0].name",
        {"line_items": [{"name": "Tee", "price": 9}, {"name": "Hoodie", "price": 42}]},
        "Hoodie",
    ),
    lets={"top_items": "reverse(sort_by(line_items, &price))[:3]"},
)
def let(name: Any) -> Any:
    """The value the mapping's `let:` section names, for the record being evaluated."""
    lets = LETS.get()
    if lets is None:
        raise ExpressionError(
            f"let({name!r}): let values are for the expressions of records "
            "and their properties, not here"
        )
    return lets.value(name)


CATALOGS: ContextVar[Any] = ContextVar("hubmap_catalogs", default=None)
"""The catalogs of the mapping being evaluated (`hubmap.catalogs.Catalogs`): set around each
record's evaluation by `CompiledMapping`, read by `lookup` (data, not I/O)."""


@shop_function(
    "lookup",
    arity=(2, 2),
    signature="lookup(catalog, key)",
    summary="The row of a catalog (`catalogs:`) for a key, null when it has none (counted as a warning); for a list of keys, the list of rows.",
    example=(
        "lookup('products', line_items[0].sku).parent.handle",
        {"line_items": [{"sku": "IPOD2008GREEN"}]},
        "ipod-nano",
    ),
    catalogs={
        "products": {"IPOD2008GREEN": {"sku": "IPOD2008GREEN", "parent": {"handle": "ipod-nano"}}}
    },
)
def lookup(name: Any, key: Any) -> Any:
    """The row of catalog `name` for `key` (null when it has none), or a list of rows for a list
    of keys."""
    catalogs = CATALOGS.get()
    if not isinstance(name, str) or catalogs is None or name not in catalogs:
        declared = ", ".join(catalogs.names()) if catalogs is not None else ""
        raise ExpressionError(
            f"lookup: there is no catalog named {name!r}"
            + (
                f" (the mapping declares {declared})"
                if declared
                else " (declare it under catalogs:)"
            )
        )
    catalog = catalogs[name]
    if isinstance(key, list):
        for k in key:
            budget.check_through(k, "lookup()", MAX_TEXT_LENGTH)  # a key is written as text
        return [catalog.get(k) for k in key]
    if type(key) is not str or len(key) > MAX_TEXT_LENGTH:  # (a short text passes: skip it)
        budget.check_through(key, "lookup()", MAX_TEXT_LENGTH)
    return catalog.get(key)


# ------------------------------------------------------------------ JMESPath's own functions
# Implemented by the jmespath library (jmes.py bounds sort, max and min); documented here so that
# FUNCTION_DOCS lists every function an expression can call.

jmespath_function(
    "abs",
    signature="abs(number)",
    summary="The number without its sign.",
    example=("abs(total)", {"total": -5}, 5),
)

jmespath_function(
    "ceil",
    signature="ceil(number)",
    summary="The number rounded up to a whole number.",
    example=("ceil(weight)", {"weight": 1.2}, 2),
)

jmespath_function(
    "floor",
    signature="floor(number)",
    summary="The number rounded down to a whole number.",
    example=("floor(weight)", {"weight": 1.8}, 1),
)

jmespath_function(
    "max",
    signature="max(list)",
    summary="The largest number (or latest text) of a list; null if empty.",
    example=("max(line_items[].quantity)", {"line_items": [{"quantity": 1}, {"quantity": 2}]}, 2),
)

jmespath_function(
    "min",
    signature="min(list)",
    summary="The smallest number (or earliest text) of a list; null if empty.",
    example=("min(line_items[].quantity)", {"line_items": [{"quantity": 1}, {"quantity": 2}]}, 1),
)

jmespath_function(
    "starts_with",
    signature="starts_with(text, prefix)",
    summary="true if the text starts with the prefix.",
    example=("starts_with(sku, 'IPOD')", {"sku": "IPOD2008RED"}, True),
)

jmespath_function(
    "ends_with",
    signature="ends_with(text, suffix)",
    summary="true if the text ends with the suffix.",
    example=("ends_with(email, '.com')", {"email": "bob@example.com"}, True),
)

jmespath_function(
    "length",
    signature="length(list_or_text)",
    summary="How many items a list has (or characters a text, keys an object).",
    example=("length(line_items)", {"line_items": [{"sku": "A"}, {"sku": "B"}]}, 2),
)

jmespath_function(
    "reverse",
    signature="reverse(list_or_text)",
    summary="The list (or text) in reverse order.",
    example=("reverse(line_items[].sku)", {"line_items": [{"sku": "A"}, {"sku": "B"}]}, ["B", "A"]),
)

jmespath_function(
    "not_null",
    signature="not_null(value, ...)",
    summary="The first value that is not null (empty texts count as values).",
    example=("not_null(total_price_usd, total_price)", {"total_price": "409.94"}, "409.94"),
)

jmespath_function(
    "keys",
    signature="keys(object)",
    summary="The keys of an object.",
    example=("keys(totals)", {"totals": {"tax": 1}}, ["tax"]),
)

jmespath_function(
    "values",
    signature="values(object)",
    summary="The values of an object.",
    example=("values(totals)", {"totals": {"tax": 1}}, [1]),
)

jmespath_function(
    "merge",
    signature="merge(object, ...)",
    summary="The objects merged into one (later keys win).",
    example=(
        "merge(billing, shipping)",
        {"billing": {"a": 1, "b": 1}, "shipping": {"b": 2}},
        {"a": 1, "b": 2},
    ),
)

jmespath_function(
    "to_array",
    signature="to_array(value)",
    summary="The value as a list (a list stays as it is).",
    example=("to_array(tag)", {"tag": "vip"}, ["vip"]),
)

jmespath_function(
    "sort",
    signature="sort(list)",
    summary="The texts or numbers of a list in ascending order.",
    example=("sort(line_items[].sku)", {"line_items": [{"sku": "B"}, {"sku": "A"}]}, ["A", "B"]),
)

jmespath_function(
    "sort_by",
    signature="sort_by(list, &field)",
    summary="The entries of a list sorted by a field.",
    example=(
        "sort_by(line_items, &quantity)[].sku",
        {"line_items": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]},
        ["B", "A"],
    ),
)

jmespath_function(
    "max_by",
    signature="max_by(list, &field)",
    summary="The entry of a list with the largest field.",
    example=(
        "max_by(line_items, &quantity).sku",
        {"line_items": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]},
        "A",
    ),
)

jmespath_function(
    "min_by",
    signature="min_by(list, &field)",
    summary="The entry of a list with the smallest field.",
    example=(
        "min_by(line_items, &quantity).sku",
        {"line_items": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]},
        "B",
    ),
)

jmespath_function(
    "map",
    signature="map(&expression, list)",
    summary="The expression applied to each entry of a list.",
    example=(
        "sum_of(map(&multiply(price, quantity), line_items))",
        {"line_items": [{"price": "199.00", "quantity": 3}]},
        D("597.00"),
    ),
)


REMOVED_FUNCTIONS = frozenset({"now"})
"""Names that are deliberately absent: expressions are pure, the same order always gives the same value."""

SHOP_FUNCTIONS: dict[str, ShopFunction] = FUNCTIONS
"""hubmap's functions by name (the JMESPath built-ins not listed here keep their own code)."""


def function_names() -> Iterable[str]:
    return FUNCTION_DOCS.keys()
