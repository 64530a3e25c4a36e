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
- `*`, `+`, `**` and `%` are checked before they run, so no text, list or number can grow past
  `MAX_TEXT_LENGTH`, and '%'-formatting of texts is refused;
- `macro`, `call`, `import`, `include`, `extends`, `block` and recursive loops are refused when the
  template is compiled;
- only the filters listed in `FILTER_DOCS` and a safe subset of Jinja's own exist;
- the output is cut off with an error past `MAX_OUTPUT_LENGTH` characters.

Every refusal is an `ExpressionError` (at evaluation) or `ExpressionSyntaxError` (at compile time)
with a plain message, usually "... is not allowed in a template".  Undefined names are errors too
(`StrictUndefined`): use `record.get('field')` or `field | default('...')` for optional fields.
"""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined, Template, Undefined, nodes
from jinja2.exceptions import (
    SecurityError,
    TemplateAssertionError,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from hubmap.expressions import functions as fn
from hubmap.expressions.functions import (
    ExpressionError,
    ExpressionSyntaxError,
    FunctionDoc,
    let,
    lookup,
)
from hubmap.types import describe, format_decimal, text_of

SYNTAX_CODE = "HM302"
"""Problem code: a template that does not parse."""

FUNCTION_CODE = "HM303"
"""Problem code: an unknown filter."""

FORBIDDEN_CODE = "HM304"
"""Problem code: a template statement the sandbox does not allow."""

MAX_RANGE = 1_000
"""All range() calls of one rendering together produce at most this many numbers."""

MAX_TEXT_LENGTH = fn.MAX_TEXT_LENGTH
"""No text or list built with *, + or a filter may be longer than this."""

MAX_OUTPUT_LENGTH = 1_000_000
"""A template's output may be at most this long."""

MAX_POWER_BITS = 4_096
"""`a ** b` on whole numbers may give at most this many bits."""

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
    """StrictUndefined with messages for people: which name is missing, or why it is refused."""

    __slots__ = ()

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
        except ValueError as error:
            raise ExpressionError(f"range(): {error}") from None
        if len(numbers) > self._left:
            raise ExpressionError(
                f"range() would count {len(numbers):,} numbers; a template may count at most "
                f"{MAX_RANGE:,} in all"
            )
        self._left -= len(numbers)
        return numbers


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


class ShopSandbox(ImmutableSandboxedEnvironment):
    """The narrowest Jinja sandbox that still reads shop data comfortably (see the module doc)."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})

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
        if operator == "%" and isinstance(left, str):
            raise ExpressionError(
                "'%' formatting is not allowed in a template; join texts with ~ instead"
            )
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                length = _size(sequence)
                if (
                    length is not None
                    and isinstance(times, int)
                    and length * times > MAX_TEXT_LENGTH
                ):
                    raise ExpressionError(
                        f"'*' would build a value of {length * times:,} items or characters; "
                        f"the limit is {MAX_TEXT_LENGTH:,}"
                    )
        if operator == "+":
            sizes = (_size(left), _size(right))
            if None not in sizes and sum(s for s in sizes if s) > MAX_TEXT_LENGTH:
                raise ExpressionError(f"'+' would build a value longer than {MAX_TEXT_LENGTH:,}")
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left) > 1
            and abs(left).bit_length() * right > MAX_POWER_BITS
        ):
            raise ExpressionError("'**' would build a number too large for a template")
        return super().call_binop(context, operator, left, right)


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | float):
        try:
            return text_of(value)
        except Exception:  # noqa: BLE001 - NaN and friends render as Python writes them
            return str(value)
    return value


# -------------------------------------------------------------------------------- filters


def _materialise(value: Any) -> Any:
    """Generators (from `map`, `select` ...) as lists, so filters can take either."""
    if isinstance(value, Undefined):
        return value
    if isinstance(value, Iterator):
        return list(value)
    return value


def _field(item: Any, attribute: str | None) -> Any:
    if attribute is None:
        return item
    for part in attribute.split("."):
        item = item.get(part) if isinstance(item, Mapping) else None
    return item


def _filter_sum(values: Any, attribute: str | None = None) -> Decimal:
    return fn.sum_of([_field(v, attribute) for v in fn.as_list(_materialise(values), "sum")])


def _filter_join(values: Any, separator: str = "", attribute: str | None = None) -> str:
    items = [_field(v, attribute) for v in fn.as_list(_materialise(values), "join")]
    texts = [fn.as_text(v, "join") for v in items if v is not None]
    size = sum(len(t) for t in texts) + len(separator) * max(len(texts) - 1, 0)
    fn.check_size(size, "join")
    return separator.join(texts)


def _filter_default(value: Any, fallback: Any = "") -> Any:
    if isinstance(value, Undefined):
        return fallback
    return fn.default(value, fallback)


def _filter_decimals(value: Any, places: Any = 2) -> str | None:
    rounded = fn.round_to(value, places)
    return None if rounded is None else format_decimal(rounded, int(places))


def _filter_text(value: Any) -> str | None:
    return None if value is None else text_of(value)


def _listy(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(values: Any, *args: Any) -> Any:
        return function(_materialise(values), *args)

    wrapper.__name__ = function.__name__
    return wrapper


SHOP_FILTERS: dict[str, Callable[..., Any]] = {
    "number": fn.number,
    "money": fn.money,
    "decimals": _filter_decimals,
    "round_to": fn.round_to,
    "add": fn.add,
    "subtract": fn.subtract,
    "multiply": fn.multiply,
    "divide": fn.divide,
    "from_cents": fn.from_cents,
    "sum_of": _listy(fn.sum_of),
    "sum": _filter_sum,
    "join": _filter_join,
    "first": _listy(fn.first),
    "unique": _listy(fn.unique),
    "default": _filter_default,
    "d": _filter_default,
    "coalesce": fn.coalesce,
    "lower": fn.lower,
    "upper": fn.upper,
    "trim": fn.trim,
    "split": fn.split,
    "replace": fn.replace,
    "date": fn.date,
    "timestamp": fn.timestamp,
    "attribute": _listy(fn.attribute),
    "items_where": _listy(fn.items_where),
    "text": _filter_text,
}
"""hubmap's template filters (they mirror the JMESPath functions of the same names)."""

