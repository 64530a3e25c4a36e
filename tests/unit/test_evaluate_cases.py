"""Engine semantics as data: tests/cases/evaluate/*.yaml hold a mapping fragment and records,
each with the typed values it gives (as HubSpot text), or why it is rejected, or that it is
skipped.  Every case runs through the real `CompiledMapping`.

A case file:

    mapping: {...}        # merged into BASE_MAPPING (dicts merged key by key)
    base_record: {...}    # optional: fields every record of the file starts from
    cases:
      - name: ...
        record: {...}                 # merged over base_record
        values: {property: "text"}    # every value the order gives (null: cleared)
      - name: ...
        record: {...}
        rejected: {property: p, reason_contains: "...", code: HM504}   # each key optional
      - name: ...
        record: {...}
        skipped: true
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubmap import types
from hubmap.evaluate import CompiledMapping, OrderValues, Rejected, Skipped
from hubmap.mapping import check_document
from hubmap.mapping.loader import load_text
from tests.conftest import CASES

BASE_MAPPING: dict[str, Any] = {
    "version": 1,
    "name": "evaluate-case",
    "records": {"id": "id", "time": "at", "contact": "email"},
    "target": {"kind": "contacts"},
    "properties": {},
}

FILES = sorted((CASES / "evaluate").glob("*.yaml"))
OUTCOME_KEYS = {"values", "rejected", "skipped"}


def merged(base: Any, fragment: Any) -> Any:
    """`fragment` over `base`: dicts merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(fragment, dict):
        result = dict(base)
        for key, value in fragment.items():
            result[key] = merged(base[key], value) if key in base else value
        return result
    return copy.deepcopy(fragment)


def load_cases() -> list[Any]:
    params = []
    for path in FILES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in data["cases"]:
            params.append(pytest.param(path, data, case, id=f"{path.stem}:{case['name']}"))
    return params


def compiled_of(path: Path, data: dict[str, Any]) -> CompiledMapping:
    text = yaml.safe_dump(merged(BASE_MAPPING, data["mapping"]), sort_keys=False)
    checked = check_document(load_text(text, path.name), environ={})
    assert checked.ok, [str(p) for p in checked.problems if p.is_error]
    return CompiledMapping(checked.mapping)  # type: ignore[arg-type]


def as_wire(compiled: CompiledMapping, values: dict[str, Any]) -> dict[str, str | None]:
    mapping = compiled.mapping
    return {
        name: None if typed is None else types.to_wire(typed, mapping.property(name))
        for name, typed in values.items()
    }


@pytest.mark.parametrize(("path", "data", "case"), load_cases())
def test_evaluate_case(path: Path, data: dict[str, Any], case: dict[str, Any]) -> None:
    (expected_kind,) = OUTCOME_KEYS & set(case)  # exactly one expected outcome per case
    record = merged(data.get("base_record") or {}, case["record"])
    compiled = compiled_of(path, data)
    outcome = compiled.evaluate(record, "case")
    if expected_kind == "values":
        assert isinstance(outcome, OrderValues), outcome
        assert as_wire(compiled, outcome.values) == case["values"]
    elif expected_kind == "rejected":
        assert isinstance(outcome, Rejected), outcome
        wanted = case["rejected"] or {}
        if "property" in wanted:
            assert outcome.property_name == wanted["property"]
        if "code" in wanted:
            assert outcome.code == wanted["code"]
        assert wanted.get("reason_contains", "").lower() in outcome.reason.lower()
    else:
        assert case["skipped"] is True
        assert isinstance(outcome, Skipped), outcome


def test_the_case_files_are_there_and_hold_enough_cases() -> None:
    assert len(load_cases()) >= 30
