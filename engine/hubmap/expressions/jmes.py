"""JMESPath expressions: compiled once, checked at compile time, evaluated exactly.

The only module that imports `jmespath`.  On top of the library it adds:

- hubmap's functions (`functions.py`) next to JMESPath's own, with `to_number`, `to_string`, `sum`
  and `avg` replaced by exact versions, and Decimals accepted wherever JMESPath takes a number;
- compile-time checks that JMESPath leaves to evaluation: unknown functions (with "did you mean")
  and wrong numbers of arguments, each with the character offset in the expression;
- exact literals: a number written in an expression (`` `0.1` ``) is a Decimal, not a float;
- comparisons that never fail: `<`, `>` between a number and a text give null, as the JMESPath
  specification says, and floats in the data compare by their written value;
- errors as data: compiling raises only `ExpressionSyntaxError` (with an offset), evaluating only
  `ExpressionError` (with a plain message);
- bounds (`budget.py`): every evaluation runs under a time budget, every list, object or text an
  expression builds is counted and capped where it is built, and what is read through in C
  (`==` on lists, sorting, hashing, the result itself) is checked for repeated parts first.

Speed: the parsed tree is turned once into nested Python closures (`_closure`), each doing exactly
what the library's interpreter does for its node type (plus the comparison and the bounds above),
so evaluating an expression is a few function calls instead of a walk that looks up a method per
node.  Every node type has a closure, `&expression` arguments included.  The common shapes get
closures of their own that do the same in fewer calls: `a.b.c` and `items[].name` read their
fields inline (an object or null tested first: a caught AttributeError costs a microsecond), `==`
between texts and nulls compares directly, `let('name')` reads the record's known value,
`not_null` and `sort_by` skip the library's generic dispatch (same checks, same errors).  The
property tests compare each shape with the jmespath library's own interpreter.

Parts of the library that are not its public API, and that this module relies on (hence the
jmespath version range in pyproject.toml; tests/unit/test_jmespath_internals.py says plainly
which one is gone when a release drops one):

- the tree `jmespath.compile(text).parsed` and its node types, one per `visit_*` method of
  `jmespath.visitor.TreeInterpreter` (each has a closure here);
- `TreeInterpreter.COMPARATOR_FUNC`, the library's comparison functions;
- `jmespath.lexer.Lexer().tokenize`, to find where a function is called;
- the `Functions` methods overridden by `ShopFunctions`: `_get_allowed_pytypes`,
  `_convert_to_jmespath_type` and `_create_key_func`, the class's `FUNCTION_TABLE` (each built-in's
  `signature`), and the type name `_Expression` of an `&expression`, which the library's functions
  call as `expref.visit(expref.expression, item)` (what `_Expref` answers).
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
import sys
import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath import lexer as jmespath_lexer
from jmespath import visitor as jmespath_visitor

from hubmap.expressions import budget
from hubmap.expressions.errors import ExpressionError, ExpressionSyntaxError
from hubmap.expressions.functions import LETS, REMOVED_FUNCTIONS, SHOP_FUNCTIONS, let
from hubmap.types import describe

SYNTAX_CODE = "HM301"
"""Problem code: a JMESPath expression that does not parse."""

FUNCTION_CODE = "HM303"
"""Problem code: an unknown function, or a function called with the wrong number of arguments."""

MAX_SUGGESTIONS = 3

_TYPE_WORDS = {
    "number": "a number",
    "string": "a text",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
    "expref": "an &expression",
    "array-number": "a list of numbers",
    "array-string": "a list of texts",
}

_TOKEN_WORDS = {
    "eof": "the end of the expression",
    "unquoted_identifier": "a name",
    "quoted_identifier": "a quoted name",
    "rbracket": "']'",
    "lbracket": "'['",
    "rparen": "')'",
    "lparen": "'('",
    "rbrace": "'}'",
    "lbrace": "'{'",
    "comma": "','",
    "colon": "':'",
    "dot": "'.'",
    "pipe": "'|'",
}

Evaluator = Callable[[Any], Any]


# ----------------------------------------------------------------------------- the functions


def _number_typenames(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    # Decimals are numbers; an &expression is hubmap's `_Expref`, not the library's class.
    return (
        tuple(names)
        + (("Decimal",) if "float" in names else ())
        + (("_Expref",) if "_Expression" in names else ())
    )


class ShopFunctions(jmespath_functions.Functions):  # type: ignore[misc]  # untyped library
    """JMESPath's functions plus hubmap's; Decimals count as numbers everywhere."""

    def call_function(self, function_name: str, resolved_args: list[Any]) -> Any:
        shop = SHOP_FUNCTIONS.get(function_name)
        if shop is None:
            return super().call_function(function_name, resolved_args)
        _check_arity(function_name, len(resolved_args), shop.min_args, shop.max_args)
        return shop.implementation(*resolved_args)

    def _get_allowed_pytypes(self, types: list[str]) -> tuple[list[str], list[tuple[str, ...]]]:
        allowed, subtypes = super()._get_allowed_pytypes(types)
        return list(_number_typenames(allowed)), [_number_typenames(s) for s in subtypes]

    def _convert_to_jmespath_type(self, pyobject: str) -> str:
        if pyobject == "Decimal":
            return "number"
        if pyobject == _Expref.__name__:
            return "expref"
        return str(super()._convert_to_jmespath_type(pyobject))

    # Sorting compares texts in C: the texts it reads are bounded first (`budget.py`).

    @jmespath_functions.signature({"types": ["array-string", "array-number"]})
    def _func_sort(self, arg: list[Any]) -> list[Any]:
        _check_texts(arg, "sort()")
        return budget.spend(sorted(arg), "sort()")

    @jmespath_functions.signature({"types": ["array-number", "array-string"]})
    def _func_max(self, arg: list[Any]) -> Any:
        _check_texts(arg, "max()")
        return max(arg) if arg else None

    @jmespath_functions.signature({"types": ["array-number", "array-string"]})
    def _func_min(self, arg: list[Any]) -> Any:
        _check_texts(arg, "min()")
        return min(arg) if arg else None

    def _create_key_func(
        self, expref: Any, allowed_types: list[str], function_name: str
    ) -> Callable[[Any], Any]:
        key = super()._create_key_func(expref, allowed_types, function_name)
        read = [0]  # characters of the text keys so far: sort_by() compares them in C

        def bounded_key(item: Any) -> Any:
            result = key(item)
            if isinstance(result, str):
                read[0] += len(result)
                _check_texts([], f"{function_name}()", read[0])
            return result

        return bounded_key


def _check_texts(items: list[Any], what: str, size: int | None = None) -> None:
    if size is None:
        size = sum(len(item) for item in items if isinstance(item, str))
    if size > budget.MAX_VALUE_SIZE:
        raise budget.OverBudget(
            f"{what} would compare texts of {size:,} characters in all; the "
            f"limit is {budget.MAX_VALUE_SIZE:,}"
        )


class _Expref:
    """An `&expression` argument (sort_by, map ...): the library calls `visit(expression, item)`;
    it runs the expression's closure."""

    __slots__ = ("expression", "run")

    def __init__(self, run: Evaluator):
        self.expression = None
        self.run = run

    def visit(self, node: Any, value: Any) -> Any:
        return self.run(value)


