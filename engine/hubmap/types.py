"""HubSpot property types: turn a computed value into a typed Python value, and to/from the wire.

Three steps, all pure (no I/O, no clock, no environment):

- `coerce(value, spec, default_tz)` checks a value computed from an order and returns the typed value
  for the property's declared type, or raises `CoercionError` with a plain message.
  `converter(spec, default_tz)` is the same function for one property, its branch chosen once
  (evaluation calls it for every value).
- `to_wire(typed, spec)` renders the typed value as the string HubSpot accepts.
- `from_wire(text, spec)` reads a value HubSpot holds back into the typed value (the inverse).

Typed values, by property type:

    number       decimal.Decimal (exact; never float)
    date         datetime.date
    datetime     datetime.datetime, aware, in UTC, whole milliseconds
    bool         bool
    enumeration  str, the option's internal value (tuple[str, ...] when `multiple`)
    string       str (tuple[str, ...] of items for `merge: prepend`)

`None` means "no value" and passes through `coerce` unchanged; so does an empty or blank text for
every type except a single plain string (the caller decides what a missing value means).

Numbers: ints, Decimals and numeric texts ("12", "-0.5", "1e3") are exact; floats go through their
shortest text form (`Decimal(str(f))`, so 0.1 stays 0.1); booleans, NaN and Infinity are refused, and
so are texts with a thousands separator or a decimal comma ("12,5": use `money(..., ',')`).  With
`decimals`, numbers are rounded half up.  On the wire a number is fixed-point, never with an exponent:
`Decimal('1E+3')` -> "1000", `1E-7` -> "0.0000001"; without `decimals` trailing zeros are dropped
("20.10" -> "20.1", "-0" -> "0"); with `decimals` exactly that many places are written.

Dates and times.  Accepted forms: ISO 8601 dates ("2024-05-16") and timestamps (with an offset,
with "Z", or naive; "T" or a space between date and time, as Magento writes them), RFC 2822
("Fri, 02 Mar 2012 21:36:24 +0000", as BigCommerce writes them), and epoch numbers (ints, Decimals or
digit texts).  An epoch value whose magnitude is at least `EPOCH_MS_THRESHOLD` (1e11) is taken as
milliseconds, below it as seconds: 1e11 seconds is the year 5138, 1e11 milliseconds is March 1973,
so every realistic order time is read correctly either way.

The calendar day of a `date` property is decided like this:

1. No time zone named (neither the property's `timezone` nor the mapping's): the date written in the
   timestamp, i.e. the shop's local date ("2008-01-10T23:00:00-05:00" -> 2008-01-10).  Epoch values
   carry no local date and are read in UTC.
2. A time zone named: the moment is converted to that zone first, and its date there is the day
   ("2008-01-10T23:00:00-05:00" with Europe/Berlin -> 2008-01-11).  Naive timestamps are taken as
   already written in that zone (their written date is kept); epoch values are converted from UTC.

A `datetime` is a moment: aware values keep their instant; naive ones are read in the named zone,
or in UTC when none is named; a bare date means midnight.  It is truncated to whole milliseconds
(HubSpot's precision).  On the wire it is epoch milliseconds; dates are "YYYY-MM-DD" (HubSpot reads
that as midnight UTC).  `from_wire` also accepts epoch milliseconds for dates and ISO 8601 for
datetimes, the forms HubSpot answers with.

Booleans: True/False, 1/0, and the texts true/false/yes/no/1/0 (any case); anything else is refused.

Enumerations: a value is first matched exactly against the options' internal values (HubSpot
compares them case-sensitively), then against their labels, first exactly and then ignoring case and
surrounding spaces (labels are words people type; a case-insensitive label match must point at one
option only).  Multi-value enumerations take a list or a ';'-joined text, and keep each option once,
in the order first seen.

Lists of text (`merge: prepend`): a list gives one item per element, each stripped, empty ones
dropped, each kept once (first position); a text is read the way HubSpot stores the property,
';' separating items.  Because ';' is
the separator on the wire, a ';' inside a list element is replaced by ',' ("Salt; Pepper" ->
"Salt, Pepper"), so the item stays one item.

Limits: a single wire value is at most `MAX_VALUE_LENGTH` (65,536) characters.  A longer text (or
list item) is cut to fit, ending in '…', and comes out as a `CutText` so the caller can warn: a
display text must never sink its order.  Prepend lists are trimmed by the merge (oldest items
dropped).
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # the mapping package imports expressions, which import this module
    from hubmap.mapping.model import Option, PropertySpec

# Property types by their values (`PropertyType` is a str Enum, so `spec.type == NUMBER` holds);
# importing the enum here would close an import cycle through hubmap.mapping.
STRING, NUMBER, DATE, DATETIME, BOOL, ENUMERATION = (
    "string",
    "number",
    "date",
    "datetime",
    "bool",
    "enumeration",
)

MAX_VALUE_LENGTH = 65_536
"""HubSpot stores at most this many characters in one property value."""

EPOCH_MS_THRESHOLD = 100_000_000_000
"""Epoch values with at least this magnitude are milliseconds; smaller ones are seconds."""

MAX_NUMBER_EXPONENT = 40
"""Numbers beyond 10**40 or finer than 10**-40 are refused (HubSpot could not store them anyway)."""

MAX_NUMBER_DIGITS = 80
"""Numbers with more significant digits than this are refused."""

LIST_SEPARATOR = ";"
"""Separates the items of a multi-value property on the wire."""

LIST_SEPARATOR_REPLACEMENT = ","
"""What a ';' inside one list item becomes, so the item stays one item."""

TRUE_TEXTS = frozenset({"true", "yes", "1"})
FALSE_TEXTS = frozenset({"false", "no", "0"})

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)

# Exact arithmetic for rounding: enough precision that quantizing a number within the limits above
# never rounds anything but the requested decimals.
_EXACT = Context(prec=MAX_NUMBER_DIGITS + 2 * MAX_NUMBER_EXPONENT, rounding=ROUND_HALF_UP)

_NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_EPOCH_TEXT = re.compile(r"-?\d+(\.\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_WIRE_NUMBER = re.compile(r"-?\d+(\.\d+)?")


class CoercionError(ValueError):
    """A value that does not fit the property's type; `message` says what was wrong, plainly."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


