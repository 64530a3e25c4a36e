"""Mapping parameters: values a shop sets without editing its copy of a mapping.

    params:
      SHOP_CURRENCY: {default: USD, description: the shop's currency}

An expression, a template or the `timezone` reads one as `${SHOP_CURRENCY}`; its value comes
from the environment variable of the same name (`--param NAME=VALUE` on the command line sets
it for the command), else the default.  Values are put into the texts before anything is
compiled, so a value is checked first: it may not hold a quote, a backtick, a backslash, a brace
or '$', which would change the expression around it (HM420).  A `${NAME}` in an expression that
names no parameter is HM421.  (Columns of problems after a value in the same text are counted
in the text with the value in.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingType
from dataclasses import dataclass
from typing import Any

from hubmap.mapping.loader import LoadedDocument
from hubmap.problems import Location, Problem

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
UNSAFE = re.compile(r"['\"`\\\\{}$]")
# where a ${NAME} is a parameter: every text of the mapping but these (the examples are data;
# the target's portal_id and form_guid name environment variables read when the run starts)
_NOT_SUBSTITUTED = ("examples", "params", "description")
_TARGET_ENV_KEYS = ("portal_id", "form_guid")


@dataclass(frozen=True)
class Param:
    name: str
    value: str | None  # None: refused (HM420), not put into the texts
    origin: str  # "default" or "environment"
    location: Location


def resolve(
    doc: LoadedDocument, environ: MappingType[str, str]
) -> tuple[dict[str, Param], list[Problem]]:
    """Each declared parameter's value and where it came from; HM420 for an unsafe value."""
    declared = (doc.data or {}).get("params") or {}
    params: dict[str, Param] = {}
    problems: list[Problem] = []
    if not isinstance(declared, dict):
        return params, problems  # the schema says what is wrong
    for name, spec in declared.items():
        if not isinstance(spec, dict) or "default" not in spec:
            continue
        from_env = environ.get(str(name))
        value, origin = (
            (from_env, "environment")
            if from_env is not None
            else (_text(spec["default"]), "default")
        )
        where = doc.key_location(("params", name))
        bad = UNSAFE.search(value)
        if bad is not None:
            said = (
                f"--param or the environment variable {name}"
                if origin == "environment"
                else "its default"
            )
            problems.append(
                Problem(
                    "HM420",
                    f"parameter {name}: the value from {said} holds {bad.group()!r}, which "
                    "would change the expressions that read it",
                    where,
                    hint="a parameter holds a plain value such as EUR or Europe/Berlin: no quotes, "
                    "backticks, backslashes, braces or '$'",
                )
            )
            value = None
        params[str(name)] = Param(str(name), value, origin, where)
    return params, problems


def substitute(doc: LoadedDocument, params: dict[str, Param]) -> None:
    """Put the parameters' values into the document's texts (in place)."""
    if not params or not isinstance(doc.data, dict):
        return
    for key, value in doc.data.items():
        if key in _NOT_SUBSTITUTED:
            continue
        doc.data[key] = _filled(value, params, top=key)


def _filled(value: Any, params: dict[str, Param], top: str = "") -> Any:
    if isinstance(value, str):

        def value_of(found: re.Match[str]) -> str:
            param = params.get(found.group(1))
            return param.value if param is not None and param.value is not None else found.group()

        return REFERENCE.sub(value_of, value)
    if isinstance(value, dict):
        return {
            k: v
            if (top == "target" and k in _TARGET_ENV_KEYS) or k == "description"
            else _filled(v, params)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_filled(v, params) for v in value]
    return value


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