def _builtin_arity(name: str) -> tuple[int, int | None]:
    signature = jmespath_functions.Functions.FUNCTION_TABLE[name]["signature"]
    if signature and signature[-1].get("variadic"):
        return len(signature), None
    return len(signature), len(signature)


def _arities() -> dict[str, tuple[int, int | None]]:
    table = {name: _builtin_arity(name) for name in jmespath_functions.Functions.FUNCTION_TABLE}
    table.update({name: (f.min_args, f.max_args) for name, f in SHOP_FUNCTIONS.items()})
    for name in REMOVED_FUNCTIONS:
        table.pop(name, None)
    return table


ARITIES = _arities()
"""Every function an expression may call, with its least and most number of arguments."""


def _check_arity(name: str, given: int, least: int, most: int | None) -> None:
    message = _arity_message(name, given, least, most)
    if message:
        raise ExpressionError(message)


def _arity_message(name: str, given: int, least: int, most: int | None) -> str:
    if least <= given and (most is None or given <= most):
        return ""
    if most is None:
        wanted = f"at least {least}"
    elif least == most:
        wanted = str(least)
    else:
        wanted = f"{least} or {most}"
    noun = "argument" if wanted == "1" else "arguments"
    return f"{name}() takes {wanted} {noun}, but {given} {'was' if given == 1 else 'were'} given"


