"""Properties of one_each, the picking of one upsell (or similar) item per top item.

The oracle below states the rule slot by slot, as the mapping guide does: slot i first takes the
first item of list i that is allowed (not excluded) and new (no slot took it); the slots left
empty then take, in slot order, the next new item of all the lists read in turns (first items,
then second items, ...); a slot still empty repeats its own list's first allowed item.  Beside
the oracle, invariants that follow from the rule without it: nothing excluded, nothing that is
in no list, and all picks different and present whenever there are enough different items.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hubmap.expressions.functions import one_each

item = st.sampled_from(["A", "B", "C", "D", "E", "F"])
lists = st.lists(st.one_of(st.none(), st.lists(st.one_of(item, st.none()), max_size=6)), max_size=4)
excluded = st.lists(item, max_size=4)
counts = st.one_of(st.none(), st.integers(min_value=0, max_value=5))


def oracle(groups: list[Any], exclude: list[str], count: int | None) -> list[Any]:
    allowed: list[list[str]] = []
    for group in groups:
        seen: list[str] = []
        for x in group or []:
            if x is not None and x not in exclude and x not in seen:
                seen.append(x)
        allowed.append(seen)
    slots = len(groups) if count is None else count
    picks: list[Any] = []
    taken: list[str] = []
    for i in range(slots):
        mine = allowed[i] if i < len(allowed) else []
        new = [x for x in mine if x not in taken]
        picks.append(new[0] if new else None)
        if new:
            taken.append(new[0])
    turns = [
        group[depth]
        for depth in range(max(map(len, allowed), default=0))
        for group in allowed
        if depth < len(group)
    ]
    for i in range(slots):
        if picks[i] is not None:
            continue
        new = [x for x in turns if x not in taken]
        if new:
            picks[i] = new[0]
            taken.append(new[0])
        elif i < len(allowed) and allowed[i]:
            picks[i] = allowed[i][0]
    return picks


@given(lists, excluded, counts)
def test_one_each_follows_the_rule(
    groups: list[Any], exclude: list[str], count: int | None
) -> None:
    assert one_each(groups, exclude, count) == oracle(groups, exclude, count)


@given(lists, excluded, counts)
def test_picks_are_allowed_and_different_when_enough_items_exist(
    groups: list[Any], exclude: list[str], count: int | None
) -> None:
    picks = one_each(groups, exclude, count)
    assert picks is not None
    assert len(picks) == (len(groups) if count is None else count)
    offered = {x for group in groups for x in group or [] if x is not None}
    assert all(p is None or (p in offered and p not in exclude) for p in picks)
    different = offered - set(exclude)
    if len(different) >= len(picks):
        assert None not in picks and len(set(picks)) == len(picks)


def test_numbers_and_their_text_forms_are_one_product() -> None:
    # WooCommerce ids come as numbers from the catalog and as numbers or decimals from the order.
    assert one_each([[36, 37], [Decimal(37), 38]], [Decimal("36.0")], 2) == [37, 38]
    assert one_each(None, [], 3) is None
    assert one_each([], [], 3) == [None, None, None]
