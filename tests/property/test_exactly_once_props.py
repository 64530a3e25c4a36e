"""Property: whatever the orders, their repeats and order, the chunk and batch sizes, and wherever
runs crash (at a HubSpot call, before or after HubSpot handled it, or while reading the input),
a final run leaves HubSpot and the state exactly as one clean fold of the distinct orders.
Over real HTTP against the local stand-in (reset between examples).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubmap.evaluate import CompiledMapping
from hubmap.fold import ContactFolder
from hubmap.inputs import Document
from hubmap.mapping import load_mapping
from hubmap.plan import plan_outcomes
from hubmap.sandbox import RunningSandbox
from hubmap.state import StateStore
from hubmap.sync import wire_values
from hubmap.uses.context import scope_of
from tests.acceptance import helpers
from tests.property.crashes import CRASH_POINTS


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ids=st.lists(st.integers(1, 60), min_size=1, max_size=30, unique=True),
    contacts_count=st.integers(1, 6),
    runs=st.lists(st.tuples(st.integers(0, 2**16), CRASH_POINTS), min_size=1, max_size=4),
    count_chunk=st.integers(1, 8),
    batch=st.integers(1, 5),
    workers=st.integers(1, 3),
)
def test_crashes_anywhere_then_a_final_run_equal_one_clean_fold(
    sandbox,
    backend: str,
    make_state,
    ids: list[int],
    contacts_count: int,
    runs: list[tuple[int, object]],
    count_chunk: int,
    batch: int,
    workers: int,
) -> None:
    sandbox.reset()
    folder = Path(tempfile.mkdtemp(prefix="hubmap-exactly-once-"))
    try:
        mapping = helpers.write_mapping(folder)
        items = helpers.orders(ids, contacts_count=contacts_count)
        state = make_state(backend)
        options = {"count_chunk": count_chunk, "batch": batch}
        for number, (seed, crash) in enumerate(runs):
            rng = random.Random(seed)
            feed = rng.sample(items, rng.randint(1, len(items))) + rng.sample(
                items, rng.randint(0, len(items))
            )  # a part of the orders, some twice, any order
            source = helpers.write_orders(folder / f"run{number}.ndjson", feed)
            if crash is None:
                helpers.run(mapping, source, sandbox, state, workers=workers, options=options)
            else:
                kind, point, after_send = crash  # type: ignore[misc]
                helpers.run_until_crash(
                    mapping,
                    sandbox,
                    state,
                    source,
                    workers=workers,
                    **options,
                    **(
                        {"call": point, "after_send": after_send}
                        if kind == "call"
                        else {"record": point}
                    ),
                )
        final = helpers.run(
            mapping,
            helpers.write_orders(folder / "all.ndjson", items),
            sandbox,
            state,
            workers=workers,
            options=options,
        )
        assert final.ok and final.drift == 0

        helpers.assert_hubspot_holds(sandbox, items)
        _assert_state_is_one_clean_fold(mapping, sandbox, state, items)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _assert_state_is_one_clean_fold(
    mapping_path: Path, sandbox: RunningSandbox, state_path: Path, items: list[dict[str, Any]]
) -> None:
    mapping = load_mapping(str(mapping_path))
    compiled = CompiledMapping(mapping)
    clean = plan_outcomes(compiled, compiled.outcomes(iter([Document(i, "clean") for i in items])))
    folder = ContactFolder(compiled)
    scope = scope_of(mapping, str(helpers.PORTAL_ID))
    store = StateStore(state_path)
    try:
        assert store.count_orders(scope) == len(items)
        assert store.count_dirty(scope) == 0
        rows = store.load_contacts(scope, [c.contact for c in clean.contacts])
        for contact in clean.contacts:
            row = rows[contact.contact]
            stored = wire_values(folder, folder.load(row.acc), row.baseline or {})
            assert stored == contact.values
            assert row.written == contact.values
    finally:
        store.close()