# ------------------------------------------------------------------------------- evaluating

spend = budget.spend
_BUDGETS, _thread = budget.ACTIVE, budget.get_ident
_getsizeof, _MAX_BUILT = sys.getsizeof, budget.MAX_BUILT_BYTES
_CONTAINERS = (list, dict)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    return Decimal(str(value)) if isinstance(value, float) else value


_OPTIONS = jmespath_visitor.Options(custom_functions=ShopFunctions())
_FUNCTIONS = _OPTIONS.custom_functions
_COMPARE = jmespath_visitor.TreeInterpreter.COMPARATOR_FUNC  # (true == 1 is false in JMESPath)
_EQUALITY = frozenset({"eq", "ne"})  # the comparators that work on any two values

BUILDING_FUNCTIONS = frozenset(
    {
        "concat",
        "first",
        "items_where",
        "join",
        "keys",
        "lookup",
        "lower",
        "map",
        "merge",
        "one_each",
        "replace",
        "reverse",
        "sort",
        "sort_by",
        "split",
        "to_array",
        "to_string",
        "trim",
        "unique",
        "upper",
        "values",
        "without",
    }
)
"""Functions whose list, object or text result is new: it is counted against the record's
budget (the others return a value that exists already, or a number)."""

REPEATING_FUNCTIONS = frozenset({"let", "lookup", "one_each"})
"""Functions that can give one value in several places: a let value or a catalog row in each
item of a projection, one pick twice.  (The others keep, drop or reorder their arguments' parts,
or build new texts and numbers.)"""


_SHORT_NODES = frozenset(
    {
        "and_expression",
        "comparator",
        "current",
        "field",
        "identity",
        "index",
        "index_expression",
        "literal",
        "not_expression",
        "or_expression",
        "pipe",
        "subexpression",
    }
)


def _is_short(node: Any) -> bool:
    """Whether an expression only reads fields, items and literals (`customer.email`,
    `status != 'cancelled'`): it takes a few steps per node and builds nothing, so it needs no
    budget of its own (catalogs evaluate their `key` once per row)."""
    return node["type"] in _SHORT_NODES and all(
        _is_short(child) for child in node.get("children", []) if isinstance(child, dict)
    )


def _may_repeat(node: Any) -> bool:
    """Whether an expression's result can hold one list or object more than once (`[@, @]`,
    `items[].let('x')`): only then is the result checked for repeated parts
    (`budget.check_repeats`); the data itself has none."""
    kind = node["type"]
    if kind in ("multi_select_list", "multi_select_dict"):
        return True
    if kind == "function_expression" and node["value"] in REPEATING_FUNCTIONS:
        return True
    if kind == "literal" and isinstance(node["value"], list | dict) and node["value"]:
        return True  # one literal in every item of a projection (an empty one cannot grow)
    return any(_may_repeat(child) for child in node.get("children", []) if isinstance(child, dict))


