"""hubmap.expressions: JMESPath with exact shop functions, errors as data, the one entry point."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubmap.catalogs import Catalog, Catalogs
from hubmap.expressions import (
    ExpressionError,
    ExpressionSyntaxError,
    budget,
    compile_source,
    truthy,
)
from hubmap.expressions.functions import (
    CATALOGS,
    LETS,
    REMOVED_FUNCTIONS,
    RecordLets,
)
from hubmap.expressions.jmes import ARITIES, compile_expression
from hubmap.mapping.model import Source, SourceKind
from tests.conftest import shared_data


def load(*parts: str) -> Any:
    return json.loads(Path(shared_data(*parts)).read_text(), parse_float=Decimal)


def jp(text: str) -> Any:
    return compile_source(Source(SourceKind.JMESPATH, text))


# ------------------------------------------------------------------------- removed functions


def test_now_does_not_exist() -> None:
    assert "now" in REMOVED_FUNCTIONS
    with pytest.raises(ExpressionSyntaxError, match="unknown function 'now'"):
        jp("now()")


# ---------------------------------------------------------------------------------- exactness


def test_numbers_are_decimals_never_floats() -> None:
    record = {"a": "0.1", "b": 0.2, "items": [{"p": "0.1"}, {"p": "0.2"}]}
    assert jp("add(a, b)")(record) == Decimal("0.3")
    assert jp("sum_of(items[].p)")(record) == Decimal("0.3")
    assert jp("sum(map(&to_number(p), items))")(record) == Decimal("0.3")
    assert jp("to_number('0.1')")({}) == Decimal("0.1")
    assert jp("to_number('12')")({}) == 12
    assert jp("`0.1`")({}) == Decimal("0.1")
    assert isinstance(jp("avg([`1`, `2`])")({}), Decimal)
    assert jp("sum_of([`0.1`, `0.2`]) == `0.3`")({}) is True


def test_builtin_functions_accept_decimals() -> None:
    record = {"xs": [Decimal("1.5"), 2, Decimal("0.5")]}
    assert jp("max(xs)")(record) == 2
    assert jp("min(xs)")(record) == Decimal("0.5")
    assert jp("sort(xs)")(record) == [Decimal("0.5"), Decimal("1.5"), 2]
    assert jp("abs(`-1.5`)")({}) == Decimal("1.5")
    assert jp("type(xs[0])")(record) == "number"
    assert jp("to_string(xs[0])")(record) == "1.5"
    assert jp("xs[?@ > `1`]")(record) == [Decimal("1.5"), 2]


def test_arithmetic_with_nulls_and_zero() -> None:
    assert jp("divide(`1`, `0`)")({}) is None
    assert jp("multiply(price, `2`)")({}) is None
    assert jp("round_to(`2.345`, `2`)")({}) == Decimal("2.35")
    assert jp("round_to(`-2.345`, `2`)")({}) == Decimal("-2.35")


def test_comparing_numbers_and_texts_gives_null_not_an_error() -> None:
    assert jp("a < 'x'")({"a": 1}) is None
    assert jp("a < b")({"a": Decimal("0.1"), "b": 0.2}) is True


# -------------------------------------------------------------------------------- real payloads


def test_shopify_order() -> None:
    order = load("shopify", "order.json")["order"]
    assert jp("sum_of(map(&multiply(price, quantity), line_items))")(order) == Decimal("597.00")
    assert jp("attribute(note_attributes, 'colour')")(order) == "green"
    assert jp("to_string(id)")(order) == "450789469"
    assert jp("date(created_at)")(order) == "2008-01-10"
    assert jp("number(total_price)")(order) == Decimal("409.94")
    assert jp("join(';', line_items[].sku)")(order) == "IPOD2008GREEN;IPOD2008RED;IPOD2008BLACK"
    assert jp("first(line_items[].properties[], `1`)")(order) == [
        {"name": "Custom Engraving", "value": "Happy Birthday"}
    ]
    assert jp("unique(line_items[].title)")(order) == ["IPod Nano - 8gb"]
    assert jp("coalesce(line_items[0].vendor, 'none')")(order) == "none"


def test_shopify_orders_without_line_items() -> None:
    order = load("shopify", "orders.json")["orders"][0]
    assert jp("line_items[].sku")(order) is None
    assert jp("sum_of(line_items[].price)")(order) == Decimal(0)
    assert jp("number(total_price_set.shop_money.amount)")(order) == Decimal("598.94")


def test_woocommerce_refunds_and_meta() -> None:
    order = load("woocommerce", "order-details-partially-refunded.json")["data"]
    assert jp("sum_of(refunds[].total)")(order) == Decimal("-24.30")
    assert jp("add(number(total), sum_of(refunds[].total))")(order) == Decimal("280.15")
    assert jp("attribute(meta_data, '_stripe_fee')")(order) == "9.13"
    assert jp("sum_of(line_items[].price)")(order) == Decimal(
        "71.999999999999999"
    )  # as written, no float drift
    attributed = load("woocommerce", "order-with-attribution-info.json")
    attributed = attributed.get("data", attributed)
    assert jp("attribute(meta_data, '_wc_order_attribution_utm_source')")(attributed) == (
        "woocommerce.com"
    )


def test_woocommerce_fractional_quantity() -> None:
    order = load("woocommerce", "order.json")["data"]
    assert jp("sum_of(line_items[].quantity)")(order) == sum(
        (Decimal(str(i["quantity"])) for i in order["line_items"]), Decimal(0)
    )


def test_bigcommerce_rfc2822_and_money_strings() -> None:
    order = load("bigcommerce", "order.json")[0]
    assert jp("date(date_created)")(order) == "2012-03-02"
    assert jp("number(total_inc_tax)")(order) == Decimal("0.0100")


def test_money_with_decimal_comma() -> None:
    assert jp("money('1.234,50', ',')")({}) == Decimal("1234.50")
    assert jp("money('1,234.50', '.')")({}) == Decimal("1234.50")
    assert jp("money('100.0$', '.')")({}) == Decimal("100.0")
    with pytest.raises(ExpressionError, match="not an amount"):
        jp("money('12,3,4', ',')")({})
    with pytest.raises(ExpressionError):
        jp("money('1', ';')")({})


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("upperr(email)", 0, "unknown function 'upperr'"),
        ("lower(email) || to_uper(name)", 16, "unknown function 'to_uper'"),
        ("a.[", 3, "ends too early"),
        ("foo(", 4, "ends too early"),
        ("sum(a, b)", 0, "sum() takes 1 argument, but 2 were given"),
        ("first()", 0, "first() takes 1 or 2 arguments"),
        ("a ^ b", 2, ""),
        ("`1", 0, ""),
        ("   ", 0, "empty"),
    ],
)
def test_compile_errors_have_offsets(text: str, offset: int, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        jp(text)
    assert caught.value.offset == offset
    assert message in caught.value.message
    assert caught.value.code.startswith("HM30")


def test_unknown_function_suggests_the_right_one() -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        jp("to_upper(email)")
    assert caught.value.hint == "did you mean 'upper'?" or "'upper'" in caught.value.hint
    assert caught.value.code == "HM303"


@pytest.mark.parametrize(
    ("text", "record", "message"),
    [
        ("sum(a)", {"a": ["x"]}, "sum()"),
        ("number(a)", {"a": "12,5"}, "use money"),
        ("lower(a)", {"a": [1]}, "lower() needs a text"),
        ("length(a)", {"a": 5}, "length() needs"),
        ("round_to(a, `99`)", {"a": 1}, "0 to 12"),
        ("replace(a, '', a)", {"a": "x" * 2000}, "limit"),
    ],
)
def test_evaluation_errors_are_plain(text: str, record: Any, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        jp(text)(record)
    assert message in caught.value.message


# ------------------------------------------------------------------------ literals and truthy


def test_literal_and_template_sources() -> None:
    assert compile_source(Source(SourceKind.LITERAL, value=1))({"x": 2}) == 1
    template = compile_source(Source(SourceKind.TEMPLATE, "{{ email | lower }}"))
    assert template({"email": "A@B.C"}) == "a@b.c"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, False),
        (Decimal("0.00"), False),
        (0.0, False),
        (True, True),
        ("0", True),
        ([0], True),
        (1, True),
        (Decimal("0.01"), True),
        ({"a": None}, True),
    ],
)
def test_truthy(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


# --------------------------------------------------------------- errors are data, always


ALPHABET = st.sampled_from(
    list("abz_.*[]?@&|!=<>(),:{}'`\"0123456789- \\")
    + [
        "sum",
        "number",
        "add(",
        "divide(",
        "first(",
        "attribute(",
        "map(&",
        "to_number(",
        "`1.5`",
        '`"x"`',
        "[?a>`1`]",
    ]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "z", "_"]), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ALPHABET, max_size=15).map("".join))
def test_any_text_compiles_or_raises_syntax_error(text: str) -> None:
    try:
        compile_expression(text)
    except ExpressionSyntaxError as error:
        assert 0 <= error.offset <= len(text)
        assert error.message


@st.composite
def calls(draw: st.DrawFn, depth: int = 0) -> str:
    """Well-formed function calls with arguments of any kind, to exercise evaluation errors."""
    name = draw(st.sampled_from(sorted(ARITIES)))
    least, most = ARITIES[name]
    count = draw(st.integers(least, most if most is not None else least + 2))
    simple = st.sampled_from(
        [
            "a",
            "b",
            "z",
            "@",
            "a[]",
            "`0`",
            "`-1.5`",
            "'x'",
            "`null`",
            '`[1, "2"]`',
            "`{}`",
            "&a",
            "`true`",
            "b[0]",
            "'1,5'",
            "`1e3`",
        ]
    )
    args = [
        draw(simple if depth > 1 else st.one_of(simple, calls(depth + 1))) for _ in range(count)
    ]
    return f"{name}({', '.join(args)})"


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(calls(), st.lists(ALPHABET, max_size=12).map("".join)), json_values)
def test_any_expression_on_any_data_returns_or_raises_expression_error(
    text: str, data: Any
) -> None:
    try:
        evaluate = compile_expression(text)
    except ExpressionSyntaxError:
        return
    try:
        evaluate(data)
    except ExpressionError as error:
        assert error.message


# ------------------------------------------------------------------------------- the bounds

DOUBLED = "".join(" | [@, @]" for _ in range(40))  # 2**40 copies when printed, 80 lists in memory


@pytest.mark.parametrize(
    ("text", "record", "message"),
    [
        (
            "[a, a, a, a][]" + " | [@, @, @, @][]" * 10,
            {"a": [1]},
            "flattening ([]) would build a value of 1,048,576 items; the limit is 1,000,000",
        ),
        ("to_string([a]" + DOUBLED + ")", {"a": "x"}, "to_string() would build a text of"),
        ("[a]" + DOUBLED, {"a": "x"}, "repeats parts of itself more than 10,000,000"),
        (
            "([a]" + DOUBLED + ") == ([a]" + DOUBLED + ")",
            {"a": "x"},
            "'==' would read a value of more than 10,000,000",
        ),
        ("unique([a]" + DOUBLED + ")", {"a": "x"}, "comparing values would read a value"),
        ("contains([a]" + DOUBLED + ", 'y')", {"a": "x"}, "comparing values would read a value"),
        (
            "join('', [a, a]" + " | [@, @][]" * 12 + ")",
            {"a": "x" * 200},
            "join() would build a text of 1,638,400 characters",
        ),
        (
            "sort([a, join('', [a, 'y'])]" + " | [@, @][]" * 12 + ")",
            {"a": "x" * 5_000},
            "sort() would compare texts of 40,964,096 characters in all",
        ),
        (
            "sort_by([a, join('', [a, 'y'])]" + " | [@, @][]" * 12 + ", &@)",
            {"a": "x" * 5_000},
            "sort_by() would compare texts of 10,001,000 characters",
        ),
        ("concat(a, a, a)", {"a": "x" * 400_000}, "concat() would build a text of 1,200,000"),
        ("upper(a)", {"a": "ß" * 600_000}, "upper() would build a value of 1,200,000 characters"),
        ("lookup('products', [a]" + DOUBLED + ")", {"a": "x"}, "lookup() would read a value"),
        ("timestamp(a)", {"a": "1" * 100_000}, "is not a timestamp (it has 100,000 characters)"),
        ("date(a)", {"a": "2024-05-01" * 10}, "is not a timestamp (it has 100 characters)"),
    ],
)
def test_values_cannot_grow_past_the_bounds(text: str, record: Any, message: str) -> None:
    token = CATALOGS.set(Catalogs({"products": Catalog("products", {})}))
    try:
        with pytest.raises(ExpressionError, match=re.escape(message)):
            jp(text)(record)
    finally:
        CATALOGS.reset(token)


def test_large_values_without_repeats_are_fine() -> None:
    document = {"orders": [{"id": n, "note": "x" * 1_000_000 + str(n)} for n in range(12)]}
    assert len(jp("orders[].note")(document)) == 12  # 12 million characters, none repeated
    assert jp("length(orders[].{id: id})")(document) == 12
    assert jp("[orders[0], orders[1]][].id")(document) == [0, 1]


def test_a_record_s_values_count_against_one_budget() -> None:
    big = jp("a[] | [@, @][] | [@, @][] | [@, @][] | [@, @][] | [@, @][] | [@, @][]")
    lets = LETS.set(RecordLets({"big": big}, {"a": list(range(10_000))}))
    try:
        with pytest.raises(ExpressionError, match="take more than 64 MiB"):
            budget.run(jp("items[].reverse(let('big'))"), {"items": list(range(1_000))})
    finally:
        LETS.reset(lets)
    assert budget.ACTIVE == {}


def test_an_expression_alone_has_its_own_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "RECORD_SECONDS", 0.3)
    names = [str(n) for n in range(300)]
    slow = jp("length(a[?length(b[?length(c[?@ == 'no']) > `0`]) > `0`])")
    with pytest.raises(ExpressionError, match="took longer than 0.3 s") as caught:
        slow({"a": [{"b": [{"c": names}] * 300}] * 300})
    assert "length(a[?length(b[?" in caught.value.message
    assert budget.ACTIVE == {}
    assert jp("a")({"a": 1}) == 1  # the next evaluation has a budget of its own


def naive_size(value: Any) -> int:
    """What printing or comparing a value reads: its parts, repeated ones each time."""
    if isinstance(value, str):
        return len(value) + 1
    if isinstance(value, list):
        return 1 + sum(naive_size(v) for v in value)
    if isinstance(value, dict):
        return 1 + sum(len(k) + 1 + naive_size(v) for k, v in value.items())
    return 1


@st.composite
def shared_values(draw: st.DrawFn) -> Any:
    """Values built as expressions build them: later parts may hold earlier ones again."""
    made: list[Any] = [draw(st.one_of(st.text(max_size=5), st.integers(), st.none()))]
    for _ in range(draw(st.integers(0, 12))):
        picks = draw(st.lists(st.integers(0, len(made) - 1), max_size=4))
        if draw(st.booleans()):
            made.append([made[i] for i in picks])
        else:
            made.append({f"k{n}": made[i] for n, i in enumerate(picks)})
    return made[-1]


@settings(max_examples=300, deadline=None)
@given(shared_values(), st.integers(1, 400))
def test_through_size_is_what_printing_reads(value: Any, limit: int) -> None:
    expected = naive_size(value) if not isinstance(value, str) else len(value)
    got = budget.through_size(value, limit)
    if expected <= limit or not isinstance(value, list | dict):
        assert got == expected
    else:
        assert got == limit + 1
    if isinstance(value, list | dict) and expected <= limit:
        budget.check_repeats(value, "t", limit)  # small values pass


def test_a_time_up_arriving_while_the_budget_is_left_never_outlives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watchdog's exception can arrive at any instruction, also in the moment the
    evaluation ends and its budget is being left: leaving is retried, nothing stays behind."""
    leave = budget._leave
    arrivals: list[int] = []

    def interrupted_leave(own: budget.Budget, level: int) -> None:
        if not arrivals:
            arrivals.append(1)
            own.fired = True  # what the watchdog does, just now
            budget._set_async_exc(own.thread, budget.TimeUp)  # arrives right after this call
        leave(own, level)

    monkeypatch.setattr(budget, "_leave", interrupted_leave)
    with pytest.raises(budget.TimeUp):
        budget.run(lambda: "done")
    assert arrivals == [1] and budget.ACTIVE == {}
    total = 0
    for step in range(10_000):  # a pending exception would arrive here
        total += step
    assert total == 49_995_000
    assert budget.run(lambda: "again") == "again"  # the next evaluation has a new budget
