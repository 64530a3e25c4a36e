"""Properties of hubmap.merge: every rule is an order-independent, associative fold.

For each rule: folding a contact's orders in any order, split into any batches combined in any
grouping (with accumulators stored as JSON in between), gives the result of one plain fold; the
baseline counts exactly once; sums are exact; prepend matches a brute-force model and keeps its caps.
The fast path a run folds with (`ContactFolder.add` on running accumulators, stored between
chunks, joined with HubSpot's value as text) gives what an oracle written apart from
`hubmap.merge` says each rule means.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hubmap.evaluate import CompiledMapping
from hubmap.fold import Accs, ContactFolder, OrderPart
from hubmap.mapping import check_document
from hubmap.mapping.loader import load_text
from hubmap.mapping.model import MergeRule, PropertySpec, PropertyType
from hubmap.merge import Contribution, Rule, fold, order_key, rule_for
from hubmap.types import LIST_SEPARATOR, MAX_VALUE_LENGTH, to_wire

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
OFFSETS = [timezone.utc, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]


def spec(kind: PropertyType, merge: MergeRule, **extra: Any) -> PropertySpec:
    return PropertySpec(name="p", type=kind, source=None, label="P", merge=merge, **extra)


numbers = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=-(10**9), max_value=10**9, places=2
)
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 1, 1))
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
).map(lambda m: m.replace(microsecond=m.microsecond // 1000 * 1000))  # typed: whole ms, UTC
texts = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"])
items = st.lists(
    st.sampled_from(["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]), max_size=5
).map(tuple)

RULES: list[tuple[PropertySpec, Any, Any]] = [
    (spec(PropertyType.STRING, MergeRule.OVERWRITE), texts, texts),
    (spec(PropertyType.STRING, MergeRule.LATEST_KNOWN), texts, texts),
    (spec(PropertyType.NUMBER, MergeRule.OVERWRITE), numbers, numbers),
    (spec(PropertyType.NUMBER, MergeRule.SUM), numbers, numbers),
    (spec(PropertyType.STRING, MergeRule.PREPEND, max_items=4), items, items),
    (spec(PropertyType.STRING, MergeRule.PREPEND, max_items=50), items, items),
    (spec(PropertyType.NUMBER, MergeRule.MIN), numbers, numbers),
    (spec(PropertyType.DATE, MergeRule.MIN), dates, dates),
    (spec(PropertyType.NUMBER, MergeRule.MAX), numbers, numbers),
    (spec(PropertyType.DATE, MergeRule.MAX), dates, dates),
    (spec(PropertyType.DATETIME, MergeRule.MIN), moments, moments),
    (spec(PropertyType.DATETIME, MergeRule.MAX), moments, moments),
    (spec(PropertyType.STRING, MergeRule.SET_ONCE), texts, texts),
    (spec(PropertyType.DATE, MergeRule.SET_ONCE), dates, dates),
]


@st.composite
def orders(draw: st.DrawFn, values: Any) -> list[Contribution]:
    """Orders with distinct ids; times drawn from a few hours so that ties happen."""
    ids = draw(
        st.lists(
            st.one_of(
                st.integers(0, 2000).map(str),
                st.sampled_from(["#1001", "#999", "A-1", "a-1", "007", "7"]),
            ),
            unique=True,
            max_size=12,
        )
    )
    result = []
    for order_id in ids:
        hours = draw(st.integers(0, 4))
        offset = draw(st.sampled_from(OFFSETS))
        time = (T0 + timedelta(hours=hours)).astimezone(offset)
        result.append(Contribution(draw(st.one_of(st.none(), values)), time, order_id))
    return result


@st.composite
def cases(draw: st.DrawFn) -> tuple[PropertySpec, list[Contribution], Any]:
    prop, values, baselines = draw(st.sampled_from(RULES))
    return prop, draw(orders(values)), draw(st.one_of(st.none(), baselines))


def _stored(rule: Rule[Any], acc: Any) -> Any:
    return rule.load(json.loads(json.dumps(rule.dump(acc))))


def _fold_batch(
    rule: Rule[Any], batch: list[Contribution], baseline: Any, with_baseline: bool
) -> Any:
    acc = rule.from_baseline(baseline) if with_baseline else rule.empty()
    for contribution in batch:
        acc = rule.add(acc, contribution)
    return _stored(rule, acc)


def _combine_any_grouping(rule: Rule[Any], accs: list[Any], draw: st.DrawFn) -> Any:
    if len(accs) == 1:
        return accs[0]
    cut = draw(st.integers(1, len(accs) - 1))
    left = _combine_any_grouping(rule, accs[:cut], draw)
    right = _combine_any_grouping(rule, accs[cut:], draw)
    return _stored(rule, rule.combine(left, right))


@settings(max_examples=500)
@given(cases(), st.data())
def test_any_order_any_batches_any_grouping_gives_one_fold(
    case: tuple[PropertySpec, list[Contribution], Any], data: st.DataObject
) -> None:
    prop, contributions, baseline = case
    rule = rule_for(prop)
    expected = fold(prop, contributions, baseline)

    shuffled = data.draw(st.permutations(contributions))
    assert fold(prop, shuffled, baseline) == expected

    cuts = sorted(data.draw(st.lists(st.integers(0, len(shuffled)), max_size=4)))
    batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    baseline_batch = data.draw(st.integers(0, len(batches) - 1))
    accs = [
        _fold_batch(rule, batch, baseline, baseline is not None and i == baseline_batch)
        for i, batch in enumerate(batches)
    ]
    combined = _combine_any_grouping(rule, accs, data.draw)
    assert rule.result(combined) == expected


@settings(max_examples=200)
@given(cases(), st.data())
def test_combine_is_commutative_without_two_baselines(
    case: tuple[PropertySpec, list[Contribution], Any], data: st.DataObject
) -> None:
    prop, contributions, baseline = case
    rule = rule_for(prop)
    cut = data.draw(st.integers(0, len(contributions)))
    a = _fold_batch(rule, contributions[:cut], baseline, baseline is not None)
    b = _fold_batch(rule, contributions[cut:], None, False)
    assert rule.combine(a, b) == rule.combine(b, a)
    assert rule.combine(a, rule.empty()) == a == rule.combine(rule.empty(), a)


@given(st.integers(1, 400), st.data())
def test_sum_of_many_cents_is_exact(count: int, data: st.DataObject) -> None:
    prop = spec(PropertyType.NUMBER, MergeRule.SUM)
    contributions = [Contribution(Decimal("0.1"), T0, str(i)) for i in range(count)]
    shuffled = data.draw(st.permutations(contributions))
    assert fold(prop, shuffled) == Decimal(count) / 10
    assert fold(prop, shuffled, Decimal("0.2")) == Decimal(count) / 10 + Decimal("0.2")


@settings(max_examples=300)
@given(
    orders(st.one_of(st.none(), numbers)),
    st.one_of(st.none(), numbers),
    st.integers(1, 4),
    st.data(),
)
def test_sum_counts_baseline_once_however_combined(
    contributions: list[Contribution], baseline: Any, copies: int, data: st.DataObject
) -> None:
    prop = spec(PropertyType.NUMBER, MergeRule.SUM)
    rule = rule_for(prop)
    plain = sum((c.value for c in contributions if c.value is not None), Decimal(0))
    # the baseline may be taken in by several partial folds; it still counts once
    accs = [rule.from_baseline(baseline) for _ in range(copies)] + [
        _fold_batch(rule, [c], None, False) for c in contributions
    ]
    accs = data.draw(st.permutations(accs))
    combined = _combine_any_grouping(rule, accs, data.draw)
    if baseline is None and not any(c.value is not None for c in contributions):
        assert rule.result(combined) is None
    else:
        assert rule.result(combined) == plain + (baseline or 0)


def _prepend_model(contributions: list[Contribution], baseline: Any, max_items: int) -> Any:
    """Prepend written the slow, obvious way."""
    present = [c for c in contributions if c.value]  # an order without items adds nothing
    if not present and baseline is None:
        return None
    newest_first = sorted(present, key=lambda c: order_key(c.time, c.order_id), reverse=True)
    result: list[str] = []
    for c in newest_first:
        for item in c.value:
            if item not in result:
                result.append(item)
    for item in baseline or ():
        if item not in result:
            result.append(item)
    result = result[:max_items]
    while len(LIST_SEPARATOR.join(result)) > MAX_VALUE_LENGTH:
        result.pop()
    return tuple(result)


long_items = st.lists(
    st.sampled_from(["A", "B", "C", "x" * 20_000, "y" * 30_000, "z" * 40_000]), max_size=4
).map(tuple)


@settings(max_examples=400)
@given(
    st.one_of(orders(items), orders(long_items)),
    st.one_of(st.none(), items),
    st.integers(1, 6),
    st.data(),
)
def test_prepend_matches_model_and_keeps_its_promises(
    contributions: list[Contribution], baseline: Any, max_items: int, data: st.DataObject
) -> None:
    prop = spec(PropertyType.STRING, MergeRule.PREPEND, max_items=max_items)
    result = fold(prop, contributions, baseline)
    assert result == _prepend_model(contributions, baseline, max_items)
    if result is None:
        return
    assert len(result) == len(set(result))  # no duplicates
    assert len(result) <= max_items
    assert len(LIST_SEPARATOR.join(result)) <= MAX_VALUE_LENGTH
    # within one purchase, surviving items keep the purchase's order
    for c in contributions:
        if c.value:
            survivors = [i for i in result if i in c.value]
            newest = [i for i in survivors if _newest_order(contributions, i) is c]
            assert newest == [i for i in dict.fromkeys(c.value) if i in newest]
    # newest first: the newest order of each item never increases along the list
    keys = [
        order_key(_newest_order(contributions, i).time, _newest_order(contributions, i).order_id)
        for i in result
        if _newest_order(contributions, i) is not None
    ]
    assert keys == sorted(keys, reverse=True)
    # capping partial folds gives the same as capping the whole
    rule = rule_for(prop)
    cut = data.draw(st.integers(0, len(contributions)))
    a = _fold_batch(rule, contributions[:cut], baseline, baseline is not None)
    b = _fold_batch(rule, contributions[cut:], None, False)
    assert rule.result(rule.combine(a, b)) == result


def _newest_order(contributions: list[Contribution], item: str) -> Contribution | None:
    holding = [c for c in contributions if c.value and item in c.value]
    if not holding:
        return None
    return max(holding, key=lambda c: order_key(c.time, c.order_id))


@settings(max_examples=200)
@given(cases())
def test_dump_load_round_trip(case: tuple[PropertySpec, list[Contribution], Any]) -> None:
    prop, contributions, baseline = case
    rule = rule_for(prop)
    for acc in (rule.empty(), rule.from_baseline(baseline)):
        for contribution in contributions:
            acc = rule.add(acc, contribution)
        assert _stored(rule, acc) == acc
        assert rule.result(_stored(rule, acc)) == rule.result(acc)


# ------------------------------------------------------------- the fast path against an oracle


def _oracle_id(order_id: str) -> tuple[int, int, str]:
    """Ids of ASCII digits as numbers (ties by text), before every other id, which go by text."""
    if order_id.isascii() and order_id.isdigit():
        return (0, int(order_id), order_id)
    return (1, 0, order_id)


def _oracle_when(c: Contribution) -> tuple[datetime, tuple[int, int, str]]:
    return (c.time.astimezone(UTC), _oracle_id(c.order_id))


def _oracle(merge: MergeRule, contributions: list[Contribution], baseline: Any) -> Any:
    """What each rule means, written from the README's table, not from hubmap.merge."""
    given_values = [c for c in contributions if c.value is not None]
    values = [c.value for c in given_values]
    if merge is MergeRule.SUM:
        return sum(values, baseline or Decimal(0)) if values else baseline
    if merge in (MergeRule.MIN, MergeRule.MAX):
        candidates = values + ([baseline] if baseline is not None else [])
        if not candidates:
            return None
        return min(candidates) if merge is MergeRule.MIN else max(candidates)
    if merge is MergeRule.OVERWRITE:  # the latest order, also when it has no value
        return max(contributions, key=_oracle_when).value if contributions else baseline
    if merge is MergeRule.LATEST_KNOWN:
        return max(given_values, key=_oracle_when).value if given_values else baseline
    if merge is MergeRule.SET_ONCE:
        if baseline is not None:
            return baseline
        return min(given_values, key=_oracle_when).value if given_values else None
    raise AssertionError(f"no oracle for {merge}")  # prepend: _prepend_model


