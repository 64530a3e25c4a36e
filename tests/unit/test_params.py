"""Mapping parameters: `${NAME}` in an expression reads the parameter's value (--param, else the
environment variable, else the default); an unsafe value is HM420, an unknown name HM421, both
at their line and column."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hubmap.evaluate import CompiledMapping, OrderValues, Skipped
from hubmap.mapping import check_file
from hubmap.mapping.params import UNSAFE
from tests.conftest import ROOT

MAPPING = """\
version: 1
name: params
params:
  SHOP_CURRENCY: {{default: USD, description: the shop's currency}}
records:
  id: id
  time: at
  contact: email
  when: "currency == '${{SHOP_CURRENCY}}'"
  require:
    - that: "{require}"
      reason: not good
target: {{kind: contacts}}
properties:
  total: {{type: number, from: amount, merge: sum}}
"""


def write(tmp_path: Path, require: str = "amount") -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(MAPPING.format(require=require), encoding="utf-8")
    return path


def outcome(path: Path, currency: str, environ: dict[str, str]) -> object:
    checked = check_file(path, environ=environ)
    assert checked.ok, checked.problems
    compiled = CompiledMapping(checked.mapping)  # type: ignore[arg-type]
    record = {
        "id": 1,
        "email": "a@example.com",
        "at": "2024-01-01",
        "amount": "5",
        "currency": currency,
    }
    return compiled.evaluate(record, "r")


def test_the_default_the_environment_and_nothing_else(tmp_path: Path) -> None:
    path = write(tmp_path)
    assert isinstance(outcome(path, "USD", {}), OrderValues)
    assert isinstance(outcome(path, "EUR", {}), Skipped)
    assert isinstance(outcome(path, "EUR", {"SHOP_CURRENCY": "EUR"}), OrderValues)
    mapping = check_file(path, environ={"SHOP_CURRENCY": "EUR"}).mapping
    assert mapping is not None
    (param,) = mapping.params
    assert (param.name, param.value, param.origin) == ("SHOP_CURRENCY", "EUR", "environment")


SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20).filter(
    lambda t: not UNSAFE.search(t)
)


@given(value=SAFE_TEXT)
def test_any_safe_value_is_the_text_compared_with(
    tmp_path_factory,  # type: ignore[no-untyped-def]
    value: str,
) -> None:
    path = write(tmp_path_factory.mktemp("p"))
    assert isinstance(outcome(path, value, {"SHOP_CURRENCY": value}), OrderValues)
    assert isinstance(outcome(path, value + "x", {"SHOP_CURRENCY": value}), Skipped)


def test_an_unsafe_value_and_an_unknown_name_are_refused_at_their_place(tmp_path: Path) -> None:
    path = write(tmp_path, require="amount && '${SHOP_CURENCY}'")
    problems = check_file(path, environ={"SHOP_CURRENCY": "US'D"}).problems
    found = {p.code: (p.location.line, p.location.column, p.hint) for p in problems}
    assert found["HM420"][:2] == (4, 3)  # the parameter's key
    assert found["HM421"][:2] == (11, 25)  # ${SHOP_CURENCY} inside the require
    assert "did you mean 'SHOP_CURRENCY'" in found["HM421"][2]


def test_param_on_the_command_line_wins_and_plan_shows_it(tmp_path: Path) -> None:
    path = write(tmp_path)
    (tmp_path / "in.ndjson").write_text(
        '{"id": 1, "email": "a@example.com", "at": "2024-01-01", "amount": "5", '
        '"currency": "CHF"}\n',
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "engine"), "SHOP_CURRENCY": "EUR"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubmap.cli",
            "plan",
            str(path),
            "--input",
            "in.ndjson",
            "--param",
            "SHOP_CURRENCY=CHF",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "parameter SHOP_CURRENCY = CHF (--param or the environment)" in done.stdout
    assert "a@example.com (1 order(s))" in done.stdout


CASES = """
examples:
  - name: written for the default
    input: {id: 1, email: a@example.com, at: "2024-01-01", amount: "5", currency: USD}
    expect: {total: "5"}
  - name: written for a euro shop
    params: {SHOP_CURRENCY: EUR}
    input: {id: 2, email: b@example.com, at: "2024-01-01", amount: "7", currency: EUR}
    expect: {total: "7"}
"""


def test_a_case_runs_with_the_parameters_it_names_whatever_the_environment_says(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from hubmap.uses.test import test as run_test

    path = tmp_path / "m.yaml"
    path.write_text(MAPPING.format(require="amount") + CASES, encoding="utf-8")
    monkeypatch.delenv("SHOP_CURRENCY", raising=False)
    report = run_test([str(path)]).value
    assert [(c.name, c.passed) for c in report.cases] == [
        ("written for the default", True),
        ("written for a euro shop", True),
    ]
    monkeypatch.setenv("SHOP_CURRENCY", "GBP")  # the pinned case still passes; the other not
    report = run_test([str(path)]).value
    assert [(c.name, c.passed) for c in report.cases] == [
        ("written for the default", False),
        ("written for a euro shop", True),
    ]


def test_a_case_naming_an_undeclared_parameter_is_hm421_at_its_key(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    text = MAPPING.format(require="amount") + CASES.replace(
        "{SHOP_CURRENCY: EUR}", "{SHOP_CURENCY: EUR}"
    )
    path.write_text(text, encoding="utf-8")
    problems = [p for p in check_file(path, environ={}).problems if p.code == "HM421"]
    assert len(problems) == 1
    line = text.splitlines().index("    params: {SHOP_CURENCY: EUR}") + 1
    assert (problems[0].location.line, problems[0].location.column) == (line, 14)
    assert "did you mean 'SHOP_CURRENCY'?" in problems[0].hint
