"""HM306: `currency == "USD"` and `status == Completed` validate, but compare two fields (a
record has none called USD), so every order would be rejected or skipped.  `hubmap validate`
warns at the name, with the spelling meant."""

from __future__ import annotations

from pathlib import Path

from hubmap.mapping import check_file

MAPPING = """\
version: 1
records:
  id: id
  time: created_at
  contact: email
  when: >-
    {when}
target:
  kind: contacts
properties:
  total:
    type: number
    from: total_price
    merge: sum
{examples}"""

EXAMPLE = """\
examples:
  - name: one order
    input: {id: 1, email: a@example.com, created_at: "2024-01-01", currency: USD,
            status: Completed, paid: true, total_price: "5.00", note: x}
    expect: {total: "5.00"}
"""


def warnings(tmp_path: Path, when: str, examples: str = EXAMPLE) -> list[tuple[int, int, str]]:
    path = tmp_path / "m.yaml"
    path.write_text(MAPPING.format(when=when, examples=examples), encoding="utf-8")
    return [
        (p.location.line, p.location.column, p.hint)
        for p in check_file(path).problems
        if p.code == "HM306"
    ]


def test_a_double_quoted_text_is_a_field_name(tmp_path: Path) -> None:
    (found,) = warnings(tmp_path, 'currency == "USD"')
    # the expression starts on line 7, column 5; "USD" at its character 13 (from 1)
    assert found[:2] == (7, 4 + 13)
    assert "'USD'" in found[2]


def test_a_bare_name_no_example_has(tmp_path: Path) -> None:
    (found,) = warnings(tmp_path, "status != Completed")
    assert found[:2] == (7, 4 + 11) and "'Completed'" in found[2]


def test_true_and_false_go_in_backticks(tmp_path: Path) -> None:
    (found,) = warnings(tmp_path, "paid == true")
    assert "`true`" in found[2]


def test_fields_of_the_examples_and_null_are_fine(tmp_path: Path) -> None:
    assert warnings(tmp_path, "note == currency && cancelled_at == null") == []
    assert warnings(tmp_path, "currency == 'USD' && paid == `true`") == []


def test_without_examples_only_double_quotes_are_suspect(tmp_path: Path) -> None:
    assert warnings(tmp_path, "status == Completed", examples="") == []
    (found,) = warnings(tmp_path, 'currency == "USD"', examples="")
    assert found[:2] == (7, 4 + 13)


DERIVED = """\
version: 1
records: {id: id, time: created_at, contact: email}
target: {kind: contacts}
properties:
  total_value:
    type: number
    from: total_price
    merge: sum
  order_count:
    type: number
    value: 1
    merge: sum
  average:
    type: number
    derive: "divide(total_valu, order_count)"
  first_sku:
    type: string
    derive: "skus[0].code || join(';', sort_by(items, &name)[].name)"
"""


def test_a_derive_reading_no_property_is_an_error_at_the_name(tmp_path: Path) -> None:
    """HM419 (an error: the value would always be null), with the close name; names read from
    what another part gave (`.code`, `&name`) are not the contact's."""
    path = tmp_path / "m.yaml"
    path.write_text(DERIVED, encoding="utf-8")
    found = [
        (p.message, p.location.line, p.location.column, p.hint)
        for p in check_file(path).problems
        if p.code == "HM419"
    ]
    read = sorted((f[0].split("reads ")[1].split(",")[0], f[1], f[2]) for f in found)
    assert read == [("'items'", 18, 48), ("'skus'", 18, 14), ("'total_valu'", 15, 21)]
    assert "total_value" in next(f[3] for f in found if "total_valu'" in f[0])
