"""hubmap.merge: each merge rule on small, readable cases."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from hubmap.mapping.model import MergeRule, PropertySpec, PropertyType
from hubmap.merge import Contribution, Prepend, fold, id_key, rule_for
from hubmap.types import MAX_VALUE_LENGTH, from_wire

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def spec(kind: PropertyType, merge: MergeRule, **extra: Any) -> PropertySpec:
    return PropertySpec(name="p", type=kind, source=None, label="P", merge=merge, **extra)


def c(value: Any, hours: float, order_id: str = "1") -> Contribution:
    return Contribution(value, T0 + timedelta(hours=hours), order_id)


OVERWRITE = spec(PropertyType.STRING, MergeRule.OVERWRITE)
SUM = spec(PropertyType.NUMBER, MergeRule.SUM)
PREPEND = spec(PropertyType.STRING, MergeRule.PREPEND, max_items=4)
MIN = spec(PropertyType.DATE, MergeRule.MIN)
MAX = spec(PropertyType.DATE, MergeRule.MAX)
SET_ONCE = spec(PropertyType.STRING, MergeRule.SET_ONCE)


def test_overwrite_takes_latest_by_order_time_not_arrival() -> None:
    orders = [c("new", 5, "1"), c("old", 1, "2")]
    assert fold(OVERWRITE, orders) == "new"
    assert fold(OVERWRITE, reversed(orders)) == "new"


def test_overwrite_ties_go_to_the_greater_id_numerically() -> None:
    assert fold(OVERWRITE, [c("nine", 1, "999"), c("thousand", 1, "1000")]) == "thousand"
    assert fold(OVERWRITE, [c("thousand", 1, "1000"), c("nine", 1, "999")]) == "thousand"
    assert fold(OVERWRITE, [c("b", 1, "#1001"), c("a", 1, "#1000")]) == "b"


def test_id_key_orders_digits_numerically_then_text() -> None:
    ids = ["10", "9", "abc", "007", "7", "#1", "100"]
    assert sorted(ids, key=id_key) == ["007", "7", "9", "10", "100", "#1", "abc"]


def test_overwrite_baseline_is_older_than_any_order() -> None:
    assert fold(OVERWRITE, [], baseline="hubspot") == "hubspot"
    early = Contribution("order", datetime(1970, 1, 1, tzinfo=UTC), "1")
    assert fold(OVERWRITE, [early], baseline="hubspot") == "order"


LATEST_KNOWN = spec(PropertyType.STRING, MergeRule.LATEST_KNOWN)


def test_overwrite_takes_the_latest_order_even_without_a_value() -> None:
    # the latest purchase had no value: the property is cleared, whatever the arrival order
    assert fold(OVERWRITE, [c("older", 1), c(None, 2, "2")]) is None
    assert fold(OVERWRITE, [c(None, 2, "2"), c("older", 1)]) is None
    assert fold(OVERWRITE, [c(None, 1, "1"), c("newer", 2, "2")]) == "newer"
    # ... also over a baseline: the baseline only stands when there is no order
    assert fold(OVERWRITE, [c(None, 1)], baseline="hubspot") is None


def test_latest_known_and_the_other_rules_ignore_missing_values() -> None:
    assert fold(LATEST_KNOWN, [c("kept", 1), c(None, 2, "2")]) == "kept"
    assert fold(LATEST_KNOWN, [c(None, 2, "2")], baseline="hubspot") == "hubspot"
    assert fold(SUM, [c(Decimal(1), 1), c(None, 2, "2")]) == Decimal(1)
    assert fold(SET_ONCE, [c(None, 0, "0"), c("first", 1)]) == "first"


def test_sum_is_exact_and_adds_baseline_once() -> None:
    orders = [c(Decimal("0.1"), i, str(i)) for i in range(10)]
    assert fold(SUM, orders) == Decimal("1.0")
    assert fold(SUM, orders, baseline=Decimal(5)) == Decimal("6.0")
    assert fold(SUM, [], baseline=Decimal(5)) == Decimal(5)
    assert fold(SUM, []) is None
    rule = rule_for(SUM)
    a = rule.add(rule.from_baseline(Decimal(5)), c(Decimal(1), 1, "1"))
    b = rule.add(rule.from_baseline(Decimal(5)), c(Decimal(2), 2, "2"))
    assert rule.result(rule.combine(a, b)) == Decimal(8)  # one baseline, not two


def test_prepend_newest_first_keeping_order_inside_a_purchase() -> None:
    orders = [c(("A", "B"), 1, "1"), c(("C", "A"), 2, "2")]
    assert fold(PREPEND, orders) == ("C", "A", "B")
    assert fold(PREPEND, reversed(orders)) == ("C", "A", "B")


def test_prepend_caps_by_count_and_keeps_baseline_last() -> None:
    orders = [c(("A", "B"), 1, "1"), c(("C",), 2, "2")]
    assert fold(PREPEND, orders, baseline=("X", "B", "Y", "Z")) == ("C", "A", "B", "X")
    assert fold(PREPEND, [], baseline=("X", "Y")) == ("X", "Y")
    assert fold(PREPEND, []) is None


def test_prepend_caps_by_wire_length_dropping_oldest() -> None:
    big = "x" * 30_000
    orders = [c((big + "1",), 1, "1"), c((big + "2",), 2, "2"), c((big + "3",), 3, "3")]
    result = fold(spec(PropertyType.STRING, MergeRule.PREPEND), orders)
    assert result == (big + "3", big + "2")
    assert len(";".join(result)) <= MAX_VALUE_LENGTH


def test_prepend_capping_partial_folds_equals_capping_the_whole() -> None:
    rule = Prepend(max_items=2)
    a = rule.add(rule.add(rule.empty(), c(("A", "B"), 5, "5")), c(("C",), 1, "1"))
    b = rule.add(rule.empty(), c(("C", "D"), 3, "3"))
    whole = rule.empty()
    for contribution in (c(("A", "B"), 5, "5"), c(("C",), 1, "1"), c(("C", "D"), 3, "3")):
        whole = rule.add(whole, contribution)
    assert rule.result(rule.combine(a, b)) == rule.result(whole) == ("A", "B")


def test_min_and_max_include_baseline() -> None:
    orders = [c(date(2024, 5, 1), 1, "1"), c(date(2023, 1, 1), 2, "2")]
    assert fold(MIN, orders) == date(2023, 1, 1)
    assert fold(MAX, orders) == date(2024, 5, 1)
    assert fold(MIN, orders, baseline=date(2020, 1, 1)) == date(2020, 1, 1)
    assert fold(MAX, orders, baseline=date(2020, 1, 1)) == date(2024, 5, 1)


def test_set_once_keeps_baseline_forever_else_first_order_by_time() -> None:
    orders = [c("second", 2, "2"), c("first", 1, "1")]
    assert fold(SET_ONCE, orders) == "first"
    assert fold(SET_ONCE, orders, baseline="hubspot") == "hubspot"
    assert fold(SET_ONCE, [c("b", 1, "10"), c("a", 1, "9")]) == "a"  # tie: smaller id


def test_dump_is_json_and_loads_back() -> None:
    for prop, contributions, baseline in [
        (SUM, [c(Decimal("0.10"), 1)], Decimal(3)),
        (PREPEND, [c(("A", "B"), 1), c(("C",), 2, "2")], ("X",)),
        (MIN, [c(date(2024, 1, 1), 1)], None),
        (OVERWRITE, [c("v", 1)], ""),
        (spec(PropertyType.DATETIME, MergeRule.MAX), [c(T0, 1)], T0 - timedelta(days=1)),
        (spec(PropertyType.BOOL, MergeRule.SET_ONCE), [c(True, 1)], None),
    ]:
        rule = rule_for(prop)
        acc = rule.from_baseline(baseline)
        for contribution in contributions:
            acc = rule.add(acc, contribution)
        text = json.dumps(rule.dump(acc))
        assert rule.load(json.loads(text)) == acc
        assert rule.result(rule.load(json.loads(text))) == rule.result(acc)
    with pytest.raises(ValueError):
        rule_for(SUM).load({"v": 1, "rule": "max", "part": None})


def test_baseline_from_hubspot_wire_value() -> None:
    baseline = from_wire("X;Y", PREPEND)
    assert fold(PREPEND, [c(("A",), 1)], baseline=baseline) == ("A", "X", "Y")


def test_naive_contribution_time_is_refused() -> None:
    with pytest.raises(ValueError):
        Contribution("v", datetime(2024, 1, 1), "1")
