"""The registry of problem codes (hubmap/codes.py) against the code that reports them and the
README that explains them: every code written in engine/hubmap is defined, every defined code is
written somewhere, a code whose severity is fixed is reported with it, and README.md's table
lists each defined code, with its stage and summary, and no other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from hubmap import codes
from hubmap.problems import HubmapError, Severity
from hubmap.uses.context import resolve_env
from tests.conftest import ROOT

PACKAGE = ROOT / "engine" / "hubmap"
REGISTRY = PACKAGE / "codes.py"
README = ROOT / "README.md"
CODE = re.compile(r"^HM\d{3}$")


def codes_written(path: Path) -> set[str]:
    """Every string constant of `path` that is a whole code (a code named inside a sentence, as
    in a docstring, is no use of it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.match(node.value)
    }


def codes_used() -> dict[str, list[str]]:
    """Each code the package reports, with the modules that write it (the registry itself,
    which writes all of them, left out)."""
    used: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == REGISTRY:
            continue
        for code in codes_written(path):
            used.setdefault(code, []).append(str(path.relative_to(PACKAGE)))
    return used


def problems_built() -> list[tuple[str, Severity | None, str]]:
    """(code, severity, module) of each `Problem(...)` the package builds with its code written
    in the call; the severity is None where the call works it out."""
    built = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Problem"):
                continue
            first = node.args[0] if node.args else None
            written = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
            severity = severity_written(
                next((k.value for k in node.keywords if k.arg == "severity"), None)
            )
            for code in written:
                if isinstance(code, ast.Constant) and CODE.match(str(code.value)):
                    built.append((code.value, severity, str(path.relative_to(PACKAGE))))
    return built


def severity_written(node: ast.expr | None) -> Severity | None:
    if node is None:
        return Severity.ERROR  # Problem's default
    if isinstance(node, ast.Attribute) and node.attr in Severity.__members__:
        return Severity[node.attr]  # Severity.WARNING
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_warning":
        return Severity.WARNING
    return None


def readme_table() -> list[list[str]]:
    """The rows of the table in README.md's "## Problem codes" section, as cells."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Problem codes\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, "README.md's '## Problem codes' section has no table"
    header, rule, *body = rows
    assert [c.strip() for c in header.strip("|").split("|")] == ["code", "stage", "meaning"]
    assert set(rule) <= set("|-: ")
    return [[c.strip() for c in row.strip().strip("|").split("|")] for row in body]


def row_of(code: codes.Code) -> str:
    return f"| `{code.id}` | {code.stage} | {code.summary} |"


def test_the_scan_finds_codes_as_constants_only(tmp_path):
    source = tmp_path / "module.py"
    source.write_text(
        '"""HM101 in a docstring is no use."""\n'
        'CODE = "HM301"\n'
        'problem = Problem("HM702", f"HM999 {x}", hint="see HM998")\n'
        'near = ["HM12", "HM1234", "hm103"]\n'
    )
    assert codes_written(source) == {"HM301", "HM702"}


def test_every_code_written_in_the_package_is_defined():
    defined = {code.id for code in codes.CODES}
    undefined = {code: where for code, where in codes_used().items() if code not in defined}
    assert undefined == {}, "define these in engine/hubmap/codes.py"


def test_every_defined_code_is_written_somewhere_in_the_package():
    used = codes_used()
    unused = [code.id for code in codes.CODES if code.id not in used]
    assert unused == [], "a code no module reports: remove it from engine/hubmap/codes.py"


def test_a_code_whose_severity_is_fixed_is_reported_with_it_wherever_it_is_built():
    built = problems_built()
    assert len({code for code, _, _ in built}) > 40  # the scan does find the producers
    fixed = {code.id: code.severity for code in codes.CODES if code.severity is not None}
    wrong = [
        (code, severity, where)
        for code, severity, where in built
        if severity is not None and code in fixed and severity is not fixed[code]
    ]
    assert wrong == [], "give these the registry's severity, or mark it as not fixed there"


def test_each_code_is_defined_once_in_order_with_a_stage_and_a_one_line_summary():
    ids = [code.id for code in codes.CODES]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    for code in codes.CODES:
        assert CODE.match(code.id), code
        assert code.stage in codes.STAGES.values()
        assert code.summary and "\n" not in code.summary and "|" not in code.summary, code
        assert "|" not in code.fix, code  # kept out of the README's table cells


def test_lookup_finds_each_code_and_refuses_an_unknown_one():
    for code in codes.CODES:
        assert codes.lookup(code.id) is code
    assert codes.lookup("HM412").stage == "meaning"
    assert codes.lookup("HM805").stage == "serve"
    with pytest.raises(KeyError):
        codes.lookup("HM999")


def test_an_unset_environment_variable_has_its_own_code_not_the_example_cases_one():
    assert resolve_env("portal ${PORTAL}", {"PORTAL": "123"}) == "portal 123"
    for environ in ({}, {"PORTAL": ""}):
        with pytest.raises(HubmapError) as unset:
            resolve_env("portal ${PORTAL}", environ)
        assert [p.code for p in unset.value.problems] == ["HM412"]
        assert "PORTAL is not set" in unset.value.problems[0].message


def test_the_readme_table_lists_every_code_with_its_stage_and_summary_and_no_other():
    table = readme_table()
    listed = [cells[0].strip("`") for cells in table]
    expected = "\n".join(row_of(code) for code in codes.CODES)
    assert listed == [code.id for code in codes.CODES], (
        "README.md's table of codes should be, in this order:\n" + expected
    )
    for cells, code in zip(table, codes.CODES):
        assert cells == [f"`{code.id}`", code.stage, code.summary], (
            f"README.md's row of {code.id} should read:\n{row_of(code)}"
        )