@cache
def _folder(kind: PropertyType, merge: MergeRule, max_items: int) -> ContactFolder:
    """The fold of a mapping whose one property `p` has this type and rule, as a run builds it."""
    prop: dict[str, Any] = {"type": kind.value, "merge": merge.value, "from": "v"}
    if merge is MergeRule.PREPEND:
        prop["max_items"] = max_items
    mapping = {
        "version": 1,
        "name": "merge-props",
        "records": {"id": "id", "time": "at", "contact": "email"},
        "target": {"kind": "contacts"},
        "properties": {"p": prop},
    }
    checked = check_document(load_text(yaml.safe_dump(mapping), "merge-props"), environ={})
    assert checked.ok, checked.problems
    return ContactFolder(CompiledMapping(checked.mapping))  # type: ignore[arg-type]


def _fast_fold(
    folder: ContactFolder, batches: list[list[Contribution]], baseline_text: str | None
) -> Any:
    """A run's fold: each chunk's orders added in place to the accumulators read back from their
    stored form, the final value joined with HubSpot's text value."""
    accs: Accs = {}
    for batch in batches:
        accs = folder.load(json.loads(json.dumps(folder.dump(accs))))
        for c in batch:
            folder.add(accs, OrderPart(c.order_id, c.time, {"p": c.value}))
    return folder.final_values(accs, {"p": baseline_text})["p"]


@settings(max_examples=500)
@given(cases(), st.data())
def test_the_fast_path_a_run_takes_gives_what_the_oracle_says(
    case: tuple[PropertySpec, list[Contribution], Any], data: st.DataObject
) -> None:
    prop, contributions, baseline = case
    folder = _folder(prop.type, prop.merge, prop.max_items)
    baseline_text = None if baseline is None else to_wire(baseline, folder.specs["p"])
    if baseline_text == "":  # HubSpot holds no items: no value
        baseline, baseline_text = None, None
    if prop.merge is MergeRule.PREPEND:
        expected = _prepend_model(contributions, baseline, prop.max_items)
    else:
        expected = _oracle(prop.merge, contributions, baseline)

    shuffled = data.draw(st.permutations(contributions))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(shuffled)), max_size=4)))
    batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    assert _fast_fold(folder, batches, baseline_text) == expected
    assert fold(prop, shuffled, baseline) == expected  # and the plain fold of hubmap.merge
