"""The fence: what a contact carries in HubSpot about who wrote it and what was counted (pure).

Every contact a contacts mapping writes carries, in a hubmap-owned property of that mapping
(`hubmap_fence_<mapping name>`, a text property created by provisioning), one short value:

    {"v": 1, "l": <ledger id of the state file>, "n": <orders counted>, "h": <digest of their ids,
     versions and contents>, "b": {<property>: <baseline>}}

- `l` says which state wrote it; `n` and `h` say what it had counted (so two copies of one state
  that went apart write different fences);
- `b` is the baseline - what HubSpot held before hubmap first wrote (as drift moved it) - for the
  properties that had one, so that a state rebuilt from the full order history after the state
  was lost gives exact values, sums included, without reading HubSpot's current totals.  A list
  baseline keeps at most the property's `max_items` items: no more can ever show.

Before a run adds to a contact it checks the fence (`verdict`): the value must be the one this
state wrote last (or was writing when an answer was lost); a contact it has no record of must
carry no fence of this mapping, nor of another mapping writing exactly the same properties (this
mapping under an earlier name).  Otherwise
the run stops before writing anything, unless it rebuilds - then the fence's baseline is the
starting point.

The property's description names the mapping and the properties it writes, so a fence of a
renamed mapping (another property name) is still recognised as covering the same properties.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib
from collections.abc import Iterable
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from typing import Any

from hubmap.types import LIST_SEPARATOR, MAX_VALUE_LENGTH

FENCE_PREFIX = "hubmap_fence_"
FENCE_VERSION = 1
MAX_PROPERTY_NAME = 100
COMPRESSED = "z1:"  # a fence too long for one HubSpot value is stored deflated, base64
_NAME_CHARS = re.compile(r"[^a-z0-9]+")
_OWNED = re.compile(r"Properties: (.*)$", re.MULTILINE)


def property_name(mapping_name: str) -> str:
    """The fence property of a mapping (chosen at its first write, then kept by the state)."""
    slug = _NAME_CHARS.sub("_", mapping_name.lower()).strip("_") or "mapping"
    return (FENCE_PREFIX + slug)[:MAX_PROPERTY_NAME]


def definition(
    name: str, mapping_name: str, properties: Iterable[str], group: str
) -> dict[str, Any]:
    """The HubSpot property definition of a fence."""
    owned = ", ".join(properties)
    return {
        "name": name,
        "label": f"hubmap fence ({mapping_name})"[:255],
        "type": "string",
        "fieldType": "textarea",
        "groupName": group,
        "formField": False,
        "description": (
            f"Written by hubmap for the mapping '{mapping_name}': which hubmap state "
            "wrote this contact and what it counted. Do not edit: hubmap refuses to "
            "add to a contact whose fence it does not recognise.\n"
            f"Properties: {owned}"
        ),
    }


def owned_properties(definition_: MappingType[str, Any]) -> set[str]:
    """The properties a fence property's mapping writes (from its description)."""
    found = _OWNED.search(str(definition_.get("description") or ""))
    return {p.strip() for p in found.group(1).split(",") if p.strip()} if found else set()


@dataclass(frozen=True)
class Fence:
    ledger: str
    orders: int
    digest: str
    baseline: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        data = {
            "v": FENCE_VERSION,
            "l": self.ledger,
            "n": self.orders,
            "h": self.digest,
            "b": self.baseline,
        }
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if len(text) > MAX_VALUE_LENGTH:
            text = COMPRESSED + base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode()
        if len(text) > MAX_VALUE_LENGTH:
            raise ValueError(
                f"the contact's baseline is too long for a fence ({len(text):,} "
                f"characters after compression; HubSpot keeps {MAX_VALUE_LENGTH:,})"
            )
        return text


