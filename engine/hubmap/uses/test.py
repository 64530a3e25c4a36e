"""`hubmap test`: run the example cases of every mapping under the paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hubmap.examples import CaseResult, never_given_by_examples, run_examples
from hubmap.mapping import check_file, collect_files
from hubmap.problems import Problem
from hubmap.uses.outcome import EXIT_OK, EXIT_PROBLEMS, Outcome


@dataclass
class TestReport:
    problems: list[Problem] = field(default_factory=list)  # mappings that could not be tested
    cases: list[CaseResult] = field(default_factory=list)
    mappings_without_cases: list[str] = field(default_factory=list)
    # (mapping file, property) that no example record gives a value
    never_given: list[tuple[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(p.is_error for p in self.problems) and all(c.passed for c in self.cases)


def test(paths: Sequence[str]) -> Outcome:
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
        report.never_given += [(str(path), name)
                               for name in never_given_by_examples(checked.mapping)]
    return Outcome(report, EXIT_OK if report.passed else EXIT_PROBLEMS)


test.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
