"""Properties of `hubmap.sync.decide(lazy=True)`, which `hubmap plan` uses: leaving the digest of
an order seen for the first time unworked changes no decision.  For any arrival of versions,
repeats, stale copies, withdrawals and refunds, split into chunks against what earlier chunks
stored, the lazy decisions are the eager ones (what a run decides): the same tally, the same
versions to store (status, contact, version), the same fast and refolded contacts; a digest
the lazy decision did work out is the eager one.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from hubmap import sync
from hubmap.evaluate import OrderValues
from hubmap.inputs import Document
from hubmap.ledger import COUNTED
from tests.acceptance import changes
from tests.property.test_ledger_props import VERSIONED, histories


def _shape(decision: sync.Decision) -> tuple:
    return (
        decision.tally.as_dict(),
        sorted(decision.versions.items()),
        sorted((o.order_id, o.status, o.contact, o.version, o.first_seq) for o in decision.orders),
        sorted((c, sorted(ids)) for c, ids in decision.fast.items()),
        sorted(decision.refold),
    )


@settings(max_examples=150, deadline=None)
@given(history=histories, seed=st.integers(0, 2**20), chunk=st.integers(1, 9))
def test_lazy_decisions_are_the_eager_ones(history, seed: int, chunk: int) -> None:
    records = changes.every_record(history)
    rng = random.Random(seed)
    feed = rng.sample(records, rng.randint(1, len(records))) + rng.sample(
        records, rng.randint(0, len(records))
    )
    items = [
        i
        for i in VERSIONED.outcomes(Document(r, f"#{n}") for n, r in enumerate(feed))
        if type(i).__name__ != "Rejected"
    ]
    stored: dict = {}  # what the eager decisions stored, as a state holds it
    refunds: dict = {}
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        ids = {i.order_id for i in part if i.order_id} | {r.order_id for r in refunds.values()}
        known = {k: stored[k] for k in ids if k in stored}
        held = {
            r.refund_id: refunds[r.refund_id]
            for r in part
            if hasattr(r, "refund_id") and r.refund_id in refunds
        }
        eager = sync.decide(part, known, held, True)
        # the lazy caller's stored orders carry their digest (worked out when their id came
        # again) but no contribution
        lazy = sync.decide(
            part,
            {k: replace(o, contribution=None) for k, o in known.items()},
            held,
            True,
            lazy=True,
        )
        assert _shape(lazy) == _shape(eager)
        eager_digests = {o.order_id: o.digest for o in eager.orders}
        for order in lazy.orders:
            if order.digest is not None:
                assert order.digest == eager_digests[order.order_id]
            elif order.status == COUNTED:  # first seen here, never compared
                record = lazy.records[order.order_id]
                assert isinstance(record, OrderValues)
                assert sync.order_digest(record) == eager_digests[order.order_id]
        for order in eager.orders:
            stored[order.order_id] = order
        for order_id, version in eager.versions.items():
            stored[order_id] = replace(stored[order_id], version=version)
        for refund in eager.refunds:
            refunds[refund.refund_id] = refund
