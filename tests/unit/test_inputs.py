"""hubmap.inputs: one JSON document read exactly (decimals, located errors, what cannot be
stored), the format told from a file's name, NDJSON and CSV read record by record with each bad
piece located, and the counts the progress bar estimates from."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from hubmap.inputs import (
    MAX_DEPTH,
    Document,
    InputError,
    InputFormatError,
    expected_records,
    folder_files,
    guess_format,
    parse_json,
    read_documents,
)


def read(tmp_path: Path, name: str, content: bytes) -> list[Document | InputError]:
    path = tmp_path / name
    path.write_bytes(content)
    return list(read_documents(str(path)))


# -- parse_json -----------------------------------------------------------------------------


def test_numbers_with_a_fraction_are_exact_decimals_and_whole_ones_ints() -> None:
    document = parse_json('{"total": 0.1, "count": 3, "big": 1e3}', "f.json")
    assert isinstance(document, Document)
    assert document.data == {"total": Decimal("0.1"), "count": 3, "big": Decimal("1E+3")}
    assert type(document.data["total"]) is Decimal and type(document.data["count"]) is int
    assert document.where == "f.json"


def test_a_byte_order_mark_is_skipped() -> None:
    document = parse_json(b'\xef\xbb\xbf{"a": 1}', "f.json")
    assert isinstance(document, Document) and document.data == {"a": 1}


def test_text_that_is_not_json_is_located_at_its_line_and_column() -> None:
    error = parse_json('{"a": 1,\n  "b": }', "f.json")
    assert isinstance(error, InputError)
    assert error.where == "f.json:2:8"
    assert error.reason.startswith("not valid JSON")


def test_an_ndjson_line_is_named_by_its_line_and_the_column_only() -> None:
    error = parse_json("{oops}", "in.ndjson:7")
    assert isinstance(error, InputError) and error.where == "in.ndjson:7:2"


def test_a_byte_that_is_not_utf8_is_located() -> None:
    error = parse_json(b'{"a":\n "\xff"}', "f.json")
    assert isinstance(error, InputError)
    assert error.where == "f.json:2:3"
    assert "byte 0xff" in error.reason


def test_utf16_says_so() -> None:
    error = parse_json('{"a": 1}'.encode("utf-16"), "f.json")
    assert isinstance(error, InputError) and "UTF-16" in error.reason


def test_nesting_deeper_than_the_limit_is_refused_and_at_the_limit_read() -> None:
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert isinstance(parse_json(at_limit, "f.json"), Document)
    too_deep = parse_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "f.json")
    assert isinstance(too_deep, InputError) and f"deeper than {MAX_DEPTH}" in too_deep.reason


def test_a_lone_surrogate_is_refused_naming_where_it_is() -> None:
    error = parse_json('{"name": {"first": "\\ud800"}}', "f.json")
    assert isinstance(error, InputError)
    assert "surrogate" in error.reason and "name.first" in error.reason


def test_a_number_too_long_to_convert_is_refused() -> None:
    error = parse_json('{"n": 1e999999999}', "f.json")
    assert isinstance(error, InputError) and "digits" in error.reason


# -- guess_format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("orders.json", "json"),
        ("orders.NDJSON", "ndjson"),
        ("orders.jsonl", "ndjson"),
        ("a/b/orders.csv", "csv"),
        ("-", "ndjson"),
    ],
)
def test_the_format_comes_from_the_name(path: str, expected: str) -> None:
    assert guess_format(path) == expected


def test_an_explicit_format_wins_and_an_unknown_name_is_an_error() -> None:
    assert guess_format("orders.txt", "csv") == "csv"
    with pytest.raises(InputFormatError, match="--input-format"):
        guess_format("orders.txt")


# -- NDJSON and CSV -------------------------------------------------------------------------


def test_ndjson_blank_lines_are_no_records_and_a_bad_line_costs_only_itself(
    tmp_path: Path,
) -> None:
    items = read(tmp_path, "in.ndjson", b'{"id": 1}\n\n{bad\r\n{"id": 3}\r{"id": 4}')
    assert [(type(i).__name__, i.where) for i in items] == [
        ("Document", f"{tmp_path}/in.ndjson:1"),
        ("InputError", f"{tmp_path}/in.ndjson:3:2"),
        ("Document", f"{tmp_path}/in.ndjson:4"),
        ("Document", f"{tmp_path}/in.ndjson:5"),
    ]
    assert [i.data for i in items if isinstance(i, Document)] == [{"id": 1}, {"id": 3}, {"id": 4}]


def test_csv_rows_by_header_with_missing_cells_none_and_a_row_of_too_many_refused(
    tmp_path: Path,
) -> None:
    items = read(tmp_path, "in.csv", b"id,sku,qty\n1,A,2\n\n2,B\n3,C,1,extra\n")
    name = f"{tmp_path}/in.csv"
    assert items[:2] == [
        Document({"id": "1", "sku": "A", "qty": "2"}, f"{name}:2"),
        Document({"id": "2", "sku": "B", "qty": None}, f"{name}:4"),
    ]
    (too_many,) = items[2:]
    assert isinstance(too_many, InputError) and too_many.where == f"{name}:5"
    assert "4 cells but the header names 3" in too_many.reason


def test_a_quoted_csv_cell_may_hold_a_line_break_and_the_row_is_named_by_its_first_line(
    tmp_path: Path,
) -> None:
    items = read(tmp_path, "in.csv", b'id,note\n1,"two\nlines"\n2,plain\n')
    assert items == [
        Document({"id": "1", "note": "two\nlines"}, f"{tmp_path}/in.csv:2"),
        Document({"id": "2", "note": "plain"}, f"{tmp_path}/in.csv:4"),
    ]


def test_a_csv_row_with_a_nul_byte_is_rejected_alone(tmp_path: Path) -> None:
    items = read(tmp_path, "in.csv", b"id\n1\n2\x00\n3\n")
    assert [type(i).__name__ for i in items] == ["Document", "InputError", "Document"]
    assert "NUL" in items[1].reason  # type: ignore[union-attr]


def test_a_missing_file_is_an_error_of_the_whole_input(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="does not exist"):
        list(read_documents(str(tmp_path / "nothing.json")))


# -- folders and counts ---------------------------------------------------------------------


def test_a_folder_is_its_visible_files_in_name_order_each_with_its_format(tmp_path: Path) -> None:
    for name in ("b.csv", "a.ndjson", ".hidden.json"):
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    assert folder_files(tmp_path) == [
        (tmp_path / "a.ndjson", "ndjson"),
        (tmp_path / "b.csv", "csv"),
    ]
    (tmp_path / "notes.txt").write_text("", encoding="utf-8")
    with pytest.raises(InputFormatError, match="notes.txt"):
        folder_files(tmp_path)  # a stray file stops the run before any file is read


def test_expected_records_counts_lines_and_rows_but_not_json(tmp_path: Path) -> None:
    (tmp_path / "a.ndjson").write_bytes(b'{"id": 1}\n{"id": 2}\n{"id": 3}')  # no last newline
    (tmp_path / "b.csv").write_bytes(b"id\n1\n2\n")
    assert expected_records(str(tmp_path / "a.ndjson")) == 3
    assert expected_records(str(tmp_path / "b.csv")) == 2  # the header is no record
    assert expected_records(str(tmp_path)) == 5
    (tmp_path / "c.json").write_bytes(b"[]")
    assert expected_records(str(tmp_path)) is None
    assert expected_records("-") is None
