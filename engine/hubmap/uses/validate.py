"""`hubmap validate`: every problem of every mapping file under the paths, in file order."""

from __future__ import annotations

from collections.abc import Sequence

from hubmap.mapping import check_file, collect_files
from hubmap.problems import Problem
from hubmap.uses.outcome import EXIT_OK, EXIT_PROBLEMS, Outcome


def validate(paths: Sequence[str]) -> Outcome:
    files, problems = collect_files(list(paths))
    for path in files:
        problems.extend(check_file(path, deep=True).problems)
    return Outcome(problems, EXIT_PROBLEMS if _errors(problems) else EXIT_OK)


def _errors(problems: list[Problem]) -> int:
    return sum(1 for p in problems if p.is_error)
