"""A run's contacts part: store each record's effect on its order, then write changed contacts.

Two phases, so that HubSpot sees each contact once per run (one batch read and one batch upsert
per 100 contacts):

1. count: records stream in chunks; in one transaction per chunk, the order and refund versions
   `hubmap.sync.decide` picks are stored, and each touched contact's fold is brought up to date -
   the fast path adds new orders to its stored fold, any other change folds its orders afresh -
   and the contact is marked dirty.  Meanwhile worker threads read the touched contacts from
   HubSpot, 100 at a time (`EarlyReads`): a contact is written only once its whole input is
   counted, but what its write is checked against - HubSpot's values and fence - needs only its
   key;
2. write: dirty contacts, 100 at a time, in parallel workers: take HubSpot's current values (read
   during counting, else now; the baseline of a contact hubmap has not written yet is stored
   before the first write; drift is reported and rebased, `hubmap.sync.rebase`), store the values
   about to be sent, and once every contact is checked, upsert the ones that differ ("" clears a
   value), several batches in flight, and on HubSpot's answer mark the contact confirmed.  A crash
   anywhere leaves contacts dirty; the next run sends the same absolute values again.

A value read during counting is checked as one read at the start of the write phase would be:
HubSpot has no conditional write, so an edit made between a contact's read and its write is
never seen by the run that overwrites it, whenever the read was; reading early only widens that
window by the counting time.  Nothing changes in HubSpot through this run before its first write
(every contact is read and checked before any is written), so the fence and drift verdicts of an
early read are those a later read would give; the answers serve the first write pass only (a
later pass, after writes and identity merges, reads again).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
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
from hubmap.uses.compact import Compact, Held
from hubmap.uses.job import Job, JobPart

COUNT_CHUNK = 2_000  # records taken in per state transaction
MAX_FENCE_PROBLEMS = 20  # contacts named when fences stop a run
# Passes of the write phase: contact keys found to be one HubSpot record are folded into one in
# a pass, and written in the next (a merge of merges needs another).
MAX_IDENTITY_PASSES = 3
BATCH = 100  # HubSpot's batch limit
DEFAULT_WORKERS = 4
# Contacts read from HubSpot while counting, at most (their answers wait in memory until the
# write phase; further contacts are read then).
EARLY_READS = 50_000
# Memory for values held packed (`hubmap.uses.compact`), at most, by the early answers and by
# the prepared writes held for sending, each: a contact past it is read, or loaded from the
# state, when it is written.  Tens of thousands of contacts' worth, whatever the shop's size.
HELD_BYTES = 24 * 1024 * 1024


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
    early_reads: int = EARLY_READS  # 0: read every contact in the write phase
    held_bytes: int = HELD_BYTES  # of early answers and of prepared writes, each (0: none held)
    expected_records: int | None = None  # about how many the input holds (the progress's ETA)


FATAL_READ_ERRORS = (DailyLimitReached, HubSpotAuthError)  # stop the run, not one batch


class EarlyReads:
    """Batch reads of contacts as counting first touches them, in worker threads.

    `add` queues keys (each once) and sends every full batch; `answers` sends the rest, waits,
    and gives per key the HubSpot record found (None: not found) or the `HubSpotError` its batch
    failed with.  A daily limit or refused token stops further reads and is raised by `answers`
    (so counting completes, and the run stops before writing, as a read in the write phase
    would); anything else a reader raised (a crash) is raised by the next `check` at once.
    """

    def __init__(
        self,
        read: Callable[[list[str]], Any],
        batch: int,
        workers: int,
        limit: int,
        compact: Compact,
        max_bytes: int,
    ):
        self._read = read
        self._batch = batch
        self._limit = limit
        # the records found are held packed (`compact`); once `max_bytes` of them are, no
        # further batch is read
        self._compact = compact
        self._max_bytes = max_bytes
        self._bytes = 0
        self._bytes_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="hubmap-read"
        )
        self._queued: set[str] = set()
        self._pending: list[str] = []
        self._running: list[tuple[list[str], Future[Any]]] = []
        self._stopped: BaseException | None = None  # a fatal error: no further reads

    def add(self, keys: Iterable[str]) -> list[str]:
        """Queue the keys not queued yet (as many as the limits leave); those queued now."""
        added = []
        for key in keys:
            if self._stopped is not None or len(self._queued) >= self._limit:
                break
            if not self._pending and self._bytes >= self._max_bytes:
                break  # only between batches: each read is a full one
            if key in self._queued:
                continue
            self._queued.add(key)
            self._pending.append(key)
            added.append(key)
            if len(self._pending) >= self._batch:
                self._submit()
        return added

    def check(self) -> None:
        """Raise what a reader died of (not a HubSpot error: a crash), as soon as it is seen."""
        for _, future in self._running:
            if future.done() and not future.cancelled():
                error = future.exception()
                if error is not None and not isinstance(error, HubSpotError):
                    raise error
                if isinstance(error, FATAL_READ_ERRORS):
                    self._stopped = error

    def answers(self) -> dict[str, bytes | HubSpotError | None]:
        """Per key: its record packed (`Compact.unpack` gives it back), None, or the error."""
        if self._pending and self._stopped is None:
            self._submit()
        result: dict[str, bytes | HubSpotError | None] = {}
        fatal: BaseException | None = None
        for keys, future in self._running:
            try:
                found = future.result()
            except HubSpotError as error:
                if isinstance(error, FATAL_READ_ERRORS):
                    fatal = fatal or error
                result.update((key, error) for key in keys)
                continue
            result.update((key, found.get(key)) for key in keys)
        self._running = []
        if fatal is not None:
            raise fatal
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self) -> None:
        keys, self._pending = self._pending, []
        self._running.append((keys, self._pool.submit(self._read_packed, keys)))

    def _read_packed(self, keys: list[str]) -> dict[str, bytes]:
        found = self._read(keys)
        packed = {
            key: self._compact.pack(record)
            for key in keys
            if (record := found.get(key)) is not None
        }
        with self._bytes_lock:
            self._bytes += sum(len(blob) for blob in packed.values())
        return packed


class ContactsSync(JobPart):
    def __init__(self, job: Job, options: SyncOptions, fences: Fences):
        super().__init__(job)
        self.folder = ContactFolder(job.compiled)
        self.options = options
        self.fences = fences
        self.aliased = False  # keys were joined into one fold in this pass
        self.properties = [spec.name for spec in self.mapping.properties]
        self.started = job.state.started(job.scope)
        self.early: EarlyReads | None = None  # reads sent while counting
        self.records = Compact()  # HubSpot records held between the check and the write
        # prepared writes of this pass, held for sending: key -> what `_send_batch` needs
        # (`_held_form`), packed
        self.held = Held(Compact(), options.held_bytes)
        # what counting saw of the contacts it read early that their fence check needs (record
        # id, fences written and being written), when not all empty - a tuple, not a row: tens
        # of thousands wait
        self.fenced: dict[str, tuple[str | None, str | None, str | None]] = {}
        self.rejoined: set[str] = set()  # contacts that took in other keys in this pass

    # -- phase 1: count ------------------------------------------------------------------

    def count(self, outcomes: Iterable[Any]) -> None:
        self.progress.phase("counting orders", self.options.expected_records)
        if self.options.early_reads > 0:
            self.early = EarlyReads(
                self._read,
                self.options.batch,
                self.options.workers,
                self.options.early_reads,
                self.records,
                self.options.held_bytes,
            )
        try:
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
        except BaseException:
            self._stop_early_reads()
            raise
        self.progress.done()

    def _read(self, keys: list[str]) -> Any:
        return self.client.batch_read_contacts(
            keys, id_property=self.compiled.match_on, properties=self.properties + self.fences.read
        )

    def _stop_early_reads(self) -> None:
        if self.early is not None:
            self.early.close()
            self.early = None

    def _take(
        self, chunk: list[OrderValues | Skipped | RefundValues], rejected: list[Rejected]
    ) -> None:
        self.summary.rejected += len(rejected)
        self.rejects.rejected(rejected)
        if chunk:
            with self.lock:
                touched = self._count_chunk(chunk)
            if self.early is not None:
                for key in self.early.add(sorted(touched)):
                    row = touched[key]
                    if row.hubspot_id or row.fence_written or row.fence_writing:
                        self.fenced[key] = (row.hubspot_id, row.fence_written, row.fence_writing)
        if self.early is not None:
            self.early.check()
        self.progress.advance(len(chunk) + len(rejected))

    def _count_chunk(
        self, items: list[OrderValues | Skipped | RefundValues]
    ) -> dict[str, ContactRow]:
        """Store a chunk; the contacts it touched."""
        state, scope = self.state, self.scope
        with state.transaction():
            refund_ids = {i.refund_id for i in items if isinstance(i, RefundValues)}
            stored_refunds = state.refunds(scope, refund_ids)
            aliases = state.aliases(scope, {i.contact for i in items if isinstance(i, OrderValues)})
            if aliases:  # keys that are another key's HubSpot record: its fold takes them
                items = [
                    replace(i, contact=aliases[i.contact])
                    if isinstance(i, OrderValues) and i.contact in aliases
                    else i
                    for i in items
                ]
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
                return {}
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
                row.counted = (
                    fence.Counted.parse(row.counted).join(sync.counted_of(mine, refunds)).text()
                )
            self._refold([rows[c] for c in decision.refold])
            state.save_folded(scope, [rows[c] for c in touched])
        return {c: rows[c] for c in touched}

    def _refold(self, rows: list[ContactRow]) -> None:
        """Fold each contact's stored orders afresh (its refunds added, its cutoffs applied)."""
        if not rows:
            return
        orders = self.state.orders_of(self.scope, [r.contact for r in rows])
        refunds = self.state.refunds_for(
            self.scope, [o.order_id for mine in orders.values() for o in mine]
        )
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
        try:
            early = self.early.answers() if self.early is not None else {}
        finally:
            self._stop_early_reads()
        for _ in range(MAX_IDENTITY_PASSES):
            self.aliased = False
            self._write_pass(early)
            early = {}  # answers from before this run's writes serve its first pass only
            self.fenced.clear()
            if not self.aliased:
                break

    def _write_pass(self, early: dict[str, Any]) -> None:
        """Contacts read while counting are checked first (their fences, and which keys are one
        HubSpot record), then each batch of them is prepared and sent in one go, the next
        batches prepared while earlier ones are in flight; the others are read, checked and
        prepared before anything is sent, and sent after."""
        keys = self.state.dirty_contacts(self.scope)
        self.progress.phase("reading contacts", len(keys))
        size = self.options.batch
        read = [k for k in keys if k in early]
        unread = [k for k in keys if k not in early]
        checks = [(read[i : i + size], early) for i in range(0, len(read), size)]
        checks += [(unread[i : i + size], None) for i in range(0, len(unread), size)]
        problems: list[Problem] = []
        ready: list[tuple[list[str], dict[str, bytes]]] = []  # keys checked, records packed
        self.rejoined = set()
        for found, batch in self._in_batches(lambda batch: self._check_batch(*batch), checks):
            problems.extend(found)
            if batch is not None:
                ready.append(batch)
        self.progress.done()
        if problems:
            raise HubmapError(
                problems[:MAX_FENCE_PROBLEMS]
                + (
                    [
                        Problem(
                            "HM708",
                            f"... and {len(problems) - MAX_FENCE_PROBLEMS} more contact(s) like "
                            "these",
                            Location(self.mapping.file),
                            hint=problems[0].hint,
                        )
                    ]
                    if len(problems) > MAX_FENCE_PROBLEMS
                    else []
                )
            )
        self.progress.phase("writing contacts", None)
        for _ in self._in_batches(self._stage_and_send, ready):
            pass
        attempted = {key for batch, _ in ready for key in batch}
        keys = [k for k in self.state.prepared_contacts(self.scope) if k not in attempted]
        for _ in self._in_batches(
            self._send_batch, [keys[i : i + size] for i in range(0, len(keys), size)]
        ):
            pass
        self.held.clear()
        self.progress.done()

    def _in_batches(self, work: Any, batches: list[Any]) -> list[Any]:
        """`work` on each batch in parallel workers; once one fails, no further batch starts,
        and the failure is raised when the batches running have ended (none uses the state
        after the run closed it)."""
        workers = max(1, min(self.options.workers, len(batches) or 1))
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            return list(pool.map(work, batches))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _check_batch(
        self, keys: list[str], early: dict[str, Any] | None
    ) -> tuple[list[Problem], tuple[list[str], dict[str, bytes]] | None]:
        """Contacts read while counting (`early`: the answers): their fences checked against
        what counting saw of them - the problems, and the keys to prepare and send with their
        records.  Others: read, checked and prepared now (`_prepare_batch`)."""
        if early is None:
            return self._prepare_batch(keys), None
        current: dict[str, Any] = {}
        failed: dict[str, list[str]] = {}
        for key in keys:
            answer = early[key]
            if isinstance(answer, HubSpotError):
                failed.setdefault(str(answer), []).append(key)
            elif answer is not None:
                current[key] = self.records.unpack(answer)
        for error, failing in failed.items():
            self._fail(failing, f"reading the contacts failed: {error}")
        keys = [k for k in keys if not isinstance(early[k], HubSpotError)]
        rows = {key: _fenced_row(key, self.fenced.get(key)) for key in keys}
        records = self._read_records(keys, rows, current)
        if records is None:
            return [], None
        joined = self._one_record_one_fold(keys, rows, records)
        problems: list[Problem] = []
        ready: list[str] = []
        for key in keys:
            if key in joined:
                continue  # folded into another key: written in the next pass
            _, problem = self._verdict(key, rows[key], records.get(key))
            if problem is not None:
                problems.append(problem)
            else:
                ready.append(key)
        self.progress.advance(len(keys))
        # held packed until the batch is written (a record found by its id is packed now)
        packed = {
            key: early[key] if records[key] is current.get(key) else self.records.pack(records[key])
            for key in ready
            if key in records
        }
        return problems, (ready, packed)

    def _stage_and_send(self, batch: tuple[list[str], dict[str, bytes]]) -> None:
        """Prepare a batch checked by `_check_batch`, and send it."""
        keys, packed = batch
        records = {key: self.records.unpack(blob) for key, blob in packed.items()}
        with self.lock:
            keys = [k for k in keys if k not in self.rejoined]  # to be written in the next pass
            rows = self.state.load_contacts(self.scope, keys)
        checked: list[tuple[str, fence.Verdict]] = []
        for key in keys:
            seen, problem = self._verdict(key, rows[key], records.get(key))
            if problem is not None:  # its stored fence changed since the check: not written
                self._fail([key], problem.message)
            else:
                checked.append((key, seen))
        prepared = self._stage(checked, rows, records)
        self._send_rows({row.contact: row for row in prepared})
        self.progress.advance(len(keys))

    def _prepare_batch(self, keys: list[str]) -> list[Problem]:
        """Read a batch of contacts, check their fences, and store what each is to hold."""
        with self.lock:
            rows = self.state.load_contacts(self.scope, keys)
        try:
            current = self._read(keys)
        except FATAL_READ_ERRORS:
            raise
        except HubSpotError as error:
            self._fail(keys, f"reading the contacts failed: {error}")
            return []
        records = self._read_records(keys, rows, current)
        if records is None:
            return []
        joined = self._one_record_one_fold(keys, rows, records)
        problems: list[Problem] = []
        checked: list[tuple[str, fence.Verdict]] = []
        for key in keys:
            if key in joined:
                continue  # folded into another key: written in the next pass
            seen, problem = self._verdict(key, rows[key], records.get(key))
            if problem is not None:
                problems.append(problem)
            else:
                checked.append((key, seen))
        prepared = self._stage(checked, rows, records)
        if not self.held.full():  # what sending needs, so that it does not load them again
            packed = [(row.contact, self.held.compact.pack(_held_form(row))) for row in prepared]
            with self.lock:
                for key, blob in packed:
                    if not self.held.put(key, blob):
                        break
        self.progress.advance(len(keys))
        return problems

    def _read_records(
        self, keys: list[str], rows: dict[str, ContactRow], current: Any
    ) -> dict[str, dict[str, Any]] | None:
        try:
            return self._records(keys, rows, current)
        except FATAL_READ_ERRORS:
            raise
        except HubSpotError as error:
            self._fail(keys, f"reading the contacts by record id failed: {error}")
            return None

    def _verdict(
        self, key: str, row: ContactRow, record: dict[str, Any] | None
    ) -> tuple[fence.Verdict, Problem | None]:
        """Whether this state may write the contact (its fence in HubSpot against the row's)."""
        found = (record or {}).get("properties", {})
        seen = fence.verdict(
            self.fences.ours, found, row.fence_written, row.fence_writing, self.fences.others
        )
        if seen.kind == fence.FOREIGN and not self.fences.rebuild:
            return seen, Problem(
                "HM708",
                f"contact {key}: {seen.reason}",
                Location(self.mapping.file),
                hint="run with the state file that wrote these contacts, or run once with "
                "--rebuild and the full order history (it starts from the baseline the "
                "fence keeps, never from HubSpot's totals)",
            )
        return seen, None

    def _stage(
        self,
        checked: list[tuple[str, fence.Verdict]],
        rows: dict[str, ContactRow],
        records: dict[str, dict[str, Any]],
    ) -> list[ContactRow]:
        """Store what each checked contact is to hold (baselines read, drift rebased, the values
        and fence to send); the contacts prepared to be sent."""
        clear: dict[str, str] = {}  # key -> another mapping's fence (an old name's) to clear
        from_fence: set[str] = set()  # keys whose baseline a rebuild took from their fence
        for key, seen in checked:
            row = rows[key]
            record = records.get(key)
            row.hubspot_id = str(record["id"]) if record and record.get("id") else None
            found = (record or {}).get("properties", {})
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
                            "history complete?"
                        )
            if seen.property not in (None, self.fences.ours) and seen.fence is not None:
                clear[key] = seen.property
            landed = found.get(self.fences.ours) or None
            if landed is not None and landed == row.fence_writing != row.fence_written:
                # The write staged by an earlier run reached HubSpot (its answer was lost): it is
                # what this state wrote last, before a new write is staged over it.
                row.written, row.fence_written = row.writing, row.fence_writing
        keys = [key for key, _ in checked]
        rebased, drifted, refold = self._rebase(keys, rows, records, from_fence)
        if refold:
            with self.lock:
                self._refold(refold)
        prepared: list[ContactRow] = []
        unchanged: list[ContactRow] = []
        for key in keys:
            row = rows[key]
            found = records.get(key)
            now = self._now(found)
            try:
                values = sync.wire_values(
                    self.folder, self.folder.load(row.acc), row.baseline or {}
                )
            except CoercionError as unwritable:
                self._fail(
                    [key],
                    f"its values cannot be written: {unwritable} (the orders stay "
                    "counted; correct the orders that make it so large)",
                )
                continue
            try:
                text = fence.fence_of(
                    self.fences.ledger,
                    fence.Counted.parse(row.counted),
                    row.baseline or {},
                    self.fences.caps,
                ).text()
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
            self.state.save_prepared(self.scope, self.run_id, rebased, drifted, prepared, refold)
            self.state.save_written(self.scope, unchanged)
            self.summary.drift += len(drifted)
            self.summary.contacts_unchanged += len(unchanged)
        return prepared

    def _records(
        self, keys: list[str], rows: dict[str, ContactRow], current: Any
    ) -> dict[str, dict[str, Any]]:
        """Each key's HubSpot record: found by its key, or - when the key is no longer on it (an
        email changed in HubSpot) - by the record id the state learnt at the last write."""
        records = {k: current.get(k) for k in keys if current.get(k) is not None}
        lost = {rows[k].hubspot_id: k for k in keys if k not in records and rows[k].hubspot_id}
        if lost:
            by_id = self.client.batch_read_contacts(
                list(lost),
                id_property=None,
                properties=[
                    *self.properties,
                    *self.fences.read,
                    self.compiled.match_on,
                    ADDITIONAL_EMAILS,
                    MERGED_IDS,
                ],
            )
            for record_id, key in lost.items():
                record = by_id.get(str(record_id))
                if record is not None:
                    records[key] = record
        return records

    def _one_record_one_fold(
        self, keys: list[str], rows: dict[str, ContactRow], records: dict[str, dict[str, Any]]
    ) -> set[str]:
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
            known = self.state.keys_of_records(
                self.scope, {i for ids in ids_of.values() for i in ids}
            )
        joined: set[str] = set()
        for record_id, group in groups.items():
            members = set(group) | {k for i in ids_of[record_id] for k in known.get(i, ())}
            if len(members) < 2:
                continue
            record = records[min(group)]
            primary = normalize_key(
                str((record.get("properties") or {}).get(self.compiled.match_on) or ""),
                self.compiled.match_on,
            )
            canonical = primary if primary in members else min(members)
            self._join(canonical, members, record)
            joined |= members & set(keys)
        return joined

    def _join(self, canonical: str, members: set[str], record: dict[str, Any]) -> None:
        """Fold `members` into `canonical`.  The joined contact is known to HubSpot as the key
        whose fence the record carries: it takes over what that key wrote, so the values
        HubSpot holds are not taken for drift (nor counted again)."""
        with self.lock:
            for member in members:  # their prepared writes are not what they will send
                self.held.discard(member)
            self.rejoined.add(canonical)
            held = self.state.load_contacts(self.scope, members)
            self.state.alias(self.scope, canonical, members - {canonical}, sync.stored_digest)
            row = self.state.load_contacts(self.scope, [canonical]).get(canonical) or ContactRow(
                canonical
            )
            row.baseline = sync.joined_baseline(
                [held[k].baseline for k in [canonical, *sorted(members - {canonical})] if k in held]
            )
            fence_now = (record.get("properties") or {}).get(self.fences.ours)
            writer = next(
                (
                    held[k]
                    for k in sorted(held)
                    if fence_now and fence_now in (held[k].fence_written, held[k].fence_writing)
                ),
                None,
            )
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
            rows = {k: _from_held_form(k, self.held.pop(k)) for k in keys if k in self.held}
            if len(rows) < len(keys):
                rows.update(
                    self.state.load_contacts(self.scope, [k for k in keys if k not in rows])
                )
        self._send_rows(rows)
        self.progress.advance(len(keys))

    def _send_rows(self, rows: dict[str, ContactRow]) -> None:
        """Send the prepared writes of `rows`; on HubSpot's answer they are confirmed."""
        to_send = {key: row.sending for key, row in rows.items() if row.sending}
        confirmed = self._send(to_send, rows) if to_send else []
        for row in confirmed:
            row.written, row.fence_written = row.writing, row.fence_writing
        with self.lock:
            self.state.save_written(self.scope, confirmed)

    def _now(self, found: dict[str, Any] | None) -> dict[str, str | None]:
        return {name: (found or {}).get("properties", {}).get(name) for name in self.properties}

    def _rebase(
        self, keys: list[str], rows: dict[str, ContactRow], current: Any, from_fence: set[str]
    ) -> tuple[list[ContactRow], list[tuple[str, str, str | None, str | None]], list[ContactRow]]:
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

    def _send(
        self, to_send: dict[str, dict[str, str]], rows: dict[str, ContactRow]
    ) -> list[ContactRow]:
        """Write: a contact whose HubSpot record is known by its id, and new ones by their key."""
        by_id = {key: rows[key].hubspot_id for key in to_send if rows[key].hubspot_id}
        confirmed = self._sent(
            {k: v for k, v in to_send.items() if k not in by_id},
            rows,
            lambda inputs: self.client.batch_upsert_contacts(
                inputs, id_property=self.compiled.match_on
            ),
            {},
        )
        if by_id:
            confirmed += self._sent(
                {by_id[k]: v for k, v in to_send.items() if k in by_id},
                rows,
                self.client.batch_update_contacts,
                {v: k for k, v in by_id.items()},
            )
        return confirmed

    def _sent(
        self,
        inputs: dict[str, dict[str, str]],
        rows: dict[str, ContactRow],
        call: Any,
        keys_of: dict[str, str],
    ) -> list[ContactRow]:
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

    def _fail(
        self, keys: list[str], reason: str | None, reasons: dict[str, str] | None = None
    ) -> None:
        reasons = reasons or {key: reason or "failed" for key in keys}
        with self.lock:
            self.summary.contacts_failed += len(reasons)
            self.summary.failures.extend(reasons.items())
            self.state.save_failed(self.scope, reasons)


def _fenced_row(key: str, fenced: tuple[str | None, str | None, str | None] | None) -> ContactRow:
    if fenced is None:
        return ContactRow(key)
    hubspot_id, fence_written, fence_writing = fenced
    return ContactRow(
        key, hubspot_id=hubspot_id, fence_written=fence_written, fence_writing=fence_writing
    )


def _held_form(row: ContactRow) -> list[Any]:
    """What sending a prepared write needs of its contact (`_send_rows`), as JSON values."""
    return [row.hubspot_id, row.writing, row.fence_writing, row.sending]


def _from_held_form(key: str, held: list[Any]) -> ContactRow:
    hubspot_id, writing, fence_writing, sending = held
    return ContactRow(
        key, hubspot_id=hubspot_id, writing=writing, fence_writing=fence_writing, sending=sending
    )


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
    details = [
        d.message
        for d in getattr(error, "errors", None) or []
        if getattr(d, "message", None) and d.message != error.message
    ]
    detail = f": {'; '.join(details[:3])}" if details else ""
    return f"{error.message}{detail}{where}"
