"""A commented starter mapping for a platform hubmap does not ship: the fields the sample's
records carry, with their types and an example value, and the records section and a few
properties guessed from the field names (each guess marked, for a person to check).

Pure: records in, YAML text out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# how many fields the comment lists (a wide payload has hundreds)
LISTED_FIELDS = 150


@dataclass
class FieldSeen:
    path: str  # as a JMESPath expression: billing.email, line_items[].sku
    kind: str  # text, number, number as text, date as text, true/false, list, object
    example: str
    records: int = 0  # in how many records


def _name(key: str) -> str:
    """`key` as JMESPath writes a field: bare when it can be, else in double quotes."""
    return key if _IDENTIFIER.match(key) else '"' + key.replace('"', '\\"') + '"'


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        if _DATE.match(value):
            return "date as text"
        if _NUMBER.match(value):
            return "number as text"
        return "text"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null"


def _leaves(value: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and depth < 4:
        for key, inner in value.items():
            path = f"{prefix}.{_name(str(key))}" if prefix else _name(str(key))
            if isinstance(inner, dict) and inner:
                yield from _leaves(inner, path, depth + 1)
            elif isinstance(inner, list) and inner and isinstance(inner[0], dict):
                for item in inner[:20]:
                    yield from _leaves(item, path + "[]", depth + 1)
            else:
                yield path, inner


def fields_of(records: list[dict[str, Any]]) -> list[FieldSeen]:
    """Every field path of the records, in first-seen order, with the kind of its first value
    that is not null."""
    seen: dict[str, FieldSeen] = {}
    for record in records:
        counted: set[str] = set()
        for path, value in _leaves(record):
            field = seen.get(path)
            if field is None:
                field = seen[path] = FieldSeen(path, _kind(value), _example(value))
            elif field.kind == "null" and value is not None:
                field.kind, field.example = _kind(value), _example(value)
            if path not in counted:
                field.records += 1
                counted.add(path)
    return list(seen.values())


def _example(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Guesses:
    id: str | None
    time: str | None
    version: str | None
    contact: str | None
    total: str | None
    item_names: str | None
    item_skus: str | None


def guess(fields: list[FieldSeen], records: list[dict[str, Any]]) -> Guesses:
    top = [f for f in fields if "[]" not in f.path]
    dates = [f for f in top if f.kind == "date as text"]

    def first(candidates: list[FieldSeen], *words: str) -> str | None:
        for word in words:
            for f in candidates:
                last = f.path.rsplit(".", 1)[-1].strip('"').lower()
                if (
                    word.startswith("=")
                    and last == word[1:]
                    or not word.startswith("=")
                    and word in last
                ):
                    return f.path
        return None

    emails = [f.path for f in top if "email" in f.path.lower() and "@" in f.example]
    contact = (
        emails[0] if len(emails) == 1 else f"coalesce({', '.join(emails[:3])})" if emails else None
    )
    plain = [f for f in top if "." not in f.path]
    identifier = first(
        plain,
        "=id",
        "=order_id",
        "=orderid",
        "=invoiceno",
        "=order_number",
        "=number",
        "=entity_id",
        "id",
        "no",
    )
    numbers = [f for f in top if f.kind in ("number", "number as text")]
    items = [f for f in fields if f.path.count("[]") == 1 and f.path.split("[]")[0].count(".") == 0]
    return Guesses(
        id=identifier,
        time=first(dates, "created", "placed", "ordered", "date"),
        version=first(dates, "updated", "modified")
        or first([f for f in plain if f.kind == "number"], "=version"),
        contact=contact,
        total=first(numbers, "=total", "total_price", "grand_total", "total", "amount", "price"),
        item_names=first(items, "=name", "=title", "=description", "name"),
        item_skus=first(items, "=sku", "sku"),
    )


def skeleton(
    name: str, sample: str, records: list[dict[str, Any]], schema_header: str, mapping_path: str
) -> str:
    """The starter mapping's text (`mapping_path`: where it is written, for the commands its
    comment names)."""
    fields = fields_of(records)
    g = guess(fields, records)
    lines = [
        f"# yaml-language-server: $schema={schema_header}",
        f"# A starter mapping written by `hubmap init` from {sample} ({len(records)} record(s)).",
        "# hubmap does not know this platform, so the lines marked 'guessed' are guesses from the",
        "# field names: check each one, then run",
        f"#   hubmap validate {mapping_path}",
        f"#   hubmap plan {mapping_path} --input {sample}",
        "# and add an example case (examples: below) so that `hubmap test` checks it.",
        "#",
        "# The fields the sample's records carry (path: kind, first value):",
    ]
    for f in fields[:LISTED_FIELDS]:
        lines.append(f"#   {f.path}: {f.kind}, {f.example}")
    if len(fields) > LISTED_FIELDS:
        lines.append(f"#   ... and {len(fields) - LISTED_FIELDS} more")
    lines += [
        "",
        "version: 1",
        f"name: {name}",
        "description: >",
        f"  Orders from {Path(sample).name} folded into HubSpot contacts.  Say here which orders",
        "  count, how refunds and currencies are treated, and where the data comes from.",
        "",
        "records:",
        _line(
            "id",
            f"to_string({g.id})" if g.id else None,
            "the order's own id, the same in every copy",
        ),
        _line(
            "version",
            g.version,
            "a field that changes on every edit of the order (leave it out if none)",
            optional=True,
        ),
        _line("time", g.time, "when the order was placed"),
        _line("contact", g.contact, "the customer's e-mail"),
        "  # which orders count, for example:",
        "  # when: \"status != 'cancelled'\"",
        "  # require:",
        "  #   - that: \"currency == 'USD'\"",
        "  #     reason: the order is not in USD, the shop's currency",
        "",
        "target:",
        "  kind: contacts",
        "  match_on: email",
        "",
        "group:",
        "  name: ecommerce",
        "  label: E-commerce",
        "",
        "properties:",
        "  total_value_of_orders:",
        "    label: Total value of orders",
        "    type: number",
        _line("from", g.total, "the order's total (an amount in cents: from_cents(...))", indent=4),
        "    decimals: 2",
        "    merge: sum",
        "",
        "  total_number_of_orders:",
        "    label: Total number of orders",
        "    type: number",
        "    value: 1",
        "    merge: sum",
    ]
    if g.time:
        lines += [
            "",
            "  first_order_date:",
            "    label: First order date",
            "    type: date",
            f"    from: {_quoted(g.time)}",
            "    merge: min",
            "",
            "  last_order_date:",
            "    label: Last order date",
            "    type: date",
            f"    from: {_quoted(g.time)}",
        ]
    for prop, label, path in (
        ("products_bought", "Products bought", g.item_names),
        ("skus_bought", "SKUs bought", g.item_skus),
    ):
        if path:
            lines += [
                "",
                f"  {prop}:",
                f"    label: {label}",
                "    type: string",
                f"    from: {_quoted(path)}  # guessed",
                "    merge: prepend",
            ]
    return "\n".join(line for line in lines if line is not None) + "\n"


def _line(
    key: str, value: str | None, what: str, *, indent: int = 2, optional: bool = False
) -> str | None:
    pad = " " * indent
    if value is None:
        return None if optional else f"{pad}# {key}: ...  # no field looked like {what}: write it"
    return f"{pad}{key}: {_quoted(value)}  # guessed: {what}"


def _quoted(expression: str) -> str:
    return '"' + expression.replace("\\", "\\\\").replace('"', '\\"') + '"'
