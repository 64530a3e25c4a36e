"""Formatters for problems: text for people, JSON for tools, GitHub annotations for CI.

Each formatter is a pure function from problems to text; the CLI picks one and prints it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from hubmap.problems import Problem

FORMATS = ("text", "json", "github")


def format_text(problems: Sequence[Problem]) -> str:
    lines = []
    for problem in problems:
        line = f"{problem.location}: {problem.severity.value} {problem.code} {problem.message}"
        if problem.hint:
            line += f" ({problem.hint})"
        lines.append(line)
    return "\n".join(lines)


def format_json(problems: Sequence[Problem]) -> str:
    return json.dumps([p.to_dict() for p in problems], indent=2, ensure_ascii=False)


def _escape_data(text: str) -> str:
    # GitHub workflow commands: %, CR and LF must be escaped in the message.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(problems: Sequence[Problem]) -> str:
    lines = []
    for problem in problems:
        level = "error" if problem.is_error else "warning"
        where = f"file={_escape_property(problem.location.file)}"
        if problem.location.line:
            where += f",line={problem.location.line},col={problem.location.column}"
        message = f"{problem.code} {problem.message}"
        if problem.hint:
            message += f" ({problem.hint})"
        lines.append(f"::{level} {where},title={problem.code}::{_escape_data(message)}")
    return "\n".join(lines)


FORMATTERS: dict[str, Callable[[Sequence[Problem]], str]] = {
    "text": format_text,
    "json": format_json,
    "github": format_github,
}


def default_format(environ: dict[str, str]) -> str:
    """GitHub annotations switch on by themselves under GitHub Actions."""
    return "github" if environ.get("GITHUB_ACTIONS") == "true" else "text"