def _equal(compare: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """`==` / `!=`, bounded: two lists or objects of one length are compared item by item in C."""

    def bounded(left: Any, right: Any) -> Any:
        if (
            type(left) is type(right)
            and isinstance(left, list | dict)
            and len(left) == len(right)
            and left is not right
            and budget.through_size(left) > budget.MAX_VALUE_SIZE
        ):
            budget.check_through(right, "'=='")
        return compare(left, right)

    return bounded


# ------------------------------------------------------------------- closures over the tree


def _is_false(value: Any) -> bool:
    # JMESPath's falsiness, as the interpreter tests it (by equality, not Python truth).
    return value == "" or value == [] or value == {} or value is None or value is False


def _field_names(node: dict[str, Any]) -> list[str] | None:
    """The names of `a.b.c` (or `a`): a node that only reads fields one after the other."""
    if node["type"] == "field":
        return [node["value"]]
    if node["type"] != "subexpression":
        return None
    names: list[str] = []
    for child in node.get("children", []):
        part = _field_names(child)
        if part is None:
            return None
        names += part
    return names


def _fields(names: list[str]) -> Evaluator:
    """`a.b.c`: what the field closures one after the other give (a missing one gives null)."""
    # An object or null first: raising and catching AttributeError costs a microsecond.
    if len(names) == 1:
        (name,) = names

        def field(value: Any) -> Any:
            if type(value) is dict:
                return value.get(name)
            if value is None:
                return None
            try:
                return value.get(name)
            except AttributeError:
                return None

        return field

    def fields(value: Any) -> Any:
        for name in names:
            if type(value) is dict:
                value = value.get(name)
            elif value is None:
                return None
            else:
                try:
                    value = value.get(name)
                except AttributeError:
                    return None
        return value

    return fields


def _field_projection(base: Evaluator, name: str) -> Evaluator:
    """`items[].name`: the projection closure below with its field read inline."""

    def field_projection(value: Any) -> Any:
        items = base(value)
        if not isinstance(items, list):
            return None
        collected = []
        for element in items:
            if type(element) is dict:
                current = element.get(name)
            else:
                try:
                    current = element.get(name)
                except AttributeError:
                    continue
            if current is not None:
                collected.append(current)
        bounds = _BUDGETS.get(_thread())  # spend(), inline
        if bounds is not None:
            bounds.built += _getsizeof(collected)
            if bounds.built > _MAX_BUILT:
                spend(collected, "a projection ([*])")
        return collected

    return field_projection


def _let(name: Any) -> Evaluator:
    """`let('name')`: the record's value once worked out, read directly (else `let` works it
    out, or says why it cannot)."""

    def let_value(value: Any) -> Any:
        lets = LETS.get()
        if lets is not None:
            known = lets.known
            if name in known:
                return known[name]
        return let(name)

    return let_value


def _not_null(arguments: list[Evaluator]) -> Evaluator:
    """JMESPath's not_null without its generic call: every argument evaluated (as the library
    does, so an error in a later one still counts), the first that is not null."""

    def not_null(value: Any) -> Any:
        for found in [argument(value) for argument in arguments]:
            if found is not None:
                return found
        return None

    return not_null


_NUMBER_TYPES = (int, float, Decimal)  # exactly these classes are JMESPath numbers (bool is not)


def _sort_by(items_of: Evaluator, key_of: Evaluator, call: Callable[..., Any]) -> Evaluator:
    """JMESPath's sort_by(items, &key) as the library runs it with `ShopFunctions` (a type
    check of the items, the first item's key deciding whether keys are numbers or texts, each
    key checked, text keys bounded), without its generic dispatch; anything unusual (not a
    list, a first key that is neither) goes to the library itself, which raises its error."""
    reference = _Expref(key_of)

    def sort_by(value: Any) -> Any:
        items = items_of(value)
        if type(items) is not list or not items:
            return spend(call("sort_by", [items, reference]), "sort_by()")
        first = type(key_of(items[0]))
        if first in _NUMBER_TYPES:
            required, allowed = "number", _NUMBER_TYPES
        elif first is str:
            required, allowed = "string", (str,)
        else:
            return spend(call("sort_by", [items, reference]), "sort_by()")
        read = [0]  # characters of the text keys so far: sorting compares them in C

        def key(item: Any) -> Any:
            result = key_of(item)
            kind = type(result)
            if kind not in allowed:
                actual = _FUNCTIONS._convert_to_jmespath_type(kind.__name__)
                if actual != required:
                    raise jmespath_errors.JMESPathTypeError("sort_by", result, actual, [required])
            if kind is str:
                read[0] += len(result)
                _check_texts([], "sort_by()", read[0])
            return result

        # list(sorted(...)) as the library writes it: the budget counts the same list
        return spend(list(sorted(items, key=key)), "sort_by()")  # noqa: C413

    return sort_by


def _closure(node: dict[str, Any]) -> Evaluator:
    """A function doing what the interpreter does for `node` (and its children)."""
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        return _fields([node["value"]])
    if kind in ("subexpression", "index_expression", "pipe"):
        names = _field_names(node)
        if names is not None:  # `a.b.c`: the fields read one after the other, in one closure
            return _fields(names)
        steps = [_closure(child) for child in children]
        if len(steps) == 2:
            first, second = steps
            return lambda value: second(first(value))

        def chain(value: Any) -> Any:
            for step in steps:
                value = step(value)
            return value

        return chain
    if kind == "index":
        position = node["value"]

        def index(value: Any) -> Any:
            if not isinstance(value, list):
                return None
            if -len(value) <= position < len(value):  # (an IndexError costs a microsecond)
                return value[position]
            return None

        return index
    if kind == "literal":
        literal = node["value"]
        return lambda value: literal
    if kind in ("current", "identity"):
        return lambda value: value
    if kind == "projection":
        base, each = _closure(children[0]), _closure(children[1])
        each_names = _field_names(children[1])
        if each_names is not None and len(each_names) == 1:
            return _field_projection(base, each_names[0])

        def projection(value: Any) -> Any:
            items = base(value)
            if not isinstance(items, list):
                return None
            collected = []
            for element in items:
                current = each(element)
                if current is not None:
                    collected.append(current)
            bounds = _BUDGETS.get(_thread())  # spend(), inline: projections are the most common
            if bounds is not None:
                bounds.built += _getsizeof(collected)
                if bounds.built > _MAX_BUILT:
                    spend(collected, "a projection ([*])")
            return collected

        return projection
    if kind == "value_projection":
        base, each = _closure(children[0]), _closure(children[1])

        def value_projection(value: Any) -> Any:
            try:
                items = base(value).values()
            except AttributeError:
                return None
            collected = []
            for element in items:
                current = each(element)
                if current is not None:
                    collected.append(current)
            return spend(collected, "a projection (*)")

        return value_projection
    if kind == "filter_projection":
        base, each, condition = (_closure(child) for child in children)

        def filter_projection(value: Any) -> Any:
            items = base(value)
            if not isinstance(items, list):
                return None
            collected = []
            for element in items:
                if not _is_false(condition(element)):
                    current = each(element)
                    if current is not None:
                        collected.append(current)
            return spend(collected, "a filter ([?])")

        return filter_projection
    if kind == "flatten":
        inner = _closure(children[0])

        def flatten(value: Any) -> Any:
            items = inner(value)
            if not isinstance(items, list):
                return None
            merged: list[Any] = []
            for element in items:
                if isinstance(element, list):
                    merged.extend(element)  # each part is bounded: checking after it is enough
                    if len(merged) > budget.MAX_LIST_LENGTH:
                        budget.check_length(
                            len(merged), "flattening ([])", "items", budget.MAX_LIST_LENGTH
                        )
                else:
                    merged.append(element)
            bounds = _BUDGETS.get(_thread())  # spend(), inline (its length is checked above)
            if bounds is not None:
                bounds.built += _getsizeof(merged)
                if bounds.built > _MAX_BUILT:
                    spend(merged, "flattening ([])")
            return merged

        return flatten
    if kind == "multi_select_list":
        parts = [_closure(child) for child in children]

        def multi_select_list(value: Any) -> Any:
            if value is None:
                return None
            return spend([part(value) for part in parts], "a list ([a, b])")

        return multi_select_list
    if kind == "multi_select_dict":
        pairs = [(child["value"], _closure(child)) for child in children]

        def multi_select_dict(value: Any) -> Any:
            if value is None:
                return None
            return spend({key: part(value) for key, part in pairs}, "an object ({a: b})")

        return multi_select_dict
    if kind == "key_val_pair":
        return _closure(children[0])
    if kind == "slice":
        cut = slice(*children)

        def slice_(value: Any) -> Any:
            if not isinstance(value, list):
                return None
            return spend(value[cut], "a slice ([a:b])")

        return slice_
    if kind == "function_expression":
        name = node["value"]
        label = f"{name}()"
        arguments = [_closure(child) for child in children]
        shop = SHOP_FUNCTIONS.get(name)
        if (
            shop is not None
            and _arity_message(name, len(arguments), shop.min_args, shop.max_args) == ""
        ):
            # hubmap's own function, its number of arguments already checked: call it directly.
            implementation = shop.implementation
            if name == "let" and children[0]["type"] == "literal":
                return _let(children[0]["value"])
            if len(arguments) == 1:
                (only,) = arguments
                if name in BUILDING_FUNCTIONS:
                    return lambda value: spend(implementation(only(value)), label)
                return lambda value: implementation(only(value))
            if len(arguments) == 2:
                one, two = arguments
                if name in BUILDING_FUNCTIONS:
                    return lambda value: spend(implementation(one(value), two(value)), label)
                return lambda value: implementation(one(value), two(value))
            if name in BUILDING_FUNCTIONS:
                return lambda value: spend(
                    implementation(*[argument(value) for argument in arguments]), label
                )
            return lambda value: implementation(*[argument(value) for argument in arguments])
        call = _FUNCTIONS.call_function
        if name == "not_null":
            return _not_null(arguments)
        if name == "sort_by" and len(children) == 2 and children[1]["type"] == "expref":
            return _sort_by(arguments[0], _closure(children[1]["children"][0]), call)
        if name in BUILDING_FUNCTIONS:
            return lambda value: spend(
                call(name, [argument(value) for argument in arguments]), label
            )
        return lambda value: call(name, [argument(value) for argument in arguments])
    if kind == "expref":
        reference = _Expref(_closure(children[0]))
        return lambda value: reference
    if kind == "comparator":
        operator = node["value"]
        left_side, right_side = _closure(children[0]), _closure(children[1])
        compare = _COMPARE[operator]
        if operator in _EQUALITY:
            equal = _equal(compare)
            negate = operator == "ne"

            def equality(value: Any) -> Any:
                left, right = left_side(value), right_side(value)
                if (left is None or type(left) is str) and (right is None or type(right) is str):
                    # texts and nulls: no number or list case applies, `==` is the answer
                    return (left != right) if negate else (left == right)
                return equal(_plain(left), _plain(right))

            return equality

        def ordering(value: Any) -> Any:
            left, right = _plain(left_side(value)), _plain(right_side(value))
            numbers = _is_number(left) and _is_number(right)
            texts = isinstance(left, str) and isinstance(right, str)
            if not (numbers or texts):
                return None
            return compare(left, right)

        return ordering
    if kind == "or_expression":
        first, second = _closure(children[0]), _closure(children[1])

        def either(value: Any) -> Any:
            matched = first(value)
            if matched is None or (  # _is_false, inline
                matched == "" or matched == [] or matched == {} or matched is False
            ):
                return second(value)
            return matched

        return either
    if kind == "and_expression":
        first, second = _closure(children[0]), _closure(children[1])

        def both(value: Any) -> Any:
            matched = first(value)
            if matched is None or (  # _is_false, inline
                matched == "" or matched == [] or matched == {} or matched is False
            ):
                return matched
            return second(value)

        return both
    if kind == "not_expression":
        inner = _closure(children[0])

        def negation(value: Any) -> Any:
            result = inner(value)
            if _is_number(result) and result == 0:
                return False  # !0 is false in JMESPath
            return not result

        return negation
    raise ExpressionSyntaxError(
        f"this kind of expression ({kind}) is not supported", 0, "", SYNTAX_CODE
    )


# ------------------------------------------------------------------------------- compiling


def _exact_literals(node: Any) -> Any:
    """A copy of the parsed tree in which every float literal is an exact Decimal."""
    if isinstance(node, dict):
        copied = {key: _exact_literals(child) for key, child in node.items()}
        if node.get("type") == "literal":
            copied["value"] = _decimal_floats(node.get("value"))
        return copied
    if isinstance(node, list):
        return [_exact_literals(child) for child in node]
    return node


def _decimal_floats(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, list):
        return [_decimal_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _decimal_floats(v) for k, v in value.items()}
    return value


def _function_calls(node: Any) -> list[tuple[str, int]]:
    """(name, number of arguments) of every function call in a parsed tree, in source order."""
    calls: list[tuple[str, int]] = []

    def walk(current: Any) -> None:
        if isinstance(current, dict):
            if current.get("type") == "function_expression":
                calls.append((current["value"], len(current.get("children", []))))
            for child in current.get("children", []):
                walk(child)
        elif isinstance(current, list):
            for child in current:
                walk(child)

    walk(node)
    return calls


def _name_offset(text: str, name: str) -> int:
    """Offset of the first call `name(` in the expression text (0 if it cannot be found)."""
    try:
        tokens = list(jmespath_lexer.Lexer().tokenize(text))
    except jmespath_errors.JMESPathError:
        return 0
    for token, following in itertools.pairwise(tokens):
        if (
            token["type"] == "unquoted_identifier"
            and token["value"] == name
            and following["type"] == "lparen"
        ):
            return int(token["start"])
    return 0


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(ARITIES), n=MAX_SUGGESTIONS)
    if close:
        return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return ""


