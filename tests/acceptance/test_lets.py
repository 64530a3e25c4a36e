"""let: values worked out once per record and shared by the properties that read them with
let('name'), in expressions and templates; an error inside one rejects the record and names it;
validate refuses names that are not declared, cycles, and lets where there is no record."""

from __future__ import annotations

import json
from pathlib import Path

from hubmap.expressions import compile_source
from hubmap.expressions.functions import ExpressionError, RecordLets
from hubmap.mapping import check_file
from hubmap.mapping.model import Source, SourceKind
from hubmap.uses import plan as planning

MAPPING = """\
version: 1
name: let-test
let:
  top_items: "sort_by(items || `[]`, &multiply(price, `-1`))[:2]"
  best: "let('top_items')[0]"
records:
  id: id
  time: created_at
  contact: email
  when: "let('best') != null"
target:
  kind: contacts
properties:
  best_item:
    type: string
    from: "let('best').name"
  runner_up:
    type: string
    template: "{{ let('top_items')[1].name }}"
  best_price:
    type: number
    from: "let('best').price"
    decimals: 2
"""


def _plan(tmp_path: Path, orders: list[dict]):  # type: ignore[no-untyped-def]
    mapping = tmp_path / "let.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    source = tmp_path / "orders.ndjson"
    source.write_text("".join(json.dumps(o) + "\n" for o in orders), encoding="utf-8")
    return planning.plan(str(mapping), str(source)).unwrap()


def _order(n: int, items: object) -> dict:
    return {
        "id": n,
        "email": f"c{n}@example.com",
        "created_at": "2024-05-01T10:00:00Z",
        "items": items,
    }


def test_properties_and_templates_read_let_values(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        [
            _order(
                1,
                [
                    {"name": "Tee", "price": 9},
                    {"name": "Hoodie", "price": 42},
                    {"name": "Cap", "price": 16},
                ],
            ),
            _order(2, []),
        ],
    )  # records.when reads let too: no best item, skipped
    (contact,) = plan.contacts
    assert contact.values["best_item"] == "Hoodie"
    assert contact.values["runner_up"] == "Cap"
    assert contact.values["best_price"] == "42.00"
    assert [s.order_id for s in plan.skipped] == ["2"]


def test_an_error_in_a_let_value_rejects_the_record_and_names_it(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        [
            _order(3, [{"name": "Tee", "price": "nine"}]),
            _order(4, [{"name": "Mug", "price": 5}, {"name": "Pen", "price": 1}]),
        ],
    )
    (rejected,) = plan.rejected
    assert rejected.order_id == "3" and rejected.where.endswith("orders.ndjson:1")
    assert "let.top_items: multiply(): 'nine' is not a number" in rejected.reason
    assert [c.values["best_item"] for c in plan.contacts] == ["Mug"]  # the next one goes on


def test_a_let_value_is_worked_out_once_per_record() -> None:
    calls: list[object] = []
    top = compile_source(Source(SourceKind.JMESPATH, "items[0]"))

    def counted(record: object) -> object:
        calls.append(record)
        return top(record)

    lets = RecordLets({"top": counted}, {"items": ["A"]})
    assert lets.value("top") == lets.value("top") == "A"
    assert len(calls) == 1
    loop = RecordLets({"again": lambda record: loop.value("again")}, {})
    try:
        loop.value("again")
    except ExpressionError as error:
        assert "uses itself" in str(error)
    else:
        raise AssertionError("a let value that uses itself must fail")


def test_validate_locates_let_mistakes(tmp_path: Path) -> None:
    path = tmp_path / "let.yaml"
    path.write_text(MAPPING.replace("let('best').name", "let('bset').name"), encoding="utf-8")
    (problem,) = check_file(path).problems
    assert (problem.code, problem.location.line, problem.location.column) == ("HM418", 16, 17)
    assert "did you mean 'best'" in problem.hint
