"""Problems: what hubmap reports to a person, and where.

A `Problem` is data (code, severity, message, hint, location), never an exception, so that every
stage can collect all of them and one reporter prints them.  Codes are stable and grouped by stage
(each one is defined once, with what it means, in `hubmap.codes`):

    HM1xx  reading a mapping file (not found, not YAML, duplicate keys, unsafe tags ...)
    HM2xx  the mapping's shape (JSON Schema: unknown keys, wrong types, bad enum values ...)
    HM3xx  expressions (JMESPath and Jinja templates that do not compile)
    HM4xx  meaning (merge rule does not fit the type, read-only property, secrets in a mapping ...)
    HM5xx  records (a value that cannot be computed or typed for one order)
    HM6xx  HubSpot (what the portal refused or would refuse)
    HM7xx  the local state store
    HM8xx  the configuration of `hubmap serve`

Lines and columns count from 1.  Parsers count from 0; they are converted in `Location.from_mark`
and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file, a line and column (from 1), and the key path inside the file."""

    file: str
    line: int = 0
    column: int = 0
    path: tuple[str | int, ...] = ()

    @classmethod
    def from_mark(cls, file: str, mark: Any, path: tuple[str | int, ...] = ()) -> Location:
        """Build a location from a PyYAML mark (0-based line and column)."""
        return cls(file=file, line=mark.line + 1, column=mark.column + 1, path=path)

    def shifted(self, columns: int) -> Location:
        """The same place, `columns` characters further right on the same line."""
        return Location(self.file, self.line, self.column + columns, self.path)

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    location: Location
    hint: str = ""
    severity: Severity = Severity.ERROR
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
            "file": self.location.file,
            "line": self.location.line,
            "column": self.location.column,
            "path": "/".join(str(p) for p in self.location.path),
        }


class HubmapError(Exception):
    """A user-facing failure that stops a command; carries the problems that explain it."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("; ".join(p.message for p in self.problems))
