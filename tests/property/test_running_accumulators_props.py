"""Properties of the running (mutable) accumulators of hubmap.merge, which the fold adds orders to
in place: for every rule, putting contributions one by one - starting empty, from a baseline, or
from a stored partial fold (read straight from its JSON form too) - gives exactly the
Accumulator that `Rule.add` builds (the same stored form) and the same result joined with any
baseline; the same order put again is the rule's fixed choice; a prepend that holds many more items
than its cap, also items too long to fit, still matches the brute-force model.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hubmap.mapping.model import MergeRule, PropertyType
from hubmap.merge import Contribution, Rule, fold, rule_for, running_key
from tests.property.test_merge_props import OFFSETS, RULES, T0, _prepend_model, cases, orders, spec


def _put_all(rule: Rule[Any], start: Any, contributions: list[Contribution]) -> Any:
    return _put_all_into(rule.open(start), contributions)


def _put_all_into(running: Any, contributions: list[Contribution]) -> Any:
    for c in contributions:
        running.put(c.value, running_key(c.time, c.order_id), c.time, c.order_id)
    return running


def _added(rule: Rule[Any], start: Any, contributions: list[Contribution]) -> Any:
    acc = start
    for c in contributions:
        acc = rule.add(acc, c)
    return acc


def _stored(rule: Rule[Any], acc: Any) -> Any:
    return rule.load(json.loads(json.dumps(rule.dump(acc))))


@settings(max_examples=500)
@given(cases(), st.data())
def test_running_gives_the_accumulator_add_builds(case: Any, data: st.DataObject) -> None:
    prop, contributions, baseline = case
    rule = rule_for(prop)
    cut = data.draw(st.integers(0, len(contributions)))
    for start in (None, rule.empty(), rule.from_baseline(baseline)):
        # a stored partial fold, opened and added to, as a run does chunk by chunk
        first = _stored(rule, _added(rule, start or rule.empty(), contributions[:cut]))
        running = _put_all(rule, first, contributions[cut:])
        expected = _added(rule, start or rule.empty(), contributions)
        assert rule.dump(running.freeze()) == rule.dump(expected)
        assert running.freeze() == _stored(rule, expected)
        assert running.result() == rule.result(expected)
        if baseline is not None:  # joined with HubSpot's value, as the final values are
            assert running.result(baseline) == rule.result(
                rule.combine(rule.from_baseline(baseline), expected)
            )
        assert rule.dump(rule.open(running.freeze()).freeze()) == rule.dump(expected)
        # the stored form, written and read without the immutable accumulator in between
        assert running.dump() == rule.dump(expected)
        stored = json.loads(json.dumps(rule.dump(first)))
        reopened = _put_all_into(rule.open_stored(stored), contributions[cut:])
        assert reopened.dump() == rule.dump(expected)
        assert reopened.result() == rule.result(expected)


@settings(max_examples=200)
@given(st.sampled_from(RULES), st.data())
def test_the_same_order_again_is_the_rules_fixed_choice(
    rule_case: Any, data: st.DataObject
) -> None:
    prop, values, _ = rule_case
    rule = rule_for(prop)
    time = (T0 + timedelta(hours=data.draw(st.integers(0, 3)))).astimezone(
        data.draw(st.sampled_from(OFFSETS))
    )
    again = [
        Contribution(data.draw(st.one_of(st.none(), values)), time, "42")
        for _ in range(data.draw(st.integers(1, 3)))
    ]
    others = data.draw(orders(values))
    mixed = data.draw(st.permutations([c for c in others if c.order_id != "42"] + again))
    running = _put_all(rule, None, mixed)
    expected = _added(rule, rule.empty(), mixed)
    assert rule.dump(running.freeze()) == rule.dump(expected)
    assert running.result() == rule.result(expected)


many_items = st.lists(st.sampled_from([f"I{n}" for n in range(60)]), max_size=8).map(tuple)
long_or_short = st.lists(
    st.sampled_from(["A", "B", "C", "D", "x" * 20_000, "y" * 30_000, "z" * 40_000]), max_size=4
).map(tuple)


@settings(max_examples=300)
@given(
    st.one_of(orders(many_items), orders(long_or_short)),
    st.one_of(st.none(), many_items),
    st.integers(1, 5),
    st.data(),
)
def test_a_running_prepend_holding_many_items_keeps_the_caps(
    contributions: list[Contribution], baseline: Any, max_items: int, data: st.DataObject
) -> None:
    prop = spec(PropertyType.STRING, MergeRule.PREPEND, max_items=max_items)
    rule = rule_for(prop)
    shuffled = data.draw(st.permutations(contributions))
    running = _put_all(rule, None, shuffled)
    assert running.result(baseline) == _prepend_model(contributions, baseline, max_items)
    assert running.result(baseline) == fold(prop, contributions, baseline)
    assert rule.dump(running.freeze()) == rule.dump(_added(rule, rule.empty(), shuffled))
    assert running.dump() == rule.dump(_added(rule, rule.empty(), shuffled))
