"""The sync decisions (pure, no I/O): what each record does to the stored orders and contacts,
what to send, drift, and whether a changed mapping can go on from the stored state.

- `decide` takes a chunk of evaluated records (orders, skipped records, refunds) with what the
  state holds of their ids, and says which order and refund versions to store, which contacts
  take the fast path (only new orders: added to the cached fold) and which are folded afresh
  (a changed or withdrawn order, a refund, an order that moved to another contact), with the
  counts the summary reports (`Tally`).
- `parts_of` turns a contact's stored orders and refunds into what the fold reads.
- `drift`, `rebase` and `changes` decide a contact's write: which HubSpot values someone edited
  since hubmap wrote them, how the edit becomes the new starting point, and which values differ.
- `fingerprint` and `compatibility` compare a mapping with the one the stored state was made with.
- `MemoryLedger` is the state as plain dicts, for `hubmap plan` and `hubmap test`: the same
  decisions and folds a run makes, without a state file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from hubmap import fence, versions
from hubmap.evaluate import OrderValues, RefundValues, Skipped
from hubmap.fold import Accs, ContactFolder, Cutoffs, OrderPart, decode_values, encode_values
from hubmap.ledger import COUNTED, WITHDRAWN, ContactRow, StoredOrder, StoredRefund
from hubmap.mapping.model import Mapping, Source
from hubmap.merge import Sum
from hubmap.problems import HubmapError, Location, Problem
from hubmap.types import parse_decimal

TALLY_WORDS = (
    "new",
    "changed",
    "unchanged",
    "stale",
    "withdrawn",
    "skipped",
    "refunds",
    "refunds_changed",
    "refunds_unchanged",
)


@dataclass
class Tally:
    """What records did to the stored orders (the words of the run summary)."""

    new: int = 0  # orders seen for the first time, counted
    changed: int = 0  # a newer version replaced what the order contributed
    unchanged: int = 0  # the same content again: nothing to send
    stale: int = 0  # an older (or equal) version with other content: ignored
    withdrawn: int = 0  # a newer version that records.when leaves out: taken off its contact
    skipped: int = 0  # left out by records.when, never counted
    refunds: int = 0  # refunds seen for the first time
    refunds_changed: int = 0
    refunds_unchanged: int = 0

    def add(self, other: Tally) -> None:
        for name in TALLY_WORDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in TALLY_WORDS}


@dataclass
class Decision:
    """What one chunk of records does (see `decide`)."""

    orders: list[StoredOrder] = field(default_factory=list)  # versions to store
    versions: dict[str, str] = field(default_factory=dict)  # unchanged content, newer version
    refunds: list[StoredRefund] = field(default_factory=list)
    fast: dict[str, list[str]] = field(default_factory=dict)  # contact -> new order ids
    refold: set[str] = field(default_factory=set)  # contacts to fold afresh
    tally: Tally = field(default_factory=Tally)
    new: list[OrderValues] = field(default_factory=list)  # records of orders seen first here
    # the record each stored order version came from: its typed values, so the fold need not
    # read back what was just stored
    records: dict[str, OrderValues] = field(default_factory=dict)


def order_digest(order: OrderValues, encoded: dict[str, Any] | None = None) -> str:
    """The digest of what an order contributes (`encoded`: its values' stored form)."""
    if encoded is None:
        encoded = encode_values(order.values)
    return content_digest(order.contact, order.time.isoformat(), encoded)


def content_digest(contact: str | None, order_time: str | None, encoded: Any) -> str:
    """The digest of an order's contact, time (ISO text) and values' stored form."""
    return versions.digest([contact, order_time, encoded])


def refund_digest(refund: RefundValues) -> str:
    return versions.digest([refund.order_id, encode_values(refund.values)])


def _stored_view(order: StoredOrder | None) -> versions.Stored | None:
    if order is None:
        return None
    return versions.Stored(order.status, order.version, order.digest, order.contact)


def decide(
    items: Iterable[OrderValues | Skipped | RefundValues],
    stored: MappingType[str, StoredOrder],
    stored_refunds: MappingType[str, StoredRefund],
    versioned: bool,
    lazy: bool = False,
) -> Decision:
    """Take a chunk of records in arrival order against what the state holds of their order and
    refund ids (`stored`, `stored_refunds`): the versions to store and the contacts to fold.

    `lazy`: the stored orders carry no contribution, and an order first seen in this chunk gets
    no digest unless another record of its id here needs one to compare with; the caller keeps
    the typed values (`Decision.records`) and works the digest out when it needs it (the digest
    is only compared, and most orders come once)."""
    decision = Decision()
    tally = decision.tally
    current: dict[str, StoredOrder | None] = dict(stored)
    touched: dict[str, list[str]] = {}  # order id -> outcomes in this chunk
    contacts_before: dict[str, str | None] = {}
    refunds_now: dict[str, StoredRefund] = {}
    newer_only: set[str] = set()  # same content, newer version: only the version is stored
    for item in items:
        if isinstance(item, RefundValues):
            digest = refund_digest(item)
            held = refunds_now.get(item.refund_id) or stored_refunds.get(item.refund_id)
            if held is not None and held.digest == digest:
                tally.refunds_unchanged += 1
                continue
            if held is None:
                tally.refunds += 1
            else:
                tally.refunds_changed += 1
                touched.setdefault(held.order_id, []).append("refund")
            refunds_now[item.refund_id] = StoredRefund(
                item.refund_id, item.order_id, digest, encode_values(item.values)
            )
            touched.setdefault(item.order_id, []).append("refund")
            continue
        order_id = item.order_id
        if order_id is None:  # a skipped record without an id
            tally.skipped += 1
            continue
        before = current.get(order_id)
        if order_id not in contacts_before:
            contacts_before[order_id] = (
                before.contact if before is not None and before.status == COUNTED else None
            )
        encoded: dict[str, Any] | None = None
        digest: str | None = None
        if isinstance(item, Skipped):
            outcome = versions.classify(
                _stored_view(before), versions.Arrival(item.version, None), versioned
            )
        elif lazy and before is None:
            outcome = versions.NEW  # what classify says of counted content for an unknown id
        else:
            if lazy and before is not None and before.status == COUNTED and before.digest is None:
                before.digest = order_digest(decision.records[order_id])  # first seen here
            encoded = encode_values(item.values)
            digest = order_digest(item, encoded)
            outcome = versions.classify(
                _stored_view(before),
                versions.Arrival(item.version, digest, item.contact),
                versioned,
            )
        setattr(tally, outcome, getattr(tally, outcome) + 1)
        if outcome == versions.NEW:
            assert isinstance(item, OrderValues)
            decision.new.append(item)
        if outcome in (versions.NEW, versions.CHANGED):
            assert isinstance(item, OrderValues)
            current[order_id] = StoredOrder(
                order_id,
                COUNTED,
                item.contact,
                item.time.isoformat(),
                item.version,
                digest,
                None if lazy else encoded,
                first_seq=before.first_seq if before is not None else 0,
            )
            decision.records[order_id] = item
        elif outcome == versions.WITHDRAWN or (outcome == versions.SKIPPED and item.version):
            current[order_id] = StoredOrder(
                order_id,
                WITHDRAWN,
                before.contact if before is not None else None,
                before.order_time if before is not None else None,
                item.version,
                first_seq=before.first_seq if before is not None else 0,
            )
        elif (
            outcome == versions.UNCHANGED
            and before is not None
            and versions.newer(item.version, before.version)
        ):
            current[order_id] = replace(before, version=item.version)  # the same content
            newer_only.add(order_id)
        if outcome in (versions.NEW, versions.CHANGED, versions.WITHDRAWN, versions.SKIPPED):
            touched.setdefault(order_id, []).append(outcome)
    decision.refunds = list(refunds_now.values())
    for order_id in newer_only - set(touched):
        decision.versions[order_id] = current[order_id].version  # type: ignore[union-attr,assignment]
    for order_id, outcomes in touched.items():
        now = current.get(order_id)
        held = stored.get(order_id)
        if (
            now is not None
            and held is not None
            and now is not held
            and (now.status, now.digest, now.contact) == (held.status, held.digest, held.contact)
        ):
            if now.version != held.version:  # touched by a refund only: the same version row
                decision.versions[order_id] = now.version  # type: ignore[assignment]
        elif now is not None and now is not held:
            decision.orders.append(now)
        counted_now = now.contact if now is not None and now.status == COUNTED else None
        counted_before = contacts_before.get(order_id)
        if counted_before is None and order_id in stored:
            held = stored[order_id]
            counted_before = held.contact if held.status == COUNTED else None
        if outcomes == [versions.NEW] and counted_now is not None:
            decision.fast.setdefault(counted_now, []).append(order_id)
            continue
        for contact in {counted_now, counted_before} - {None}:
            decision.refold.add(contact)  # type: ignore[arg-type]
    for contact in decision.refold:
        decision.fast.pop(contact, None)
    return decision


def parts_of(
    orders: Iterable[StoredOrder],
    refunds: MappingType[str, list[StoredRefund]],
    folder: ContactFolder,
    records: MappingType[str, OrderValues | OrderPart] | None = None,
) -> list[OrderPart]:
    """What the fold reads of stored orders: each order's values with its refunds added.
    `records`: the typed values and times of stored versions (the evaluated records of versions
    stored just now), read instead of their stored form."""
    parts = []
    for order in orders:
        record = records.get(order.order_id) if records else None
        if record is not None:
            values: MappingType[str, Any] = record.values
            time = record.time
        else:
            values = decode_values(order.contribution or {})
            time = datetime.fromisoformat(order.order_time or "")
        mine = refunds.get(order.order_id)
        if mine:
            values = folder.adjusted(values, [decode_values(r.contribution) for r in mine])
        parts.append(OrderPart(order.order_id, time, values, order.seq, order.first_seq))
    return parts


def counted_of(
    orders: Iterable[StoredOrder], refunds: MappingType[str, list[StoredRefund]]
) -> fence.Counted:
    """What a contact's fold holds, for its fence: its orders and their refunds, by content."""
    counted = fence.Counted()
    for order in orders:
        counted = counted.add(fence.order_mark(order.order_id, None, order.digest))
        for refund in refunds.get(order.order_id, ()):
            counted = counted.add(
                fence.order_mark(f"refund {refund.refund_id}", None, refund.digest)
            )
    return counted


def stored_digest(order: StoredOrder, contact: str) -> str:
    """The digest a stored order has once it belongs to `contact` (as `order_digest` gives)."""
    return content_digest(contact, order.order_time, order.contribution or {})


def joined_baseline(
    baselines: Iterable[MappingType[str, str | None] | None],
) -> dict[str, str | None] | None:
    """The baseline of keys joined into one HubSpot record: per property, the first key's value
    that is not empty (the record's primary key comes first: HubSpot keeps the survivor's)."""
    result: dict[str, str | None] = {}
    seen = False
    for baseline in baselines:
        if baseline is None:
            continue
        seen = True
        for name, value in baseline.items():
            if result.get(name) in (None, "") and value not in (None, ""):
                result[name] = value
            result.setdefault(name, value)
    return result if seen else None


def cutoffs_of(row: ContactRow, started: MappingType[str, int]) -> Cutoffs:
    return Cutoffs(row.cutoffs, started)


# -- a contact's write --------------------------------------------------------------------


class Change(NamedTuple):
    """One value a write changes (a tuple: one is made per contact and property)."""

    before: str | None
    after: str


def changes(
    folder: ContactFolder, before: MappingType[str, str | None], after: MappingType[str, str]
) -> dict[str, Change]:
    """The values that differ from what HubSpot holds ("" clears a value HubSpot has)."""
    return {
        name: Change(before.get(name), value)
        for name, value in after.items()
        if not folder.same(name, before.get(name), value)
    }


def drift(
    folder: ContactFolder, row: ContactRow, now: MappingType[str, str | None], names: Iterable[str]
) -> list[tuple[str, str | None]]:
    """Properties whose HubSpot value is neither what hubmap last wrote (or, before its first
    write, the baseline it read) nor what it was writing when an answer was lost."""
    written = row.written or {}
    writing = row.writing or {}
    baseline = row.baseline or {}
    found = []
    for name in names:
        if name in written:
            expected = written[name]
        elif name in baseline:
            expected = baseline[name]
        else:  # new to the state: no expectation yet
            continue
        value = now.get(name)
        if folder.same(name, value, expected) or (
            name in writing and folder.same(name, value, writing[name])
        ):
            continue
        found.append((name, expected))
    return found


def rebase(
    folder: ContactFolder,
    row: ContactRow,
    drifted: Iterable[tuple[str, str | None]],
    now: MappingType[str, str | None],
) -> bool:
    """Drift policy: HubSpot's edited value is the new starting point.  For a sum the baseline
    moves by the edit (edited - expected), so the orders stay counted and a later refund or
    withdrawal still takes its amount off; for other rules the edited value becomes the
    baseline and the orders HubSpot had confirmed are cut off from the property (orders stored
    since still count).  True when the contact must be folded afresh (a cutoff moved)."""
    baseline = dict(row.baseline or {})
    cutoffs = dict(row.cutoffs)
    refold = False
    for name, expected in drifted:
        found = now.get(name)
        rule = folder.rules.get(name)
        edited = folder.parse_wire(name, found)
        if isinstance(rule, Sum) and edited is not None:
            before = folder.parse_wire(name, expected)
            base = folder.parse_wire(name, baseline.get(name))
            moved = parse_decimal(base or 0) + parse_decimal(edited) - parse_decimal(before or 0)
            baseline[name] = format(moved, "f")
        else:
            baseline[name] = found
            if rule is not None and cutoffs.get(name) != row.written_seq:
                cutoffs[name] = row.written_seq
                refold = True
    row.baseline = baseline
    row.cutoffs = cutoffs
    return refold


def wire_values(
    folder: ContactFolder, accs: Accs, baseline: MappingType[str, str | None]
) -> dict[str, str]:
    return folder.to_wire(folder.final_values(accs, baseline))


# -- the mapping a state was made with ---------------------------------------------------------


def _source(source: Source | None) -> str | None:
    if source is None:
        return None
    return json.dumps([source.kind.value, source.text, source.value], default=str)


def fingerprint(mapping: Mapping) -> dict[str, Any]:
    """What the stored state depends on, as texts to compare: `identity` (which order and which
    contact a record is: ids, times, contact keys, grouping, matching), `filters` (which records
    count, their versions, refunds), and per folded property its `rule` (merge rule and type:
    what the stored accumulators are) and its `definition` (how one order's value is computed).
    Derived properties are recomputed at every write, so they are not in it."""
    records = mapping.records

    def text(data: Any) -> str:
        return json.dumps(data, sort_keys=True, default=str)

    refunds = mapping.refunds
    return {
        "identity": text(
            {
                "id": _source(records.id),
                "time": _source(records.time),
                "contact": _source(records.contact),
                "group_by": _source(records.group_by),
                "timezone": mapping.timezone,
                "match_on": getattr(mapping.target, "match_on", None),
            }
        ),
        "filters": text(
            {
                "path": _source(records.path),
                "when": _source(records.when),
                "require": [_source(r.that) for r in records.require],
                "version": _source(records.version),
                "refunds": None
                if refunds is None
                else {
                    key: _source(getattr(refunds, key))
                    for key in ("id", "match", "path", "in_order", "order")
                }
                | {"values": {name: _source(s) for name, s in refunds.values}},
            }
        ),
        "properties": {
            spec.name: {
                "rule": text(
                    [
                        str(getattr(spec.merge, "value", spec.merge)),
                        str(getattr(spec.type, "value", spec.type)),
                        spec.multiple,
                    ]
                ),
                "definition": text(
                    {
                        "source": _source(spec.source),
                        "when": _source(spec.when),
                        "decimals": spec.decimals,
                        "timezone": spec.timezone,
                        "max_items": spec.max_items,
                    }
                ),
            }
            for spec in mapping.properties
            if spec.source is not None
        },
    }


@dataclass
class Compatibility:
    started: list[str] = field(default_factory=list)  # new to the state: counted from now on
    changed: list[str] = field(default_factory=list)  # definitions that apply from now on


def compatibility(
    mapping: Mapping, stored: MappingType[str, Any] | None, current: MappingType[str, Any]
) -> Compatibility:
    """Whether the stored state can go on with `mapping` (HubmapError when it cannot: a changed
    identity or merge rule needs `--rebuild`), and what starts or changes from now on."""
    result = Compatibility()
    if stored is None:
        return result
    rebuild_hint = "run once with --rebuild and the full order history, or undo the change"
    problems = []
    if stored.get("identity") != current["identity"]:
        problems.append(
            Problem(
                "HM701",
                "how orders and contacts are identified (records: id, time, contact, "
                "group_by; timezone; match_on) changed since orders were counted with this "
                "mapping; the stored orders and totals belong to the old identities",
                mapping.records.id.location,
                hint=rebuild_hint,
            )
        )
    if stored.get("filters") != current["filters"]:
        result.changed.append("records")
    old = stored.get("properties", {})
    for spec in mapping.properties:
        if spec.name not in current["properties"]:
            continue
        if spec.name not in old:
            result.started.append(spec.name)
        elif old[spec.name]["rule"] != current["properties"][spec.name]["rule"]:
            problems.append(
                Problem(
                    "HM702",
                    f"property '{spec.name}' changed its merge rule or type since "
                    "its stored totals were counted; they cannot be read as the new rule",
                    spec.location,
                    hint="run once with --rebuild and the full order history, "
                    "or give the new definition a new property name",
                )
            )
        elif old[spec.name]["definition"] != current["properties"][spec.name]["definition"]:
            result.changed.append(spec.name)
    if problems:
        raise HubmapError(problems)
    return result


def rebuild_needed(mapping: Mapping, reason: str) -> HubmapError:
    return HubmapError(
        Problem(
            "HM703",
            reason,
            Location(mapping.file),
            hint="run once with --rebuild and the full order history",
        )
    )


# -- the state as plain dicts ------------------------------------------------------------------


class MemoryLedger:
    """Orders, refunds and folds held in memory: what `hubmap plan` and `hubmap test` use, with
    the same decisions as a run.  Baselines are given (`current`), never read.

    Each counted order is held with its typed values (`typed`), not their stored form: its
    digest is worked out only when another record of its id comes (`decide(lazy=True)`), and a
    contact folded afresh reads the typed values as they are."""

    def __init__(self, folder: ContactFolder, versioned: bool):
        self.folder = folder
        self.versioned = versioned
        self.orders: dict[str, StoredOrder] = {}  # contributions None: see `typed`
        self.refunds: dict[str, StoredRefund] = {}
        self.by_contact: dict[str, set[str]] = {}  # counted order ids per contact
        self.by_order: dict[str, dict[str, StoredRefund]] = {}  # refunds per order id
        self.typed: dict[str, OrderPart] = {}  # each counted order's time and typed values
        self.accs: dict[str, Accs] = {}
        self.tally = Tally()
        self.first: list[OrderValues] = []  # each order's first counted record (forms submit it)
        self._forms = folder.compiled.mapping.is_forms
        self._seq = 0

    def take(self, items: list[OrderValues | Skipped | RefundValues]) -> None:
        refund_ids = {i.refund_id for i in items if isinstance(i, RefundValues)}
        held = {r: self.refunds[r] for r in refund_ids if r in self.refunds}
        ids = {i.order_id for i in items if i.order_id} | {r.order_id for r in held.values()}
        known = {k: self._with_digest(self.orders[k]) for k in ids if k in self.orders}
        decision = decide(items, known, held, self.versioned, lazy=True)
        self.tally.add(decision.tally)
        if self._forms:
            self.first.extend(decision.new)
        records = decision.records
        for order in decision.orders:
            self._seq += 1
            order.seq = self._seq
            order.first_seq = order.first_seq or order.seq
            order_id = order.order_id
            if order.status == COUNTED:
                record = records[order_id]
                self.typed[order_id] = OrderPart(order_id, record.time, record.values)
            else:
                self.typed.pop(order_id, None)
            old = self.orders.get(order_id)
            if old is not None and old.contact in self.by_contact:
                self.by_contact[old.contact].discard(order_id)
            if order.status == COUNTED and order.contact is not None:
                self.by_contact.setdefault(order.contact, set()).add(order_id)
            self.orders[order_id] = order
        for order_id, version in decision.versions.items():
            self.orders[order_id].version = version
        for refund in decision.refunds:
            self._seq += 1
            refund.seq = self._seq
            old_refund = self.refunds.get(refund.refund_id)
            if old_refund is not None:
                self.by_order.get(old_refund.order_id, {}).pop(refund.refund_id, None)
            self.refunds[refund.refund_id] = refund
            self.by_order.setdefault(refund.order_id, {})[refund.refund_id] = refund
        add = self.folder.add
        for contact, order_ids in decision.fast.items():
            accs = self.accs.get(contact)
            if accs is None:
                accs = self.accs[contact] = {}
            for part in parts_of(
                [self.orders[i] for i in order_ids],
                self._refunds_for(order_ids),
                self.folder,
                records,
            ):
                add(accs, part)
        for contact in decision.refold:
            mine = sorted(
                (self.orders[i] for i in self.by_contact.get(contact, ())), key=lambda o: o.seq
            )
            self.accs[contact] = self.folder.fold(
                parts_of(
                    mine, self._refunds_for([o.order_id for o in mine]), self.folder, self.typed
                )
            )

    def _with_digest(self, order: StoredOrder) -> StoredOrder:
        """`order` with its digest, worked out from its typed values if not yet."""
        if order.status == COUNTED and order.digest is None:
            order.digest = content_digest(
                order.contact, order.order_time, encode_values(self.typed[order.order_id].values)
            )
        return order

    def _with_contribution(self, order: StoredOrder) -> StoredOrder:
        """A copy of `order` as a state stores it: digest and contribution (stored form)."""
        order = self._with_digest(order)
        typed = self.typed.get(order.order_id)
        return replace(order, contribution=None if typed is None else encode_values(typed.values))

    def _refunds_for(self, order_ids: Iterable[str]) -> dict[str, list[StoredRefund]]:
        by_order = self.by_order
        return {
            i: sorted(by_order[i].values(), key=lambda r: r.seq)
            for i in order_ids
            if by_order.get(i)
        }

    def first_versions(self) -> list[OrderValues]:
        return list(self.first)

    def contacts(self) -> list[str]:
        """Contacts with at least one order stored (counted now or before)."""
        return sorted(self.accs)

    def order_count(self, contact: str) -> int:
        return len(self.by_contact.get(contact, ()))

    def refunds_waiting(self) -> int:
        """Refunds whose order has not come (a withdrawn order's refunds wait for nothing)."""
        return sum(1 for r in self.refunds.values() if r.order_id not in self.orders)
