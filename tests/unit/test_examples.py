"""`hubmap test`'s case checks: a rejected record without an id is named by its position in
the case's input, and a wrong count names every count the case gave."""

from __future__ import annotations

from pathlib import Path

from hubmap.examples import run_examples
from hubmap.mapping import load_mapping

MAPPING = """\
version: 1
name: cases
records:
  id: id
  time: at
  contact: email
  require:
    - that: "amount"
      reason: no amount
target: {{kind: contacts}}
properties:
  total: {{type: number, from: amount, merge: sum}}
examples:
  - name: the case
    input:
      - {{id: 1, email: a@example.com, at: "2024-01-01", amount: "5"}}
      - {{email: a@example.com, at: "2024-01-02"}}
      - {{id: 1, email: a@example.com, at: "2024-01-01", amount: "5"}}
    expect_rejected: [{rejected}]
    expect_orders: {orders}
"""


def case(tmp_path: Path, rejected: str, orders: str = "{new: 1}"):  # type: ignore[no-untyped-def]
    path = tmp_path / "m.yaml"
    path.write_text(MAPPING.format(rejected=rejected, orders=orders), encoding="utf-8")
    (result,) = run_examples(load_mapping(path))
    return result


def test_a_record_without_an_id_is_named_by_its_position_from_0(tmp_path: Path) -> None:
    assert case(tmp_path, "{record: 1, reason_contains: no amount}").passed
    assert case(tmp_path, "{record: '1', reason_contains: no amount}").passed
    wrong = case(tmp_path, "{record: 0, reason_contains: no amount}")
    assert not wrong.passed
    assert any(
        "expected record 0 to be rejected" in e and "the record at position 1 (no id)" in e
        for e in wrong.errors
    )
    assert any(
        e.startswith("record at position 1 (no id: record: 1 in expect_rejected) was rejected")
        for e in wrong.errors
    )


def test_a_wrong_count_shows_every_count(tmp_path: Path) -> None:
    result = case(tmp_path, "{record: 1}", orders="{new: 1, changed: 1}")
    assert result.errors == [
        "expect_orders: expected changed 1; got new 1, changed 0, unchanged 1, stale 0, "
        "withdrawn 0, skipped 0, refunds 0, refunds_changed 0, refunds_unchanged 0, "
        "refunds_waiting 0"
    ]