def _check_functions(text: str, tree: Any) -> None:
    for name, count in _function_calls(tree):
        if name not in ARITIES:
            hint = _suggest(name)
            if name in REMOVED_FUNCTIONS:
                hint = (
                    "expressions do not read the clock; the same order always gives the same value"
                )
            raise _syntax(
                f"unknown function '{name}'",
                _name_offset(text, name),
                hint or "see the list of functions in the README",
                FUNCTION_CODE,
            )
        least, most = ARITIES[name]
        message = _arity_message(name, count, least, most)
        if message:
            raise _syntax(message, _name_offset(text, name), "", FUNCTION_CODE)


def _syntax(
    message: str, offset: int, hint: str = "", code: str = SYNTAX_CODE
) -> ExpressionSyntaxError:
    return ExpressionSyntaxError(message, offset, hint, code)


def _parse_error_message(error: jmespath_errors.ParseError, text: str) -> tuple[str, int]:
    if isinstance(error, jmespath_errors.IncompleteExpressionError):
        return "the expression ends too early", len(text)
    if isinstance(error, jmespath_errors.LexerError):
        message = str(getattr(error, "message", "") or "unexpected character")
        position = int(getattr(error, "lexer_position", 0) or 0)
        return message[:1].lower() + message[1:], position
    position = int(getattr(error, "lex_position", 0) or 0)
    token_type = str(getattr(error, "token_type", "") or "").lower()
    value = getattr(error, "token_value", "")
    if token_type == "eof":
        return "the expression ends too early", len(text)
    word = _TOKEN_WORDS.get(token_type) or (repr(value) if value not in (None, "") else token_type)
    return f"unexpected {word}", position


