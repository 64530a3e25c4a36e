"""hubmap.types: coercion of computed values to HubSpot types, and the wire format both ways."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from hubmap.mapping.model import MergeRule, Option, PropertySpec, PropertyType
from hubmap.types import (
    MAX_VALUE_LENGTH,
    CoercionError,
    CutText,
    coerce,
    from_wire,
    parse_timestamp,
    to_wire,
    zone,
)

UTC = timezone.utc


def spec(kind: PropertyType, **extra: object) -> PropertySpec:
    return PropertySpec(name="p", type=kind, source=None, label="P", **extra)  # type: ignore[arg-type]


NUMBER = spec(PropertyType.NUMBER)
DATE = spec(PropertyType.DATE)
DATETIME = spec(PropertyType.DATETIME)
BOOL = spec(PropertyType.BOOL)
STRING = spec(PropertyType.STRING)
PREPEND = spec(PropertyType.STRING, merge=MergeRule.PREPEND)
COLOURS = (Option("green", "Green"), Option("red", "Red"), Option("blue_1", "Blue"))
ENUM = spec(PropertyType.ENUMERATION, options=COLOURS)
MULTI = spec(PropertyType.ENUMERATION, options=COLOURS, multiple=True)


# ----------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, Decimal(12)),
        ("409.94", Decimal("409.94")),
        (" -0.5 ", Decimal("-0.5")),
        (0.1, Decimal("0.1")),
        (10.799999999999999, Decimal("10.799999999999999")),
        (Decimal("1E+3"), Decimal(1000)),
        ("1e-7", Decimal("1E-7")),
        (".5", Decimal("0.5")),
    ],
)
def test_numbers_are_exact(value: object, expected: Decimal) -> None:
    result = coerce(value, NUMBER)
    assert isinstance(result, Decimal)
    assert result == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        "NaN",
        "Infinity",
        float("nan"),
        float("inf"),
        "abc",
        "1,5",
        "1.234,50",
        "1 000",
        [1],
        {"a": 1},
        "1e999",
    ],
)
def test_non_numbers_are_refused(value: object) -> None:
    with pytest.raises(CoercionError):
        coerce(value, NUMBER)


def test_decimal_comma_hint_names_money() -> None:
    with pytest.raises(CoercionError, match=r"'12,5' is not a number; use money"):
        coerce("12,5", NUMBER)


def test_blank_number_is_no_value() -> None:
    assert coerce("", NUMBER) is None
    assert coerce(None, NUMBER) is None


@pytest.mark.parametrize(
    ("value", "decimals", "wire"),
    [
        (Decimal("1E+3"), None, "1000"),
        (Decimal("1E-7"), None, "0.0000001"),
        (Decimal("20.10"), None, "20.1"),
        (Decimal("-0"), None, "0"),
        (Decimal("-0.00"), None, "0"),
        (Decimal(100), None, "100"),
        (Decimal("2.345"), 2, "2.35"),
        (Decimal("-2.345"), 2, "-2.35"),
        (Decimal(5), 2, "5.00"),
        (Decimal("-0.001"), 2, "0.00"),
        (Decimal("12345678901234567890123456789012.5"), None, "12345678901234567890123456789012.5"),
    ],
)
def test_number_wire_is_fixed_point(value: Decimal, decimals: int | None, wire: str) -> None:
    number_spec = spec(PropertyType.NUMBER, decimals=decimals)
    assert to_wire(coerce(value, number_spec), number_spec) == wire


def test_decimals_round_half_up_when_coercing() -> None:
    two = spec(PropertyType.NUMBER, decimals=2)
    assert coerce("0.125", two) == Decimal("0.13")
    assert str(coerce("0.125", two)) == "0.13"
    assert from_wire("0.125", two) == Decimal("0.13")


# ------------------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        ("2024-05-16", None, date(2024, 5, 16)),
        ("2008-01-10T11:00:00-05:00", None, date(2008, 1, 10)),
        ("2008-01-10T23:00:00-05:00", None, date(2008, 1, 10)),  # the shop's local day
        ("2008-01-10T23:00:00-05:00", "Europe/Berlin", date(2008, 1, 11)),
        ("2008-01-10T23:00:00-05:00", "UTC", date(2008, 1, 11)),
        ("2019-06-06T17:17:55", None, date(2019, 6, 6)),  # WooCommerce, naive
        ("2019-06-06T23:17:55", "Pacific/Auckland", date(2019, 6, 6)),  # naive: as written
        ("2024-05-16T22:30:00Z", None, date(2024, 5, 16)),
        ("2024-05-16T22:30:00Z", "Europe/Berlin", date(2024, 5, 17)),
        ("2024-05-16T22:30:00Z", "America/New_York", date(2024, 5, 16)),
        ("2024-05-16T11:30:00Z", "Pacific/Auckland", date(2024, 5, 16)),
        ("2024-05-16T12:30:00Z", "Pacific/Auckland", date(2024, 5, 17)),
        ("2024-05-16T10:30:00Z", "Pacific/Kiritimati", date(2024, 5, 17)),  # UTC+14
        ("2024-05-16T11:30:00Z", "Etc/GMT+12", date(2024, 5, 15)),  # UTC-12
        ("2024-05-16T00:30:00+14:00", None, date(2024, 5, 16)),
        ("2024-05-16T23:30:00-12:00", None, date(2024, 5, 16)),
        ("2024-05-16T23:30:00-12:00", "UTC", date(2024, 5, 17)),
        ("Fri, 02 Mar 2012 21:36:24 +0000", None, date(2012, 3, 2)),  # BigCommerce
        ("Fri, 02 Mar 2012 21:36:24 +0000", "Pacific/Auckland", date(2012, 3, 3)),
        ("2014-08-01 16:34:37", None, date(2014, 8, 1)),  # Magento
        (1330724184, None, date(2012, 3, 2)),  # epoch seconds, UTC
        (1330724184000, None, date(2012, 3, 2)),  # epoch ms
        ("1330724184", "Pacific/Auckland", date(2012, 3, 3)),
        (Decimal("1330724184.5"), None, date(2012, 3, 2)),
        (datetime(2024, 1, 1, 23, 0, tzinfo=UTC), "Europe/Berlin", date(2024, 1, 2)),
        (date(2024, 2, 29), "Pacific/Auckland", date(2024, 2, 29)),
    ],
)
def test_date_is_the_day_written_or_in_the_named_zone(
    value: object, tz: str | None, expected: date
) -> None:
    assert coerce(value, DATE, tz) == expected


def test_property_timezone_wins_over_mapping_timezone() -> None:
    auckland = spec(PropertyType.DATE, timezone="Pacific/Auckland")
    assert coerce("2024-05-16T12:30:00Z", auckland, "America/New_York") == date(2024, 5, 17)


@pytest.mark.parametrize(
    ("moment", "tz", "expected"),
    [
        # Europe/Berlin spring forward 2024-03-31 02:00 -> 03:00 (UTC 01:00)
        ("2024-03-30T22:59:59Z", "Europe/Berlin", date(2024, 3, 30)),
        ("2024-03-30T23:00:00Z", "Europe/Berlin", date(2024, 3, 31)),
        ("2024-03-31T21:59:59Z", "Europe/Berlin", date(2024, 3, 31)),  # 23:59:59 CEST
        ("2024-03-31T22:00:00Z", "Europe/Berlin", date(2024, 4, 1)),
        # Europe/Berlin fall back 2024-10-27
        ("2024-10-26T21:59:59Z", "Europe/Berlin", date(2024, 10, 26)),
        ("2024-10-27T22:59:59Z", "Europe/Berlin", date(2024, 10, 27)),
        ("2024-10-27T23:00:00Z", "Europe/Berlin", date(2024, 10, 28)),
        # America/New_York spring forward 2024-03-10
        ("2024-03-11T03:59:59Z", "America/New_York", date(2024, 3, 10)),
        ("2024-03-11T04:00:00Z", "America/New_York", date(2024, 3, 11)),
        ("2024-03-10T04:59:59Z", "America/New_York", date(2024, 3, 9)),
        # Pacific/Auckland: DST ends 2024-04-07, starts 2024-09-29
        ("2024-04-06T10:59:59Z", "Pacific/Auckland", date(2024, 4, 6)),  # 23:59:59 NZDT
        ("2024-04-06T11:00:00Z", "Pacific/Auckland", date(2024, 4, 7)),
        ("2024-04-07T11:59:59Z", "Pacific/Auckland", date(2024, 4, 7)),  # 23:59:59 NZST
        ("2024-04-07T12:00:00Z", "Pacific/Auckland", date(2024, 4, 8)),
        ("2024-09-29T10:59:59Z", "Pacific/Auckland", date(2024, 9, 29)),  # 23:59:59 NZDT
        ("2024-09-29T11:00:00Z", "Pacific/Auckland", date(2024, 9, 30)),
    ],
)
def test_dates_across_dst_transitions(moment: str, tz: str, expected: date) -> None:
    assert coerce(moment, DATE, tz) == expected


def test_date_wire_and_back() -> None:
    day = date(2024, 5, 16)
    assert to_wire(day, DATE) == "2024-05-16"
    assert from_wire("2024-05-16", DATE) == day
    assert from_wire("1715817600000", DATE) == day  # UTC midnight epoch ms, as HubSpot answers
    assert from_wire("", DATE) is None


@pytest.mark.parametrize("value", ["tomorrow", "2024-13-01", "16/05/2024", True, [1]])
def test_bad_dates_are_refused(value: object) -> None:
    with pytest.raises(CoercionError):
        coerce(value, DATE)


def test_unknown_time_zone_is_refused_plainly() -> None:
    with pytest.raises(CoercionError, match="unknown time zone 'Mars/Olympus'"):
        coerce("2024-05-16T10:00:00Z", DATE, "Mars/Olympus")
    with pytest.raises(CoercionError):
        zone("../../etc/passwd")


# --------------------------------------------------------------------------------- datetimes


def test_datetime_is_aware_utc_in_whole_milliseconds() -> None:
    value = coerce("2020-02-29T04:30:17.123456+01:00", DATETIME)
    assert value == datetime(2020, 2, 29, 3, 30, 17, 123000, tzinfo=UTC)
    assert value.utcoffset() == timedelta(0)
    assert to_wire(value, DATETIME) == "1582947017123"
    assert from_wire("1582947017123", DATETIME) == value
    assert from_wire("2020-02-29T03:30:17.123Z", DATETIME) == value


def test_naive_datetime_read_in_named_zone_else_utc() -> None:
    assert coerce("2024-07-01 12:00:00", DATETIME) == datetime(2024, 7, 1, 12, tzinfo=UTC)
    assert coerce("2024-07-01 12:00:00", DATETIME, "Europe/Berlin") == datetime(
        2024, 7, 1, 10, tzinfo=UTC
    )
    assert coerce(1330724184, DATETIME) == datetime(2012, 3, 2, 21, 36, 24, tzinfo=UTC)


def test_parse_timestamp_forms() -> None:
    expected = datetime(2012, 3, 2, 21, 36, 24, tzinfo=UTC)
    for form in (
        "Fri, 02 Mar 2012 21:36:24 +0000",
        "2012-03-02T21:36:24Z",
        1330724184,
        "1330724184000",
        "2012-03-02 21:36:24",
        "2012-03-02T22:36:24+01:00",
    ):
        assert parse_timestamp(form) == expected, form
    assert parse_timestamp("2012-03-02 22:36:24", "Europe/Berlin") == expected
    assert parse_timestamp("2012-03-02") == datetime(2012, 3, 2, tzinfo=UTC)
    with pytest.raises(CoercionError):
        parse_timestamp("soon")


def test_epoch_threshold() -> None:
    # below 1e11: seconds; from 1e11: milliseconds
    assert parse_timestamp(99_999_999_999).year == 5138
    assert parse_timestamp(100_000_000_000) == datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)


# ------------------------------------------------------------------------------------- bools


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("TRUE", True),
        ("no", False),
        ("Yes", True),
        ("0", False),
        (1, True),
        (0, False),
        (Decimal(1), True),
    ],
)
def test_bools(value: object, expected: bool) -> None:
    assert coerce(value, BOOL) is expected
    assert to_wire(expected, BOOL) == ("true" if expected else "false")
    assert from_wire(to_wire(expected, BOOL), BOOL) is expected


@pytest.mark.parametrize("value", ["maybe", 2, "y", [True], Decimal("0.5")])
def test_bad_bools_are_refused(value: object) -> None:
    with pytest.raises(CoercionError):
        coerce(value, BOOL)


# ------------------------------------------------------------------------------ enumerations


def test_enumeration_matches_values_then_labels() -> None:
    assert coerce("green", ENUM) == "green"
    assert coerce("Blue", ENUM) == "blue_1"  # label
    assert coerce(" blue ", ENUM) == "blue_1"  # label, ignoring case and spaces
    with pytest.raises(CoercionError, match="allowed options: green, red, blue_1"):
        coerce("Grene", ENUM)


def test_enumeration_values_are_case_sensitive_before_labels() -> None:
    options = (Option("a", "Big"), Option("A", "Small"))
    both = spec(PropertyType.ENUMERATION, options=options)
    assert coerce("A", both) == "A"
    assert coerce("a", both) == "a"


def test_multiple_enumeration() -> None:
    assert coerce(["red", "Green", "red"], MULTI) == ("red", "green")
    assert coerce("red;green;red", MULTI) == ("red", "green")
    assert to_wire(("red", "green"), MULTI) == "red;green"
    assert from_wire("red;green", MULTI) == ("red", "green")
    assert coerce("", MULTI) == ()
    with pytest.raises(CoercionError):
        coerce(["red", "pink"], MULTI)


# ----------------------------------------------------------------------------------- strings


def test_strings_render_values_without_noise() -> None:
    assert coerce(Decimal("19.90"), STRING) == "19.90"
    assert coerce(Decimal("1E+3"), STRING) == "1000"
    assert coerce(0.1, STRING) == "0.1"
    assert coerce(450789469, STRING) == "450789469"
    assert coerce(True, STRING) == "true"
    assert coerce("", STRING) == ""
    with pytest.raises(CoercionError, match="join"):
        coerce(["a", "b"], STRING)


def test_string_length_limit() -> None:
    assert coerce("x" * MAX_VALUE_LENGTH, STRING) == "x" * MAX_VALUE_LENGTH
    cut = coerce("x" * 70_000, STRING)  # a display text is cut to fit, never a reject
    assert isinstance(cut, CutText) and cut.length == 70_000
    assert len(cut) == MAX_VALUE_LENGTH and cut.endswith("…") and cut.startswith("x" * 65_000)


def test_prepend_items() -> None:
    assert coerce([" A ", "", None, "B", 3], PREPEND) == ("A", "B", "3")
    assert coerce("A;B; ;C", PREPEND) == ("A", "B", "C")  # a text reads like the wire value
    assert coerce(["Salt; Pepper"], PREPEND) == ("Salt, Pepper",)  # one item stays one item
    assert to_wire(("A", "B"), PREPEND) == "A;B"
    assert from_wire("A;B", PREPEND) == ("A", "B")
    assert from_wire("", PREPEND) == ()
    (item,) = coerce(["x" * (MAX_VALUE_LENGTH + 1)], PREPEND)
    assert isinstance(item, CutText) and len(item) == MAX_VALUE_LENGTH
