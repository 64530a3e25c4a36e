"""Expressions: turn a mapping's `Source` into a function from one record to one value.

`compile_source(source)` is the single entry point: a JMESPath expression (`jmes.py`), a sandboxed
Jinja template (`templates.py`) or a fixed value.  Compiling raises only `ExpressionSyntaxError`
(with the character offset inside the expression, for `Source.location_at`); evaluating raises only
`ExpressionError` (with a plain message).  Pure: no I/O, no environment, and the clock only
decides when an evaluation has taken too long.

Every evaluation is bounded in time and memory (`budget.py`): `budget.run()` around one
record's evaluation, and an evaluation past a bound raises an `ExpressionError` naming it.

`truthy(value)` decides `when` conditions.  It follows JMESPath (false, null, "", [] and {} are
false) and also treats the number zero as false, as the mapping language says ("not false, null,
empty or zero"), so `when: refunds_total` skips orders without refunds.  Inside an expression,
JMESPath's own rules still apply (`[?quantity]` keeps items with quantity 0).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hubmap.expressions import budget
from hubmap.expressions.errors import ExpressionError, ExpressionSyntaxError
from hubmap.expressions.functions import FUNCTION_DOCS
from hubmap.expressions.jmes import compared_fields, compile_expression, fields_read
from hubmap.expressions.registry import FunctionDoc
from hubmap.expressions.templates import FILTER_DOCS, JINJA_FILTERS_KEPT, compile_template

if TYPE_CHECKING:  # hubmap.mapping imports this package; at run time the kinds compare as text
    from hubmap.mapping.model import Source

JMESPATH, TEMPLATE = "jmespath", "template"  # SourceKind values (a str Enum)

Evaluator = Callable[[Any], Any]
"""A compiled source: record in, value out (JMESPath result, template text, or the fixed value)."""


def compile_source(source: Source) -> Evaluator:
    """Compile `source` once; raises ExpressionSyntaxError when it cannot."""
    if source.kind == JMESPATH:
        return compile_expression(source.text)
    if source.kind == TEMPLATE:
        return compile_template(source.text)
    return _Literal(source.value)


class _Literal:
    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return f"<value {self.value!r}>"

    def __call__(self, record: Any) -> Any:
        return self.value


def truthy(value: Any) -> bool:
    """Whether a `when` condition holds (see the module docstring)."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict | tuple):
        return len(value) > 0
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value != 0
    return True


__all__ = [
    "FILTER_DOCS",
    "FUNCTION_DOCS",
    "JINJA_FILTERS_KEPT",
    "Evaluator",
    "ExpressionError",
    "ExpressionSyntaxError",
    "FunctionDoc",
    "budget",
    "compared_fields",
    "compile_expression",
    "compile_source",
    "compile_template",
    "fields_read",
    "truthy",
]
