"""Example-file tests for `hubmap validate`: positive files are clean, negative files report
exactly the (code, line, column) list written beside them in NAME.expected.json."""

from __future__ import annotations

import json

import pytest

from hubmap.mapping import check_file
from tests.conftest import CASES

POSITIVE = sorted((CASES / "validate" / "positive").glob("*.yaml"))
NEGATIVE = sorted((CASES / "validate" / "negative").glob("*.yaml"))


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_cases_have_no_errors(path):
    checked = check_file(path)
    assert [p for p in checked.problems if p.is_error] == []
    assert checked.mapping is not None


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.stem)
def test_negative_cases_report_code_line_and_column(path):
    expected_file = path.with_suffix(".expected.json")
    assert expected_file.exists(), f"write {expected_file.name} beside {path.name}"
    expected = [tuple(item) for item in json.loads(expected_file.read_text())]
    got = [(p.code, p.location.line, p.location.column) for p in check_file(path).problems]
    assert got == expected
    assert check_file(path).mapping is None or not check_file(path).ok


def test_every_case_folder_is_populated():
    assert len(POSITIVE) >= 3 and len(NEGATIVE) >= 15