# Spellings from other languages that JMESPath does not parse, with the right one: looked for
# (outside quotes) only once an expression failed to parse, first match wins.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`")
_SPELLINGS = [
    (re.compile(r"<>"), "'<>' is not JMESPath: write != (for example status != 'voided')"),
    (
        re.compile(r"(?<![=!<>])=(?!=)"),
        "JMESPath compares with two equals signs: write status == 'paid'",
    ),
    (
        re.compile(r"\bin\b\s*(?=[\[(])|\bin\s+\w"),
        "JMESPath has no 'in': write contains(['paid', 'refunded'], status)",
    ),
    (
        re.compile(r"\b(?:and|or|not)\b", re.IGNORECASE),
        "JMESPath writes and, or, not as &&, ||, ! (for example status == 'paid' && !test)",
    ),
    (
        re.compile(r"[/+]|(?<=[\w)\]`] )[*-](?= +[\w(`@])"),
        (
            "JMESPath has no arithmetic operators: write multiply(price, quantity), add(a, b), "
            "subtract(a, b), divide(a, b), or from_cents(amount) for an amount in cents"
        ),
    ),
    (
        re.compile(r"(?<![\w.\[:`-])-?\d+(?:\.\d+)?(?![\w\]:])"),
        (
            "a number in an expression goes in backticks, as in total > `5` (a bare number is "
            "only an index: items[0])"
        ),
    ),
]


