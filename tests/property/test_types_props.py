"""Properties of hubmap.types: coercion is idempotent, the wire format round-trips and is strict."""

from __future__ import annotations

import re
from datetime import timezone
from decimal import Decimal
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hubmap.mapping.model import MergeRule, Option, PropertySpec, PropertyType
from hubmap.types import CoercionError, coerce, from_wire, to_wire

WIRE_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
ZONES = [
    None,
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Pacific/Auckland",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
]
OPTIONS = (Option("green", "Green"), Option("red", "Red"), Option("blue_1", "Blue"))


def spec(kind: PropertyType, **extra: Any) -> PropertySpec:
    return PropertySpec(name="p", type=kind, source=None, label="P", **extra)


decimals = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=-(10**30), max_value=10**30, places=None
)
numbers = st.one_of(
    decimals,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30),
    decimals.map(str),
)
aware = st.datetimes(
    timezones=st.sampled_from(
        [timezone.utc] + [__import__("zoneinfo").ZoneInfo(z) for z in ZONES if z]
    )
)
moments = st.one_of(
    aware,
    st.datetimes(),
    st.dates(),
    aware.map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat(sep=" ")),
    st.integers(min_value=0, max_value=4_000_000_000),
    st.integers(min_value=100_000_000_000, max_value=4_000_000_000_000),
)
texts = st.text(max_size=40)
bools = st.one_of(st.booleans(), st.sampled_from(["true", "False", "YES", "no", "1", "0", 1, 0]))
enum_values = st.sampled_from(["green", "red", "blue_1", "Green", "Blue", " blue "])

CASES = [
    (spec(PropertyType.NUMBER), numbers),
    (spec(PropertyType.NUMBER, decimals=2), numbers),
    (spec(PropertyType.NUMBER, decimals=0), numbers),
    (spec(PropertyType.DATE), moments),
    (spec(PropertyType.DATE, timezone="Pacific/Auckland"), moments),
    (spec(PropertyType.DATETIME), moments),
    (spec(PropertyType.DATETIME, timezone="America/New_York"), moments),
    (spec(PropertyType.BOOL), bools),
    (spec(PropertyType.STRING), st.one_of(texts, numbers, st.booleans())),
    (spec(PropertyType.STRING, merge=MergeRule.PREPEND), st.one_of(texts, st.lists(texts))),
    (spec(PropertyType.ENUMERATION, options=OPTIONS), enum_values),
    (
        spec(PropertyType.ENUMERATION, options=OPTIONS, multiple=True),
        st.one_of(st.lists(enum_values), enum_values),
    ),
]


@st.composite
def spec_and_value(draw: st.DrawFn) -> tuple[PropertySpec, Any, str | None]:
    prop, values = draw(st.sampled_from(CASES))
    return prop, draw(values), draw(st.sampled_from(ZONES))


@settings(max_examples=600)
@given(spec_and_value())
def test_coercion_is_idempotent(case: tuple[PropertySpec, Any, str | None]) -> None:
    prop, value, tz = case
    try:
        typed = coerce(value, prop, tz)
    except CoercionError:
        return
    assert coerce(typed, prop, tz) == typed


@settings(max_examples=600)
@given(spec_and_value())
def test_wire_round_trip(case: tuple[PropertySpec, Any, str | None]) -> None:
    prop, value, tz = case
    try:
        typed = coerce(value, prop, tz)
    except CoercionError:
        return
    assume(typed is not None)
    wire = to_wire(typed, prop)
    assert isinstance(wire, str)
    assert from_wire(wire, prop) == typed
    assert to_wire(from_wire(wire, prop), prop) == wire


@settings(max_examples=400)
@given(numbers, st.sampled_from([None, 0, 2, 5]))
def test_wire_numbers_are_plain(value: Any, places: int | None) -> None:
    prop = spec(PropertyType.NUMBER, decimals=places)
    try:
        typed = coerce(value, prop)
    except CoercionError:
        return
    wire = to_wire(typed, prop)
    assert WIRE_NUMBER.match(wire), wire
    assert "E" not in wire and "e" not in wire and "," not in wire
    if places:
        assert len(wire.split(".")[1]) == places
    elif "." in wire:
        assert not wire.endswith("0")
    assert wire != "-0"


@given(st.integers(min_value=1, max_value=500))
def test_tenths_sum_exactly(count: int) -> None:
    prop = spec(PropertyType.NUMBER)
    total = sum((coerce(0.1, prop) for _ in range(count)), Decimal(0))
    assert total == Decimal(count) / 10
    assert coerce(0.1, prop) + coerce(0.2, prop) == Decimal("0.3")
    assert to_wire(coerce(0.1, prop) + coerce(0.2, prop), prop) == "0.3"


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.text(),
        st.booleans(),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(), st.integers(), max_size=2),
    ),
    st.sampled_from([c[0] for c in CASES]),
)
def test_coerce_raises_only_coercion_error(value: Any, prop: PropertySpec) -> None:
    try:
        coerce(value, prop)
    except CoercionError:
        pass
