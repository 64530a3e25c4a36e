"""The stand-in's store keeps property and group definitions in memory between changes: every
change, and a transaction rolled back after reading a change it undid, shows at the next read."""

from __future__ import annotations

import pytest

from hubmap.sandbox.store import Store


def definition(name: str, label: str = "A label") -> dict:
    return {
        "name": name,
        "label": label,
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
    }


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "sandbox.db")
    yield opened
    opened.close()


def names(store: Store) -> set[str]:
    return {d["name"] for d in store.list_properties()}


def test_created_changed_and_deleted_properties_show_at_the_next_read(store):
    assert "favourite_colour" not in names(store)
    store.put_property(definition("favourite_colour"))
    assert "favourite_colour" in names(store)
    store.put_property(definition("favourite_colour", "Colour"))
    assert {d["name"]: d["label"] for d in store.list_properties()}["favourite_colour"] == "Colour"
    store.delete_property("favourite_colour")
    assert "favourite_colour" not in names(store)


def test_a_rolled_back_change_is_not_kept(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.put_property(definition("undone"))
        assert "undone" in names(store)  # read inside the transaction that made it
        raise RuntimeError("roll back")
    assert "undone" not in names(store)


def test_groups_and_reset(store):
    store.put_group({"name": "shop", "label": "Shop", "displayOrder": 1})
    assert "shop" in {g["name"] for g in store.list_groups()}
    store.delete_group("shop")
    assert "shop" not in {g["name"] for g in store.list_groups()}
    store.put_property(definition("gone_after_reset"))
    store.reset()
    assert "gone_after_reset" not in names(store)


def test_a_caller_changing_its_copy_changes_nothing_stored(store):
    first = store.list_properties()
    first[0]["label"] = "changed by a caller"
    assert store.list_properties()[0]["label"] != "changed by a caller"