def spelling_hint(text: str) -> tuple[str, int] | None:
    """The right spelling of a construct of another language in `text`, and where it is."""
    bare = _QUOTED.sub(lambda m: " " * len(m.group()), text)
    for pattern, hint in _SPELLINGS:
        found = pattern.search(bare)
        if found is not None:
            return hint, found.start()
    return None


def compared_fields(text: str) -> list[tuple[str, str]]:
    """The pairs of plain field names that an `==` or `!=` in `text` compares with each other
    (`currency == "USD"`, `status == Completed`): where a text was meant, each side reads a
    field, and a record rarely has one called USD.  Nothing when `text` does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = jmespath.compile(text).parsed
    except Exception:  # noqa: BLE001 - compile_expression reports what does not parse
        return []
    pairs: list[tuple[str, str]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        children = node.get("children") or []
        if (
            node.get("type") == "comparator"
            and node.get("value") in ("eq", "ne")
            and all(isinstance(c, dict) and c.get("type") == "field" for c in children)
        ):
            pairs.append((str(children[0]["value"]), str(children[1]["value"])))
        stack.extend(c for c in children if isinstance(c, dict))
    return pairs


# Nodes whose later children read what their first child gave, not the input itself.
_READS_FROM_LEFT = frozenset(
    {
        "subexpression",
        "index_expression",
        "projection",
        "value_projection",
        "filter_projection",
        "flatten",
        "pipe",
    }
)


def fields_read(text: str) -> set[str]:
    """The names `text` reads from its input itself (`a`, the `a` of `a.b` and of `a[0]`, the
    arguments of functions), not those read from what another part gave.  Empty when `text`
    does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = jmespath.compile(text).parsed
    except Exception:  # noqa: BLE001 - compile_expression reports what does not parse
        return set()
    names: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("type") == "field":
            names.add(str(node.get("value")))
        children = [c for c in node.get("children") or [] if isinstance(c, dict)]
        if node.get("type") in _READS_FROM_LEFT:
            children = children[:1]
        elif node.get("type") == "expref":
            children = []  # &key reads each item of a list, not the input
        stack.extend(children)
    return names