# --------------------------------------------------------------------------------------- helpers


def _name(kind: Any) -> str:
    return str(getattr(kind, "value", kind))


def plain_number_text(number: Decimal) -> str:
    """A finite number as plain digits, whole numbers without a point (42, 42.0 and 4.2E+1 are
    "42"), however large or small: ids, versions and catalog keys compare by this text."""
    if not number.is_finite():
        return str(number)
    if number == number.to_integral_value():
        return format(number.to_integral_value(), "f")
    return format(number.normalize(), "f")


_NUMERIC_TEXT = re.compile(r"[-+]?[\d.,]+(?:[eE][-+]?\d+)?")


def describe(value: Any) -> str:
    """A short, readable rendering of a value for messages."""
    if isinstance(value, str):
        if len(value) > 60 and _NUMERIC_TEXT.fullmatch(value.strip()):
            digits = sum(c.isdigit() for c in value)
            return f"a number of {digits} digits ({value.strip()[:12]!r}...)"
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if number.is_finite() and len(number.as_tuple().digits) > 40:
            return f"a number of {len(number.as_tuple().digits)} digits ({number:.6E})"
        return format_decimal(number) if number.is_finite() else str(number)
    return str(value)


def zone(name: str) -> tzinfo:
    """The IANA time zone called `name`, or CoercionError saying it does not exist."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found (a KeyError), odd keys, unreadable data
        raise CoercionError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None


def _check_decimal(number: Decimal, original: Any) -> Decimal:
    if not number.is_finite():
        raise CoercionError(f"{describe(original)} is not a number HubSpot can store")
    if number and (
        abs(number.adjusted()) > MAX_NUMBER_EXPONENT
        or len(number.as_tuple().digits) > MAX_NUMBER_DIGITS
    ):
        raise CoercionError(
            f"{describe(original)} is too large or too precise for a number (hubmap writes at "
            f"most {MAX_NUMBER_EXPONENT + 1} digits before the point, {MAX_NUMBER_DIGITS} in all)"
        )
    return number


_NUMBER_TEXTS: dict[str, Decimal] = {}  # short numeric text -> its Decimal (Decimals are immutable)
_NUMBER_TEXTS_KEPT = 4_096  # emptied when full: prices and totals repeat within and across orders
_SHORT_TEXT = 64  # only texts this short are kept
_WITHIN_LIMITS = 10**MAX_NUMBER_EXPONENT  # a whole number below this passes `_check_decimal`
_LAST_DECIMAL = Decimal(0)  # the last Decimal checked (held, so its identity stays its own)


def parse_decimal(value: Any) -> Decimal:
    """`value` as an exact Decimal: ints, Decimals, floats (by their shortest text) or numeric texts.

    Raises CoercionError for anything else, with a hint when a text looks like a formatted amount.
    """
    global _LAST_DECIMAL
    kind = type(value)
    if kind is str:  # the usual case (JSON amounts are texts): each text is parsed once
        known = _NUMBER_TEXTS.get(value)
        if known is not None:
            return known
        number = _parse_number(value)
        if len(value) <= _SHORT_TEXT:
            if len(_NUMBER_TEXTS) >= _NUMBER_TEXTS_KEPT:
                _NUMBER_TEXTS.clear()
            _NUMBER_TEXTS[value] = number
        return number
    if kind is int and -_WITHIN_LIMITS < value < _WITHIN_LIMITS:
        return Decimal(value)  # at most 40 digits: within every limit
    if kind is Decimal:
        if value is _LAST_DECIMAL:  # checked already (a literal in an expression, read per item)
            return value
        _check_decimal(value, value)
        _LAST_DECIMAL = value
        return value
    return _parse_number(value)


def _parse_number(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise CoercionError(f"{describe(value)} is a yes/no value, not a number")
    if isinstance(value, Decimal):
        return _check_decimal(value, value)
    if isinstance(value, int):
        return _check_decimal(Decimal(value), value)
    if isinstance(value, float):
        return _check_decimal(Decimal(str(value)), value)
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER_TEXT.fullmatch(text):
            return _check_decimal(Decimal(text), value)
        if "," in text and re.fullmatch(r"[+-]?[\d.,' ]*\d[\d.,' ]*", text):
            raise CoercionError(
                f"{describe(value)} is not a number; use money(value, ',') for values with a "
                "decimal comma, or money(value, '.') for values with thousands separators"
            )
        raise CoercionError(f"{describe(value)} is not a number")
    raise CoercionError(f"{describe(value)} is not a number")


def format_decimal(number: Decimal, decimals: int | None = None) -> str:
    """Fixed-point text of `number`, never with an exponent.

    With `decimals`, rounded half up to exactly that many places; without, trailing zeros dropped.
    Negative zero is written "0".
    """
    if decimals is not None:
        number = number.quantize(Decimal(1).scaleb(-decimals), context=_EXACT)
    if number == 0:
        number = abs(number)
    text = format(number, "f")
    if decimals is None and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def text_of(value: Any) -> str:
    """A value as text, the way a person would write it (exact numbers, true/false)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, float):
        return format(Decimal(str(value)), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise CoercionError(f"{describe(value)} is not a single text value")


def _epoch_to_datetime(number: Decimal, original: Any) -> datetime:
    if number.is_finite() and number.adjusted() > 18:  # no date is that far: int() of a long
        # digit text is slow enough to stall a run
        raise CoercionError(f"{describe(original)} is too far from today to be a date")
    millis = number if abs(number) >= EPOCH_MS_THRESHOLD else number * 1000
    try:
        return EPOCH + timedelta(milliseconds=int(millis))
    except OverflowError:
        raise CoercionError(f"{describe(original)} is too far from today to be a date") from None


_LAST_MOMENT: tuple[Any, datetime | date] = (None, EPOCH)  # one record's time is read several times


def _parse_moment(value: Any) -> datetime | date:
    """A timestamp as written: an aware or naive datetime, a date, or an aware UTC datetime (epoch).
    The last text read is remembered (by identity: the same text object gives the same moment):
    an order's time is read for its time, its version and its date properties."""
    global _LAST_MOMENT
    last = _LAST_MOMENT
    if last[0] is value and value is not None:
        return last[1]
    moment = _read_moment(value)
    if type(value) is str:
        _LAST_MOMENT = (value, moment)
    return moment


def _read_moment(value: Any) -> datetime | date:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, bool):
        raise CoercionError(f"{describe(value)} is a yes/no value, not a date")
    if isinstance(value, int | Decimal | float):
        return _epoch_to_datetime(parse_decimal(value), value)
    if not isinstance(value, str):
        raise CoercionError(f"{describe(value)} is not a date")
    text = value.strip()
    if _EPOCH_TEXT.fullmatch(text):
        return _epoch_to_datetime(Decimal(text), value)
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise CoercionError(f"{describe(value)} is not a valid calendar date") from None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    if text and text[0].isalpha():  # RFC 2822 starts with a day or a month name
        try:
            return email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    raise CoercionError(
        f"{describe(value)} is not a date; write it as ISO 8601 (2024-05-16 or "
        "2024-05-16T10:00:00+02:00), epoch seconds or milliseconds, or RFC 2822"
    )


