"""The registry of the functions mapping authors call: each is declared once, where it is defined.

`@shop_function(name, arity=..., signature=..., summary=..., example=..., filter=...)` on a
function records everything the rest of the code and the documentation need: how many arguments
it takes, one line about it, an example that the tests run, and (`filter=Filter(...)`) its form
as a template filter.  `shop_filter` declares a filter that has no JMESPath function of its own
(`decimals`, `text`) or a template version of its own (`sum`, `join`, `default`), and
`jmespath_function` documents one of JMESPath's built-ins, which the library implements.

The tables are built from these declarations: `FUNCTIONS` (hubmap's implementations, read by
`jmes.py`), `FUNCTION_DOCS` (every function an expression can call), `FILTERS` and `FILTER_DOCS`
(read by `templates.py`); the README's function table is checked against `FUNCTION_DOCS`.  So
adding a function is one decorated definition.  Plain data, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

Implementation = TypeVar("Implementation", bound=Callable[..., Any])


class FunctionDoc(NamedTuple):
    """How a function is documented: `signature`, one line, and an example that tests run
    (`catalogs`: catalog name -> {key: row}, for functions that look things up; `lets`: the
    `let:` section, for `let`)."""

    signature: str
    description: str
    example: str
    example_input: Any
    example_output: Any
    catalogs: Any = None
    lets: Any = None  # let name -> expression text, for `let`


@dataclass(frozen=True)
class ShopFunction:
    """A function offered to mapping authors: its implementation and how many arguments it takes."""

    name: str
    implementation: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: any number


@dataclass(frozen=True)
class Filter:
    """A function's form as a template filter: `example` is (template, record, output text).
    `of_list`: the filtered value is a list, so a template's lazy sequence (what `map` gives)
    is read into one first."""

    signature: str
    summary: str
    example: tuple[str, Any, str]
    of_list: bool = False


@dataclass(frozen=True)
class ShopFilter:
    """A template filter: its implementation, and whether its value is read as a list first."""

    name: str
    implementation: Callable[..., Any]
    of_list: bool


FUNCTIONS: dict[str, ShopFunction] = {}
"""hubmap's functions by name (JMESPath's built-ins not listed here keep their own code)."""

FUNCTION_DOCS: dict[str, FunctionDoc] = {}
"""Every function an expression can call, hubmap's and JMESPath's, with a checked example."""

FILTERS: dict[str, ShopFilter] = {}
"""hubmap's template filters by name (next to the subset of Jinja's own that templates keep)."""

FILTER_DOCS: dict[str, FunctionDoc] = {}
"""Every hubmap template filter, with a checked example."""


def shop_function(
    name: str,
    *,
    arity: tuple[int, int | None],
    signature: str,
    summary: str,
    example: tuple[str, Any, Any],
    filter: Filter | None = None,
    catalogs: Any = None,
    lets: Any = None,
) -> Callable[[Implementation], Implementation]:
    """Declare the decorated function as the expression function `name` (and, with `filter`,
    as the template filter `name`). `example` is (expression, record, result); `catalogs` and
    `lets` are what the example's record is evaluated with."""

    def register(implementation: Implementation) -> Implementation:
        _document(FUNCTION_DOCS, name, signature, summary, example, catalogs, lets)
        least, most = arity
        FUNCTIONS[name] = ShopFunction(name, implementation, least, most)
        if filter is not None:
            _register_filter(name, implementation, filter)
        return implementation

    return register


def shop_filter(name: str, form: Filter) -> Callable[[Implementation], Implementation]:
    """Declare the decorated function as the template filter `name`."""

    def register(implementation: Implementation) -> Implementation:
        _register_filter(name, implementation, form)
        return implementation

    return register


def jmespath_function(
    name: str, *, signature: str, summary: str, example: tuple[str, Any, Any]
) -> None:
    """Document JMESPath's own function `name` (the library implements it and knows its arity)."""
    _document(FUNCTION_DOCS, name, signature, summary, example, None, None)


def _register_filter(name: str, implementation: Callable[..., Any], form: Filter) -> None:
    _document(FILTER_DOCS, name, form.signature, form.summary, form.example, None, None)
    FILTERS[name] = ShopFilter(name, implementation, form.of_list)


def _document(
    table: dict[str, FunctionDoc],
    name: str,
    signature: str,
    summary: str,
    example: tuple[str, Any, Any],
    catalogs: Any,
    lets: Any,
) -> None:
    # A second declaration of one name would silently replace the first.
    if name in table:
        raise ValueError(f"{name} is declared twice")
    expression, record, result = example
    table[name] = FunctionDoc(signature, summary, expression, record, result, catalogs, lets)
