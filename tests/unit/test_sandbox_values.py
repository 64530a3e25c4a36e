"""The sandbox's value checks as pure functions, including property-based checks."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from hubmap.sandbox.values import MS_PER_DAY, check_value, display_value

NUMBER = {"name": "n", "type": "number", "fieldType": "number"}
DATE = {"name": "d", "type": "date", "fieldType": "date"}
DATETIME = {"name": "t", "type": "datetime", "fieldType": "date"}
CHECKBOX = {
    "name": "c",
    "type": "enumeration",
    "fieldType": "checkbox",
    "options": [{"value": "a"}, {"value": "b"}],
}


@given(st.text())
def test_every_string_is_either_accepted_or_gets_a_problem(value: str) -> None:
    for definition in (NUMBER, DATE, DATETIME, CHECKBOX):
        problem = check_value(definition, value)
        assert problem is None or problem.code


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4))
def test_fixed_point_decimals_are_valid_numbers(value: Decimal) -> None:
    assert check_value(NUMBER, f"{value:f}") is None


@given(st.text())
def test_accepted_numbers_parse_as_decimals(value: str) -> None:
    if check_value(NUMBER, value) is None and value:
        assert Decimal(value).is_finite()  # Decimal() also reads "NaN" and "Infinity"


@given(st.integers(min_value=-10_000, max_value=50_000))
def test_midnight_epoch_ms_is_a_date_and_reads_back_as_one(days: int) -> None:
    value = str(days * MS_PER_DAY)
    assert check_value(DATE, value) is None
    assert check_value(DATE, str(days * MS_PER_DAY + 1)) is not None
    assert len(display_value(DATE, value)) >= 10


def test_not_midnight_message_prints_time_like_hubspot() -> None:
    problem = check_value(DATE, str(MS_PER_DAY + 60_000))
    assert problem is not None and problem.message.endswith("is at 00:01 UTC, not midnight!")


def test_checkbox_tolerates_a_leading_separator_but_not_commas() -> None:
    assert check_value(CHECKBOX, ";a;b") is None
    assert check_value(CHECKBOX, "a,b") is not None


def test_unicode_digits_are_not_numbers() -> None:
    assert check_value(NUMBER, "١٢٣") is not None
    assert check_value(DATE, "٢٠٢٤-05-16") is not None