def _to_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise CoercionError(f"{moment.isoformat()} is too far from today to be a date") from None


_LAST_TIMESTAMP: tuple[Any, str | None, datetime] = (None, None, EPOCH)


def parse_timestamp(value: Any, default_tz: str | None = None) -> datetime:
    """An order time as an aware datetime (in UTC).

    Takes the same forms as date properties.  Naive timestamps (and bare dates, at midnight) are read
    in `default_tz` when it is given, otherwise in UTC.  The last text read is remembered, as in
    `_parse_moment` (an order's version and its time are often one text).
    """
    global _LAST_TIMESTAMP
    last = _LAST_TIMESTAMP
    if last[0] is value and last[1] == default_tz and value is not None:
        return last[2]
    moment = _read_timestamp(value, default_tz)
    if type(value) is str:
        _LAST_TIMESTAMP = (value, default_tz, moment)
    return moment


def _read_timestamp(value: Any, default_tz: str | None) -> datetime:
    moment = _parse_moment(value)
    local = zone(default_tz) if default_tz else UTC
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=local)
    return _to_utc(moment)


def calendar_date(value: Any, tz_name: str | None = None) -> date:
    """The calendar day of a timestamp, by the rule in the module docstring."""
    moment = _parse_moment(value)
    if not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.date()  # naive: the day as written (in the named zone, if any)
    if tz_name:
        try:
            return moment.astimezone(zone(tz_name)).date()
        except OverflowError:
            raise CoercionError(f"{describe(value)} is too far from today to be a date") from None
    return moment.date()


