"""The fast paths of evaluation give exactly what the general code (or the jmespath library) gives.

Expressions: the specialised closures (`a.b.c`, `a[].b`, `==` between texts and nulls, indexes,
`not_null`, `sort_by`) are compared with the jmespath library's own interpreter on generated data;
types: `converter(spec)` with `coerce`, and the remembered parses (numbers, moments, contact keys)
with parsing afresh.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubmap import contact_keys, types
from hubmap.expressions import ExpressionError, budget, compile_expression
from hubmap.mapping.model import MergeRule, Option, PropertySpec, PropertyType

KEYS = ["a", "b", "c"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "x", "y", "a", "0", "1"])
)
data = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=12,
)
records = st.dictionaries(st.sampled_from(KEYS), data, max_size=3)

SHAPES = [
    "a",
    "a.b",
    "a.b.c",
    "a[].b",
    "a[*].b",
    "a[].b.c",
    "a[].b[]",
    "a[0]",
    "a[-1]",
    "a[2]",
    "a[0].b",
    "a[1].b.c",
    "a == 'x'",
    "a != 'x'",
    "a == b",
    "a != b",
    "a == null",
    "a.b == c",
    "a == `1`",
    "a == `true`",
    "a || b",
    "a && b",
    "a.b || c.a",
    "not_null(a, b, c)",
    "not_null(a.b, c)",
    "sort_by(a, &b)",
    "sort_by(a, &b)[0]",
    "sort_by(a[], &a)",
    "a[?b].c",
    "a[?b == 'x'].c",
    "!a",
]


def library(text: str, record: Any) -> tuple[str, Any]:
    try:
        return "value", jmespath.search(text, record)
    except jmespath.exceptions.JMESPathError:
        return "error", None


def ours(text: str, record: Any) -> tuple[str, Any]:
    try:
        return "value", budget.run(compile_expression(text), record)
    except ExpressionError:
        return "error", None


def same(left: Any, right: Any) -> bool:
    """Equal, and of the same types throughout (True is not 1)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    return bool(left == right)


@pytest.mark.parametrize("text", SHAPES)
@settings(max_examples=150, deadline=None)
@given(record=records)
def test_each_shape_gives_what_the_jmespath_library_gives(text: str, record: Any) -> None:
    expected, got = library(text, record), ours(text, record)
    assert expected[0] == got[0], (expected, got)
    assert same(expected[1], got[1]), (expected, got)


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(
        st.dictionaries(
            st.sampled_from(["k", "v"]),
            st.one_of(
                st.integers(-5, 5), st.sampled_from(["p", "q", "r", ""]), st.none(), st.booleans()
            ),
            max_size=2,
        ),
        max_size=6,
    )
)
def test_sort_by_keeps_the_librarys_order_and_errors(items: list[dict[str, Any]]) -> None:
    record = {"items": items}
    for text in ("sort_by(items, &k)", "sort_by(items, &v)[].v"):
        expected, got = library(text, record), ours(text, record)
        assert expected[0] == got[0], (text, expected, got)
        assert same(expected[1], got[1]), (text, expected, got)


def test_sort_by_names_the_type_it_found() -> None:
    with pytest.raises(ExpressionError, match=r"sort_by\(\) needs a number, but got 'x'"):
        budget.run(compile_expression("sort_by(items, &k)"), {"items": [{"k": 1}, {"k": "x"}]})


# ------------------------------------------------------------------------------------ types


def spec(kind: PropertyType, **extra: Any) -> PropertySpec:
    return PropertySpec(name="p", type=kind, source=None, label="P", **extra)


