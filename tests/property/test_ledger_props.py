"""Properties of the sync decisions without HTTP (`hubmap.sync.MemoryLedger`, which `hubmap plan`
and `hubmap test` use and which makes the decisions a run makes):

- with versions: any arrival of versions, repeats, stale copies, withdrawals and refunds, in any
  chunking, gives the independent fold over each order's latest version;
- without versions: the later arrival of an order wins;
- the fast path (new orders added to a stored fold) gives what folding the orders afresh gives.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hubmap.evaluate import CompiledMapping
from hubmap.fold import ContactFolder
from hubmap.inputs import Document
from hubmap.mapping import load_mapping
from hubmap.sync import MemoryLedger, parts_of, wire_values
from tests.acceptance import changes


def _compiled(versioned: bool) -> CompiledMapping:
    text = changes.MAPPING.format(name="ledger", cap=changes.CAP)
    if not versioned:
        text = text.replace("  version: v\n", "")
    path = Path(tempfile.mkdtemp(prefix="hubmap-ledger-")) / "ledger.yaml"
    path.write_text(text, encoding="utf-8")
    return CompiledMapping(load_mapping(path))


VERSIONED, UNVERSIONED = _compiled(True), _compiled(False)


def _ledger(compiled: CompiledMapping, feed: list[dict], chunk: int) -> MemoryLedger:
    ledger = MemoryLedger(ContactFolder(compiled), compiled.mapping.records.version is not None)
    items = list(compiled.outcomes(Document(r, f"#{i}") for i, r in enumerate(feed)))
    assert not [i for i in items if type(i).__name__ == "Rejected"]
    for start in range(0, len(items), chunk):
        ledger.take(items[start : start + chunk])
    return ledger


def _held(ledger: MemoryLedger) -> dict[str, dict]:
    folder = ledger.folder
    got = {c: changes.held(wire_values(folder, ledger.accs[c], {})) for c in ledger.contacts()}
    return {c: v for c, v in got.items() if v}


histories = st.builds(changes.history, st.integers(0, 2**20), st.integers(1, 12), st.integers(1, 4))


@settings(max_examples=200, deadline=None)
@given(history=histories, seed=st.integers(0, 2**20), chunk=st.integers(1, 9))
def test_any_arrival_in_any_chunking_is_the_fold_of_the_latest_versions(
    history, seed: int, chunk: int
) -> None:
    records = changes.every_record(history)
    rng = random.Random(seed)
    feed = rng.sample(records, rng.randint(1, len(records))) + rng.sample(
        records, rng.randint(0, len(records))
    )
    ledger = _ledger(VERSIONED, feed, chunk)
    assert _held(ledger) == changes.expected(feed)
    _assert_fast_path_is_a_fresh_fold(ledger)


@settings(max_examples=100, deadline=None)
@given(history=histories, seed=st.integers(0, 2**20), chunk=st.integers(1, 9))
def test_without_versions_the_later_arrival_wins(history, seed: int, chunk: int) -> None:
    records = [r for r in changes.every_record(history) if "refund_of" not in r]
    rng = random.Random(seed)
    feed = [rng.choice(records) for _ in range(rng.randint(1, 2 * len(records)))]
    last_arrival: dict[int, dict] = {}
    for record in feed:
        last_arrival[record["id"]] = record
    # the oracle's "highest version" is the last arrival once versions follow arrival order
    renumbered = [dict(r, v=n) for n, r in enumerate(last_arrival.values())]
    # a refund counts once by its id, whichever copy of its order brought it
    refunds = [
        {"rid": i["rid"], "refund_of": r["id"], "amount": i["amount"]}
        for r in feed
        for i in r["refunds"]
    ]
    ledger = _ledger(UNVERSIONED, feed, chunk)
    assert _held(ledger) == changes.expected(renumbered + refunds)


def _assert_fast_path_is_a_fresh_fold(ledger: MemoryLedger) -> None:
    folder = ledger.folder
    for contact in ledger.contacts():
        mine = sorted(
            (
                ledger._with_contribution(ledger.orders[i])
                for i in ledger.by_contact.get(contact, ())
            ),
            key=lambda o: o.seq,
        )
        fresh = folder.fold(parts_of(mine, ledger._refunds_for([o.order_id for o in mine]), folder))
        assert wire_values(folder, ledger.accs[contact], {}) == wire_values(folder, fresh, {})
