"""What a run holds in memory packed (`hubmap.uses.compact`) comes back exactly as it went in:
HubSpot records and prepared writes, before and after the dictionary is made, from several
threads; and `Held` holds values up to its byte budget, no further."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hubmap.ledger import ContactRow
from hubmap.uses.compact import Compact, Held
from hubmap.uses.contacts import _from_held_form, _held_form

# any text, lone surrogates included (a JSON escape, not UTF-8)
texts = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=30,
)
wire = st.dictionaries(st.from_regex(r"[a-z_0-9]{1,30}", fullmatch=True), texts, max_size=12)
records = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[0-9]{1,12}", fullmatch=True),
        "properties": st.dictionaries(
            st.from_regex(r"[a-z_]{1,30}", fullmatch=True), st.none() | texts, max_size=30
        ),
        "archived": st.booleans(),
    }
)


def same(a: Any, b: Any) -> bool:
    """Equal, of the same types (True is not 1, 1 is not 1.0) and with dicts in the same order:
    the oracle, apart from the JSON code under test."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def small_sample() -> Compact:
    compact = Compact()
    compact.SAMPLE_BYTES = 64  # the dictionary is made after a few values
    return compact


@given(st.lists(json_values, min_size=1, max_size=30))
def test_json_values_come_back_exactly_before_and_after_the_dictionary(values):
    compact = small_sample()
    packed = [compact.pack(value) for value in values]
    assert all(same(compact.unpack(blob), value) for blob, value in zip(packed, values))


@given(st.lists(records, min_size=1, max_size=40))
def test_records_come_back_exactly(found):
    compact = small_sample()
    packed = [compact.pack(record) for record in found]
    assert all(same(compact.unpack(blob), record) for blob, record in zip(packed, found))


@given(
    st.lists(
        st.tuples(
            st.none() | st.from_regex(r"[0-9]{1,12}", fullmatch=True),
            wire,
            st.none() | texts,
            st.none() | wire,
        ),
        min_size=1,
        max_size=30,
    )
)
def test_a_prepared_write_held_is_what_sending_needs_of_it(prepared):
    compact = small_sample()
    for number, (hubspot_id, writing, fence_writing, sending) in enumerate(prepared):
        row = ContactRow(
            f"c{number}@example.com",
            baseline={"x": "1"},
            hubspot_id=hubspot_id,
            writing=writing,
            fence_writing=fence_writing,
            sending=sending,
            counted="3",
            written={"y": "2"},
        )
        back = _from_held_form(row.contact, compact.unpack(compact.pack(_held_form(row))))
        for name in ("contact", "hubspot_id", "writing", "fence_writing", "sending"):
            assert same(getattr(back, name), getattr(row, name)), name


@settings(max_examples=30)
@given(st.lists(records, min_size=20, max_size=80))
def test_packing_from_several_threads_while_the_dictionary_is_made(found):
    compact = small_sample()
    with ThreadPoolExecutor(max_workers=4) as pool:
        packed = list(pool.map(compact.pack, found))
    with ThreadPoolExecutor(max_workers=4) as pool:
        back = list(pool.map(compact.unpack, packed))
    assert all(same(b, record) for b, record in zip(back, found))


operations = st.lists(
    st.tuples(st.sampled_from(["put", "pop", "discard"]), st.integers(0, 9), json_values),
    max_size=60,
)


@given(operations, st.integers(0, 2_000))
def test_held_keeps_values_within_its_budget(steps, budget):
    compact = small_sample()
    held = Held(compact, budget)
    model: dict[str, bytes] = {}  # key -> packed value held

    def memory() -> int:
        return sum(len(b) + Held.ENTRY_BYTES for b in model.values())

    for action, number, value in steps:
        key = f"k{number}"
        if action == "put":
            blob = compact.pack([value])  # held values are never None
            # a key held again is replaced only when both fit at once
            fits = memory() + len(blob) + Held.ENTRY_BYTES <= budget
            assert held.put(key, blob) == fits
            if fits:
                model[key] = blob
        elif action == "pop":
            got = held.pop(key)
            want = model.pop(key, None)
            assert (got is None) if want is None else same(got, compact.unpack(want))
        else:
            held.discard(key)
            model.pop(key, None)
        assert held.bytes == memory() <= budget
        assert len(held) == len(model) and all(k in held for k in model)
        assert held.full() == (held.bytes >= budget)
