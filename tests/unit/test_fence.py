"""hubmap.fence: the value a contact carries, what it says, and when a run may add to a contact."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hubmap.fence import (
    COMPRESSED,
    FOREIGN,
    FRESH,
    OK,
    Counted,
    Fence,
    definition,
    fence_of,
    order_mark,
    owned_properties,
    property_name,
    read,
    verdict,
)
from hubmap.types import MAX_VALUE_LENGTH

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
fences = st.builds(
    Fence,
    st.text("0123456789abcdef", min_size=16, max_size=16),
    st.integers(0, 10**6),
    st.text("0123456789abcdef", min_size=16, max_size=16),
    st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True), texts, max_size=5),
)


@given(fences)
def test_a_fence_reads_back_as_written(fence: Fence) -> None:
    text = fence.text()
    assert len(text) <= MAX_VALUE_LENGTH
    assert read(text) == fence


def test_a_fence_too_long_for_one_value_is_stored_compressed() -> None:
    items = ";".join(f"SKU-{n:06d}" for n in range(9_000))  # ~100,000 characters
    fence = Fence("a" * 16, 3, "b" * 16, {"skus_bought": items})
    text = fence.text()
    assert text.startswith(COMPRESSED) and len(text) <= MAX_VALUE_LENGTH
    assert read(text) == fence


def test_what_is_not_a_fence_reads_as_none() -> None:
    for text in (None, "", "hello", "{}", '{"v": 2, "l": "x", "n": 1, "h": "y"}', "z1:???"):
        assert read(text) is None


@given(st.lists(st.tuples(texts, texts), unique=True, max_size=12), st.randoms())
def test_what_was_counted_does_not_depend_on_the_order_orders_came_in(orders, rng) -> None:
    def count(items: list[tuple[str, str]]) -> Counted:
        counted = Counted()
        for order_id, digest in items:
            counted = counted.add(order_mark(order_id, None, digest))
        return counted

    shuffled = list(orders)
    rng.shuffle(shuffled)
    assert count(orders) == count(shuffled)
    assert Counted.parse(count(orders).text()) == count(orders)
    if orders:  # another content of one order is another digest
        changed = [(orders[0][0], orders[0][1] + "x"), *orders[1:]]
        assert count(changed) != count(orders)


def test_the_baseline_keeps_values_only_and_lists_no_longer_than_they_can_show() -> None:
    fence = fence_of(
        "l" * 16,
        Counted(2, 5),
        {"total": "10.50", "skus": "A;B;C;D", "none": None, "empty": ""},
        {"skus": 2},
    )
    assert fence.baseline == {"total": "10.50", "skus": "A;B"}
    assert (fence.orders, fence.digest) == (2, f"{5:016x}")


def test_a_fence_property_names_its_mapping_and_the_properties_it_covers() -> None:
    name = property_name("Shopify Orders → Contacts (EU)")
    assert name == "hubmap_fence_shopify_orders_contacts_eu"
    body = definition(name, "shopify", ["a_total", "b_count"], "ecommerce")
    assert (body["type"], body["fieldType"], body["groupName"]) == (
        "string",
        "textarea",
        "ecommerce",
    )
    assert owned_properties(body) == {"a_total", "b_count"}
    assert len(property_name("x" * 300)) == 100


OURS, OTHER = "hubmap_fence_shop", "hubmap_fence_old_name"
MINE = Fence("mine" * 4, 2, "d" * 16).text()
THEIRS = Fence("them" * 4, 5, "e" * 16).text()


def test_when_a_run_may_add_to_a_contact() -> None:
    # this state wrote the fence HubSpot holds (or was writing it when an answer was lost)
    assert verdict(OURS, {OURS: MINE}, MINE, None, []).kind == OK
    assert verdict(OURS, {OURS: MINE}, "older", MINE, []).kind == OK
    # nobody wrote the contact, or only a write that may never have arrived
    assert verdict(OURS, {}, None, None, [OTHER]).kind == FRESH
    assert verdict(OURS, {OURS: None}, None, MINE, []).kind == FRESH
    # another state, an older copy of this one, a fence gone, this mapping under another name
    assert verdict(OURS, {OURS: THEIRS}, None, None, []).kind == FOREIGN
    assert verdict(OURS, {OURS: THEIRS}, MINE, None, []).kind == FOREIGN
    assert verdict(OURS, {OURS: ""}, MINE, None, []).kind == FOREIGN
    found = verdict(OURS, {OTHER: THEIRS}, None, None, [OTHER])
    assert (found.kind, found.property, found.fence) == (FOREIGN, OTHER, read(THEIRS))
    assert "them" * 4 in verdict(OURS, {OURS: THEIRS}, None, None, []).reason
