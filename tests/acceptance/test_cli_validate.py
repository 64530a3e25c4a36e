"""`hubmap validate`, `hubmap test` and `hubmap plan` as a user runs them: exit codes, formats, and
broken copies of a shipped mapping located at the right line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hubmap.cli import main
from tests.conftest import MAPPINGS

SHIPPED = MAPPINGS / "shopify-orders-contacts.yaml"


def _invoke(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(main, list(args), env=env or {"GITHUB_ACTIONS": ""})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_shipped_mappings_are_clean_and_their_examples_pass():
    assert _invoke("validate", str(MAPPINGS)).exit_code == 0
    assert _invoke("test", str(MAPPINGS)).exit_code == 0


def _broken(tmp_path, old: str, new: str):
    text = SHIPPED.read_text()
    assert old in text
    broken = text.replace(old, new, 1)
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    (tmp_path / "examples").symlink_to(MAPPINGS / "examples")
    return path, broken


@pytest.mark.parametrize(
    "old, new, code, needle",
    [
        ("merge: sum", "merge: sum\n   wrong: [", "HM103", "wrong: ["),
        ("version: 1", "version: 1\ncolour: blue", "HM201", "colour: blue"),
        ("type: number", "type: nummber", "HM204", "type: nummber"),
        ("merge: prepend", "merge: prepnd", "HM204", "merge: prepnd"),
        ('from: "line_items[].sku"', 'from: "line_items[.sku"', "HM301", "line_items[.sku"),
    ],
)
def test_broken_copies_exit_1_with_the_right_line_in_json(tmp_path, old, new, code, needle):
    path, text = _broken(tmp_path, old, new)
    result = _invoke("validate", "--format", "json", str(path))
    assert result.exit_code == 1
    problems = json.loads(result.output)
    assert {"code", "severity", "message", "hint", "file", "line", "column"} <= set(problems[0])
    hits = [p for p in problems if p["code"] == code]
    assert hits, problems
    assert hits[0]["line"] == _line_of(text, needle)
    assert hits[0]["file"] == str(path)


def test_text_and_github_formats(tmp_path):
    path, text = _broken(tmp_path, "type: number", "type: nummber")
    line = _line_of(text, "nummber")
    result = _invoke("validate", str(path))
    assert f"{path}:{line}:11: error HM204 'nummber' is not a valid type" in result.output
    assert "did you mean 'number'?" in result.output
    github = _invoke("validate", str(path), env={"GITHUB_ACTIONS": "true"})
    assert github.output.startswith(f"::error file={path},line={line},col=11,title=HM204::")


def test_missing_file_empty_file_and_list_are_located_not_tracebacks(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    result = _invoke(
        "validate",
        "--format",
        "json",
        str(tmp_path / "nope.yaml"),
        str(tmp_path / "empty.yaml"),
        str(tmp_path / "list.yaml"),
    )
    assert result.exit_code == 1
    codes = {p["code"] for p in json.loads(result.output)}
    assert codes == {"HM101", "HM104", "HM105"}


def test_usage_error_exits_2():
    assert _invoke("validate", "--format", "xml", str(SHIPPED)).exit_code == 2


def test_hubmap_test_reports_the_failing_property(tmp_path):
    path, _ = _broken(
        tmp_path, 'total_value_of_orders: "409.94"', 'total_value_of_orders: "409.95"'
    )
    result = _invoke("test", str(path))
    assert result.exit_code == 1
    assert "total_value_of_orders: expected '409.95', got '409.94'" in result.output


def test_plan_json_gives_exact_values_per_contact_and_rejections(tmp_path):
    orders = tmp_path / "orders.ndjson"
    rows = [
        {
            "id": 1,
            "email": "Zoë@Example.com",
            "created_at": "2024-01-02T23:30:00-08:00",
            "currency": "USD",
            "total_price": "0.10",
            "cancelled_at": None,
            "financial_status": "paid",
            "line_items": [{"sku": "A", "title": "Ä", "price": "0.10"}],
        },
        {
            "id": 2,
            "email": "zoë@example.com",
            "created_at": "2024-01-01T10:00:00Z",
            "currency": "USD",
            "total_price": "0.20",
            "cancelled_at": None,
            "financial_status": "paid",
            "line_items": [{"sku": "B", "title": "B", "price": "0.20"}],
        },
        {
            "id": 3,
            "email": "not-an-email",
            "created_at": "2024-01-01T10:00:00Z",
            "currency": "USD",
            "total_price": "1",
            "cancelled_at": None,
            "financial_status": "paid",
        },
    ]
    orders.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\nnot json\n")
    result = _invoke("plan", str(SHIPPED), "--input", str(orders), "--format", "json")
    assert result.exit_code == 1
    plan = json.loads(result.output)
    (contact,) = plan["contacts"]
    assert contact["email"] == "zoë@example.com"
    changes = {k: v["after"] for k, v in contact["changes"].items()}
    assert changes["total_value_of_orders"] == "0.30"
    assert changes["total_number_of_orders"] == "2"
    assert changes["last_order_date"] == "2024-01-02"  # the shop's local date of the later order
    assert changes["first_order_date"] == "2024-01-01"
    assert changes["skus_bought"] == "A;B"
    assert all(v["before"] is None for v in contact["changes"].values())
    reasons = {r["record"]: r["reason"] for r in plan["rejected"]}
    assert "not a valid email" in reasons["3"]
    assert any("not valid JSON" in r["reason"] for r in plan["rejected"])


def test_plan_usage_errors_exit_2(tmp_path):
    assert _invoke("plan", str(SHIPPED), "--input", str(tmp_path / "x.txt")).exit_code == 2
    assert _invoke("plan", str(tmp_path / "none.yaml"), "--input", "-").exit_code == 2


def test_plan_counts_a_repeated_order_id_once(tmp_path):
    order = {
        "id": 7,
        "email": "a@example.com",
        "created_at": "2024-01-01T10:00:00Z",
        "currency": "USD",
        "total_price": "5.00",
        "cancelled_at": None,
        "financial_status": "paid",
    }
    orders = tmp_path / "orders.ndjson"
    orders.write_text(json.dumps(order) + "\n" + json.dumps(order) + "\n")
    plan = json.loads(
        _invoke("plan", str(SHIPPED), "--input", str(orders), "--format", "json").output
    )
    assert plan["contacts"][0]["changes"]["total_value_of_orders"]["after"] == "5.00"
    assert (plan["orders"]["new"], plan["orders"]["unchanged"]) == (1, 1)
    assert plan["skipped"] == []
