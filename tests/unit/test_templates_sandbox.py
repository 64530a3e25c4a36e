"""hubmap.expressions.templates: Jinja in a narrow sandbox; every known escape fails plainly."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubmap.expressions import ExpressionError, ExpressionSyntaxError
from hubmap.expressions.templates import JINJA_FILTERS_KEPT, MAX_TEXT_LENGTH, compile_template

ORDER = {
    "email": "Bob@Example.com",
    "total_price": "409.94",
    "id": 450789469,
    "line_items": [
        {"sku": "IPOD2008GREEN", "price": "199.00", "quantity": 1},
        {"sku": "IPOD2008RED", "price": "199.00", "quantity": 2},
    ],
    "note_attributes": [{"name": "colour", "value": "green"}],
    "items": "a field named like a dict method",
    "vendor": None,
    "paid": True,
}


def render(template: str, record: Any = ORDER) -> str:
    return compile_template(template)(record)


def test_record_and_fields_are_variables() -> None:
    assert render("{{ record.email }} {{ email | lower }}") == "Bob@Example.com bob@example.com"
    assert render("{{ items }}") == "a field named like a dict method"
    assert render("{{ record.items }}") == "a field named like a dict method"
    assert (
        render("{% for k, v in record.items() %}{{ k }}={{ v }};{% endfor %}", {"a": 1}) == "a=1;"
    )
    assert render("{{ record.get('missing', 'none') }}") == "none"


def test_output_is_text_with_null_and_bools_plain() -> None:
    assert render("[{{ vendor }}] {{ paid }} {{ id }}") == "[] true 450789469"
    assert render("{{ total_price | number * 2 }}") == "819.88"
    assert render("  \n {{ email }}\n") == "Bob@Example.com"
    assert render("{{ 0.1 + 0.2 }}") == "0.30000000000000004"  # Jinja literals are floats...
    assert render("{{ '0.1' | number + '0.2' | number }}") == "0.3"  # ...numbers are exact


def test_loops_and_filters_over_line_items() -> None:
    template = "{% for i in line_items %}{{ i.sku }}{% if not loop.last %}, {% endif %}{% endfor %}"
    assert render(template) == "IPOD2008GREEN, IPOD2008RED"
    assert render("{{ line_items | map(attribute='sku') | first }}") == "IPOD2008GREEN"
    assert render("{{ line_items | sum(attribute='price') | decimals(2) }}") == "398.00"
    assert render("{{ note_attributes | attribute('colour') }}") == "green"
    assert render("{{ line_items | selectattr('quantity', 'gt', 1) | join(attribute='sku') }}") == (
        "IPOD2008RED"
    )


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ ''.format.__self__ }}",
    "{{ {}.__class__.__subclasses__() }}",
    "{{ '{0.__class__}'.format(email) }}",
    "{{ '{0.__class__.__mro__}'.format_map({'a': 1}) }}",
    "{{ email.format }}",
    "{{ ''['format'] }}",
    "{{ record['__class__'] }}",
    "{{ record.__class__ }}",
    "{{ line_items.__class__ }}",
    "{{ range.__call__ }}",
    "{{ (1).__class__ }}",
    "{{ (5).to_bytes(1000000000, 'big') }}",
    "{{ 'a'.ljust(1000000000) }}",
    "{{ 'a'.center(1000000000) }}",
    "{{ [].append(1) }}",
    "{{ line_items.append(1) }}",
    "{{ record.update({'a': 1}) }}",
    "{{ record.pop('email') }}",
    "{{ dict(a=1) }}",
    "{{ '%s' % email }}",
    "{{ '%0999999999d' % 1 }}",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_known_escapes_fail_plainly(template: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        render(template)
    assert "not allowed in a template" in caught.value.message


def test_list_is_not_mutated() -> None:
    record = {"xs": [1]}
    with pytest.raises(ExpressionError, match="not allowed"):
        render("{{ xs.append(2) }}", record)
    assert record == {"xs": [1]}


@pytest.mark.parametrize(
    "template",
    [
        "{{ range(100000000) }}",
        "{% for i in range(999) %}{% for j in range(999) %}{% endfor %}{% endfor %}",
        "{{ 'a' * 1000000000 }}",
        "{{ [1] * 1000000000 }}",
        "{{ (email * 1000) | replace('B', email * 1000) }}",
    ],
)
def test_resource_bombs_are_refused(template: str) -> None:
    with pytest.raises(ExpressionError):
        render(template)


@pytest.mark.parametrize(
    ("template", "filter_name"),
    [
        ("{{ email | attr('__class__') }}", "attr"),
        ("{{ record | tojson }}", "tojson"),
        ("{{ email | center(99999999) }}", "center"),
        ("{{ email | format(1) }}", "format"),
        ("{{ line_items | batch(99999999, 0) }}", "batch"),
        ("{{ email | random }}", "random"),
    ],
)
def test_unsafe_filters_do_not_exist(template: str, filter_name: str) -> None:
    assert filter_name not in JINJA_FILTERS_KEPT
    with pytest.raises(ExpressionSyntaxError, match=f"unknown filter '{filter_name}'"):
        compile_template(template)


@pytest.mark.parametrize(
    "template",
    [
        "{% macro f() %}x{% endmacro %}{{ f() }}",
        "{% import 'x' as y %}",
        "{% include 'x' %}",
        "{% extends 'x' %}",
        "{% block b %}{% endblock %}",
        "{% for x in line_items recursive %}{{ loop(x) }}{% endfor %}",
        "{% call f() %}{% endcall %}",
    ],
)
def test_forbidden_statements_fail_at_compile_time(template: str) -> None:
    with pytest.raises(ExpressionSyntaxError, match="not allowed in a template") as caught:
        compile_template(template)
    assert caught.value.code == "HM304"


def test_undefined_names_fail_with_their_name() -> None:
    with pytest.raises(ExpressionError, match="'emial' is not defined") as caught:
        render("{{ emial }}")
    assert "email" in caught.value.message  # the fields that do exist
    with pytest.raises(ExpressionError, match="has no field 'missing'"):
        render("{{ record.missing }}")
    with pytest.raises(ExpressionError, match="'lipsum' is not allowed"):
        render("{{ lipsum() }}")
    assert render("{{ missing | default('none') }}") == "none"
    assert render("{% if record.get('missing') %}yes{% else %}no{% endif %}") == "no"


def test_syntax_errors_point_at_their_line() -> None:
    text = "Hello\n  {{ email | upperr }}"
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_template(text)
    assert caught.value.offset == text.index("{{")
    assert caught.value.hint == "did you mean 'upper'?"
    text = "line one\nline two {% if %}"
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_template(text)
    assert caught.value.offset == text.index("line two")
    assert caught.value.code == "HM302"


def test_filter_errors_are_plain() -> None:
    with pytest.raises(ExpressionError, match="is not a number"):
        render("{{ email | number }}")
    assert render("{{ total_price | money('.') | decimals(1) }}") == "409.9"
    assert render("{{ '5' | divide(0) }}") == ""
    assert render("{{ line_items | map(attribute='price') | sum_of }}") == "398.00"
    assert isinstance(compile_template("{{ 1 }}")({}), str)
    assert render("{{ x | decimals }}", {"x": Decimal("2.005")}) == "2.01"


TEMPLATE_PIECES = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        " ",
        "x",
        "email",
        "record",
        "|",
        "lower",
        "number",
        "join",
        "(",
        ")",
        "'",
        ",",
        ".",
        "[",
        "]",
        "0",
        "1",
        "*",
        "+",
        "~",
        "if",
        "for",
        "in",
        "endfor",
        "endif",
        "line_items",
        "sku",
        "__class__",
        "range",
        "loop",
        "default",
        "-",
        "\n",
    ]
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TEMPLATE_PIECES, max_size=20).map("".join))
def test_any_template_compiles_or_fails_plainly_and_renders_or_fails_plainly(text: str) -> None:
    try:
        template = compile_template(text)
    except ExpressionSyntaxError as error:
        assert 0 <= error.offset <= len(text)
        return
    try:
        assert isinstance(template(ORDER), str)
    except ExpressionError as error:
        assert error.message


# ------------------------------------------------------------------------------- the bounds


@pytest.mark.parametrize(
    ("template", "attribute"),
    [
        ("{{ line_items | map(attribute='skuu') | list }}", "skuu"),
        ("{{ line_items | map(attribute='skuu') | join(',') }}", "skuu"),
        ("{{ line_items | map(attribute='skuu') | first }}", "skuu"),
        ("{{ line_items | map(attribute='sku.x') | list }}", "x"),
        ("{{ line_items | join(', ', attribute='skuu') }}", "skuu"),
        ("{{ line_items | sum(attribute='prices') }}", "prices"),
        ("{{ line_items | sort(attribute='skuu') }}", "skuu"),
        ("{{ [line_items[0]] | sort(attribute='skuu') | first }}", "skuu"),
        ("{{ line_items | selectattr('skuu') | list }}", "skuu"),
        ("{{ line_items | rejectattr('skuu', 'equalto', 1) | list }}", "skuu"),
        ("{{ line_items | groupby('skuu') | list }}", "skuu"),
        ("{{ line_items | max(attribute='skuu') }}", "skuu"),
        ("{{ line_items | min(attribute='skuu') }}", "skuu"),
    ],
)
def test_a_missing_attribute_in_a_filter_is_an_error_naming_it(
    template: str, attribute: str
) -> None:
    with pytest.raises(ExpressionError, match=f"has no field '{attribute}'") as caught:
        render(template)
    assert "Undefined" not in caught.value.message


@pytest.mark.parametrize(
    "template",
    [
        "{{ [record.missing, 1] }}",
        "{{ [1, record.missing] | string }}",
        "{{ 'a' ~ [record.missing] }}",
        "{{ {'a': record.missing} }}",
        "{{ (record.missing, 2) | list }}",
    ],
)
def test_an_undefined_value_is_never_written_as_text(template: str) -> None:
    with pytest.raises(ExpressionError, match="has no field 'missing'"):
        render(template)


def test_attributes_that_exist_or_have_a_default_still_work() -> None:
    assert render("{{ line_items | map(attribute='sku') | join(',') }}") == (
        "IPOD2008GREEN,IPOD2008RED"
    )
    assert render("{{ line_items | map(attribute='skuu', default='-') | join(',') }}") == "-,-"
    assert render("{{ line_items | sort(attribute='quantity', reverse=true) | first }}") == (
        "{'sku': 'IPOD2008RED', 'price': '199.00', 'quantity': 2}"
    )
    assert render("{{ [{'a': none}] | sum(attribute='a.b') }}") == "0"  # null all the way
    assert render("{{ line_items | map('string') | list | length }}") == "2"


def test_tilde_writes_values_as_output_does() -> None:
    assert render("{{ vendor ~ '-' ~ paid ~ '-' ~ ('1.50' | number) ~ '-' ~ 0.1 }}") == (
        "-true-1.50-0.1"
    )


@pytest.mark.parametrize(
    ("template", "message", "line"),
    [
        ("{{ 2 ** 10 }}", "'**' is not allowed", 0),
        ("line\n  {{ id ** id }}", "'**' is not allowed", 1),
        (
            "{% set t = 0 %}\n{% for i in line_items %}\n  {% set t = t + i.quantity %}\n"
            "{% endfor %}{{ t }}",
            "'{% set t %}' inside a loop reads 't' itself",
            2,
        ),
        (
            "{% set s = email %}{% for i in line_items %}{% if i %}{% set s = s ~ s %}{% endif %}"
            "{% endfor %}",
            "reads 's' itself",
            0,
        ),
        ("{% for i in line_items %}{% set s %}{{ s }}x{% endset %}{% endfor %}", "reads 's'", 0),
    ],
)
def test_what_cannot_be_bounded_is_refused_at_compile_time(
    template: str, message: str, line: int
) -> None:
    with pytest.raises(ExpressionSyntaxError, match=re.escape(message)) as caught:
        compile_template(template)
    assert caught.value.code == "HM305"
    lines = template.split("\n")
    offending = lines[line]
    start = sum(len(t) + 1 for t in lines[:line]) + len(offending) - len(offending.lstrip())
    assert caught.value.offset == start


def test_sets_that_can_be_bounded_are_kept() -> None:
    assert render("{% set s = email %}{% set s = s ~ s %}{{ s | length }}") == "30"
    assert (
        render("{% for i in line_items %}{% set sku = i.sku | lower %}{{ sku }};{% endfor %}")
        == "ipod2008green;ipod2008red;"
    )
    assert render("{% set total = line_items | sum(attribute='quantity') %}{{ total }}") == "3"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{% set x = id %}" + "{% set x = x * x %}" * 12 + "{{ x }}", "4,096 bits"),
        ("{% set x = id %}" + "{% set x = x + x * x %}" * 12 + "{{ x }}", "4,096 bits"),
        (
            "{% set x = [email] %}" + "{% set x = [x, x] %}" * 25 + "{{ x | length }}",
            "10,000,000 items and characters",
        ),
        (
            "{% set x = (email,) %}" + "{% set x = (x, x) %}" * 25 + "{{ x | length }}",
            "10,000,000 items and characters",
        ),
        (
            "{% set x = {'a': email} %}" + "{% set x = {'a': x, 'b': x} %}" * 25 + "{{ 1 }}",
            "10,000,000 items and characters",
        ),
        (
            "{% set x = [email] * 1000 %}{{ ([x] * 10000) | length }}",
            "10,000,000 items and characters",
        ),
        (
            "{% set x = [email] * 1000 %}{% set y = x + x %}"
            + "{% set y = y + y %}" * 12
            + "{{ y | length }}",
            "'+' would build a value of 1,024,000 items or characters",
        ),
        (
            "{% set x = email %}" + "{% set x = x ~ x %}" * 20 + "{{ x | length }}",
            "'~' would build a value of",
        ),
        (
            "{% set x = [email] * 100 %}{{ x | string | length }}" * 1
            + "{% set y = [[email] * 1000] * 1000 %}{{ y | string }}",
            "10,000,000",
        ),
    ],
)
def test_values_cannot_grow_past_the_bounds(template: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        render(template)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 1_500_000), st.integers(0, 1_500_000))
def test_a_text_is_built_exactly_when_it_fits(left: int, right: int) -> None:
    record = {"a": "a" * left, "b": "b" * right}
    fits = left + right <= MAX_TEXT_LENGTH
    for template in (
        "{{ (a ~ b) | length }}",
        "{{ (a + b) | length }}",
        "{{ [a, b] | join | length }}",
    ):
        if fits:
            assert render(template, record) == str(left + right)
        else:
            with pytest.raises(ExpressionError, match="1,000,000"):
                render(template, record)
