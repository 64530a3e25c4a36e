"""Merge semantics as data: tests/cases/fold/*.yaml hold one property and cases of a contact's
orders (each with its time and value) and the value HubSpot ends up with.  Every case is folded
in many arrival orders and batchings - all at once, one by one, reversed, random splits with a
fixed seed - the way a run folds (`ContactFolder.add` on accumulators stored between chunks),
by joining partial folds (`ContactFolder.combine`), and through `plan_outcomes` (what `hubmap
plan` and `hubmap test` use); every one must give the expected value.

A case file:

    property: {type: number, merge: sum}   # the property `p`, read from each order's `value`
    cases:
      - name: ...
        property: {...}                    # optional: merged over the file's property
        baseline: "5"                      # optional: HubSpot's value before
        orders:
          - {id: "1", at: "2024-01-01T10:00:00Z", value: "10"}   # no value: the order has none
        expect: "15"                       # HubSpot text; "" is no value (cleared)
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from hubmap import sync
from hubmap.evaluate import CompiledMapping, OrderValues
from hubmap.fold import Accs, ContactFolder, OrderPart
from hubmap.inputs import Document
from hubmap.mapping import check_document
from hubmap.mapping.loader import load_text
from hubmap.plan import plan_outcomes
from tests.conftest import CASES

CONTACT = "a@example.com"
SEED = 20240101
ALL_PERMUTATIONS_UP_TO = 5  # orders; more are sampled
SAMPLED_PERMUTATIONS = 40
RANDOM_SPLITS = 3

FILES = sorted((CASES / "fold").glob("*.yaml"))


def load_cases() -> list[Any]:
    params = []
    for path in FILES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in data["cases"]:
            prop = {**data["property"], **(case.get("property") or {}), "from": "value"}
            params.append(pytest.param(prop, case, id=f"{path.stem}:{case['name']}"))
    return params


def compiled_for(prop: dict[str, Any]) -> CompiledMapping:
    mapping = {
        "version": 1,
        "name": "fold-case",
        "records": {"id": "id", "time": "at", "contact": "email"},
        "target": {"kind": "contacts"},
        "properties": {"p": prop},
    }
    checked = check_document(load_text(yaml.safe_dump(mapping), "fold-case"), environ={})
    assert checked.ok, [str(p) for p in checked.problems if p.is_error]
    return CompiledMapping(checked.mapping)  # type: ignore[arg-type]


def records_of(case: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**order, "email": CONTACT} for order in case["orders"]]


def arrival_orders(n: int) -> Iterator[tuple[int, ...]]:
    if n <= ALL_PERMUTATIONS_UP_TO:
        yield from itertools.permutations(range(n))
        return
    rng = random.Random(SEED)
    yield tuple(range(n))
    yield tuple(reversed(range(n)))
    for _ in range(SAMPLED_PERMUTATIONS):
        yield tuple(rng.sample(range(n), n))


def batchings(parts: list[OrderPart], rng: random.Random) -> Iterator[list[list[OrderPart]]]:
    yield [parts]  # all at once
    yield [[part] for part in parts]  # one by one
    for _ in range(RANDOM_SPLITS):
        cuts = sorted(rng.sample(range(1, len(parts)), rng.randint(0, len(parts) - 1)))
        bounds = [0, *cuts, len(parts)]
        yield [parts[a:b] for a, b in itertools.pairwise(bounds)]


def stored(folder: ContactFolder, accs: Accs) -> Accs:
    """The accumulators as a state keeps them between chunks: dumped to JSON and read back."""
    return folder.load(json.loads(json.dumps(folder.dump(accs))))


def folded_as_a_run(folder: ContactFolder, batches: list[list[OrderPart]]) -> Accs:
    accs: Accs = {}
    for batch in batches:
        accs = stored(folder, accs)
        for part in batch:
            folder.add(accs, part)
    return stored(folder, accs)


def folded_apart_and_joined(folder: ContactFolder, batches: list[list[OrderPart]]) -> Accs:
    joined: Accs = {}
    for batch in batches:
        joined = folder.combine(joined, stored(folder, folder.fold(batch)))
    return joined


@pytest.mark.parametrize(("prop", "case"), load_cases())
def test_fold_case(prop: dict[str, Any], case: dict[str, Any]) -> None:
    compiled = compiled_for(prop)
    folder = ContactFolder(compiled)
    baseline = {"p": case["baseline"]} if "baseline" in case else {}
    records = records_of(case)
    outcomes = [compiled.evaluate(record, f"order {i}") for i, record in enumerate(records)]
    assert all(isinstance(o, OrderValues) for o in outcomes), outcomes
    parts = [OrderPart(o.order_id, o.time, o.values) for o in outcomes]  # type: ignore[union-attr]
    rng = random.Random(SEED)
    expected = case["expect"]
    for arrival in arrival_orders(len(parts)):
        ordered = [parts[i] for i in arrival]
        for batches in batchings(ordered, rng):
            for fold in (folded_as_a_run, folded_apart_and_joined):
                got = sync.wire_values(folder, fold(folder, batches), baseline)["p"]
                assert got == expected, (fold.__name__, [[p.order_id for p in b] for b in batches])
        documents = [Document(records[i], f"order {i}") for i in arrival]
        plan = plan_outcomes(compiled, compiled.outcomes(documents), default_current=baseline)
        (contact,) = plan.contacts
        assert contact.values["p"] == expected, ("plan", [records[i]["id"] for i in arrival])


def test_the_case_files_are_there_and_hold_enough_cases() -> None:
    assert len(load_cases()) >= 20
