"""A shipped mapping made into a shop's own starter: its parameters' defaults set to the shop's
values, its example cases pinned to the values they were written for.

Pure text edits on the YAML, so the comments that explain the mapping stay as they are.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_./:+-]*$")


def declared_defaults(text: str) -> dict[str, str]:
    """The parameters the mapping declares, with their defaults as text."""
    data = yaml.safe_load(text) or {}
    return {
        str(name): str(spec.get("default"))
        for name, spec in (data.get("params") or {}).items()
        if isinstance(spec, dict)
    }


def with_defaults(text: str, values: dict[str, str]) -> str:
    """`text` with each named parameter's `default:` line set to its value."""
    for name, value in values.items():
        pattern = re.compile(
            rf"(^  {re.escape(name)}:\n(?:    .*\n)*?    default: )(.*)$", re.MULTILINE
        )
        written = _scalar(value)
        text, count = pattern.subn(lambda m, w=written: m.group(1) + w, text, count=1)
        if count != 1:
            raise ValueError(f"the mapping declares no parameter {name} under params:")
    return text


def with_pinned_cases(text: str, values: dict[str, str]) -> str:
    """`text` with every example case given `params:` (the values it was written for), so the
    cases still pass once the defaults name another shop."""
    if not values:
        return text
    pinned = "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in values.items()) + "}"
    head, found, cases = text.partition("\nexamples:\n")
    if not found:
        return text
    cases = re.sub(r"^  - name: ", f"  - params: {pinned}\n    name: ", cases, flags=re.MULTILINE)
    result = head + found + cases
    _check_pinned(result, values)
    return result


def with_schema_header(text: str, schema_path: str) -> str:
    """`text` with its first line's `$schema=` (for editors) pointing at `schema_path`."""
    return re.sub(
        r"^(# yaml-language-server: \$schema=).*$",
        lambda m: m.group(1) + schema_path,
        text,
        count=1,
        flags=re.MULTILINE,
    )


def referenced_files(text: str) -> list[str]:
    """The files the mapping reads, relative to it: its catalogs and its example inputs."""
    data: dict[str, Any] = yaml.safe_load(text) or {}
    files = [
        spec["file"]
        for spec in (data.get("catalogs") or {}).values()
        if isinstance(spec, dict) and isinstance(spec.get("file"), str)
    ]
    files += [
        case["input_file"]
        for case in data.get("examples") or []
        if isinstance(case, dict) and isinstance(case.get("input_file"), str)
    ]
    return sorted(set(files))


def _scalar(value: str) -> str:
    """`value` as a YAML text: plain when YAML reads it back as the same text, else quoted."""
    if _PLAIN.match(value):
        try:
            if yaml.safe_load(f"k: {value}") == {"k": value}:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


def _check_pinned(text: str, values: dict[str, str]) -> None:
    cases = (yaml.safe_load(text) or {}).get("examples") or []
    for case in cases:
        got = {k: str(v) for k, v in (case.get("params") or {}).items()}
        if got != values:  # a case written in another shape than "  - name:"
            raise ValueError(f"example case {case.get('name')!r} could not be given params:")
