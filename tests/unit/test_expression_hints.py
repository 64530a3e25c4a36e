"""Spellings of other languages in a JMESPath expression get a hint with the right one, at the
place of the mistake (HM301, file:line:col)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubmap.mapping import load_mapping
from hubmap.problems import HubmapError

MAPPING = """\
version: 1
records:
  id: id
  time: created_at
  contact: email
target:
  kind: contacts
properties:
  total:
    type: number
    from: total_price
    when: "{expression}"
"""

CASES = [  # expression, column of the mistake in the expression (from 1), what the hint says
    ("status = 'paid'", 8, "status == 'paid'"),
    ("status <> 'voided'", 8, "write !="),
    ("status == 'paid' and test", 18, "&&, ||, !"),
    ("not test", 1, "&&, ||, !"),
    ("status in ['paid', 'refunded']", 8, "contains(['paid', 'refunded'], status)"),
    ("total_price > 5", 15, "`5`"),
    ("5", 1, "`5`"),
    ("total_money.amount / 100", 20, "from_cents(amount)"),
    ("price + tax", 7, "add(a, b)"),
    ("price * quantity", 7, "multiply(price, quantity)"),
    ("total - refunded", 7, "subtract(a, b)"),
]


@pytest.mark.parametrize(("expression", "column", "said"), CASES)
def test_a_spelling_of_another_language_gets_the_right_one(
    tmp_path: Path, expression: str, column: int, said: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MAPPING.format(expression=expression), encoding="utf-8")
    with pytest.raises(HubmapError) as raised:
        load_mapping(str(path))
    (problem,) = [p for p in raised.value.problems if p.code == "HM301"]
    # the expression starts after `when: "` on line 12, column 12
    assert (problem.location.line, problem.location.column) == (12, 11 + column)
    assert said in problem.hint


def test_quoted_text_is_not_taken_for_a_mistake(tmp_path: Path) -> None:
    """`=` and `and` inside a quoted text are text; the mistake is the one outside."""
    path = tmp_path / "m.yaml"
    path.write_text(
        MAPPING.format(expression="note == 'a = b and c' || total_price > 5"), encoding="utf-8"
    )
    with pytest.raises(HubmapError) as raised:
        load_mapping(str(path))
    (problem,) = [p for p in raised.value.problems if p.code == "HM301"]
    assert "`5`" in problem.hint and problem.location.column == 11 + 40
