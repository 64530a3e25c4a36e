"""The stored forms of orders, refunds and contacts (plain data, shared by the state store and
the pure sync decisions; see `hubmap.state` for what each field means)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COUNTED, WITHDRAWN, SENT = "counted", "withdrawn", "sent"


@dataclass
class StoredOrder:
    """One order as stored: its latest version and what it contributes (`contribution`: the
    JSON form of its typed values, see `hubmap.fold.encode_values`)."""

    order_id: str
    status: str
    contact: str | None
    order_time: str | None = None
    version: str | None = None
    digest: str | None = None
    contribution: dict[str, Any] | None = None
    seq: int = 0
    first_seq: int = 0


@dataclass
class StoredRefund:
    refund_id: str
    order_id: str
    digest: str
    contribution: dict[str, Any]
    seq: int = 0


@dataclass
class ContactRow:
    contact: str
    baseline: dict[str, str | None] | None = None
    acc: dict[str, Any] = field(default_factory=dict)
    cutoffs: dict[str, int] = field(default_factory=dict)
    folded_seq: int = 0  # the highest version seq folded into acc
    written_seq: int = 0  # folded_seq of the values HubSpot confirmed last
    written: dict[str, str] | None = None
    writing: dict[str, str] | None = None
    hubspot_id: str | None = None
    dirty: bool = False
    last_error: str | None = None
    counted: str = ""  # what the fold holds: `hubmap.fence.Counted` text
    fence_written: str | None = None  # the fence HubSpot confirmed last
    fence_writing: str | None = None  # the fence being sent now
    sending: dict[str, str] | None = None  # the values a write will send (prepared, not sent)
