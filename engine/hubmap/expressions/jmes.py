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
  `ExpressionError` (with a plain message).

Speed: the parsed tree is turned once into nested Python closures (`_closure`), each doing exactly
what the library's interpreter does for its node type (plus the comparison above), so evaluating
an expression is a few function calls instead of a walk that looks up a method per node.  Node
types without a closure are handed to the interpreter itself.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath import lexer as jmespath_lexer
from jmespath import visitor as jmespath_visitor

from hubmap.expressions.functions import (
    REMOVED_FUNCTIONS,
    SHOP_FUNCTIONS,
    ExpressionError,
    ExpressionSyntaxError,
)
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
    return tuple(names) + (("Decimal",) if "float" in names else ())


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
        return str(super()._convert_to_jmespath_type(pyobject))


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


# --------------------------------------------------------------------------- the interpreter


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    return Decimal(str(value)) if isinstance(value, float) else value


class _Interpreter(jmespath_visitor.TreeInterpreter):  # type: ignore[misc]  # untyped library
    """JMESPath's interpreter with comparisons that compare like with like and never fail."""

    def visit_comparator(self, node: dict[str, Any], value: Any) -> Any:
        operator = node["value"]
        left = _plain(self.visit(node["children"][0], value))
        right = _plain(self.visit(node["children"][1], value))
        compare = self.COMPARATOR_FUNC[operator]
        if operator in self._EQUALITY_OPS:
            return compare(left, right)
        numbers = all(_is_number(v) for v in (left, right))
        texts = all(isinstance(v, str) for v in (left, right))
        if not (numbers or texts):
            return None
        return compare(left, right)


_OPTIONS = jmespath_visitor.Options(custom_functions=ShopFunctions())
_INTERPRETER = _Interpreter(_OPTIONS)  # keeps no state between calls but a method cache
_FUNCTIONS = _OPTIONS.custom_functions


# ------------------------------------------------------------------- closures over the tree


def _is_false(value: Any) -> bool:
    # JMESPath's falsiness, as the interpreter tests it (by equality, not Python truth).
    return value == "" or value == [] or value == {} or value is None or value is False


def _closure(node: dict[str, Any]) -> Evaluator:
    """A function doing what the interpreter does for `node` (and its children)."""
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        name = node["value"]

        def field(value: Any) -> Any:
            try:
                return value.get(name)
            except AttributeError:
                return None

        return field
    if kind in ("subexpression", "index_expression", "pipe"):
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
            try:
                return value[position]
            except IndexError:
                return None

        return index
    if kind == "literal":
        literal = node["value"]
        return lambda value: literal
    if kind in ("current", "identity"):
        return lambda value: value
    if kind == "projection":
        base, each = _closure(children[0]), _closure(children[1])

        def projection(value: Any) -> Any:
            items = base(value)
            if not isinstance(items, list):
                return None
            collected = []
            for element in items:
                current = each(element)
                if current is not None:
                    collected.append(current)
            return collected

        return projection
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
            return collected

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
                    merged.extend(element)
                else:
                    merged.append(element)
            return merged

        return flatten
    if kind == "function_expression":
        name = node["value"]
        arguments = [_closure(child) for child in children]
        shop = SHOP_FUNCTIONS.get(name)
        if shop is not None and _arity_message(name, len(arguments), shop.min_args,
                                               shop.max_args) == "":
            # hubmap's own function, its number of arguments already checked: call it directly.
            implementation = shop.implementation
            if len(arguments) == 1:
                (only,) = arguments
                return lambda value: implementation(only(value))
            return lambda value: implementation(*[argument(value) for argument in arguments])
        call = _FUNCTIONS.call_function
        return lambda value: call(name, [argument(value) for argument in arguments])
    if kind == "expref":
        expression = children[0]
        return lambda value: jmespath_visitor._Expression(expression, _INTERPRETER)
    if kind == "comparator":
        operator = node["value"]
        left_side, right_side = _closure(children[0]), _closure(children[1])
        compare = _Interpreter.COMPARATOR_FUNC[operator]
        if operator in _Interpreter._EQUALITY_OPS:
            return lambda value: compare(_plain(left_side(value)), _plain(right_side(value)))

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
            return second(value) if _is_false(matched) else matched

        return either
    if kind == "and_expression":
        first, second = _closure(children[0]), _closure(children[1])

        def both(value: Any) -> Any:
            matched = first(value)
            return matched if _is_false(matched) else second(value)

        return both
    if kind == "not_expression":
        inner = _closure(children[0])

        def negation(value: Any) -> Any:
            result = inner(value)
            if jmespath_visitor._is_actual_number(result) and result == 0:
                return False  # !0 is false in JMESPath
            return not result

        return negation
    return lambda value: _INTERPRETER.visit(node, value)


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

    __slots__ = ("_run", "_tree", "text")

    def __init__(self, text: str, tree: dict[str, Any]):
        self.text = text
        self._tree = tree
        self._run = _closure(tree)

    def __repr__(self) -> str:
        return f"<JMESPath {self.text!r}>"

    def __call__(self, record: Any) -> Any:
        try:
            return self._run(record)
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