def _truncate_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_TEXTS:
            return True
        if text in FALSE_TEXTS:
            return False
    raise CoercionError(f"{describe(value)} is not a yes/no value; use true/false, yes/no or 1/0")


def _match_option(value: Any, options: tuple[Option, ...]) -> str:
    text = text_of(value).strip() if not isinstance(value, str) else value
    if not options:
        return text
    for option in options:
        if option.value == text:
            return option.value
    for option in options:
        if option.label == text:
            return option.value
    folded = text.strip().casefold()
    found = {o.value for o in options if o.label.strip().casefold() == folded}
    if len(found) == 1:
        return found.pop()
    allowed = ", ".join(o.value for o in options)
    raise CoercionError(f"{describe(value)} is not one of the allowed options: {allowed}")


def _items(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [v for v in value if v is not None]
    if isinstance(value, str):
        return value.split(LIST_SEPARATOR)
    return [value]


def _text_items(value: Any) -> tuple[str, ...]:
    from_list = isinstance(value, list | tuple)
    items: list[str] = []
    for item in _items(value):
        text = (item if type(item) is str else text_of(item)).strip()
        if from_list and LIST_SEPARATOR in text:
            text = text.replace(LIST_SEPARATOR, LIST_SEPARATOR_REPLACEMENT)
        if not text:
            continue
        items.append(text if len(text) <= MAX_VALUE_LENGTH else fit_text(text))
    return tuple(dict.fromkeys(items))


class CutText(str):
    """A text cut to `MAX_VALUE_LENGTH` characters; `length` is how long it was.  The caller
    reports the cut as a warning (a display text must not sink its order: the order's sums still
    count)."""

    length: int


CUT_MARK = "…"


def fit_text(text: str) -> str:
    """`text`, or the start of it ending in '…' when HubSpot could not store it whole."""
    if len(text) <= MAX_VALUE_LENGTH:
        return text
    cut = CutText(text[: MAX_VALUE_LENGTH - len(CUT_MARK)] + CUT_MARK)
    cut.length = len(text)
    return cut


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# ------------------------------------------------------------------------------------ public API


def coerce(value: Any, spec: PropertySpec, default_tz: str | None = None) -> Any:
    """The typed value of `value` for property `spec` (see the module docstring), or None.

    `default_tz` is the mapping's time zone; the property's own `timezone` wins over it.
    Raises CoercionError with a plain message when the value does not fit.
    """
    kind = spec.type
    if value is None:
        return None
    if spec.is_list:
        if kind == ENUMERATION:
            if _is_blank(value):
                return ()
            values: list[str] = []
            for item in _items(value):
                if _is_blank(item):
                    continue
                matched = _match_option(
                    item.strip() if isinstance(item, str) else item, spec.options
                )
                if matched not in values:
                    values.append(matched)
            return tuple(values)
        if kind == STRING:
            return _text_items(value)
        raise CoercionError(f"a {_name(kind)} property cannot hold a list of items")
    if kind == STRING:
        if isinstance(value, list | tuple | dict):
            raise CoercionError(
                f"{describe(value)} cannot be stored in a single text property; use join(', ', ...) "
                "or merge: prepend"
            )
        return fit_text(text_of(value))
    if _is_blank(value):
        return None
    if isinstance(value, list | tuple | dict):
        raise CoercionError(f"{describe(value)} cannot be stored in a {_name(kind)} property")
    tz_name = spec.timezone or default_tz
    if kind == NUMBER:
        number = parse_decimal(value)
        if spec.decimals is not None:
            number = number.quantize(Decimal(1).scaleb(-spec.decimals), context=_EXACT)
        return number
    if kind == DATE:
        return calendar_date(value, tz_name)
    if kind == DATETIME:
        if isinstance(value, datetime) and value.tzinfo is UTC:
            return _truncate_ms(value)
        return _truncate_ms(parse_timestamp(value, tz_name))
    if kind == BOOL:
        return _to_bool(value)
    if kind == ENUMERATION:
        return _match_option(value.strip() if isinstance(value, str) else value, spec.options)
    raise CoercionError(f"unknown property type {kind!r}")  # pragma: no cover - enum is closed


def converter(spec: PropertySpec, default_tz: str | None = None) -> Callable[[Any], Any]:
    """`coerce` for one property, its branch chosen once: `converter(spec, tz)(value)` is
    `coerce(value, spec, tz)` (the same value, or the same CoercionError), with the usual inputs
    (texts, whole numbers, Decimals, lists of texts) taken the short way."""
    kind = spec.type

    def general(value: Any) -> Any:
        return coerce(value, spec, default_tz)

    if spec.is_list:
        if kind == STRING:
            return lambda value: None if value is None else _text_items(value)
        return general
    if kind == STRING:

        def text(value: Any) -> Any:
            if type(value) is str and len(value) <= MAX_VALUE_LENGTH:
                return value
            return general(value)

        return text
    if kind == NUMBER:
        quantum = Decimal(1).scaleb(-spec.decimals) if spec.decimals is not None else None

        last: tuple[Any, Any] = (None, None)  # the last text converted, and its number

        def number(value: Any) -> Any:
            nonlocal last
            kind = type(value)
            if kind is str:
                seen = last  # (one read: another thread may replace it)
                if value is seen[0]:
                    return seen[1]
                if not value.strip():
                    return None
            elif kind is not int and kind is not Decimal:
                return general(value)
            parsed = parse_decimal(value)
            typed = parsed if quantum is None else parsed.quantize(quantum, context=_EXACT)
            if kind is str:
                last = (value, typed)
            return typed

        return number
    if kind == DATE:
        tz_name = spec.timezone or default_tz

        last_day: tuple[Any, Any] = (None, None)  # the last text converted, and its day

        def day(value: Any) -> Any:
            nonlocal last_day
            if type(value) is str:
                seen = last_day
                if value is seen[0]:
                    return seen[1]
                if value.strip():
                    found = calendar_date(value, tz_name)
                    last_day = (value, found)
                    return found
            return general(value)

        return day
    if kind == ENUMERATION and spec.options:
        by_text: dict[str, str] = {}  # an option's value, else the first label written so
        for option in reversed(spec.options):
            by_text[option.label] = option.value
        for option in reversed(spec.options):
            by_text[option.value] = option.value

        def option(value: Any) -> Any:
            if type(value) is str:
                text = value.strip()
                found = by_text.get(text) if text else None
                if found is not None:
                    return found
            return general(value)

        return option
    return general


def join_items(items: Iterable[str]) -> str:
    """The wire text of a list of items."""
    return LIST_SEPARATOR.join(items)


def to_wire(typed: Any, spec: PropertySpec) -> str:
    """The text HubSpot accepts for the typed value `typed` of property `spec`."""
    kind = spec.type
    if spec.is_list:
        return join_items(dict.fromkeys(typed))
    if kind == NUMBER:
        return format_decimal(parse_decimal(typed), spec.decimals)
    if kind == DATE:
        day = typed.date() if isinstance(typed, datetime) else typed
        return day.isoformat()
    if kind == DATETIME:
        return str((typed - EPOCH) // ONE_MS)
    if kind == BOOL:
        return "true" if typed else "false"
    return str(typed)


def from_wire(text: str, spec: PropertySpec) -> Any:
    """The typed value of a text HubSpot holds for property `spec` (the inverse of `to_wire`).

    An empty text means no value (None), or no items for list properties.
    """
    kind = spec.type
    if spec.is_list:
        items = [item.strip() for item in text.split(LIST_SEPARATOR)]
        return tuple(dict.fromkeys(item for item in items if item))
    if kind == STRING:
        return text
    if not text.strip():
        return None
    if kind == NUMBER:
        number = parse_decimal(text)
        if spec.decimals is not None:
            number = number.quantize(Decimal(1).scaleb(-spec.decimals), context=_EXACT)
        return number
    if kind == DATE:
        stripped = text.strip()
        if _EPOCH_TEXT.fullmatch(stripped):
            return (EPOCH + timedelta(milliseconds=int(Decimal(stripped)))).date()
        moment = _parse_moment(stripped)
        if isinstance(moment, datetime):
            if moment.tzinfo is None:
                return moment.date()
            return _to_utc(moment).date()
        return moment
    if kind == DATETIME:
        stripped = text.strip()
        if _EPOCH_TEXT.fullmatch(stripped):
            return _truncate_ms(EPOCH + timedelta(milliseconds=int(Decimal(stripped))))
        return _truncate_ms(parse_timestamp(stripped))
    if kind == BOOL:
        return _to_bool(text)
    return text


def is_wire_number(text: str) -> bool:
    """True when `text` is a number as HubSpot accepts it (digits, optional '-', at most one '.')."""
    return bool(_WIRE_NUMBER.fullmatch(text))


__all__ = [
    "EPOCH_MS_THRESHOLD",
    "LIST_SEPARATOR",
    "MAX_VALUE_LENGTH",
    "CoercionError",
    "calendar_date",
    "coerce",
    "converter",
    "describe",
    "format_decimal",
    "from_wire",
    "is_wire_number",
    "join_items",
    "parse_decimal",
    "parse_timestamp",
    "text_of",
    "to_wire",
    "zone",
]