def compile_expression(text: str) -> Evaluator:
    """Compile a JMESPath expression once; the result maps a record to a value.

    Raises ExpressionSyntaxError (with the offset in `text`) when it does not compile.
    """
    if not text.strip():
        raise _syntax("the expression is empty", 0, "write a JMESPath expression such as 'email'")
    try:
        with warnings.catch_warnings():
            # jmespath warns about its deprecated literal syntax; the expression still works.
            warnings.simplefilter("ignore")
            parsed = jmespath.compile(text)
    except jmespath_errors.EmptyExpressionError:
        raise _syntax("the expression is empty", 0) from None
    except jmespath_errors.ParseError as error:
        message, offset = _parse_error_message(error, text)
        spelled = spelling_hint(text)
        if spelled is not None:
            raise _syntax(message, spelled[1], spelled[0]) from None
        raise _syntax(message, offset) from None
    except RecursionError:
        raise _syntax("the expression is nested too deeply", 0) from None
    except Exception as error:  # noqa: BLE001 - the library may fail in ways it does not document
        raise _syntax(f"the expression does not parse ({error})", 0) from None
    try:
        tree = _exact_literals(copy.deepcopy(parsed.parsed))
    except RecursionError:
        raise _syntax("the expression is nested too deeply", 0) from None
    _check_functions(text, tree)
    return _Compiled(text, tree)


class _Compiled:
    """A compiled expression; calling it with a record evaluates it."""

    __slots__ = ("_may_repeat", "_run", "_short", "_tree", "text")

    def __init__(self, text: str, tree: dict[str, Any]):
        self.text = text
        self._tree = tree
        self._run = _closure(tree)
        self._may_repeat = _may_repeat(tree)
        self._short = _is_short(tree)

    def __repr__(self) -> str:
        return f"<JMESPath {self.text!r}>"

    def __call__(self, record: Any) -> Any:
        if not self._short:
            bounds = _BUDGETS.get(_thread())
            if bounds is None:  # not part of a record's evaluation: bounded on its own
                return budget.alone(self, record, self.text)  # (comes back here, in a budget)
            if bounds.fired:
                raise budget.time_error(self.text)
        try:
            result = self._run(record)
            if self._may_repeat and isinstance(result, _CONTAINERS):
                budget.check_repeats(result, "the expression")
            return result
        except budget.TimeUp:
            raise budget.time_error(self.text) from None
        except ExpressionError:
            raise
        except jmespath_errors.JMESPathTypeError as error:
            raise ExpressionError(_type_error_message(error)) from None
        except jmespath_errors.ArityError as error:
            raise ExpressionError(str(error)) from None
        except jmespath_errors.JMESPathError as error:
            raise ExpressionError(f"the expression failed: {error}") from None
        except RecursionError:
            raise ExpressionError("the data is nested too deeply for this expression") from None
        except Exception as error:  # noqa: BLE001 - errors are data: nothing else may escape
            raise ExpressionError(f"the expression failed on this record ({error})") from None


def _type_error_message(error: jmespath_errors.JMESPathTypeError) -> str:
    expected = getattr(error, "expected_types", None) or []
    wanted = " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in expected) or "another value"
    name = getattr(error, "function_name", "the function")
    current = getattr(error, "current_value", None)
    return f"{name}() needs {wanted}, but got {describe(current)}"
