"""hubmap.expressions.registry: each function is declared once, and everything built from the
declarations holds: every example gives its result through the real evaluators (JMESPath, and
Jinja for filters), every function an expression can call is declared with the arity its code
takes, and the README's function table is the one the declarations make (when it is not, the
failure shows the table to paste)."""

from __future__ import annotations

import inspect
import json
import re
from decimal import Decimal
from typing import Any

import pytest

from hubmap.catalogs import Catalog, Catalogs
from hubmap.expressions import FILTER_DOCS, FUNCTION_DOCS, FunctionDoc, compile_template
from hubmap.expressions.functions import CATALOGS, LETS, SHOP_FUNCTIONS, RecordLets
from hubmap.expressions.jmes import ARITIES, compile_expression
from hubmap.expressions.templates import SHOP_FILTERS
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
TABLE_HEADER = "| function | example | input | result |"


def evaluate(doc: FunctionDoc) -> Any:
    """The example's expression on its record, with the example's catalogs and let: section."""
    catalogs = CATALOGS.set(
        Catalogs({name: Catalog(name, rows) for name, rows in doc.catalogs.items()})
        if doc.catalogs
        else None
    )
    lets = LETS.set(
        RecordLets(
            {name: compile_expression(text) for name, text in doc.lets.items()}, doc.example_input
        )
        if doc.lets
        else None
    )
    try:
        return compile_expression(doc.example)(doc.example_input)
    finally:
        CATALOGS.reset(catalogs)
        LETS.reset(lets)


@pytest.mark.parametrize("name", sorted(FUNCTION_DOCS))
def test_every_function_example_gives_its_result(name: str) -> None:
    doc = FUNCTION_DOCS[name]
    assert doc.signature.startswith(f"{name}(") and doc.description
    result = evaluate(doc)
    assert result == doc.example_output
    assert type(result) is type(doc.example_output)  # 2.5 is a Decimal, not a float


@pytest.mark.parametrize("name", sorted(FILTER_DOCS))
def test_every_filter_example_gives_its_result(name: str) -> None:
    doc = FILTER_DOCS[name]
    assert f"| {name}" in doc.signature and doc.description
    assert compile_template(doc.example)(doc.example_input) == doc.example_output


def test_every_function_an_expression_can_call_is_declared() -> None:
    # ARITIES is what compile time accepts: the library's built-ins and hubmap's declarations.
    assert set(ARITIES) == set(FUNCTION_DOCS)
    assert set(SHOP_FUNCTIONS) <= set(FUNCTION_DOCS)


@pytest.mark.parametrize("name", sorted(SHOP_FUNCTIONS))
def test_declared_arity_is_what_the_implementation_takes(name: str) -> None:
    function = SHOP_FUNCTIONS[name]
    parameters = inspect.signature(function.implementation)
    variadic = any(p.kind is p.VAR_POSITIONAL for p in parameters.parameters.values())
    assert variadic == (function.max_args is None)
    parameters.bind(*[None] * function.min_args)
    if variadic:  # (takes fewer too: compile time refuses them)
        parameters.bind(*[None] * (function.min_args + 5))
        return
    parameters.bind(*[None] * function.max_args)
    with pytest.raises(TypeError):
        parameters.bind(*[None] * (function.max_args + 1))
    with pytest.raises(TypeError):
        parameters.bind(*[None] * (function.min_args - 1))


def test_every_template_filter_is_declared() -> None:
    # "d" is Jinja's short name for default.
    assert set(SHOP_FILTERS) == set(FILTER_DOCS) | {"d"}
    assert SHOP_FILTERS["d"] is SHOP_FILTERS["default"]


def test_the_readme_lists_every_filter() -> None:
    paragraph = re.search(r"Filters:\n?(.*?) and a safe\s+subset of Jinja's own", README, re.DOTALL)
    assert paragraph is not None, "the README's list of filters is not where the test looks"
    listed = set(re.findall(r"`(\w+)", paragraph[1]))
    assert listed == set(FILTER_DOCS)


# ----------------------------------------------------------------------- the README's table


def json_text(value: Any) -> str:
    """`value` as the README writes it: JSON, with Decimals exactly as written."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(json_text(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{json.dumps(key)}: {json_text(item)}" for key, item in value.items())
        return "{" + ", ".join(pairs) + "}"
    return json.dumps(value, ensure_ascii=False)


def code(text: str) -> str:
    return f"``{text}``" if "`" in text else f"`{text}`"


def table_row(doc: FunctionDoc) -> str:
    record = code(json_text(doc.example_input))
    # What the example is evaluated with goes first: a row whose input cell starts with the
    # record is one the README test evaluates on the record alone.
    context = [
        f"catalog `{name}`: {code(json_text(rows))}" for name, rows in (doc.catalogs or {}).items()
    ]
    context += [f"`let:` `{name}: {text}`" for name, text in (doc.lets or {}).items()]
    cells = [
        f"`{doc.signature}` — {doc.description}",
        code(doc.example),
        ", ".join([*context, f"record {record}"]) if context else record,
        code(json_text(doc.example_output)),
    ]
    for cell in cells:
        assert "|" not in cell, f"a '|' would split the README's table: {cell}"
    return "| " + " | ".join(cells) + " |"


def function_table() -> str:
    rows = [TABLE_HEADER, "|---|---|---|---|"]
    rows += [table_row(doc) for doc in FUNCTION_DOCS.values()]
    return "\n".join(rows)


def readme_table() -> str:
    start = README.index(TABLE_HEADER)
    end = README.find("\n\n", start)
    return README[start:end]


def test_the_readme_function_table_is_made_from_the_declarations() -> None:
    expected = function_table()
    assert readme_table() == expected, (
        "README.md's function table differs from the functions' declarations; "
        "the table they make is:\n\n" + expected
    )


def test_the_readme_table_has_one_row_per_function() -> None:
    rows = readme_table().splitlines()[2:]
    named = [re.match(r"^\| `(\w+)\(", row) for row in rows]
    assert [m[1] if m else row for m, row in zip(named, rows, strict=True)] == list(FUNCTION_DOCS)
