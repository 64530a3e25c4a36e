"""The use-cases behind the commands: validate, test, plan, run.

Each returns data (problems, results, summaries); the CLI decides how to print it and which exit
code it means.
"""

from __future__ import annotations

from collections.abc import Sequence

from hubmap.mapping import check_file, collect_files
from hubmap.problems import Problem


def validate(paths: Sequence[str]) -> list[Problem]:
    """Every problem of every mapping file under `paths`, in file order."""
    files, problems = collect_files(list(paths))
    for path in files:
        problems.extend(check_file(path).problems)
    return problems
