"""A run's contacts part: store each record's effect on its order, then write changed contacts.

Two phases, so that HubSpot sees each contact once per run (one batch read and one batch upsert
per 100 contacts):

1. count: records stream in chunks; in one transaction per chunk, the order and refund versions
   `hubmap.sync.decide` picks are stored, and each touched contact's fold is brought up to date -
   the fast path adds new orders to its stored fold, any other change folds its orders afresh -
   and the contact is marked dirty;
2. write: dirty contacts, 100 at a time, in parallel workers: read HubSpot's current values (the
   baseline of a contact hubmap has not written yet is stored before the first write; drift is
   reported and rebased, `hubmap.sync.rebase`), store the values about to be sent, upsert the
   ones that differ ("" clears a value), and on HubSpot's answer mark the contact confirmed.  A
   crash anywhere leaves contacts dirty; the next run sends the same absolute values again.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from hubmap import fence, sync
from hubmap.evaluate import OrderValues, RefundValues, Rejected, Skipped
from hubmap.fold import ContactFolder
from hubmap.hubspot import HubSpotError, normalize_key
from hubmap.hubspot.client import ADDITIONAL_EMAILS, MERGED_IDS
from hubmap.hubspot.errors import DailyLimitReached, HubSpotAuthError
from hubmap.ledger import ContactRow
from hubmap.problems import HubmapError, Location, Problem
from hubmap.types import CoercionError
from hubmap.uses.job import Job, JobPart

COUNT_CHUNK = 2_000  # records taken in per state transaction
MAX_FENCE_PROBLEMS = 20  # contacts named when fences stop a run
# Passes of the write phase: contact keys found to be one HubSpot record are folded into one in
# a pass, and written in the next (a merge of merges needs another).
MAX_IDENTITY_PASSES = 3
BATCH = 100  # HubSpot's batch limit
DEFAULT_WORKERS = 4


@dataclass(frozen=True)
class Fences:
    """What the fence check of a run needs (see `hubmap.fence`)."""

    ours: str  # this mapping's fence property
    ledger: str  # this state's id
    others: tuple[str, ...] = ()  # fences of other mappings writing some of the same properties
    caps: dict[str, int] = field(default_factory=dict)  # list properties' item caps
    rebuild: bool = False  # a rebuild takes over any fence, starting from its baseline

    @property
    def read(self) -> list[str]:
        return [self.ours, *self.others]


@dataclass
class SyncOptions:
    workers: int = DEFAULT_WORKERS
    count_chunk: int = COUNT_CHUNK
    batch: int = BATCH


class ContactsSync(JobPart):
    def __init__(self, job: Job, options: SyncOptions, fences: Fences):
        super().__init__(job)
        self.folder = ContactFolder(job.compiled)
        self.options = options
        self.fences = fences
        self.aliased = False  # keys were joined into one fold in this pass
        self.properties = [spec.name for spec in self.mapping.properties]
        self.started = job.state.started(job.scope)

    # -- phase 1: count ------------------------------------------------------------------

    def count(self, outcomes: Iterable[Any]) -> None:
        self.progress.phase("counting orders", None)
        chunk: list[OrderValues | Skipped | RefundValues] = []
        rejected: list[Rejected] = []
        for outcome in outcomes:
            self.summary.records += 1
            if isinstance(outcome, Rejected):
                rejected.append(outcome)
            else:
                chunk.append(outcome)
            if len(chunk) + len(rejected) >= self.options.count_chunk:
                self._take(chunk, rejected)
                chunk, rejected = [], []
        self._take(chunk, rejected)
        self.progress.done()

    def _take(self, chunk: list[OrderValues | Skipped | RefundValues],
              rejected: list[Rejected]) -> None:
        self.summary.rejected += len(rejected)
        self.rejects.rejected(rejected)
        if chunk:
            with self.lock:
                self._count_chunk(chunk)
        self.progress.advance(len(chunk) + len(rejected))

    def _count_chunk(self, items: list[OrderValues | Skipped | RefundValues]) -> None:
        state, scope = self.state, self.scope
        with state.transaction():
            refund_ids = {i.refund_id for i in items if isinstance(i, RefundValues)}
            stored_refunds = state.refunds(scope, refund_ids)
            aliases = state.aliases(scope, {i.contact for i in items
                                            if isinstance(i, OrderValues)})
            if aliases:  # keys that are another key's HubSpot record: its fold takes them
                items = [replace(i, contact=aliases[i.contact]) if isinstance(i, OrderValues)
                         and i.contact in aliases else i for i in items]
            order_ids = {i.order_id for i in items if i.order_id is not None}
            order_ids |= {r.order_id for r in stored_refunds.values()}
            stored = state.orders(scope, order_ids)
            decision = sync.decide(items, stored, stored_refunds, self.versioned)
            self.summary.orders.add(decision.tally)
            state.put_orders(scope, self.run_id, decision.orders)
            state.put_versions(scope, decision.versions)
            state.put_refunds(scope, self.run_id, decision.refunds)
            touched = set(decision.fast) | decision.refold
            if not touched:
                return
            rows = state.load_contacts(scope, touched)
            for contact in touched:
                rows.setdefault(contact, ContactRow(contact))
            stored_now = {o.order_id: o for o in decision.orders}
            fast_ids = [i for ids in decision.fast.values() for i in ids]
            refunds = state.refunds_for(scope, fast_ids)
            for contact, ids in decision.fast.items():
                row = rows[contact]
                accs = self.folder.load(row.acc)
                cutoffs = sync.cutoffs_of(row, self.started)
                mine = [stored_now[i] for i in ids]
                for part in sync.parts_of(mine, refunds, self.folder, decision.records):
                    accs = self.folder.add(accs, part, cutoffs)
                    row.folded_seq = max(row.folded_seq, part.seq)
                row.acc = self.folder.dump(accs)
                row.counted = fence.Counted.parse(row.counted).join(
                    sync.counted_of(mine, refunds)).text()
            self._refold([rows[c] for c in decision.refold])
            state.save_folded(scope, [rows[c] for c in touched])

    def _refold(self, rows: list[ContactRow]) -> None:
        """Fold each contact's stored orders afresh (its refunds added, its cutoffs applied)."""
        if not rows:
            return
        orders = self.state.orders_of(self.scope, [r.contact for r in rows])
        refunds = self.state.refunds_for(
            self.scope, [o.order_id for mine in orders.values() for o in mine])
        for row in rows:
            mine = sorted(orders.get(row.contact, []), key=lambda o: o.seq)
            parts = sync.parts_of(mine, refunds, self.folder)
            row.acc = self.folder.dump(self.folder.fold(parts, sync.cutoffs_of(row, self.started)))
            row.folded_seq = max([p.seq for p in parts], default=0)
            row.counted = sync.counted_of(mine, refunds).text()

    # -- phase 2: write ------------------------------------------------------------------

    def write(self) -> None:
        """Read and check every dirty contact first, then write: a fence that is not this
        state's stops the run before anything is written (HM708)."""
        for _ in range(MAX_IDENTITY_PASSES):
            self.aliased = False
            self._write_pass()
            if not self.aliased:
                break

    def _write_pass(self) -> None:
        keys = self.state.dirty_contacts(self.scope)
        self.progress.phase("reading contacts", len(keys))
        problems: list[Problem] = []
        for found in self._in_batches(self._prepare_batch, keys):
            problems.extend(found)
        self.progress.done()
        if problems:
            raise HubmapError(problems[:MAX_FENCE_PROBLEMS] + ([Problem(
                "HM708", f"... and {len(problems) - MAX_FENCE_PROBLEMS} more contact(s) like "
                "these", Location(self.mapping.file), hint=problems[0].hint)]
                if len(problems) > MAX_FENCE_PROBLEMS else []))
        keys = self.state.prepared_contacts(self.scope)
        self.progress.phase("writing contacts", len(keys))
        for _ in self._in_batches(self._send_batch, keys):
            pass
        self.progress.done()

    def _in_batches(self, work: Any, keys: list[str]) -> Iterable[Any]:
        size = self.options.batch
        batches = [keys[i:i + size] for i in range(0, len(keys), size)]
        workers = max(1, min(self.options.workers, len(batches) or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(work, batches)

    def _prepare_batch(self, keys: list[str]) -> list[Problem]:
        """Read a batch of contacts, check their fences, and store what each is to hold."""
        with self.lock:
            rows = self.state.load_contacts(self.scope, keys)
        try:
            current = self.client.batch_read_contacts(
                keys, id_property=self.compiled.match_on,
                properties=self.properties + self.fences.read)
        except (DailyLimitReached, HubSpotAuthError):
            raise
        except HubSpotError as error:
            self._fail(keys, f"reading the contacts failed: {error}")
            return []
        try:
            records = self._records(keys, rows, current)
        except (DailyLimitReached, HubSpotAuthError):
            raise
        except HubSpotError as error:
            self._fail(keys, f"reading the contacts by record id failed: {error}")
            return []
        joined = self._one_record_one_fold(keys, rows, records)
        problems: list[Problem] = []
        checked: list[str] = []
        clear: dict[str, str] = {}  # key -> another mapping's fence (an old name's) to clear
        from_fence: set[str] = set()  # keys whose baseline a rebuild took from their fence
        for key in keys:
            if key in joined:
                continue  # folded into another key: written in the next pass
            row = rows[key]
            record = records.get(key)
            row.hubspot_id = str(record["id"]) if record and record.get("id") else None
            found = (record or {}).get("properties", {})
            seen = fence.verdict(self.fences.ours, found, row.fence_written, row.fence_writing,
                                 self.fences.others)
            if seen.kind == fence.FOREIGN and not self.fences.rebuild:
                problems.append(Problem(
                    "HM708", f"contact {key}: {seen.reason}", Location(self.mapping.file),
                    hint="run with the state file that wrote these contacts, or run once with "
                    "--rebuild and the full order history (it starts from the baseline the "
                    "fence keeps, never from HubSpot's totals)"))
                continue
            if self.fences.rebuild and seen.fence is not None:
                # the baseline the fence kept, not HubSpot's totals (which hold counted orders)
                row.baseline = {name: seen.fence.baseline.get(name) for name in self.properties}
                from_fence.add(key)
                counted = fence.Counted.parse(row.counted).orders
                if counted < seen.fence.orders:
                    with self.lock:
                        self.summary.warnings.append(
                            f"contact {key}: its fence says {seen.fence.orders} orders and "
                            f"refunds were counted, this rebuild has {counted}: was the order "
                            "history complete?")
            if seen.property not in (None, self.fences.ours) and seen.fence is not None:
                clear[key] = seen.property
            landed = found.get(self.fences.ours) or None
            if landed is not None and landed == row.fence_writing != row.fence_written:
                # The write staged by an earlier run reached HubSpot (its answer was lost): it is
                # what this state wrote last, before a new write is staged over it.
                row.written, row.fence_written = row.writing, row.fence_writing
            checked.append(key)
        rebased, drifted, refold = self._rebase(checked, rows, records, from_fence)
        if refold:
            with self.lock:
                self._refold(refold)
        prepared: list[ContactRow] = []
        unchanged: list[ContactRow] = []
        for key in checked:
            row = rows[key]
            found = records.get(key)
            now = self._now(found)
            try:
                values = sync.wire_values(self.folder, self.folder.load(row.acc),
                                          row.baseline or {})
            except CoercionError as unwritable:
                self._fail([key], f"its values cannot be written: {unwritable} (the orders stay "
                                  "counted; correct the orders that make it so large)")
                continue
            try:
                text = fence.fence_of(self.fences.ledger, fence.Counted.parse(row.counted),
                                      row.baseline or {}, self.fences.caps).text()
            except ValueError as too_long:  # a baseline beyond one HubSpot value
                self._fail([key], f"its fence cannot be written: {too_long}")
                continue
            sending = {clear[key]: ""} if key in clear else {}
            sending.update({n: c.after for n, c in sync.changes(self.folder, now, values).items()})
            if ((found or {}).get("properties", {}).get(self.fences.ours) or None) != text:
                sending[self.fences.ours] = text
            row.writing, row.fence_writing, row.sending = values, text, sending
            (prepared if sending else unchanged).append(row)
            if not sending:
                row.written, row.fence_written = values, text
        with self.lock:
            self.state.save_prepared(self.scope, self.run_id, rebased, drifted, prepared)
            self.state.save_written(self.scope, unchanged)
            self.summary.drift += len(drifted)
            self.summary.contacts_unchanged += len(unchanged)
        self.progress.advance(len(keys))
        return problems

    def _records(self, keys: list[str], rows: dict[str, ContactRow],
                 current: Any) -> dict[str, dict[str, Any]]:
        """Each key's HubSpot record: found by its key, or - when the key is no longer on it (an
        email changed in HubSpot) - by the record id the state learnt at the last write."""
        records = {k: current.get(k) for k in keys if current.get(k) is not None}
        lost = {rows[k].hubspot_id: k for k in keys if k not in records and rows[k].hubspot_id}
        if lost:
            by_id = self.client.batch_read_contacts(
                list(lost), id_property=None,
                properties=[*self.properties, *self.fences.read, self.compiled.match_on,
                            ADDITIONAL_EMAILS, MERGED_IDS])
            for record_id, key in lost.items():
                record = by_id.get(str(record_id))
                if record is not None:
                    records[key] = record
        return records

    def _one_record_one_fold(self, keys: list[str], rows: dict[str, ContactRow],
                             records: dict[str, dict[str, Any]]) -> set[str]:
        """Keys that turn out to be one HubSpot record (a merge, a secondary address, an email
        changed in HubSpot) become one fold: the orders of all go to one key (the record's
        primary email, else the smallest key), written in the next pass.  The keys joined."""
        groups: dict[str, set[str]] = {}
        ids_of: dict[str, set[str]] = {}
        for key, record in records.items():
            merged = str((record.get("properties") or {}).get(MERGED_IDS) or "")
            ids = {str(record["id"])} | {i for i in merged.split(";") if i}
            ids_of[str(record["id"])] = ids
            groups.setdefault(str(record["id"]), set()).add(key)
        with self.lock:
            known = self.state.keys_of_records(self.scope, {i for ids in ids_of.values()
                                                            for i in ids})
        joined: set[str] = set()
        for record_id, group in groups.items():
            members = set(group) | {k for i in ids_of[record_id] for k in known.get(i, ())}
            if len(members) < 2:
                continue
            record = records[min(group)]
            primary = normalize_key(str((record.get("properties") or {})
                                        .get(self.compiled.match_on) or ""),
                                    self.compiled.match_on)
            canonical = primary if primary in members else min(members)
            self._join(canonical, members, record)
            joined |= members & set(keys)
        return joined

    def _join(self, canonical: str, members: set[str], record: dict[str, Any]) -> None:
        """Fold `members` into `canonical`.  The joined contact is known to HubSpot as the key
        whose fence the record carries: it takes over what that key wrote, so the values
        HubSpot holds are not taken for drift (nor counted again)."""
        with self.lock:
            held = self.state.load_contacts(self.scope, members)
            self.state.alias(self.scope, canonical, members - {canonical}, sync.stored_digest)
            row = self.state.load_contacts(self.scope, [canonical]).get(canonical) or \
                ContactRow(canonical)
            row.baseline = sync.joined_baseline(
                [held[k].baseline for k in [canonical, *sorted(members - {canonical})]
                 if k in held])
            fence_now = (record.get("properties") or {}).get(self.fences.ours)
            writer = next((held[k] for k in sorted(held) if fence_now
                           and fence_now in (held[k].fence_written, held[k].fence_writing)), None)
            if writer is not None:
                row.written, row.writing = writer.written, writer.writing
                row.fence_written, row.fence_writing = writer.fence_written, writer.fence_writing
                row.written_seq = writer.written_seq
            row.hubspot_id = str(record["id"])
            self._refold([row])
            self.state.save_identity(self.scope, row)
            self.state.save_folded(self.scope, [row])
            self.aliased = True

    def _send_batch(self, keys: list[str]) -> None:
        with self.lock:
            rows = self.state.load_contacts(self.scope, keys)
        to_send = {key: row.sending for key, row in rows.items() if row.sending}
        confirmed = self._send(to_send, rows) if to_send else []
        for row in confirmed:
            row.written, row.fence_written = row.writing, row.fence_writing
        with self.lock:
            self.state.save_written(self.scope, confirmed)
        self.progress.advance(len(keys))

    def _now(self, found: dict[str, Any] | None) -> dict[str, str | None]:
        return {name: (found or {}).get("properties", {}).get(name) for name in self.properties}

    def _rebase(self, keys: list[str], rows: dict[str, ContactRow], current: Any,
                from_fence: set[str]) -> tuple[list[ContactRow],
                                               list[tuple[str, str, str | None, str | None]],
                                               list[ContactRow]]:
        """Baselines read (or taken from a fence: `from_fence`), drift found and rebased: the
        contacts whose baseline changed, the drift, and the contacts to fold afresh."""
        rebased: list[ContactRow] = []
        drifted: list[tuple[str, str, str | None, str | None]] = []
        refold: list[ContactRow] = []
        for key in keys:
            row = rows[key]
            found = current.get(key)
            now = self._now(found)
            if row.baseline is None:
                row.baseline = now
                rebased.append(row)
                continue
            drift = sync.drift(self.folder, row, now, self.properties)
            if drift and not self.fences.rebuild:
                drifted.extend((key, name, expected, now.get(name)) for name, expected in drift)
                if sync.rebase(self.folder, row, drift, now):
                    refold.append(row)
            missing = [name for name in self.properties if name not in row.baseline]
            if missing:  # properties new to the state: HubSpot's value is their baseline
                row.baseline = {**row.baseline, **{name: now.get(name) for name in missing}}
            if drift or missing or key in from_fence:
                rebased.append(row)
        return rebased, drifted, refold

    def _send(self, to_send: dict[str, dict[str, str]],
              rows: dict[str, ContactRow]) -> list[ContactRow]:
        """Write: a contact whose HubSpot record is known by its id, and new ones by their key."""
        by_id = {key: rows[key].hubspot_id for key in to_send if rows[key].hubspot_id}
        confirmed = self._sent(
            {k: v for k, v in to_send.items() if k not in by_id}, rows,
            lambda inputs: self.client.batch_upsert_contacts(
                inputs, id_property=self.compiled.match_on), {})
        if by_id:
            confirmed += self._sent(
                {by_id[k]: v for k, v in to_send.items() if k in by_id}, rows,
                self.client.batch_update_contacts, {v: k for k, v in by_id.items()})
        return confirmed

    def _sent(self, inputs: dict[str, dict[str, str]], rows: dict[str, ContactRow],
              call: Any, keys_of: dict[str, str]) -> list[ContactRow]:
        """One kind of write; `keys_of`: the contact key of each input key (record ids)."""
        if not inputs:
            return []
        try:
            result = call(inputs)
        except (DailyLimitReached, HubSpotAuthError):
            raise
        except HubSpotError as error:
            self._fail([keys_of.get(k, k) for k in inputs], f"HubSpot refused the batch: {error}")
            return []
        confirmed = []
        failures: dict[str, str] = {}
        created = updated = 0
        for sent in inputs:
            key = keys_of.get(sent, sent)
            error = result.error_for(sent)
            if error is not None:
                failures[key] = explain(self.mapping, error)
                continue
            done = result.result_for(sent)
            row = rows[key]
            if done is not None:
                row.hubspot_id = done.id or row.hubspot_id
                created += bool(done.new)
                updated += not done.new
            confirmed.append(row)
        with self.lock:
            self.summary.contacts_created += created
            self.summary.contacts_updated += updated
        if failures:
            self._fail(list(failures), None, failures)
        return confirmed

    def _fail(self, keys: list[str], reason: str | None,
              reasons: dict[str, str] | None = None) -> None:
        reasons = reasons or {key: reason or "failed" for key in keys}
        with self.lock:
            self.summary.contacts_failed += len(reasons)
            self.summary.failures.extend(reasons.items())
            self.state.save_failed(self.scope, reasons)


def explain(mapping: Any, error: Any) -> str:
    """HubSpot's reasons for refusing an item, with the mapping line of the property named."""
    names = list(getattr(error, "property_names", []) or [])
    where = ""
    for name in names:
        try:
            where = f" (property '{name}', {mapping.property(name).location})"
            break
        except KeyError:
            continue
    details = [d.message for d in getattr(error, "errors", None) or []
               if getattr(d, "message", None) and d.message != error.message]
    detail = f": {'; '.join(details[:3])}" if details else ""
    return f"{error.message}{detail}{where}"

