"""The command line as a thin layer (click's CliRunner, in-process): help, version, usage
errors and the exit classes - 0 clean, 1 problems found, 2 usage or configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hubmap import __version__
from hubmap.cli import main
from tests.conftest import CASES

CLEAN = CASES / "validate" / "positive" / "minimal-contacts.yaml"
MISSPELT = CASES / "validate" / "negative" / "misspelt-merge.yaml"

MAPPING = """\
version: 1
name: cli-test
params:
  SHOP_CURRENCY: {default: EUR}
records:
  id: id
  time: at
  contact: email
  require:
    - that: "currency == '${SHOP_CURRENCY}'"
      reason: not the shop's currency
target: {kind: contacts}
properties:
  total: {type: number, from: amount, merge: sum}
examples:
  - name: one order
    input: {id: 1, at: "2024-01-01", email: a@example.com, amount: "5", currency: EUR}
    expect: {total: "%s"}
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def write_mapping(tmp_path: Path, expected_total: str = "5") -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(MAPPING % expected_total, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _param_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    # --param NAME=VALUE sets the environment variable: put it back after each test
    monkeypatch.setenv("SHOP_CURRENCY", "EUR")


def test_help_names_every_command_and_exits_0() -> None:
    for flag in ("--help", "-h"):
        result = invoke(flag)
        assert result.exit_code == 0
        for command in ("validate", "test", "plan", "run", "apply", "status", "serve", "state"):
            assert f"  {command} " in result.output


def test_version() -> None:
    result = invoke("--version")
    assert (result.exit_code, result.output.strip()) == (0, f"hubmap, version {__version__}")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["nonsense"], "No such command 'nonsense'"),
        (["plan", str(CLEAN)], "Missing option '--input'"),
        (["validate"], "Missing argument 'PATHS...'"),
        (["plan", str(CLEAN), "--input", "x.json", "--format", "yaml"], "'yaml' is not one of"),
        (["validate", "--param", "lower=1", str(CLEAN)], "write NAME=VALUE"),
        (["validate", "--param", "NOEQUALS", str(CLEAN)], "write NAME=VALUE"),
    ],
)
def test_usage_errors_exit_2_saying_what_is_wrong(args: list[str], said: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert said in result.stderr


def test_validate_a_clean_mapping_exits_0_and_a_broken_one_1_at_its_place() -> None:
    clean = invoke("validate", "--format", "text", str(CLEAN))
    assert (clean.exit_code, clean.stderr.strip()) == (0, "no problems")
    broken = invoke("validate", "--format", "text", str(MISSPELT))
    assert broken.exit_code == 1
    assert f"{MISSPELT}:12:12" in broken.output and "HM204" in broken.output
    assert "1 error(s), 0 warning(s)" in broken.stderr


def test_validate_json_is_the_problems_as_data() -> None:
    result = invoke("validate", "--format", "json", str(MISSPELT))
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)
    assert (problem["code"], problem["line"], problem["column"]) == ("HM204", 12, 12)


def test_a_mapping_file_that_is_not_there_exits_2(tmp_path: Path) -> None:
    result = invoke("plan", str(tmp_path / "none.yaml"), "--input", str(tmp_path / "in.json"))
    assert result.exit_code == 2


def test_test_exits_0_when_the_cases_pass_and_1_when_one_fails(tmp_path: Path) -> None:
    passing = invoke("test", str(write_mapping(tmp_path)))
    assert passing.exit_code == 0 and "ok   " in passing.output
    failing = invoke("test", str(write_mapping(tmp_path, expected_total="6")))
    assert failing.exit_code == 1
    assert "FAIL" in failing.output and "expected '6', got '5'" in failing.output


def test_plan_exits_1_for_a_rejected_record_and_param_changes_what_is_rejected(
    tmp_path: Path,
) -> None:
    mapping = write_mapping(tmp_path)
    orders = tmp_path / "in.ndjson"
    orders.write_text(
        '{"id": 1, "at": "2024-01-01", "email": "a@example.com", "amount": "5", '
        '"currency": "USD"}\n',
        encoding="utf-8",
    )
    rejected = invoke("plan", str(mapping), "--input", str(orders))
    assert rejected.exit_code == 1
    assert "not the shop's currency" in rejected.output
    taken = invoke("plan", str(mapping), "--input", str(orders), "--param", "SHOP_CURRENCY=USD")
    assert taken.exit_code == 0, taken.output
    assert "a@example.com (1 order(s))" in taken.output
