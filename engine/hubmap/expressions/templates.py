"""Jinja templates, run in a sandbox narrow enough for mapping files written by anyone.

The only module that imports `jinja2`.  A template sees the record as `record` and the record's
top-level fields by name; it always produces text (stripped of surrounding whitespace; null renders
as nothing, booleans as true/false, numbers exactly as written).

The sandbox is Jinja's `ImmutableSandboxedEnvironment` (no attribute starting with '_', no call that
changes a list or a dict) narrowed further:

- no globals but a small `range()` (at most `MAX_RANGE` numbers in one rendering, all calls
  together); `cycler`, `joiner`, `lipsum`, `namespace` and `dict` are gone;
- on texts, lists and numbers only the harmless methods listed below may be used (no `format`,
  no `ljust(10**9)`, no `to_bytes`); on objects the record's fields win over method names
  (`record.items` is the field "items" when the order has one);
- every operator is checked before it runs, so no text or list grows past `MAX_TEXT_LENGTH`, no
  whole number past `budget.MAX_INT_BITS`, and '%'-formatting of texts is refused;
- `~`, and list, tuple and object literals, are built through the sandbox (`_BoundedCode`), so
  they are bounded too: a value, its repeated parts counted each time, stays below
  `budget.MAX_VALUE_SIZE`, so comparing, sorting or printing it stays cheap;
- every filter's result is counted against the record's budget (`budget.py`), and the
  evaluation as a whole has a time budget (a `for` over a long text ends too);
- `macro`, `call`, `import`, `include`, `extends`, `block` and recursive loops (HM304), `**`, and a
  `{% set %}` inside a loop that reads its own name (it starts again at every round; HM305) are
  refused when the template is compiled;
- only hubmap's filters (`FILTER_DOCS`, declared in `registry.py`'s way) and a safe subset of
  Jinja's own exist;
- the output is cut off with an error past `MAX_OUTPUT_LENGTH` characters.

Every refusal is an `ExpressionError` (at evaluation) or `ExpressionSyntaxError` (at compile time)
with a plain message, usually "... is not allowed in a template".  Undefined names are errors too
(`StrictUndefined`), and so is a missing attribute in a filter (`map(attribute='skuu')`): a
template never writes "Undefined".  Use `record.get('field')` or `field | default('...')` for
optional fields.
"""

from __future__ import annotations

import builtins
import difflib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined, Template, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import (
    SecurityError,
    TemplateAssertionError,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, missing

from hubmap.expressions import budget
from hubmap.expressions import functions as fn
from hubmap.expressions.errors import ExpressionError, ExpressionSyntaxError
from hubmap.expressions.functions import let, lookup
from hubmap.expressions.registry import FILTER_DOCS as REGISTERED_FILTER_DOCS
from hubmap.expressions.registry import FILTERS, Filter, FunctionDoc, shop_filter
from hubmap.types import CoercionError, describe, format_decimal, text_of

SYNTAX_CODE = "HM302"
"""Problem code: a template that does not parse."""

FUNCTION_CODE = "HM303"
"""Problem code: an unknown filter."""

FORBIDDEN_CODE = "HM304"
"""Problem code: a template statement the sandbox does not allow."""

UNBOUNDED_CODE = "HM305"
"""Problem code: a template that cannot be bounded or cannot work as written (`**`, a
`{% set %}` in a loop that reads its own name)."""

MAX_RANGE = 1_000
"""All range() calls of one rendering together produce at most this many numbers."""

MAX_TEXT_LENGTH = fn.MAX_TEXT_LENGTH
"""No text or list built with *, + or a filter may be longer than this."""

MAX_OUTPUT_LENGTH = 1_000_000
"""A template's output may be at most this long."""

MAX_POWER_BITS = budget.MAX_INT_BITS
"""`a ** b` on whole numbers may give at most this many bits (`**` is refused when a template
is compiled; this guards constant folding)."""

REMOVED_GLOBALS = frozenset({"cycler", "joiner", "lipsum", "namespace", "dict"})

SAFE_TEXT_METHODS = frozenset(
    {
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "isalnum",
        "isalpha",
        "isdigit",
        "islower",
        "isspace",
        "isupper",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "title",
        "upper",
    }
)
SAFE_MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})
SAFE_LIST_METHODS = frozenset({"count", "index"})
NUMBER_TYPES = (int, float, Decimal, complex)

