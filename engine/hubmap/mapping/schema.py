"""Check a loaded mapping against `schemas/mapping.schema.json` and turn each error into a Problem.

jsonschema reports instance paths; this module maps them back to the YAML key or value that is
wrong, and rewrites jsonschema's messages into words for people who are not developers.  Which
error to show for a `oneOf` is decided here too: one problem per place, naming the allowed forms.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from hubmap.mapping.loader import LoadedDocument, shortened
from hubmap.problems import Problem

SCHEMA_RESOURCE = ("hubmap", "schemas/mapping.schema.json")


@lru_cache(maxsize=1)
def mapping_schema() -> dict[str, Any]:
    """The mapping JSON Schema shipped inside the package."""
    package, name = SCHEMA_RESOURCE
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    schema = mapping_schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def schema_problems(doc: LoadedDocument) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, int, int, str]] = set()
    for error in sorted(_validator().iter_errors(doc.data), key=lambda e: list(e.absolute_path)):
        for problem in _explain(error, doc):
            key = (problem.code, problem.location.line, problem.location.column, problem.message)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return problems


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def _where(path: tuple[Any, ...]) -> str:
    if not path:
        return "at the top level"
    return "in '" + shortened(".".join(str(p) for p in path), 120) + "'"


def _explain(error: jsonschema.ValidationError, doc: LoadedDocument) -> list[Problem]:
    path = tuple(error.absolute_path)
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}

    if validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extras = [k for k in error.instance if k not in schema.get("properties", {})]
        problems = []
        for extra in extras:
            suggestion = did_you_mean(extra, allowed)
            hint = (suggestion + " " if suggestion else "") + (
                "allowed keys here: " + ", ".join(allowed) if allowed else ""
            )
            problems.append(
                Problem(
                    "HM201",
                    f"unknown key '{shortened(str(extra), 80)}' {_where(path)}",
                    doc.key_location(path + (extra,)),
                    hint=hint.strip(),
                )
            )
        return problems

    if validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [
            Problem(
                "HM202",
                f"missing key '{key}' {_where(path)}",
                doc.key_location(path),
                hint=_describe_key(schema, key),
            )
            for key in missing
        ]

    if validator in ("enum", "const"):
        allowed = list(error.validator_value) if validator == "enum" else [error.validator_value]
        if path and path[-1] == "kind" and len(path) == 2 and path[0] == "target":
            allowed = ["contacts", "forms"]
        suggestion = did_you_mean(str(error.instance), [str(a) for a in allowed])
        listed = ", ".join(str(a) for a in allowed)
        name = path[-1] if path else "value"
        return [
            Problem(
                "HM204",
                f"'{shortened(str(error.instance), 80)}' is not a valid {name}",
                doc.location(path),
                hint=((suggestion + " ") if suggestion else "") + f"allowed: {listed}",
            )
        ]

    if validator == "type":
        wanted = error.validator_value
        wanted_words = " or ".join(
            _TYPE_WORDS.get(w, w) for w in (wanted if isinstance(wanted, list) else [wanted])
        )
        got = _TYPE_WORDS.get(_json_type(error.instance), _json_type(error.instance))
        hint = schema.get("description", "")
        return [
            Problem(
                "HM203",
                f"{_where(path)} must be {wanted_words}, not {got}",
                doc.location(path),
                hint=hint,
            )
        ]

    if validator == "oneOf":
        described = _oneof_words(schema)
        return [
            Problem(
                "HM205",
                f"{_where(path)} has the wrong form",
                doc.location(path),
                hint=described or (schema.get("description") or error.message),
            )
        ]

    if validator == "pattern":
        return [
            Problem(
                "HM206",
                f"'{shortened(str(error.instance), 80)}' is not a valid name {_where(path)}",
                doc.location(path),
                hint="use lower case letters, digits and underscores, starting with a letter",
            )
        ]

    # Size and range checks (minLength, minimum, maxItems ...): jsonschema's words are plain enough.
    return [
        Problem(
            "HM207",
            f"{_where(path)}: {shortened(error.message, 200)}",
            doc.location(path),
            hint=schema.get("description", ""),
        )
    ]


_TYPE_WORDS = {
    "object": "a set of 'key: value' lines",
    "array": "a list ('- ' items)",
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "empty",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _oneof_words(schema: dict[str, Any]) -> str:
    description = schema.get("description", "")
    ref = schema.get("$ref")
    if ref and not description:
        description = _resolve(ref).get("description", "")
    return description


def _resolve(ref: str) -> dict[str, Any]:
    node: Any = mapping_schema()
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part, {})
    return node if isinstance(node, dict) else {}


def _describe_key(schema: dict[str, Any], key: str) -> str:
    sub = schema.get("properties", {}).get(key, {})
    description = sub.get("description", "")
    if not description and "$ref" in sub:
        description = _resolve(sub["$ref"]).get("description", "")
    return description