OPTIONS = (
    Option("green", "Green"),
    Option("red", "Red"),
    Option("Red", "Blue"),
    Option("blue_1", "blue_1 "),
)
SPECS = [
    spec(PropertyType.STRING),
    spec(PropertyType.STRING, merge=MergeRule.PREPEND),
    spec(PropertyType.NUMBER),
    spec(PropertyType.NUMBER, decimals=2),
    spec(PropertyType.NUMBER, decimals=0),
    spec(PropertyType.DATE),
    spec(PropertyType.DATE, timezone="Europe/Berlin"),
    spec(PropertyType.DATETIME),
    spec(PropertyType.BOOL),
    spec(PropertyType.ENUMERATION, options=OPTIONS),
    spec(PropertyType.ENUMERATION, options=OPTIONS, multiple=True),
    spec(PropertyType.ENUMERATION),
]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(),
    st.sampled_from(
        [
            "",
            " ",
            "12",
            " 12.50 ",
            "1e3",
            "1E-50",
            "12,5",
            "abc",
            "9" * 90,
            "-0",
            "2024-05-16",
            "2024-05-16T23:30:00-05:00",
            "1700000000",
            "Fri, 02 Mar 2012 21:36:24 +0000",
            "A;B",
            "green",
            " Red ",
            "red",
            "Blue",
            "BLUE",
            "blue_1",
            "x" * 70000,
            "yes",
            "０",
            "١٢",
        ]
    ),
    st.text(max_size=12),
    st.lists(st.sampled_from(["a", " b ", "c;d", "", "green", "Red"]), max_size=4).map(
        lambda items: items + [None]
    ),
    st.dictionaries(st.just("k"), st.integers(), max_size=1),
)


def outcome(function: Any, value: Any) -> tuple[str, Any]:
    try:
        return "value", function(value)
    except types.CoercionError as error:
        return "error", error.message
    except Exception as error:  # noqa: BLE001 - the general code's own failures (sNaN) too
        return type(error).__name__, str(error)


@pytest.mark.parametrize("prop", SPECS, ids=lambda p: f"{p.type.value}-{p.merge.value}")
@settings(max_examples=200, deadline=None)
@given(value=values, zone=st.sampled_from([None, "UTC", "America/New_York"]))
def test_a_converter_is_coerce_for_its_property(
    prop: PropertySpec, value: Any, zone: str | None
) -> None:
    expected = outcome(lambda v: types.coerce(v, prop, zone), value)
    got = outcome(types.converter(prop, zone), value)
    assert got == expected
    assert type(got[1]) is type(expected[1])


numeric_texts = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.integers().map(str),
    st.from_regex(r"\s?[+-]?\d{0,45}(\.\d{0,45})?([eE][+-]?\d{1,3})?\s?", fullmatch=True),
)


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(numeric_texts, st.text(max_size=8)),
    whole=st.integers(min_value=-(10**45), max_value=10**45),
)
def test_numbers_remembered_are_numbers_parsed_afresh(text: str, whole: int) -> None:
    for value in (text, whole, Decimal(whole)):
        fresh = outcome(types._parse_number, value)
        assert outcome(types.parse_decimal, value) == fresh
        assert outcome(types.parse_decimal, value) == fresh  # a second time: remembered


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(),
    offset=st.sampled_from(["", "Z", "+05:30", "-08:00"]),
    zones=st.lists(
        st.sampled_from([None, "UTC", "Europe/Berlin", "Asia/Tokyo"]), min_size=1, max_size=3
    ),
)
def test_a_time_read_again_is_the_time_read_afresh(
    moment: Any, offset: str, zones: list[str | None]
) -> None:
    text = moment.isoformat() + offset
    for zone in zones:  # one text, in several zones one after the other
        assert types.parse_timestamp(text, zone) == types._read_timestamp(text, zone)
        assert types.calendar_date(text, zone) == types.calendar_date(text + " ", zone)


HIDDEN = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


@settings(max_examples=500, deadline=None)
@given(
    raw=st.one_of(st.text(max_size=30), st.from_regex(r"[ -~]{0,30}", fullmatch=True), st.emails())
)
def test_contact_keys_remembered_are_keys_made_afresh(raw: str) -> None:
    hidden = any(
        unicodedata.category(c) in HIDDEN for c in unicodedata.normalize("NFC", raw).strip()
    )
    for match_on in ("email", "customer_id"):
        key = contact_keys.contact_key(raw, match_on)
        assert key == contact_keys._contact_key(raw, match_on)
        assert contact_keys.contact_key(raw, match_on) == key
        assert (
            isinstance(key, contact_keys.Refused) and "invisible character" in key.reason
        ) == hidden
