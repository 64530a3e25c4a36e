"""`hubmap plan` counts through a temporary state and prints contacts as it reads them back: its
output is the same text and JSON (and exit class) as printing the in-memory plan
(`hubmap.plan.plan_outcomes`) whole, the temporary state is gone afterwards, and whatever
versions, repeats and refunds arrive its values are the independent fold over each order's
latest version (`tests.acceptance.changes.expected`)."""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from hubmap.catalogs import load_catalogs
from hubmap.cli import main
from hubmap.evaluate import CompiledMapping
from hubmap.inputs import read_documents
from hubmap.mapping import load_mapping
from hubmap.plan import Plan, ValuesSeen, never_given_warning, plan_outcomes
from hubmap.uses import plan as planning
from tests.acceptance import changes, helpers

ROOT = Path(__file__).resolve().parents[2]
SHOPIFY = ROOT / "mappings" / "shopify-orders-contacts.yaml"
sys.path.insert(0, str(ROOT / "bench"))
from bench_plan import generate  # the benchmark's realistic Shopify orders


def _document(plan: Plan) -> str:
    """The JSON the whole in-memory plan gives, built as one dict (the reference)."""
    return json.dumps(
        {
            "contacts": [
                {
                    "email": c.contact,
                    "orders": c.orders,
                    "changes": {
                        n: {"before": ch.before, "after": ch.after} for n, ch in c.changes.items()
                    },
                }
                for c in plan.contacts
            ],
            "submissions": [
                {"email": o.contact, "order": o.order_id, "context": o.context}
                for o in plan.submissions
            ],
            "rejected": [
                {
                    "record": r.record,
                    "where": r.where,
                    "property": r.property_name,
                    "reason": r.reason,
                    "code": r.code,
                }
                for r in plan.rejected
            ],
            "skipped": [
                {"record": s.order_id or s.where, "reason": s.reason} for s in plan.skipped
            ],
            "records": plan.records,
            "orders": plan.orders.as_dict(),
            "refunds_waiting": plan.refunds_waiting,
            "warnings": plan.warnings,
            "unwritable": [{"contact": c, "reason": r} for c, r in plan.unwritable],
        },
        indent=2,
        ensure_ascii=False,
    )


def _in_memory(mapping: Path, source: Path) -> Plan:
    loaded = load_mapping(str(mapping))
    compiled = CompiledMapping(loaded, load_catalogs(loaded))
    seen = ValuesSeen()
    plan = plan_outcomes(compiled, seen.watch(compiled.outcomes(read_documents(str(source)))))
    plan.warnings = compiled.take_warnings() + [
        never_given_warning(name, "input record") for name in seen.never_given(compiled)
    ]
    return plan


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in records))
    return path


def _temporary_states() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("hubmap-plan-*")}


def test_the_streamed_json_and_text_are_the_whole_plans(tmp_path: Path) -> None:
    # 600 Shopify orders: repeats of customers, refunds, rejected (foreign currency) and skipped
    source = _write(tmp_path / "orders.ndjson", list(generate(600, 120)))
    reference = _in_memory(SHOPIFY, source)
    assert reference.rejected and reference.skipped and reference.orders.refunds
    before = _temporary_states()

    as_json = CliRunner().invoke(
        main, ["plan", str(SHOPIFY), "--input", str(source), "--format", "json"]
    )
    assert as_json.exit_code == 1  # records were rejected
    assert as_json.stdout == _document(reference) + "\n"

    as_text = CliRunner().invoke(main, ["plan", str(SHOPIFY), "--input", str(source)])
    assert as_text.exit_code == 1
    lines = as_text.stdout.splitlines()
    assert len(lines) > 600  # longer than one printed block: pieces are joined across blocks
    assert lines[-1].startswith(
        f"{reference.records} record(s): {len(reference.contacts)} contact(s), "
    )
    assert as_text.stdout.count(" order(s))\n") == len(reference.contacts)
    assert _temporary_states() == before  # the temporary state is deleted


def test_the_library_plan_is_the_in_memory_plan(tmp_path: Path) -> None:
    source = _write(tmp_path / "orders.ndjson", list(generate(300, 50, seed=3)))
    reference = _in_memory(SHOPIFY, source)
    got = planning.plan(str(SHOPIFY), str(source)).unwrap()
    assert got.contacts == reference.contacts
    assert (got.records, got.orders, got.refunds_waiting, got.unwritable) == (
        reference.records,
        reference.orders,
        reference.refunds_waiting,
        reference.unwritable,
    )
    assert got.rejected == reference.rejected and got.skipped == reference.skipped


def test_an_empty_input_plans_nothing_and_exits_clean(tmp_path: Path) -> None:
    source = _write(tmp_path / "none.ndjson", [])
    result = CliRunner().invoke(
        main, ["plan", str(SHOPIFY), "--input", str(source), "--format", "json"]
    )
    assert result.exit_code == 0
    assert result.stdout == _document(_in_memory(SHOPIFY, source)) + "\n"


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    orders=st.integers(1, 12),
    contacts_count=st.integers(1, 4),
    feed_seed=st.integers(0, 2**16),
)
def test_any_arrival_of_versions_and_refunds_plans_the_fold_of_the_latest(
    seed: int, orders: int, contacts_count: int, feed_seed: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="hubmap-plan-test-") as folder:
        mapping = changes.write_mapping(Path(folder))
        records = changes.every_record(changes.history(seed, orders, contacts_count))
        rng = random.Random(feed_seed)
        feed = rng.sample(records, len(records)) + rng.sample(records, rng.randint(0, len(records)))
        source = helpers.write_orders(Path(folder) / "feed.ndjson", feed)
        plan = planning.plan(str(mapping), str(source)).unwrap()
        got = {c.contact: changes.held(c.values) for c in plan.contacts}
        assert {e: v for e, v in got.items() if v} == changes.expected(feed)
        reference = _in_memory(mapping, source)
        assert plan.contacts == reference.contacts and plan.orders == reference.orders
