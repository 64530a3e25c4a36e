"""Order versions: what a record of an order id already known does to the stored order (pure).

An order is stored once per id with its latest version and what it contributes.  A record of that
id arriving again is one of (`classify`):

    new        the id is not stored: counted
    unchanged  identical content (the version is kept if newer): nothing to send
    changed    a newer version with other content: its contribution replaces the stored one (also
               a withdrawn order that counts again)
    stale      an older or equal version with other content: ignored and counted (webhooks arrive
               out of order)
    withdrawn  a newer version for which `records.when` is false (cancelled, voided): the order
               leaves its contact

Without `records.version` there is no order between versions: other content is `changed`, the
later arrival wins.  A version is a number, a timestamp or a text (`version_key`); numbers
compare as numbers, timestamps as instants, texts as text.  The content is a digest of what the
order contributes (contact, time, typed values), so a new `updated_at` that changes nothing hubmap
reads is `unchanged`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from hubmap import types
from hubmap.ledger import COUNTED

NEW, UNCHANGED, CHANGED, STALE, WITHDRAWN, SKIPPED = (
    "new",
    "unchanged",
    "changed",
    "stale",
    "withdrawn",
    "skipped",
)


DIGEST_CHARS = 20  # hex characters of a content digest kept (80 bits)

_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class VersionKind(str, Enum):
    NUMBER = "n"
    TIME = "t"
    TEXT = "s"


_KIND_ORDER = {VersionKind.NUMBER.value: 0, VersionKind.TIME.value: 1, VersionKind.TEXT.value: 2}


def version_key(raw: Any, default_tz: str | None = None) -> str:
    """A record's version as stored text: 'n:<number>', 't:<UTC instant>' or 's:<text>'."""
    if isinstance(raw, bool):
        return f"s:{'true' if raw else 'false'}"
    if isinstance(raw, int | Decimal | float) or (
        isinstance(raw, str) and _NUMBER.fullmatch(raw.strip())
    ):
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return f"n:{types.plain_number_text(number)}"
    text = str(raw).strip()
    try:
        moment = types.parse_timestamp(text, default_tz)
    except (types.CoercionError, ValueError, OverflowError):
        return f"s:{text}"
    return f"t:{moment.isoformat(timespec='microseconds')}"


def _sort_key(key: str) -> tuple[int, Any]:
    kind, _, text = key.partition(":")
    if kind == VersionKind.NUMBER.value:
        return (0, Decimal(text))
    return (_KIND_ORDER.get(kind, 2), text)  # ISO instants in UTC sort as text


def newer(a: str | None, b: str | None) -> bool:
    """Whether version `a` is newer than `b` (no version is older than any)."""
    if a is None:
        return False
    if b is None:
        return True
    return _sort_key(a) > _sort_key(b)


def digest(parts: Any) -> str:
    """A short, stable digest of JSON-able content (what an order or a refund contributes)."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


@dataclass(frozen=True)
class Stored:
    """What the state holds of one order id."""

    status: str  # COUNTED or WITHDRAWN (hubmap.ledger)
    version: str | None
    digest: str | None  # of the counted content; None when withdrawn
    contact: str | None


@dataclass(frozen=True)
class Arrival:
    """A record of an order id: counted content (`digest`) or, when `digest` is None, a record
    that `records.when` leaves out."""

    version: str | None
    digest: str | None
    contact: str | None = None


def classify(stored: Stored | None, arrival: Arrival, versioned: bool) -> str:
    """What `arrival` does to the stored order (see the module docstring)."""
    counts = arrival.digest is not None
    if stored is None:
        return NEW if counts else SKIPPED
    if stored.status == COUNTED:
        if counts and arrival.digest == stored.digest:
            return UNCHANGED
        if versioned and not newer(arrival.version, stored.version):
            return STALE
        return CHANGED if counts else WITHDRAWN
    # withdrawn before
    if not counts:
        return UNCHANGED
    if versioned and not newer(arrival.version, stored.version):
        return STALE
    return CHANGED