def read(text: str | None) -> Fence | None:
    """A fence value as HubSpot holds it; None when empty or not a fence hubmap can read."""
    if not text:
        return None
    try:
        if text.startswith(COMPRESSED):
            text = zlib.decompress(base64.b64decode(text[len(COMPRESSED) :])).decode("utf-8")
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("v") != FENCE_VERSION:
            return None
        baseline = data.get("b") or {}
        return Fence(
            str(data["l"]),
            int(data["n"]),
            str(data["h"]),
            {str(k): str(v) for k, v in baseline.items()},
        )
    except (ValueError, KeyError, TypeError, zlib.error):
        return None


# -- what the orders were -------------------------------------------------------------------


DIGEST_BITS = 64


def order_mark(order_id: str, version: str | None, digest: str | None) -> int:
    """One order's part of a contact's digest (the digest is the XOR of its orders' marks, so a
    new order adds, and a change replaces, without reading the others)."""
    text = f"{order_id}\x1f{version or ''}\x1f{digest or ''}".encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[: DIGEST_BITS // 8], "big")


@dataclass(frozen=True)
class Counted:
    """What a contact's fold holds: how many orders, and the XOR of their marks."""

    orders: int = 0
    marks: int = 0

    def add(self, mark: int) -> Counted:
        return Counted(self.orders + 1, self.marks ^ mark)

    def join(self, other: Counted) -> Counted:
        """Both counts together (the marks are XORed, so the order does not matter)."""
        return Counted(self.orders + other.orders, self.marks ^ other.marks)

    def text(self) -> str:
        return f"{self.orders}:{self.marks:016x}"

    @staticmethod
    def parse(text: str | None) -> Counted:
        if not text:
            return Counted()
        orders, _, marks = text.partition(":")
        return Counted(int(orders), int(marks or "0", 16))


def fence_of(
    ledger: str,
    counted: Counted,
    baseline: MappingType[str, str | None],
    caps: MappingType[str, int],
) -> Fence:
    """The fence a contact gets: this state, what it counted, its baseline (`caps`: the item cap
    of list properties)."""
    kept: dict[str, str] = {}
    for name, value in sorted(baseline.items()):
        if value in (None, ""):
            continue
        if name in caps:
            value = LIST_SEPARATOR.join(str(value).split(LIST_SEPARATOR)[: caps[name]])
        kept[name] = str(value)
    return Fence(ledger, counted.orders, f"{counted.marks:016x}", kept)


# -- the check before a write -----------------------------------------------------------------


OK, FRESH, FOREIGN = "ok", "fresh", "foreign"


@dataclass(frozen=True)
class Verdict:
    kind: str  # OK: this state wrote it; FRESH: nobody did; FOREIGN: another writer did
    fence: Fence | None = None  # the fence found (ours, or another's)
    property: str | None = None  # where it was found
    reason: str = ""


def verdict(
    ours: str,
    found: MappingType[str, str | None],
    written: str | None,
    writing: str | None,
    others: Iterable[str],
) -> Verdict:
    """Whether this state may add to a contact: `found` holds the contact's fence values in
    HubSpot (ours and those of `others`, mappings writing the same properties); `written` /
    `writing` are the fences this state wrote last / was writing."""
    value = found.get(ours) or None
    expected = {t for t in (written, writing) if t}
    if value is not None and value in expected:
        return Verdict(OK, read(value), ours)
    if value is not None:
        fence = read(value)
        who = (
            f"a state with ledger {fence.ledger} ({fence.orders} orders)"
            if fence
            else "someone (the fence is not one hubmap wrote)"
        )
        why = (
            "this state wrote another fence last: it is an older copy, or another state wrote since"
            if expected
            else "this state has no record of the contact"
        )
        return Verdict(FOREIGN, fence, ours, f"its fence {ours} was written by {who}; {why}")
    if written:  # (a fence only being written may never have reached HubSpot)
        return Verdict(
            FOREIGN,
            None,
            ours,
            f"its fence {ours}, written by this state, is gone "
            "(cleared in HubSpot, or the contact is another record now)",
        )
    for name in others:
        other = found.get(name) or None
        if other is not None:
            fence = read(other)
            return Verdict(
                FOREIGN,
                fence,
                name,
                f"it carries the fence {name} of a mapping "
                "that writes the same properties (this mapping under another name?)",
            )
    return Verdict(FRESH)
