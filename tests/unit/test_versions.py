"""hubmap.versions: how versions compare, and what a record of a known order id does."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hubmap.ledger import COUNTED, WITHDRAWN
from hubmap.versions import (
    CHANGED,
    NEW,
    SKIPPED,
    STALE,
    UNCHANGED,
    Arrival,
    Stored,
    classify,
    newer,
    version_key,
)


@pytest.mark.parametrize(
    "older, younger",
    [
        (9, 10),  # numbers as numbers, not as text
        ("9", "10"),
        (Decimal("1.5"), 2),
        ("2024-03-01T10:00:00+01:00", "2024-03-01T09:30:00Z"),  # instants, whatever the offset
        ("2024-03-01T23:00:00-05:00", "2024-03-02T06:00:00+01:00"),
        ("2024-03-01", "2024-03-01T00:00:01Z"),
        ("abc", "abd"),
    ],
)
def test_versions_compare_by_what_they_are(older, younger) -> None:
    a, b = version_key(older), version_key(younger)
    assert newer(b, a) and not newer(a, b)


def test_the_same_version_written_differently_is_equal() -> None:
    assert version_key("2024-03-01T10:00:00+01:00") == version_key("2024-03-01T09:00:00Z")
    assert version_key("7") == version_key(7) == version_key(Decimal("7.0"))
    assert not newer(version_key(7), version_key("7"))


def test_no_version_is_older_than_any() -> None:
    assert newer(version_key(1), None) and not newer(None, version_key(1))
    assert not newer(None, None)


COUNTED_V2 = Stored(COUNTED, version_key(2), "content-a", "a@example.com")
WITHDRAWN_V2 = Stored(WITHDRAWN, version_key(2), None, "a@example.com")


@pytest.mark.parametrize(
    "stored, arrival, versioned, outcome",
    [
        (None, Arrival(version_key(1), "x"), True, NEW),
        (None, Arrival(version_key(1), None), True, SKIPPED),
        (COUNTED_V2, Arrival(version_key(3), "content-a"), True, UNCHANGED),
        (COUNTED_V2, Arrival(version_key(1), "content-a"), True, UNCHANGED),  # same content
        (COUNTED_V2, Arrival(version_key(3), "content-b"), True, CHANGED),
        (COUNTED_V2, Arrival(version_key(2), "content-b"), True, STALE),  # equal, other content
        (COUNTED_V2, Arrival(version_key(1), "content-b"), True, STALE),
        (COUNTED_V2, Arrival(version_key(3), None), True, "withdrawn"),
        (COUNTED_V2, Arrival(version_key(1), None), True, STALE),  # an old cancellation
        (WITHDRAWN_V2, Arrival(version_key(3), "content-c"), True, CHANGED),  # counts again
        (WITHDRAWN_V2, Arrival(version_key(1), "content-c"), True, STALE),
        (WITHDRAWN_V2, Arrival(version_key(3), None), True, UNCHANGED),
        # without records.version the later arrival wins
        (Stored(COUNTED, None, "content-a", "a"), Arrival(None, "content-b"), False, CHANGED),
        (Stored(COUNTED, None, "content-a", "a"), Arrival(None, None), False, "withdrawn"),
        (Stored(WITHDRAWN, None, None, "a"), Arrival(None, "content-a"), False, CHANGED),
    ],
)
def test_what_a_record_of_a_known_order_does(stored, arrival, versioned, outcome) -> None:
    assert classify(stored, arrival, versioned) == outcome
