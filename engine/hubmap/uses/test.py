"""`hubmap test`: run the example cases of every mapping under the paths."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hubmap.examples import CaseResult, never_given_by_examples, run_examples
from hubmap.mapping import check_file, collect_files
from hubmap.mapping.model import Mapping
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
        report.cases.extend(run_cases(path, checked.mapping))
        report.never_given += [
            (str(path), name) for name in never_given_by_examples(checked.mapping)
        ]
    return Outcome(report, EXIT_OK if report.passed else EXIT_PROBLEMS)


def run_cases(path: Path, mapping: Mapping) -> list[CaseResult]:
    """The mapping's cases, each with the parameters it names: a case that sets params: runs on
    the mapping read again with those values in (the others on `mapping` as it was read)."""
    wanted = {tuple(sorted(e.params.items())) for e in mapping.examples if e.params}
    if not wanted:
        return run_examples(mapping)
    results: dict[int, CaseResult] = {}
    plain = [i for i, e in enumerate(mapping.examples) if not e.params]
    for i, result in zip(plain, run_examples(mapping, plain)):
        results[i] = result
    for values in sorted(wanted):
        chosen = [
            i for i, e in enumerate(mapping.examples) if tuple(sorted(e.params.items())) == values
        ]
        again = check_file(path, environ={**os.environ, **dict(values)})
        if again.mapping is None or not again.ok:
            why = "; ".join(str(p) for p in again.problems if p.is_error)
            for i in chosen:
                example = mapping.examples[i]
                results[i] = CaseResult(
                    mapping.file,
                    example.name,
                    example.location,
                    errors=[f"the case could not run with its params: {why}"],
                )
            continue
        for i, result in zip(chosen, run_examples(again.mapping, chosen)):
            results[i] = result
    return [results[i] for i in sorted(results)]


test.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