_LINE_ITEMS = {
    "line_items": [
        {"sku": "IPOD2008GREEN", "price": "199.00", "quantity": 1},
        {"sku": "IPOD2008RED", "price": "199.00", "quantity": 2},
    ]
}

FILTER_DOCS: dict[str, FunctionDoc] = {
    "number": FunctionDoc(
        "value | number",
        "An exact number from a number or a numeric text.",
        "{{ total_price | number + 1 }}",
        {"total_price": "409.94"},
        "410.94",
    ),
    "money": FunctionDoc(
        "text | money(decimal_separator)",
        "An amount written with a decimal comma or thousands separators.",
        "{{ price | money(',') }}",
        {"price": "1.234,50"},
        "1234.50",
    ),
    "decimals": FunctionDoc(
        "number | decimals(places=2)",
        "A number written with exactly `places` decimals (rounded half up).",
        "{{ total | decimals(2) }}",
        {"total": "5"},
        "5.00",
    ),
    "round_to": FunctionDoc(
        "number | round_to(places)",
        "The number rounded half up.",
        "{{ price | round_to(1) }}",
        {"price": "2.25"},
        "2.3",
    ),
    "add": FunctionDoc(
        "a | add(b)",
        "a + b, exactly.",
        "{{ subtotal | add(tax) }}",
        {"subtotal": "398.00", "tax": "11.94"},
        "409.94",
    ),
    "subtract": FunctionDoc(
        "a | subtract(b)",
        "a - b, exactly.",
        "{{ total | subtract(tax) }}",
        {"total": "409.94", "tax": "11.94"},
        "398.00",
    ),
    "multiply": FunctionDoc(
        "a | multiply(b)",
        "a × b, exactly.",
        "{{ price | multiply(quantity) }}",
        {"price": "19.99", "quantity": 3},
        "59.97",
    ),
    "divide": FunctionDoc(
        "a | divide(b)",
        "a ÷ b; nothing when b is 0.",
        "{{ total | divide(4) }}",
        {"total": "10"},
        "2.5",
    ),
    "from_cents": FunctionDoc(
        "amount | from_cents",
        "An amount in cents as a whole amount.",
        "{{ amount | from_cents }}",
        {"amount": 1999},
        "19.99",
    ),
    "sum_of": FunctionDoc(
        "list | sum_of",
        "The exact sum of numbers or numeric texts (nulls skipped).",
        "{{ refunds | map(attribute='total') | sum_of }}",
        {"refunds": [{"total": "-16.20"}, {"total": "-8.10"}]},
        "-24.30",
    ),
    "sum": FunctionDoc(
        "list | sum(attribute=None)",
        "The exact sum of a list, or of one field of its entries.",
        "{{ line_items | sum(attribute='price') }}",
        _LINE_ITEMS,
        "398.00",
    ),
    "join": FunctionDoc(
        "list | join(separator='', attribute=None)",
        "The items (or one field of each entry) joined into one text.",
        "{{ line_items | join(', ', attribute='sku') }}",
        _LINE_ITEMS,
        "IPOD2008GREEN, IPOD2008RED",
    ),
    "first": FunctionDoc(
        "list | first(count=None)",
        "The first item; with a count, a list of the first items.",
        "{{ line_items | map(attribute='sku') | first(1) | join }}",
        _LINE_ITEMS,
        "IPOD2008GREEN",
    ),
    "unique": FunctionDoc(
        "list | unique",
        "The list without repeats, keeping the first of each (case matters).",
        "{{ tags | unique | join(',') }}",
        {"tags": ["a", "b", "a", "A"]},
        "a,b,A",
    ),
    "default": FunctionDoc(
        "value | default(fallback='')",
        "The value, or the fallback when missing, null or empty.",
        "{{ vendor | default('unknown') }}",
        {"vendor": ""},
        "unknown",
    ),
    "coalesce": FunctionDoc(
        "value | coalesce(other, ...)",
        "The first value that is not null and not empty.",
        "{{ shipping_phone | coalesce(billing_phone) }}",
        {"shipping_phone": None, "billing_phone": "2022611000"},
        "2022611000",
    ),
    "lower": FunctionDoc(
        "text | lower", "Lower case.", "{{ email | lower }}", {"email": "Bob@X.COM"}, "bob@x.com"
    ),
    "upper": FunctionDoc(
        "text | upper", "Upper case.", "{{ country | upper }}", {"country": "de"}, "DE"
    ),
    "trim": FunctionDoc(
        "text | trim",
        "Without spaces at either end.",
        "[{{ name | trim }}]",
        {"name": " Bob "},
        "[Bob]",
    ),
    "split": FunctionDoc(
        "text | split(separator)",
        "The parts of a text.",
        "{{ (tags | split(', '))[1] }}",
        {"tags": "gift, sale"},
        "sale",
    ),
    "replace": FunctionDoc(
        "text | replace(old, new)",
        "Every `old` replaced by `new`.",
        "{{ sku | replace('-', '') }}",
        {"sku": "WOO-ALBUM-1"},
        "WOOALBUM1",
    ),
    "date": FunctionDoc(
        "timestamp | date(time_zone=None)",
        "The calendar day (YYYY-MM-DD) of a timestamp.",
        "{{ created_at | date }}",
        {"created_at": "2008-01-10T11:00:00-05:00"},
        "2008-01-10",
    ),
    "timestamp": FunctionDoc(
        "value | timestamp(time_zone=None)",
        "A timestamp as ISO 8601 in UTC.",
        "{{ created | timestamp }}",
        {"created": 1330724184},
        "2012-03-02T21:36:24Z",
    ),
    "attribute": FunctionDoc(
        "list | attribute(name)",
        "The value of the name/value (or key/value) entry called `name`.",
        "{{ note_attributes | attribute('colour') }}",
        {"note_attributes": [{"name": "colour", "value": "green"}]},
        "green",
    ),
    "items_where": FunctionDoc(
        "list | items_where(field, value)",
        "The entries whose `field` equals `value`.",
        "{{ line_items | items_where('quantity', 2) | join(attribute='sku') }}",
        _LINE_ITEMS,
        "IPOD2008RED",
    ),
    "text": FunctionDoc(
        "value | text",
        "A value as text: numbers exactly, true/false, nothing for null.",
        "{{ id | text }}",
        {"id": 450789469},
        "450789469",
    ),
}
"""Every hubmap template filter, with a checked example (Jinja's kept filters are listed apart)."""


def _environment() -> ShopSandbox:
    env = ShopSandbox(
        undefined=_PlainUndefined,
        autoescape=False,
        finalize=_finalize,
        keep_trailing_newline=False,
    )
    env.globals.clear()
    env.globals["range"] = _Range(0)  # replaced by a fresh budget in every rendering
    env.globals["lookup"] = lookup  # a catalog row: lookup('products', record.sku)
    env.globals["let"] = let  # a value of the mapping's let: section: let('top_items')
    kept = {name: f for name, f in env.filters.items() if name in JINJA_FILTERS_KEPT}
    env.filters.clear()
    env.filters.update(kept)
    env.filters.update(SHOP_FILTERS)
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
        variables: dict[str, Any] = {}
        if isinstance(record, Mapping):
            variables.update((k, v) for k, v in record.items() if isinstance(k, str))
        variables["record"] = record
        variables["range"] = _Range(MAX_RANGE)
        try:
            return _render(self._template.generate(variables))
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
