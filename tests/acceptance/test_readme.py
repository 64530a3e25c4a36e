"""The README's promises hold: its commands are the ones CI runs, its mapping excerpt is the real
shipped file, its function examples give the results it shows, and its first command works."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal

import pytest

from hubmap.expressions import compile_expression
from tests.conftest import MAPPINGS, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_setup_commands_are_the_ones_ci_runs():
    setup = _code_blocks("sh")[0]
    commands = [line.split("#")[0].strip() for line in setup.splitlines() if line.strip()]
    assert commands == ['python -m pip install -e ".[test]"', "python -m pytest"]
    for command in commands:
        assert command in CI


def test_the_complete_mapping_in_the_readme_is_the_shipped_file():
    shown = next(b for b in _code_blocks("yaml") if "yaml-language-server" in b)
    assert shown == (MAPPINGS / "quickstart-contacts.yaml").read_text(encoding="utf-8")


FUNCTION_ROW = re.compile(
    r"^\| [^|]+ \| `{1,2}(?P<expr>.+?)`{1,2} \| `(?P<input>\{.*?\})` \| "
    r"`(?P<output>.+?)` \|$",
    re.M,
)


def test_function_table_examples_give_the_results_shown():
    rows = list(FUNCTION_ROW.finditer(README))
    assert len(rows) >= 20
    for row in rows:
        result = compile_expression(row["expr"])(json.loads(row["input"], parse_float=Decimal))
        expected = json.loads(row["output"], parse_float=Decimal)
        assert result == expected, row["expr"]


@pytest.mark.slow
def test_the_main_command_runs_on_the_embedded_stand_in(tmp_path):
    main_command = _code_blocks("sh")[1].splitlines()[0].split()
    assert main_command[:2] == ["hubmap", "run"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "engine"))
    for name in ("HUBSPOT_ACCESS_TOKEN", "HUBSPOT_API_BASE", "HUBSPOT_FORMS_BASE"):
        env.pop(name, None)
    args = [str(ROOT / a) if a.startswith("mappings/") else a for a in main_command[2:]]
    done = subprocess.run(
        [sys.executable, "-m", "hubmap.cli", "run", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "5 created" in done.stdout  # the summary, on standard output
    shown = subprocess.run(
        [sys.executable, "-m", "hubmap.cli", "sandbox", "show", "ada.lovelace@example.com"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    properties = json.loads(shown.stdout)["properties"]
    orders = [
        json.loads(line)
        for line in (MAPPINGS / "examples" / "shopify" / "sample-orders.ndjson")
        .read_text()
        .splitlines()
    ]
    ada = [
        o
        for o in orders
        if o["email"].lower() == "ada.lovelace@example.com" and o["cancelled_at"] is None
    ]
    assert Decimal(properties["total_value_of_orders"]) == sum(
        Decimal(o["total_price"]) for o in ada
    )
    assert properties["total_number_of_orders"] == str(len(ada))
