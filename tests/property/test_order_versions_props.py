"""Property: whatever versions, repeats, stale copies, withdrawals and refunds arrive, in whatever
order and batching, and wherever runs die (at a HubSpot call, before or after HubSpot handled it,
or while reading), once everything was delivered HubSpot holds exactly the independent fold over
each order's latest version (`tests.acceptance.changes.expected`), and the state's cached folds
equal fresh folds.  Over real HTTP against the local stand-in (reset between examples).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hubmap.evaluate import CompiledMapping
from hubmap.fold import ContactFolder
from hubmap.mapping import load_mapping
from hubmap.state import StateStore
from hubmap.sync import cutoffs_of, parts_of, wire_values
from hubmap.uses.context import scope_of
from tests.acceptance import changes, helpers
from tests.property.crashes import CRASH_POINTS


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**16),
    orders=st.integers(1, 10),
    contacts_count=st.integers(1, 4),
    runs=st.lists(st.tuples(st.integers(0, 2**16), CRASH_POINTS), min_size=1, max_size=4),
    count_chunk=st.integers(1, 8),
    batch=st.integers(1, 4),
    workers=st.integers(1, 3),
)
# Found by this test: a write whose answer was lost landed, the next run staged another over it
# and died before sending; the state must know the landed fence as its own (it forgot it, and
# the last run refused the contact as written by someone else).
@example(
    seed=0,
    orders=2,
    contacts_count=2,
    runs=[(1, ("call", 9, True)), (0, ("call", 5, False))],
    count_chunk=1,
    batch=1,
    workers=1,
)
def test_any_arrival_of_versions_and_refunds_ends_as_the_fold_of_the_latest(
    sandbox,
    backend: str,
    make_state,
    seed: int,
    orders: int,
    contacts_count: int,
    runs: list[tuple[int, object]],
    count_chunk: int,
    batch: int,
    workers: int,
) -> None:
    sandbox.reset()
    folder = Path(tempfile.mkdtemp(prefix="hubmap-versions-"))
    try:
        mapping = changes.write_mapping(folder)
        records = changes.every_record(changes.history(seed, orders, contacts_count))
        state = make_state(backend)
        options = {"count_chunk": count_chunk, "batch": batch}
        delivered: list[dict[str, object]] = []
        for number, (run_seed, crash) in enumerate(runs):
            rng = random.Random(run_seed)
            feed = rng.sample(records, rng.randint(1, len(records))) + rng.sample(
                records, rng.randint(0, len(records))
            )  # a part, some twice, in any order
            delivered += feed
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
        # What a crashed run did not take in comes again (a shop's webhooks are retried).
        final = helpers.run(
            mapping,
            helpers.write_orders(folder / "again.ndjson", delivered),
            sandbox,
            state,
            workers=workers,
            options=options,
        )
        assert final.ok and final.drift == 0

        want = changes.expected(delivered)
        got = {email: changes.held(values) for email, values in helpers.contacts(sandbox).items()}
        assert {e: v for e, v in got.items() if v} == want
        _assert_cached_folds_are_fresh_folds(mapping, sandbox, state)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _assert_cached_folds_are_fresh_folds(mapping_path: Path, sandbox, state_path: Path) -> None:
    mapping = load_mapping(str(mapping_path))
    folder = ContactFolder(CompiledMapping(mapping))
    scope = scope_of(mapping, str(helpers.PORTAL_ID))
    store = StateStore(state_path)
    try:
        assert store.count_dirty(scope) == 0
        keys = [
            r[0] for r in store.db.execute("SELECT contact FROM contacts WHERE scope=?", (scope,))
        ]
        rows = store.load_contacts(scope, keys)
        orders = store.orders_of(scope, keys)
        refunds = store.refunds_for(scope, [o.order_id for m in orders.values() for o in m])
        for key, row in rows.items():
            mine = sorted(orders.get(key, []), key=lambda o: o.seq)
            fresh = folder.fold(parts_of(mine, refunds, folder), cutoffs_of(row, {}))
            cached = wire_values(folder, folder.load(row.acc), row.baseline or {})
            assert cached == wire_values(folder, fresh, row.baseline or {}), key
    finally:
        store.close()