FORBIDDEN_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
    nodes.Include: "include",
    nodes.Extends: "extends",
    nodes.Block: "block",
}

JINJA_FILTERS_KEPT = frozenset(
    {
        "abs",
        "capitalize",
        "count",
        "dictsort",
        "groupby",
        "int",
        "items",
        "last",
        "length",
        "list",
        "map",
        "max",
        "min",
        "reject",
        "rejectattr",
        "reverse",
        "select",
        "selectattr",
        "sort",
        "string",
        "title",
        "truncate",
        "urlencode",
        "wordcount",
    }
)
"""Jinja's own filters that cannot be used to build huge values or reach into Python."""


# ------------------------------------------------------------------------------ the sandbox


class _PlainUndefined(StrictUndefined):
    """StrictUndefined with messages for people: which name is missing, or why it is refused.

    Printing a list that holds one (`[Undefined, Undefined]`) fails with its message too."""

    __slots__ = ()
    __repr__ = StrictUndefined._fail_with_undefined_error

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name = self._undefined_name
        if self._undefined_obj is missing:
            if name in REMOVED_GLOBALS:
                return f"'{name}' is not allowed in a template"
            return f"'{name}' is not defined"
        return f"{_container(self._undefined_obj)} has no field {name!r}"


def _container(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return "the object"
    if isinstance(obj, list | tuple):
        return "the list"
    return describe(obj)


class _Range:
    """range() for templates: all calls of one rendering share a budget of MAX_RANGE numbers."""

    __slots__ = ("_left",)

    def __init__(self, budget: int):
        self._left = budget

    def __call__(self, *args: Any) -> range:
        if not args or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise ExpressionError("range() takes whole numbers, for example range(3)")
        try:
            numbers = builtins.range(*args)
            count = len(numbers)
        except ValueError as error:
            raise ExpressionError(f"range(): {error}") from None
        except OverflowError:
            count = MAX_RANGE + 1
        if count > self._left:
            raise ExpressionError(
                f"range() would count {count:,} numbers; a template may count at most "
                f"{MAX_RANGE:,} in all"
            )
        self._left -= count
        return numbers


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


class _BoundedCode(CodeGenerator):
    """Jinja's code generator, but `~` and list, tuple and object literals are built by the
    sandbox (`join_texts`, `built`): Jinja writes them as plain Python, out of its reach."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData):  # `{{ 'a' ~ none }}` too runs as written
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)  # type: ignore[no-any-return]

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_texts((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.built(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # `for a, b in ...`: names to assign, not a value
            super().visit_Tuple(node, frame)
            return
        self.write("environment.built(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.built(")
        super().visit_Dict(node, frame)
        self.write(")")


class ShopSandbox(ImmutableSandboxedEnvironment):
    """The narrowest Jinja sandbox that still reads shop data comfortably (see the module doc)."""

    intercepted_binops = frozenset({"*", "+", "-", "/", "//", "**", "%"})
    code_generator_class = _BoundedCode

    @staticmethod
    def concat(parts: Iterable[str]) -> str:  # type: ignore[override]
        """Jinja's join of rendered pieces (`{% set x %}...{% endset %}`, `{% filter %}`), bounded."""
        texts = []
        size = 0
        for part in parts:
            size += len(part)
            budget.check_length(size, "a {% set %} or {% filter %} block")
            texts.append(part)
        return budget.spend("".join(texts), "a {% set %} or {% filter %} block")

    def join_texts(self, parts: tuple[Any, ...]) -> str:
        """`a ~ b`: the parts written as `{{ }}` writes them (null as nothing), bounded."""
        texts = []
        size = 0
        for part in parts:
            text = _output_text(part)
            size += len(text)
            budget.check_length(size, "'~'")
            texts.append(text)
        return budget.spend("".join(texts), "'~'")

    def built(self, value: Any) -> Any:
        """A list, tuple or object literal, just built: bounded with its repeated parts."""
        budget.check_through(value, "a list or object written in the template")
        return budget.spend(value, "a list or object written in the template")

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                if attribute in obj:
                    return obj[attribute]
            except TypeError:
                pass
            return self._method(obj, attribute, SAFE_MAPPING_METHODS)
        if isinstance(obj, str):
            return self._method(obj, attribute, SAFE_TEXT_METHODS)
        if isinstance(obj, list | tuple):
            return self._method(obj, attribute, SAFE_LIST_METHODS)
        if isinstance(obj, (*NUMBER_TYPES, bytes, _Range)):
            return self._method(obj, attribute, frozenset())
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Mapping) or not isinstance(argument, str):
            try:
                return obj[argument]
            except (TypeError, LookupError):
                pass
        if isinstance(argument, str):
            return self.getattr(obj, argument)
        return self.undefined(obj=obj, name=argument)

    def _method(self, obj: Any, attribute: str, allowed: frozenset[str]) -> Any:
        if attribute in allowed:
            return builtins.getattr(obj, attribute)
        if attribute.startswith("_") or hasattr(obj, attribute):
            return self.unsafe_undefined(obj, attribute)
        return self.undefined(obj=obj, name=attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        return self.undefined(
            f"'{attribute}' is not allowed in a template",
            name=attribute,
            obj=obj,
            exc=SecurityError,
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Every operator, checked so its result stays within the bounds before it is built."""
        if operator == "%" and isinstance(left, str):
            raise ExpressionError(
                "'%' formatting is not allowed in a template; join texts with ~ instead"
            )
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                length = _size(sequence)
                if length is not None and isinstance(times, int):
                    budget.check_length(length * times, "'*'", "items or characters")
                    if isinstance(sequence, list | tuple) and times > 1:
                        _check_repeated(sequence, times, "'*'")
            if _whole(left) and _whole(right):
                budget.check_bits(left.bit_length() + right.bit_length(), "'*'")
        if operator == "+":
            sizes = (_size(left), _size(right))
            if None not in sizes:
                budget.check_length(sum(s for s in sizes if s), "'+'", "items or characters")
            if isinstance(left, list | tuple) and isinstance(right, list | tuple):
                budget.check_through([left, right], "'+'")
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left) > 1
            and abs(left).bit_length() * right > MAX_POWER_BITS
        ):
            raise budget.OverBudget("'**' would build a number too large for a template")
        try:
            result = super().call_binop(context, operator, left, right)
        except ZeroDivisionError:
            raise ExpressionError(f"'{operator}' divides by zero") from None
        except ArithmeticError:  # decimal's Overflow and InvalidOperation
            raise ExpressionError(
                f"'{operator}' gives a number too large or not a number"
            ) from None
        if _whole(result):
            budget.check_bits(result.bit_length(), f"'{operator}'")
        elif isinstance(result, str | list | tuple):
            budget.spend(result, f"'{operator}'")
        return result


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_repeated(sequence: list[Any] | tuple[Any, ...], times: int, what: str) -> None:
    size = budget.through_size(sequence)
    if size * times > budget.MAX_VALUE_SIZE:
        raise budget.OverBudget(
            f"{what} would build a value of more than {budget.MAX_VALUE_SIZE:,} items and "
            "characters (its repeated parts counted each time); simplify the template"
        )


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | float):
        try:
            return text_of(value)
        except (CoercionError, ValueError, ArithmeticError):  # NaN and friends: as Python writes
            return str(value)
    if isinstance(value, list | tuple | dict):  # written out in C: bounded first
        budget.check_through(value, "writing a list or object", MAX_OUTPUT_LENGTH)
    elif isinstance(value, MappingView):  # record.items() and friends
        budget.check_through(list(value), "writing a list or object", MAX_OUTPUT_LENGTH)
    return value


def _output_text(value: Any) -> str:
    """A value as `{{ value }}` writes it (for `~`)."""
    written = _finalize(value)
    return written if isinstance(written, str) else str(written)


# -------------------------------------------------------------------------------- filters


def _materialise(value: Any) -> Any:
    """Generators (from `map`, `select` ...) as lists, so filters can take either."""
    if isinstance(value, Undefined):
        return value
    if isinstance(value, Iterator):
        return list(value)
    return value


def _field(item: Any, attribute: str | None, used_in: str) -> Any:
    """`attribute` (dotted) of `item`: null through a null part, an error for a missing one."""
    if attribute is None:
        return item
    for part in str(attribute).split("."):
        if item is None:
            return None
        if isinstance(item, Mapping) and part in item:
            item = item[part]
        elif isinstance(item, list | tuple) and part.isdigit() and int(part) < len(item):
            item = item[int(part)]
        else:
            raise ExpressionError(_missing_attribute(used_in, attribute, item, part))
    return item


def _missing_attribute(used_in: str, attribute: Any, item: Any, part: Any) -> str:
    fields = ""
    if isinstance(item, Mapping) and item:
        fields = " (its fields are: " + ", ".join(sorted(str(k) for k in item)[:20]) + ")"
    return (
        f"{used_in}(attribute={str(attribute)!r}): {_container(item)} has no field "
        f"{str(part)!r}{fields}"
    )


_LINE_ITEMS = {
    "line_items": [
        {"sku": "IPOD2008GREEN", "price": "199.00", "quantity": 1},
        {"sku": "IPOD2008RED", "price": "199.00", "quantity": 2},
    ]
}

# The filters below have no function of their own, or a template form that differs from the
# function's (an attribute to read, Jinja's missing values); the others are declared with their
# functions (`functions.py`).


@shop_filter(
    "sum",
    Filter(
        "list | sum(attribute=None)",
        "The exact sum of a list, or of one field of its entries.",
        ("{{ line_items | sum(attribute='price') }}", _LINE_ITEMS, "398.00"),
    ),
)
def _filter_sum(values: Any, attribute: str | None = None) -> Decimal:
    return fn.sum_of([_field(v, attribute, "sum") for v in fn.as_list(_materialise(values), "sum")])


@shop_filter(
    "join",
    Filter(
        "list | join(separator='', attribute=None)",
        "The items (or one field of each entry) joined into one text.",
        (
            "{{ line_items | join(', ', attribute='sku') }}",
            _LINE_ITEMS,
            "IPOD2008GREEN, IPOD2008RED",
        ),
    ),
)
def _filter_join(values: Any, separator: str = "", attribute: str | None = None) -> str:
    items = [_field(v, attribute, "join") for v in fn.as_list(_materialise(values), "join")]
    texts = [fn.as_text(v, "join") for v in items if v is not None]
    size = sum(len(t) for t in texts) + len(separator) * max(len(texts) - 1, 0)
    fn.check_size(size, "join")
    return separator.join(texts)


@shop_filter(
    "default",
    Filter(
        "value | default(fallback='')",
        "The value, or the fallback when missing, null or empty.",
        ("{{ vendor | default('unknown') }}", {"vendor": ""}, "unknown"),
    ),
)
def _filter_default(value: Any, fallback: Any = "") -> Any:
    if isinstance(value, Undefined):
        return fallback
    return fn.default(value, fallback)


@shop_filter(
    "decimals",
    Filter(
        "number | decimals(places=2)",
        "A number written with exactly `places` decimals (rounded half up).",
        ("{{ total | decimals(2) }}", {"total": "5"}, "5.00"),
    ),
)
def _filter_decimals(value: Any, places: Any = 2) -> str | None:
    rounded = fn.round_to(value, places)
    return None if rounded is None else format_decimal(rounded, int(places))


@shop_filter(
    "text",
    Filter(
        "value | text",
        "A value as text: numbers exactly, true/false, nothing for null.",
        ("{{ id | text }}", {"id": 450789469}, "450789469"),
    ),
)
def _filter_text(value: Any) -> str | None:
    return None if value is None else text_of(value)


def _listy(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(values: Any, *args: Any) -> Any:
        return function(_materialise(values), *args)

    wrapper.__name__ = function.__name__
    return wrapper


SHOP_FILTERS: dict[str, Callable[..., Any]] = {
    name: _listy(f.implementation) if f.of_list else f.implementation for name, f in FILTERS.items()
}
"""hubmap's template filters (they mirror the JMESPath functions of the same names)."""
SHOP_FILTERS["d"] = SHOP_FILTERS["default"]  # Jinja's short name for default

FILTER_DOCS: dict[str, FunctionDoc] = REGISTERED_FILTER_DOCS
"""Every hubmap template filter, with a checked example (Jinja's kept filters are listed apart)."""


# Where Jinja's filters take an attribute: (its position after the value, its keyword) and
# the keyword of a default that makes a missing attribute acceptable.
_ATTRIBUTE_ARGUMENTS: dict[str, tuple[int | None, str | None]] = {
    "map": (None, "default"),
    "selectattr": (0, None),
    "rejectattr": (0, None),
    "sort": (2, None),
    "groupby": (0, "default"),
    "max": (1, None),
    "min": (1, None),
}


_WRITING_FILTERS = frozenset(
    {"capitalize", "string", "title", "truncate", "urlencode", "wordcount"}
)
"""Jinja's filters that write their value as text first (in C, for a list or object)."""


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` as a filter that checks its attribute argument on every item, never returns
    an Undefined in a list, and counts what it builds against the record's budget."""
    first = 1 if _PassArg.from_obj(function) is not None else 0  # context or environment first
    attribute_at = _ATTRIBUTE_ARGUMENTS.get(name)
    writes = name in _WRITING_FILTERS

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if writes and len(args) > first:
            budget.check_through(args[first], f"the filter '{name}'", MAX_TEXT_LENGTH)
        if attribute_at is not None and len(args) > first:
            args = _with_attributes_checked(name, args, kwargs, first, *attribute_at)
        result = function(*args, **kwargs)
        if isinstance(result, Iterator):
            result = _collect(result, name)
        if isinstance(result, list | tuple):
            for item in result:
                if isinstance(item, Undefined):
                    item._fail_with_undefined_error()
        if isinstance(result, str | list | tuple | dict) and (
            len(args) <= first or result is not args[first]
        ):
            budget.spend(result, f"the filter '{name}'")
        return result

    return bounded


def _collect(items: Iterator[Any], name: str) -> list[Any]:
    collected = []
    for item in items:
        collected.append(item)
        if len(collected) > budget.MAX_LIST_LENGTH:
            budget.check_length(
                len(collected), f"the filter '{name}'", "items", budget.MAX_LIST_LENGTH
            )
    return collected


def _with_attributes_checked(
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    first: int,
    position: int | None,
    default_keyword: str | None,
) -> tuple[Any, ...]:
    """`args` with the filtered value as a list, once every item is known to have the attribute
    the filter reads (Jinja would give Undefined, and write it as "Undefined")."""
    rest = args[first + 1 :]
    attribute = kwargs.get("attribute")
    if attribute is None and position is not None and len(rest) > position:
        attribute = rest[position]
    if name == "map" and rest:  # map('upper'): a filter's name, not an attribute
        attribute = None
    default = kwargs.get(default_keyword) if default_keyword else None
    if name == "groupby" and default is None and len(rest) > 1:
        default = rest[1]
    value = args[first]
    if attribute is None or default is not None or isinstance(value, Undefined | str | Mapping):
        return args
    items = _collect(iter(value), name) if isinstance(value, Iterable) else value
    if isinstance(items, list):
        parts = [int(p) if p.isdigit() else p for p in str(attribute).split(".")]
        for item in items:
            current = item
            for part in parts:
                holder, current = current, _ENV.getitem(current, part)
                if isinstance(current, Undefined):
                    raise ExpressionError(_missing_attribute(name, attribute, holder, part))
    return (*args[:first], items, *rest)


def _environment() -> ShopSandbox:
    env = ShopSandbox(
        undefined=_PlainUndefined,
        autoescape=False,
        finalize=_finalize,
        keep_trailing_newline=False,
        optimized=False,  # no folding of constants while compiling: all runs through the bounds
    )
    env.globals.clear()
    env.globals["range"] = _Range(0)  # replaced by a fresh budget in every rendering
    env.globals["lookup"] = lookup  # a catalog row: lookup('products', record.sku)
    env.globals["let"] = let  # a value of the mapping's let: section: let('top_items')
    kept = {name: f for name, f in env.filters.items() if name in JINJA_FILTERS_KEPT}
    env.filters.clear()
    env.filters.update(kept)
    env.filters.update(SHOP_FILTERS)
    for name, function in env.filters.items():
        env.filters[name] = _bounded_filter(name, function)
    return env


_ENV = _environment()


# ------------------------------------------------------------------------------ compiling


def _line_offset(text: str, lineno: int | None) -> int:
    """Offset of the first non-blank character on line `lineno` (from 1) of `text`."""
    if not lineno or lineno < 1:
        return 0
    lines = text.split("\n")
    index = min(lineno, len(lines)) - 1
    start = sum(len(line) + 1 for line in lines[:index])
    line = lines[index]
    return start + (len(line) - len(line.lstrip()))


def _check_tree(text: str, tree: nodes.Template) -> None:
    for node in tree.find_all(tuple(FORBIDDEN_STATEMENTS)):
        word = FORBIDDEN_STATEMENTS[type(node)]
        raise ExpressionSyntaxError(
            f"'{{% {word} %}}' is not allowed in a template",
            _line_offset(text, node.lineno),
            "templates compute one value from one order",
            FORBIDDEN_CODE,
        )
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise ExpressionSyntaxError(
                "recursive loops are not allowed in a template",
                _line_offset(text, loop.lineno),
                "",
                FORBIDDEN_CODE,
            )
    _check_bounded(text, tree)
    for used in tree.find_all(nodes.Filter):
        if used.name not in _ENV.filters:
            close = difflib.get_close_matches(used.name, sorted(_ENV.filters), n=3)
            hint = ("did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else ""
            raise ExpressionSyntaxError(
                f"unknown filter '{used.name}'",
                _line_offset(text, used.lineno),
                hint,
                FUNCTION_CODE,
            )


def _check_bounded(text: str, tree: nodes.Template) -> None:
    """Refuse what no bound can make sensible: `**` (a few characters give a number of millions
    of digits), and a `{% set %}` inside a loop that reads its own name: Jinja starts it again
    from the value before the loop at every round, so it never accumulates (a total stays 0, a
    text never doubles) - the template cannot do what it says."""
    for power in tree.find_all(nodes.Pow):
        raise ExpressionSyntaxError(
            "'**' is not allowed in a template",
            _line_offset(text, power.lineno),
            "multiply, or write the number out",
            UNBOUNDED_CODE,
        )
    for loop in tree.find_all(nodes.For):
        for assign in loop.find_all((nodes.Assign, nodes.AssignBlock)):
            names = {n.name for n in assign.target.find_all(nodes.Name)}
            if isinstance(assign.target, nodes.Name):
                names.add(assign.target.name)
            value = [assign.node] if isinstance(assign, nodes.Assign) else assign.body
            read = {n.name for part in value for n in part.find_all(nodes.Name) if n.ctx == "load"}
            if isinstance(assign, nodes.Assign) and isinstance(assign.node, nodes.Name):
                read.add(assign.node.name)
            for name in sorted(names & read):
                raise ExpressionSyntaxError(
                    f"'{{% set {name} %}}' inside a loop reads '{name}' itself: every round "
                    f"starts again from its value before the loop, and the loop's value is lost "
                    "after it",
                    _line_offset(text, assign.lineno),
                    "compute it with a filter instead, for example "
                    "line_items | sum(attribute='price') or items | join(', ', attribute='sku')",
                    UNBOUNDED_CODE,
                )


def compile_template(text: str) -> Callable[[Any], str]:
    """Compile a template once; the result renders a record to text.

    Raises ExpressionSyntaxError (offset at the start of the offending line) when it does not
    compile or uses something the sandbox refuses.
    """
    try:
        tree = _ENV.parse(text)
    except TemplateSyntaxError as error:
        raise ExpressionSyntaxError(
            f"the template does not parse: {error.message}",
            _line_offset(text, error.lineno),
            "",
            SYNTAX_CODE,
        ) from None
    except RecursionError:
        raise ExpressionSyntaxError(
            "the template is nested too deeply", 0, "", SYNTAX_CODE
        ) from None
    _check_tree(text, tree)
    try:
        template = _ENV.from_string(tree)
    except TemplateAssertionError as error:
        raise ExpressionSyntaxError(
            f"the template does not compile: {error.message}",
            _line_offset(text, error.lineno),
            "",
            SYNTAX_CODE,
        ) from None
    except (TemplateError, RecursionError) as error:
        raise ExpressionSyntaxError(
            f"the template does not compile: {error}", 0, "", SYNTAX_CODE
        ) from None
    return _CompiledTemplate(text, template)


class _CompiledTemplate:
    """A compiled template; calling it with a record renders it."""

    __slots__ = ("_template", "text")

    def __init__(self, text: str, template: Template):
        self.text = text
        self._template = template

    def __repr__(self) -> str:
        return f"<template {self.text[:40]!r}>"

    def __call__(self, record: Any) -> str:
        bounds = budget.current()
        if bounds is None:  # not part of a record's evaluation: bounded on its own
            return budget.alone(self, record, self.text)  # type: ignore[no-any-return]
        if bounds.fired:
            raise budget.time_error(self.text)
        variables: dict[str, Any] = {}
        if isinstance(record, Mapping):
            variables.update((k, v) for k, v in record.items() if isinstance(k, str))
        variables["record"] = record
        variables["range"] = _Range(MAX_RANGE)
        try:
            return _render(self._template.generate(variables))
        except budget.TimeUp:
            raise budget.time_error(self.text) from None
        except ExpressionError:
            raise
        except SecurityError as error:
            raise ExpressionError(_security_message(error)) from None
        except UndefinedError as error:
            raise ExpressionError(_undefined_message(error, record)) from None
        except TemplateError as error:
            raise ExpressionError(f"the template failed: {error}") from None
        except RecursionError:
            raise ExpressionError("the template is nested too deeply") from None
        except Exception as error:  # noqa: BLE001 - errors are data: nothing else may escape
            raise ExpressionError(f"the template failed on this record ({error})") from None


def _render(chunks: Iterable[str]) -> str:
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_LENGTH:
            raise ExpressionError(
                f"the template's output is longer than {MAX_OUTPUT_LENGTH:,} characters"
            )
        parts.append(chunk)
    return "".join(parts).strip()


def _security_message(error: SecurityError) -> str:
    message = str(error)
    if "not allowed in a template" in message:
        return message
    return f"not allowed in a template: {message}"


def _undefined_message(error: UndefinedError, record: Any) -> str:
    message = str(error)
    if message.endswith("is not defined") and isinstance(record, Mapping):
        fields = ", ".join(sorted(str(k) for k in record)[:20])
        if fields:
            message += (
                f" (the record's fields are: {fields}; use record.get('name') for optional ones)"
            )
    return message
