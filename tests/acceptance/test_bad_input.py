"""Bad input end to end: a byte that is not UTF-8, a CSV quote that never closes, a NUL, a JSON
file with a bad byte, standard input, and mapping files with tags that do not fit.  Each bad
piece is one reject (or one problem) naming its file, line (and column) and reason; every good
record around it still counts; the CLI answers with its exit code, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from hubmap.inputs import Document, InputError, read_documents
from tests.conftest import CASES, MAPPINGS, ROOT

QUICKSTART = MAPPINGS / "quickstart-contacts.yaml"
ONLINE_RETAIL = MAPPINGS / "online-retail-contacts.yaml"


def hubmap(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env.update(PYTHONPATH=str(ROOT / "engine"), NO_COLOR="1")
    result = subprocess.run(
        [sys.executable, "-m", "hubmap.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert b"Traceback" not in result.stdout + result.stderr, result.stderr.decode()
    return result


def order(number: int, email: str, total: str, currency: str = "EUR") -> bytes:
    return json.dumps(
        {
            "order_id": f"A-{number}",
            "placed_at": f"2025-03-0{number}T10:00:00+01:00",
            "status": "paid",
            "currency": currency,
            "total": total,
            "customer": {"email": email},
            "items": [{"sku": "MUG"}],
        }
    ).encode()


NDJSON = (
    b"\n".join(
        [
            order(1, "kim@example.com", "10.00"),
            order(2, "kim@example.com", "5.50").replace(b"MUG", b"M\xffG"),  # line 2: byte 0xff
            order(3, "ana@example.com", "7.25"),
            order(4, "ana@example.com", "1.00")[:-1],  # line 4: cut short
            order(5, "kim@example.com", "2.00"),
        ]
    )
    + b"\n"
)


def _plan_json(*args: str, stdin: bytes | None = None) -> tuple[int, dict]:
    result = hubmap("plan", *args, "--format", "json", stdin=stdin)
    return result.returncode, json.loads(result.stdout)


def _totals(plan: dict) -> dict[str, Decimal]:
    return {
        c["email"]: Decimal(c["changes"]["total_value_of_orders"]["after"])
        for c in plan["contacts"]
    }


# -- NDJSON, standard input, JSON -----------------------------------------------------------------


def test_one_bad_byte_in_an_ndjson_file_costs_only_its_line(tmp_path: Path) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_bytes(NDJSON)
    code, plan = _plan_json(str(QUICKSTART), "--input", str(path))
    assert code == 1  # rejects: exit 1, the plan is still printed
    rejected = {r["where"]: r["reason"] for r in plan["rejected"]}
    lines = NDJSON.split(b"\n")
    bad_byte = f"{path}:2:{lines[1].index(bytes([0xFF])) + 1}"
    cut = f"{path}:4:{len(lines[3]) + 1}"  # JSON ends where the closing brace should be
    assert rejected.keys() == {bad_byte, cut}
    assert "not UTF-8" in rejected[bad_byte] and "not valid JSON" in rejected[cut]
    assert _totals(plan) == {
        "kim@example.com": Decimal("12.00"),
        "ana@example.com": Decimal("7.25"),
    }
    assert plan["records"] == 5 and plan["orders"]["new"] == 3


def test_standard_input_gets_the_same_located_rejects() -> None:
    code, plan = _plan_json(str(QUICKSTART), "--input", "-", stdin=NDJSON)
    assert code == 1
    assert sorted(r["where"].rsplit(":", 1)[0] for r in plan["rejected"]) == [
        "<stdin>:2",
        "<stdin>:4",
    ]
    assert _totals(plan) == {
        "kim@example.com": Decimal("12.00"),
        "ana@example.com": Decimal("7.25"),
    }


def test_the_text_plan_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_bytes(NDJSON)
    result = hubmap("plan", str(QUICKSTART), "--input", str(path))
    assert result.returncode == 1
    out = result.stdout.decode()
    column = NDJSON.split(b"\n")[1].index(bytes([0xFF])) + 1
    assert f"rejected {path}:2:{column}: not UTF-8 text: byte 0xff" in out
    assert f"rejected {path}:4:" in out


def test_a_json_file_with_a_bad_byte_is_one_reject_at_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_bytes(b'[\n  {"order_id": "A-1",\n   "note": "caf\xe9"}\n]\n')
    code, plan = _plan_json(str(QUICKSTART), "--input", str(path))
    assert code == 1
    (rejected,) = plan["rejected"]
    assert rejected["where"] == f"{path}:3:16" and "UTF-8" in rejected["reason"]
    assert rejected["code"] == "HM502"


def test_the_json_number_classes_are_rejected_with_their_reason(tmp_path: Path) -> None:
    lines = [
        b'{"n": ' + b"9" * 5000 + b"}",
        b'{"n": 1e999999999}',
        b"[" * 101 + b"]" * 101,
        b'{"t": "\\ud800"}',
        b'{"ok": 1}',
    ]
    path = tmp_path / "odd.ndjson"
    path.write_bytes(b"\n".join(lines))
    items = list(read_documents(str(path)))
    assert [type(i).__name__ for i in items] == ["InputError"] * 4 + ["Document"]
    reasons = [i.reason for i in items if isinstance(i, InputError)]
    assert "more than 4300 digits" in reasons[0] and "more than 4300 digits" in reasons[1]
    assert "deeper than 100" in reasons[2] and "surrogate" in reasons[3]
    assert [i.where for i in items] == [f"{path}:{n}" for n in range(1, 6)]


# -- CSV ------------------------------------------------------------------------------------------

HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def test_csv_rows_with_a_bad_byte_a_nul_or_an_open_quote_are_rejected_alone(tmp_path: Path) -> None:
    path = tmp_path / "day.csv"
    rows = [
        b"100001,A1,MUG,2,2011-02-01 10:00:00,1.50,12712.0,Germany",  # 2
        b"100002,A2,CAF\xc9 CUP,1,2011-02-01 10:05:00,9.00,12712.0,Germany",  # 3: not UTF-8
        b'100003,A3,"TWO-LINE',  # 4: a legal
        b'DESCRIPTION",3,2011-02-01 11:00:00,2.00,13047.0,United Kingdom',  # 5: multi-line cell
        b'100004,A4,"NEVER CLOSED,1,2011-02-01 11:30:00,4.00,13047.0,France',  # 6: open quote
        b"100005,A5,PLATE,1,2011-02-01 12:00:00,3.00,13047.0,France",  # 7
        b"100006,A6,BO\x00WL,1,2011-02-01 12:30:00,8.00,12712.0,Germany",  # 8: NUL
        b'100007,A7,"SAY ""HI""",4,2011-02-01 13:00:00,0.25,12712.0,Germany',  # 9
    ]
    path.write_bytes(HEADER + b"\n".join(rows) + b"\n")
    items = list(read_documents(str(path)))
    assert [(type(i).__name__, i.where.rsplit(":", 1)[1]) for i in items] == [
        ("Document", "2"),
        ("InputError", "3"),
        ("Document", "4"),
        ("InputError", "6"),
        ("Document", "7"),
        ("InputError", "8"),
        ("Document", "9"),
    ]
    reasons = {i.where.rsplit(":", 1)[1]: i.reason for i in items if isinstance(i, InputError)}
    assert "not UTF-8 text: byte 0xc9 at column 14" in reasons["3"]
    assert "unterminated quote" in reasons["6"] and "column 11" in reasons["6"]
    assert "NUL byte at column 13" in reasons["8"]
    multi = items[2]
    assert isinstance(multi, Document) and multi.data["Description"] == "TWO-LINE\nDESCRIPTION"

    code, plan = _plan_json(str(ONLINE_RETAIL), "--input", str(path))
    assert code == 1
    assert sorted(r["where"] for r in plan["rejected"]) == [f"{path}:{n}" for n in (3, 6, 8)]
    assert _totals(plan) == {"12712": Decimal("4.00"), "13047": Decimal("9.00")}
    assert plan["orders"]["new"] == 4


