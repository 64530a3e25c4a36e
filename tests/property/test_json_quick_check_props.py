"""Property tests of `hubmap.inputs.parse_json`'s quick check: given bytes, it skips the walk of
every value (nesting, lone surrogates) when two scans of the bytes prove the walk would find
nothing.  For any body - JSON values written out in several ways, nested up to past the depth
limit, holding escaped surrogates (paired and lone), numbers too long to read, a byte order mark,
bytes that are not UTF-8, UTF-16 and UTF-32 text, and any bytes at all - it gives exactly what
the full walk gives (the same data, or the same refusal and reason).  The reference is the same
text given as a str, which is always walked."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hubmap import inputs
from hubmap.inputs import BOM, MAX_DEPTH, Document, InputError, parse_json
from tests.conftest import shared_data

BOUNDED = settings(max_examples=300)
TEXT = st.text(max_size=8)  # surrogates included: json.dumps escapes them as \udXXX
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | TEXT
    | st.decimals(allow_nan=False, allow_infinity=False, places=3).map(float)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)


def nested(depth: int, inner: Any) -> Any:
    for level in range(depth):
        inner = [inner] if level % 2 else {"k": inner}
    return inner


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    value = draw(JSON_VALUES)
    if draw(st.booleans()):
        value = nested(draw(st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3)), value)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    tweak = draw(
        st.sampled_from(
            [
                "none",
                "bom",
                "lone surrogate",
                "long number",
                "cut",
                "bad byte",
                "upper escape",
                "utf-16",
            ]
        )
    )
    if tweak == "lone surrogate":
        text = json.dumps({"note": "x"}).replace(
            "x",
            draw(st.sampled_from(["\\ud800", "\\uDBFF", "\\udc00", "\\ud83d\\ude00", "\\\\ud800"])),
        )
    elif tweak == "long number":
        text = json.dumps([1]).replace(
            "1", draw(st.sampled_from(["1" * 5000, "1e999999999", "1.5e-999999999"]))
        )
    elif tweak == "upper escape":
        text = text.replace("\\u", "\\U")
    raw = text.encode("utf-8", "surrogatepass")
    if tweak == "utf-16":  # refused (not UTF-8) though Python's json would take it
        raw = text.encode(draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32"])), "surrogatepass")
    if tweak == "bom":
        raw = BOM + raw
    elif tweak == "cut" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif tweak == "bad byte":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + b"\xff" + raw[at:]
    return raw


def walked(raw: bytes, where: str) -> Document | InputError:
    """What parse_json gives with the full walk: the decoded text (bytes that do not decode are
    refused before any walk, the same way on both paths)."""
    try:
        return parse_json(raw.removeprefix(BOM).decode("utf-8"), where)
    except UnicodeDecodeError:
        return parse_json(raw, where)


def same(got: Document | InputError, expected: Document | InputError) -> bool:
    if isinstance(expected, InputError):
        return got == expected
    return (
        isinstance(got, Document)
        and got.where == expected.where
        and typed(got.data) == typed(expected.data)
    )


def typed(value: Any) -> Any:
    """The value with each item's type kept, so 1 and 1.0 (a Decimal) do not compare equal."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, str(value) if isinstance(value, Decimal) else value)


@BOUNDED
@given(raw=bodies())
def test_any_written_body_reads_as_parse_json_reads_it(raw):
    assert same(parse_json(raw, "the body"), walked(raw, "the body"))


@BOUNDED
@given(raw=st.binary(max_size=300))
def test_any_bytes_read_as_parse_json_reads_them(raw):
    assert same(parse_json(raw, "w"), walked(raw, "w"))


def test_a_real_shopify_order_is_read_without_the_full_walk(monkeypatch):
    raw = shared_data("shopify", "order.json").read_bytes()
    expected = walked(raw, "the body")

    def no_walk(*args: Any) -> Any:
        raise AssertionError("the value walk ran for a plain body")

    monkeypatch.setattr(inputs, "_unusable", no_walk)
    assert same(parse_json(raw, "the body"), expected)
