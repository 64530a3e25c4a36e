"""The state's JSON values are stored compressed (`hubmap.state.Packer`: deflate with a preset
dictionary per scope and kind, made from the first values) and read back as they were stored;
values an older hubmap stored as plain JSON text are read as they are; a dictionary made in a
transaction that rolls back is never named by a value; another connection reads values packed
with a dictionary made after it opened the file."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubmap.ledger import ContactRow, StoredOrder
from hubmap.state import Packer, StateStore

SCOPE = "portal 1|shop"

# JSON-like values as the state holds them: texts, integers, Decimals (read back from JSON
# numbers with a fraction), None, lists and objects of them.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.text(max_size=30)
    | st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9
    )
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)


def _as_json_reads_it(value: Any) -> Any:
    """The oracle: what writing the value as JSON and reading it back gives (numbers with a
    fraction as Decimals)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Decimal):
            return int(v) if v == v.to_integral_value() else float(v)
        return str(v)

    return json.loads(json.dumps(value, default=plain), parse_float=Decimal)


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    opened = StateStore(tmp_path / "state.db")
    yield opened
    opened.close()


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(st.dictionaries(st.text(max_size=8), values, max_size=6), max_size=40))
def test_every_value_reads_back_as_stored_before_and_after_its_dictionary(batch: list) -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(
        "CREATE TABLE dictionaries (id INTEGER PRIMARY KEY, scope TEXT, kind TEXT, data BLOB)"
    )
    packer = Packer(db)
    packed = [packer.pack(SCOPE, "acc", value) for value in batch]
    # a value packed while the sample was gathered names no dictionary; later ones may
    assert [packer.unpack(p) for p in packed] == [_as_json_reads_it(v) for v in batch]
    fresh = Packer(db)  # another connection's view: the dictionaries come from the table
    assert [fresh.unpack(p) for p in packed] == [_as_json_reads_it(v) for v in batch]


def _acc(n: int) -> dict[str, Any]:
    return {
        f"property_{k}": {
            "part": [
                f"2024-01-0{k % 9 + 1}T10:00:00+00:00",
                str(1000 + n),
                {"decimal": f"{n}.{k:02d}"},
            ],
            "rule": "overwrite",
            "v": 1,
        }
        for k in range(20)
    }


def test_values_shrink_once_a_dictionary_is_made(store: StateStore) -> None:
    rows = [ContactRow(f"c{n}@example.com", acc=_acc(n)) for n in range(200)]
    store.save_folded(SCOPE, rows)
    sizes = [len(blob) for (blob,) in store.db.execute("SELECT acc FROM contacts ORDER BY rowid")]
    plain = len(json.dumps(_acc(199), separators=(",", ":")))
    assert store.db.execute("SELECT COUNT(*) FROM dictionaries").fetchone()[0] == 1
    assert sizes[-1] < plain / 8  # these repeat the dictionary almost whole
    loaded = store.load_contacts(SCOPE, [r.contact for r in rows])
    assert all(loaded[r.contact].acc == _as_json_reads_it(r.acc) for r in rows)


def test_a_dictionary_made_in_a_transaction_that_rolls_back_is_never_named(
    tmp_path: Path, store: StateStore
) -> None:
    rows = [ContactRow(f"c{n}@example.com", acc=_acc(n)) for n in range(50)]
    with pytest.raises(RuntimeError), store.transaction():
        store.save_folded(SCOPE, rows)
        raise RuntimeError("the run died")
    assert store.db.execute("SELECT COUNT(*) FROM dictionaries").fetchone()[0] == 0
    store.save_folded(SCOPE, rows)  # made again, committed this time
    other = StateStore(tmp_path / "state.db")
    try:
        loaded = other.load_contacts(SCOPE, [r.contact for r in rows])
        assert all(loaded[r.contact].acc == _as_json_reads_it(r.acc) for r in rows)
    finally:
        other.close()


def test_another_connection_reads_values_packed_with_a_dictionary_made_after_it_opened(
    tmp_path: Path, store: StateStore
) -> None:
    reader = StateStore(tmp_path / "state.db")  # opened before any dictionary exists
    try:
        rows = [ContactRow(f"c{n}@example.com", acc=_acc(n)) for n in range(50)]
        store.save_folded(SCOPE, rows)
        loaded = reader.load_contacts(SCOPE, [r.contact for r in rows])
        assert all(loaded[r.contact].acc == _as_json_reads_it(r.acc) for r in rows)
    finally:
        reader.close()


def test_plain_json_values_of_an_older_state_are_read_and_rewritten_compressed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    StateStore(path).close()
    db = sqlite3.connect(path)  # what hubmap wrote before values were compressed
    acc = {"total": {"part": [1, "12.50"], "rule": "sum", "v": 1}}
    db.execute(
        "INSERT INTO contacts (scope, contact, acc, baseline, written, dirty) VALUES (?,?,?,?,?,0)",
        (
            SCOPE,
            "a@example.com",
            json.dumps(acc),
            json.dumps({"total": None}),
            json.dumps({"total": "1"}),
        ),
    )
    db.execute(
        "INSERT INTO orders (scope, order_id, contact, status, contribution, seq) "
        "VALUES (?,?,?,?,?,1)",
        (SCOPE, "1", "a@example.com", "counted", json.dumps({"total": {"decimal": "12.50"}})),
    )
    db.execute("UPDATE meta SET value='2' WHERE key='schema'")
    db.commit()
    db.close()
    store = StateStore(path)
    try:
        row = store.load_contacts(SCOPE, ["a@example.com"])["a@example.com"]
        assert (row.acc, row.baseline, row.written) == (
            _as_json_reads_it(acc),
            {"total": None},
            {"total": "1"},
        )
        (order,) = store.orders_of(SCOPE, ["a@example.com"])["a@example.com"]
        assert order.contribution == {"total": {"decimal": "12.50"}}
        store.save_folded(SCOPE, [row])
        (kind,) = store.db.execute("SELECT typeof(acc) FROM contacts").fetchone()
        assert kind == "blob"
        assert store.load_contacts(SCOPE, ["a@example.com"])["a@example.com"].acc == row.acc
    finally:
        store.close()


def test_a_property_started_anew_is_taken_out_of_compressed_values(store: StateStore) -> None:
    rows = [ContactRow(f"c{n}@example.com", acc=_acc(n)) for n in range(30)]
    store.save_folded(SCOPE, rows)
    store.save_written(
        SCOPE, [ContactRow(r.contact, written={"property_1": "x", "kept": "y"}) for r in rows]
    )
    store.put_orders(
        SCOPE, 1, [StoredOrder("o1", "counted", "c1@example.com", contribution={"property_1": 1})]
    )
    store.save_fingerprint(SCOPE, {"identity": "i"}, started=["property_1"])
    loaded = store.load_contacts(SCOPE, [r.contact for r in rows])
    for row in rows:
        assert "property_1" not in loaded[row.contact].acc
        assert "property_2" in loaded[row.contact].acc
        assert loaded[row.contact].written == {"kept": "y"}