def test_an_unterminated_quote_at_the_end_or_in_the_header_is_located(tmp_path: Path) -> None:
    last = tmp_path / "last.csv"
    last.write_bytes(b'id,email\n1,a@x\n2,"b@x\n')
    assert [(type(i).__name__, i.where) for i in read_documents(str(last))] == [
        ("Document", f"{last}:2"),
        ("InputError", f"{last}:3"),
    ]
    header = tmp_path / "header.csv"
    header.write_bytes(b'id,"email\n1,a@x\n2,b@x\n')
    items = list(read_documents(str(header)))
    assert [i.where for i in items] == [f"{header}:{n}" for n in (1, 2, 3)]
    assert all(isinstance(i, InputError) for i in items)
    assert "unterminated quote" in items[0].reason  # type: ignore[union-attr]
    assert "the header could not be read" in items[1].reason  # type: ignore[union-attr]


def test_a_utf16_export_says_so(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("id,email\n1,a@x\n".encode("utf-16"))
    items = list(read_documents(str(path)))
    assert all(isinstance(i, InputError) for i in items) and items[0].where == f"{path}:1"
    assert "it is UTF-16" in items[0].reason  # type: ignore[union-attr]


def test_csv_on_standard_input_rejects_the_bad_row_only() -> None:
    rows = HEADER + (
        b"100001,A1,MUG,2,2011-02-01 10:00:00,1.50,12712.0,Germany\n"
        b"100002,A2,\xff,1,2011-02-01 10:05:00,9.00,12712.0,Germany\n"
    )
    code, plan = _plan_json(str(ONLINE_RETAIL), "--input", "-", "--input-format", "csv", stdin=rows)
    assert code == 1
    assert [r["where"] for r in plan["rejected"]] == ["<stdin>:3"]
    assert _totals(plan) == {"12712": Decimal("3.00")}


# -- mapping files: every problem located, in every output format --------------------------------

TAGGED = [CASES / "validate" / "negative" / name for name in ("int-tag.yaml", "scalar-tags.yaml")]


@pytest.mark.parametrize("path", TAGGED, ids=lambda p: p.stem)
def test_validate_reports_tags_that_do_not_fit_in_every_format(path: Path) -> None:
    expected = [tuple(item) for item in json.loads(path.with_suffix(".expected.json").read_text())]
    as_json = hubmap("validate", str(path), "--format", "json")
    assert as_json.returncode == 1
    problems = json.loads(as_json.stdout)
    assert [(p["code"], p["line"], p["column"]) for p in problems] == expected
    assert all(p["hint"] and p["file"] == str(path) for p in problems)
    github = hubmap("validate", str(path), "--format", "github").stdout.decode()
    assert all(f"file={path},line={line},col={column}" in github for _, line, column in expected)
    text = hubmap("validate", str(path)).stdout.decode()
    assert all(f"{path}:{line}:{column}" in text for _, line, column in expected)


def test_validate_locates_what_used_to_crash_it(tmp_path: Path) -> None:
    """Found by fuzzing the shipped mappings: a template at Jinja's limits, a number of 5,000
    digits, a file name longer than the system takes, a key tagged as a number."""
    base = QUICKSTART.read_text(encoding="utf-8")
    cases = {
        "filters": base.replace(
            "from: total\n", 'template: "{{ total' + "|upper" * 3000 + ' }}"\n', 1
        ),
        "template-number": base.replace(
            "from: total\n", 'template: "{{ ' + "9" * 5000 + ' }}"\n', 1
        ),
        "digits": base.replace("decimals: 2", "decimals: " + "9" * 5000, 1),
        "long-file": base.replace(
            "  - name: two orders",
            "  - name: long\n    input_file: " + "x" * 5000 + "\n  - name: two orders",
            1,
        ),
        "tagged-key": base.replace("    merge: sum", "    !!int merge: sum", 1),
    }
    for name, text in cases.items():
        assert text != base, name
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        result = hubmap("validate", str(path), "--format", "json")
        assert result.returncode == 1, name
        problems = json.loads(result.stdout)
        assert problems and all(p["line"] >= 1 and p["column"] >= 1 for p in problems), name
