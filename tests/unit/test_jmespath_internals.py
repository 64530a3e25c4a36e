"""The parts of jmespath that are not its public API and that hubmap/expressions/jmes.py relies
on (listed in its docstring and next to the jmespath line of pyproject.toml) are still there, and
the installed jmespath is one that line allows.  Each failure names what went missing."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from typing import Any

import jmespath
import pytest
from jmespath import functions as jmespath_functions
from jmespath import lexer as jmespath_lexer
from jmespath import visitor as jmespath_visitor
from packaging.requirements import Requirement

from hubmap.expressions.jmes import compile_expression
from tests.conftest import ROOT

INSTALLED = version("jmespath")


def require(present: bool, what: str) -> None:
    if not present:
        pytest.fail(
            f"jmespath {INSTALLED} no longer has {what}, which hubmap/expressions/jmes.py relies "
            "on: keep jmespath to the range pyproject.toml names, or adapt jmes.py",
            pytrace=False,
        )


def test_the_installed_jmespath_is_in_the_pinned_range() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pins = [Requirement(d) for d in re.findall(r'^    "(jmespath\b[^"]*)",$', text, re.MULTILINE)]
    assert len(pins) == 1
    assert pins[0].specifier.contains(INSTALLED), f"jmespath {INSTALLED} is not {pins[0]}"


@pytest.mark.parametrize(
    ("method", "parameters"),
    [
        ("_get_allowed_pytypes", ["self", "types"]),
        ("_convert_to_jmespath_type", ["self", "pyobject"]),
        ("_create_key_func", ["self", "expref", "allowed_types", "function_name"]),
    ],
)
def test_the_functions_methods_shop_functions_overrides_exist(
    method: str, parameters: list[str]
) -> None:
    found = getattr(jmespath_functions.Functions, method, None)
    require(found is not None, f"Functions.{method}")
    require(
        list(inspect.signature(found).parameters) == parameters,
        f"Functions.{method}({', '.join(parameters)}) (it takes "
        f"{list(inspect.signature(found).parameters)})",
    )


def test_the_function_table_and_type_names_are_as_read() -> None:
    table = getattr(jmespath_functions.Functions, "FUNCTION_TABLE", None)
    require(isinstance(table, dict), "Functions.FUNCTION_TABLE")
    assert table is not None
    require(all("signature" in spec for spec in table.values()), "a signature in FUNCTION_TABLE")
    types = getattr(jmespath_functions, "REVERSE_TYPES_MAP", {})
    require(types.get("expref") == ("_Expression",), "the type name _Expression of &expression")
    require("float" in types.get("number", ()), "the type name float for numbers")


def test_the_comparators_and_the_lexer_are_as_read() -> None:
    comparators = getattr(jmespath_visitor.TreeInterpreter, "COMPARATOR_FUNC", {})
    require(
        {"eq", "ne", "lt", "gt", "lte", "gte"} <= set(comparators),
        "TreeInterpreter.COMPARATOR_FUNC",
    )
    tokens = list(jmespath_lexer.Lexer().tokenize("length(a)"))
    require(
        [(t.get("type"), t.get("start")) for t in tokens[:2]]
        == [("unquoted_identifier", 0), ("lparen", 6)],
        "lexer.Lexer().tokenize giving tokens with a type and a start",
    )


RECORD = {
    "a": 1,
    "b": 0,
    "items": [{"b": 3, "c": "x"}, {"b": 1, "c": "y"}],
    "nested": [[1], [2, 3]],
    "object": {"x": 1, "y": 2},
}

ONE_OF_EACH_NODE_TYPE = [
    "a",
    "object.x",
    "items[0].c",
    "items[1:]",
    "items[*].c",
    "items[*]",
    "nested[]",
    "object.*",
    "items[?b > `1`].c",
    "`5`",
    "@",
    "[a, b]",
    "{first: a, second: b}",
    "b || a",
    "a && b",
    "!b",
    "items | [0]",
    "sort_by(items, &b)[].c",
    "map(&c, items)",
    "max_by(items, &b).c",
]


def node_types(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(node_types(child) for child in node))
    if not isinstance(node, dict):
        return set()
    return {node["type"]} | node_types(node.get("children", []))


def test_every_node_type_of_the_library_has_a_closure() -> None:
    interpreted = {
        name.removeprefix("visit_")
        for name in dir(jmespath_visitor.TreeInterpreter)
        if name.startswith("visit_")
    }
    covered = set().union(*(node_types(jmespath.compile(t).parsed) for t in ONE_OF_EACH_NODE_TYPE))
    require(not covered - interpreted, f"the node types {sorted(covered - interpreted)}")
    # A node type added by a release would reach the closures' "not supported" error.
    assert interpreted <= covered, (
        f"jmespath {INSTALLED} interprets node types the closures of jmes.py were not checked "
        f"against: {sorted(interpreted - covered)}"
    )


@pytest.mark.parametrize("text", ONE_OF_EACH_NODE_TYPE)
def test_the_closures_give_what_the_library_gives(text: str) -> None:
    # Also the `&expression` protocol: the library's sort_by, map, max_by call back into it.
    assert compile_expression(text)(RECORD) == jmespath.search(text, RECORD)
