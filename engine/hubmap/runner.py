"""The use-cases behind the commands: validate, test, plan (and run, in `hubmap.run`).

Each returns data (problems, case results, plans); the CLI decides how to print it and which exit
code it means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hubmap.evaluate import CompiledMapping
from hubmap.examples import CaseResult, outcomes, run_examples
from hubmap.inputs import read_documents
from hubmap.mapping import check_file, collect_files, load_mapping
from hubmap.plan import Plan, plan_outcomes
from hubmap.problems import Problem


def validate(paths: Sequence[str]) -> list[Problem]:
    """Every problem of every mapping file under `paths`, in file order."""
    files, problems = collect_files(list(paths))
    for path in files:
        problems.extend(check_file(path).problems)
    return problems


@dataclass
class TestReport:
    problems: list[Problem] = field(default_factory=list)  # mappings that could not be tested
    cases: list[CaseResult] = field(default_factory=list)
    mappings_without_cases: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(p.is_error for p in self.problems) and all(c.passed for c in self.cases)


def test(paths: Sequence[str]) -> TestReport:
    """Run the example cases of every mapping under `paths`."""
    report = TestReport()
    files, report.problems = collect_files(list(paths))
    for path in files:
        checked = check_file(path)
        if not checked.ok or checked.mapping is None:
            report.problems.extend(p for p in checked.problems if p.is_error)
            continue
        if not checked.mapping.examples:
            report.mappings_without_cases.append(str(path))
        report.cases.extend(run_examples(checked.mapping))
    return report


def plan(mapping_path: str, input_path: str, input_format: str | None = None) -> Plan:
    """What the orders in `input_path` would write, per contact (HubSpot's values unknown)."""
    mapping = load_mapping(mapping_path)
    compiled = CompiledMapping(mapping)
    return plan_outcomes(compiled, outcomes(compiled, read_documents(input_path, input_format)))
