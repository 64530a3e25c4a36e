"""`hubmap run`: provision properties, count new orders into the state, write HubSpot, summarise.

Contacts, in two phases so that every order is counted exactly once and HubSpot sees each contact
once per run (the fewest calls: one batch read and one batch upsert per 100 contacts):

1. count: records stream in chunks; each new order id enters the ledger in the same transaction
   that folds its values into its contact's `pending` accumulators (already-counted ids are
   skipped; rejected records go to the reject file and the state with their reason);
2. write: contacts with unconfirmed values, 100 at a time, in parallel workers: read HubSpot's
   current values (the baseline of a contact hubmap has not written yet is stored before the
   first write; a value someone changed since hubmap's last write is drift: reported, and taken as
   the new baseline), store the values about to be sent, upsert them, and on HubSpot's answer
   mark them confirmed.  A crash anywhere leaves contacts marked unconfirmed; the next run sends
   the same absolute values again.

Forms: one submission per new order, then the order is marked sent.  HubSpot has no idempotency
key for submissions: an answer lost in transit may be retried and recorded twice by HubSpot (the
contact's values are the same either way, as a form overwrites them).  A submission HubSpot refused
is kept with its record, for `hubmap replay`.

The state remembers what the mapping computed its counts with (`fingerprint`):
- a property added to the mapping starts from HubSpot's value at its first write and adds the
  orders counted from then on (listed in the summary as `properties_started`);
- a changed definition of one order's value (a property's source, decimals ..., or which records
  count) applies to the orders counted from then on, replayed records included (listed as
  `mapping_changed`);
- a change that leaves the stored counts unreadable or wrongly keyed is refused: a property's merge
  rule or type, or how orders and contacts are identified (records id, time, contact, group_by,
  timezone, match_on).
`rebuild` recomputes everything: the scope's ledger and accumulators are forgotten (the baselines,
HubSpot's values before hubmap first wrote, are kept, as drift left them) and the input - which
must then be the full order history - is counted again; every contact of the scope is written.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import IO, Any

from hubmap import provision
from hubmap.evaluate import CompiledMapping, OrderValues, Rejected, Skipped
from hubmap.hubspot import HubSpotClient, HubSpotError
from hubmap.hubspot.errors import DailyLimitReached, HubSpotAuthError
from hubmap.inputs import Document, InputError, read_documents
from hubmap.mapping.model import FormsTarget, Mapping, Source
from hubmap.merge import Sum
from hubmap.plan import ContactFolder, changes
from hubmap.problems import HubmapError, Location, Problem
from hubmap.state import ContactRow, StateStore
from hubmap.types import parse_decimal

COUNT_CHUNK = 2_000  # records folded per state transaction
BATCH = 100  # HubSpot's batch limit
DEFAULT_WORKERS = 4


@dataclass
class Summary:
    records: int = 0
    counted: int = 0
    already_counted: int = 0
    skipped: int = 0
    rejected: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    contacts_unchanged: int = 0
    contacts_failed: int = 0
    submissions: int = 0
    submissions_failed: int = 0
    drift: int = 0
    properties_created: list[str] = field(default_factory=list)
    properties_started: list[str] = field(default_factory=list)  # new to the state: from now on
    # definitions changed since orders were counted (apply to orders counted from now on):
    mapping_changed: list[str] = field(default_factory=list)
    rebuilt: bool = False
    planned: dict[str, dict[str, str]] = field(default_factory=dict)  # dry run: would be sent
    failures: list[tuple[str, str]] = field(default_factory=list)
    calls: int = 0
    rate_limited: int = 0
    retries: int = 0
    seconds: float = 0.0
    stopped: str | None = None  # why the run stopped early (daily limit, auth)

    @property
    def ok(self) -> bool:
        return not (self.rejected or self.contacts_failed or self.submissions_failed
                    or self.stopped)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["failures"] = [{"key": k, "reason": r} for k, r in self.failures]
        return data


class Progress:
    """What a run reports while it works; the CLI gives a progress bar or plain lines."""

    def phase(self, name: str, total: int | None) -> None: ...
    def advance(self, amount: int = 1) -> None: ...
    def done(self) -> None: ...


@dataclass
class RunOptions:
    input_path: str
    input_format: str | None = None
    dry_run: bool = False
    workers: int = DEFAULT_WORKERS
    reject_file: str | None = None
    portal_id: str | None = None
    rebuild: bool = False  # forget the scope's counts and count the input (the full history)
    count_chunk: int = COUNT_CHUNK
    batch: int = BATCH


def scope_of(mapping: Mapping, api_base: str, portal_id: str | None) -> str:
    """What the state keeps apart: the portal (HUBSPOT_PORTAL_ID, else the API host) and the
    mapping's name.  Not the full address: a stand-in on another port is the same portal."""
    from urllib.parse import urlparse

    portal = f"portal {portal_id}" if portal_id else urlparse(api_base).netloc or api_base
    return f"{portal}|{mapping.name}"


def _source(source: Source | None) -> str | None:
    if source is None:
        return None
    return json.dumps([source.kind.value, source.text, source.value], default=str)


def fingerprint(mapping: Mapping) -> dict[str, Any]:
    """What the stored counts depend on, as texts to compare: `identity` (which order and which
    contact a record is: ids, times, contact keys, grouping, matching), `filters` (which records
    count), and per folded property its `rule` (merge rule and type: what the stored accumulators
    are) and its `definition` (how one order's value is computed).  Derived properties are
    recomputed at every write, so they are not in it."""
    records = mapping.records

    def text(data: Any) -> str:
        return json.dumps(data, sort_keys=True, default=str)

    return {
        "identity": text({
            "id": _source(records.id), "time": _source(records.time),
            "contact": _source(records.contact), "group_by": _source(records.group_by),
            "timezone": mapping.timezone, "match_on": getattr(mapping.target, "match_on", None),
        }),
        "filters": text({
            "path": _source(records.path), "when": _source(records.when),
            "require": [_source(r.that) for r in records.require],
        }),
        "properties": {
            spec.name: {
                "rule": text([str(getattr(spec.merge, "value", spec.merge)),
                              str(getattr(spec.type, "value", spec.type)), spec.multiple]),
                "definition": text({
                    "source": _source(spec.source), "when": _source(spec.when),
                    "decimals": spec.decimals, "timezone": spec.timezone,
                    "max_items": spec.max_items,
                }),
            }
            for spec in mapping.properties if spec.source is not None
        },
    }


class Runner:
    def __init__(self, mapping: Mapping, client: HubSpotClient, state: StateStore,
                 options: RunOptions, progress: Progress | None = None,
                 environ: dict[str, str] | None = None):
        self.mapping = mapping
        self.compiled = CompiledMapping(mapping)
        self.folder = ContactFolder(self.compiled)
        self.client = client
        self.state = state
        self.options = options
        self.progress = progress or Progress()
        self.environ = environ or {}
        self.summary = Summary()
        self.scope = scope_of(mapping, client.settings.api_base, options.portal_id
                              or client.settings.portal_id)
        self.lock = threading.Lock()  # one SQLite connection, shared by the workers
        self.reject_stream: IO[str] | None = None
        self.run_id = 0
        self.properties = [spec.name for spec in mapping.properties]
        self._dry_rows: dict[str, ContactRow] = {}  # dry run: counted in memory, not stored
        self._dry_seen: set[str] = set()  # dry run: order ids counted in memory
        self.dry_changes: dict[str, dict[str, str]] = {}  # dry run: what would be sent

    # -- the whole run -------------------------------------------------------------------

    def run(self, documents: Iterable[Document | InputError] | None = None,
            replayed: Iterable[int] = ()) -> Summary:
        """Run over `documents` (default: the input file).  `replayed`: ids of stored rejected
        records that `documents` hold again; marked resolved once counted (or rejected anew)."""
        started = time.monotonic()
        if self.options.rebuild and self.options.dry_run:
            raise HubmapError(Problem(
                "HM704", "a rebuild cannot be a dry run: it forgets the stored counts",
                Location(self.mapping.file), hint="use `hubmap plan` to see the values the full "
                "history gives, or run --rebuild without --dry-run"))
        self.run_id = self.state.start_run(self.scope, self.mapping.file, self.options.input_path)
        outcome = "failed"
        try:
            self._check_mapping()
            if self.options.reject_file:
                self.reject_stream = open(self.options.reject_file, "w", encoding="utf-8")
            self._provision()
            if self.options.rebuild:
                self.state.start_rebuild(self.scope)
                self.summary.rebuilt = True
            source = documents if documents is not None else read_documents(
                self.options.input_path, self.options.input_format)
            records = self._evaluated(iter(source))
            if isinstance(self.mapping.target, FormsTarget):
                self._forms(records)
            else:
                self._count(records)
            ids = list(replayed)
            if ids and not self.options.dry_run:
                with self.lock:
                    self.state.resolve_rejects(ids)
            if not isinstance(self.mapping.target, FormsTarget):
                self._write()
            if self.options.rebuild:
                self.state.end_rebuild(self.scope)
            outcome = "ok" if self.summary.ok else "partial"
        except DailyLimitReached as error:
            self.summary.stopped = str(error)
            outcome = "stopped"
        except HubSpotAuthError as error:
            # A refused token is a configuration problem: record the run, then let the caller
            # report it (exit 2), rather than a partly done run.
            self.summary.stopped = str(error)
            outcome = "stopped"
            raise
        finally:
            if self.reject_stream:
                self.reject_stream.close()
            stats = self.client.stats()
            self.summary.calls = stats.calls
            self.summary.rate_limited = stats.rate_limited
            self.summary.retries = stats.retries
            self.summary.seconds = round(time.monotonic() - started, 3)
            self.state.finish_run(self.scope, self.run_id, outcome, self.summary.to_dict())
        return self.summary

    def _evaluated(self, documents: Iterator[Document | InputError]
                   ) -> Iterator[tuple[OrderValues | Rejected | Skipped, Any]]:
        """Every record's outcome with what to keep of the record for a replay."""
        for item in self.compiled.record_stream(documents):
            if isinstance(item, Rejected):
                yield item, None
                continue
            record, where = item
            raw = self.compiled.raw_of(record)
            result = self.compiled.evaluate(record, where)
            if isinstance(result, Rejected):
                result = replace(result, raw=raw)
            yield result, raw

    def _check_mapping(self) -> None:
        """Compare the mapping with the one the scope's counts were made with (module doc)."""
        current = fingerprint(self.mapping)
        if self.state.rebuilding(self.scope) and not self.options.rebuild:
            raise HubmapError(Problem(
                "HM703", "a rebuild of this mapping's counts was started and did not finish; the "
                "stored counts are incomplete", Location(self.mapping.file),
                hint="run again with --rebuild and the full order history"))
        stored = self.state.fingerprint(self.scope)
        started: list[str] = []
        if stored is not None and not self.options.rebuild:
            rebuild_hint = "run once with --rebuild and the full order history, or undo the change"
            problems = []
            if stored.get("identity") != current["identity"]:
                problems.append(Problem(
                    "HM701", "how orders and contacts are identified (records: id, time, contact, "
                    "group_by; timezone; match_on) changed since orders were counted with this "
                    "mapping; the stored ledger and totals belong to the old identities",
                    self.mapping.records.id.location, hint=rebuild_hint))
            if stored.get("filters") != current["filters"]:
                self.summary.mapping_changed.append("records")
            old = stored.get("properties", {})
            for spec in self.mapping.properties:
                if spec.name not in current["properties"]:
                    continue
                if spec.name not in old:
                    started.append(spec.name)
                elif old[spec.name]["rule"] != current["properties"][spec.name]["rule"]:
                    problems.append(Problem(
                        "HM702", f"property '{spec.name}' changed its merge rule or type since "
                        "its stored totals were counted; they cannot be read as the new rule",
                        spec.location, hint="run once with --rebuild and the full order history, "
                        "or give the new definition a new property name"))
                elif old[spec.name]["definition"] != current["properties"][spec.name]["definition"]:
                    self.summary.mapping_changed.append(spec.name)
            if problems:
                raise HubmapError(problems)
        self.summary.properties_started = started
        if not self.options.dry_run:
            self.state.save_fingerprint(self.scope, current, started)

    def _provision(self) -> None:
        if self.options.dry_run:
            # Write nothing, but refuse what a real run would refuse (a property of another type).
            existing, groups = provision.read_portal(self.client)
            comparison = provision.compare(self.mapping, existing, groups)
            if comparison.refused:
                raise HubmapError(comparison.problems)
            return
        result = provision.apply(self.client, self.mapping)
        if result.problems:
            raise HubmapError(result.problems)
        self.summary.properties_created = result.created
        if isinstance(self.mapping.target, FormsTarget):
            self._check_form()

    def _check_form(self) -> None:
        target = self.mapping.target
        assert isinstance(target, FormsTarget)
        form = self.client.get_form(resolve_env(target.form_guid, self.environ))
        on_form = {f.get("name") for group in form.get("fieldGroups", [])
                   for f in group.get("fields", [])}
        wanted = [target.email_field] + self.properties
        missing = [name for name in wanted if name not in on_form]
        if missing:
            raise HubmapError([Problem(
                "HM606", f"the form lacks field(s) {', '.join(missing)}; HubSpot refuses "
                f"submissions with fields that are not on the form",
                self.mapping.property(missing[0]).location if missing[0] in self.properties
                else self.mapping.records.contact.location,
                hint="add these fields to the form in HubSpot, or remove them from the mapping")])

    # -- rejected records ------------------------------------------------------------------

    def _reject(self, items: list[Rejected]) -> None:
        if not items:
            return
        self.summary.rejected += len(items)
        rows = [{"where": r.where, "order_id": r.order_id, "property": r.property_name,
                 "reason": r.reason, "code": r.code, "record": r.raw} for r in items]
        if self.reject_stream:
            for row in rows:
                self.reject_stream.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        if not self.options.dry_run:
            with self.lock:
                self.state.add_rejects(self.scope, self.run_id, rows)

    # -- contacts: phase 1, count ----------------------------------------------------------

    def _count(self, records: Iterator[tuple[OrderValues | Rejected | Skipped, Any]]) -> None:
        self.progress.phase("counting orders", None)
        chunk: list[OrderValues] = []
        rejected: list[Rejected] = []
        for outcome, _ in records:
            self.summary.records += 1
            if isinstance(outcome, Rejected):
                rejected.append(outcome)
            elif isinstance(outcome, Skipped):
                self.summary.skipped += 1
            else:
                chunk.append(outcome)
            if len(chunk) + len(rejected) >= self.options.count_chunk:
                self._count_chunk(chunk)
                self._reject(rejected)
                self.progress.advance(len(chunk) + len(rejected))
                chunk, rejected = [], []
        self._count_chunk(chunk)
        self._reject(rejected)
        self.progress.advance(len(chunk) + len(rejected))
        self.progress.done()

    def _count_chunk(self, orders: list[OrderValues]) -> None:
        if not orders:
            return
        known = self.state.known_orders(self.scope, {o.order_id for o in orders})
        if self.options.dry_run:
            known |= self._dry_seen
        fresh: dict[str, OrderValues] = {}
        for order in orders:
            if order.order_id in known or order.order_id in fresh:
                self.summary.already_counted += 1
            else:
                fresh[order.order_id] = order
        if not fresh:
            return
        rows = self.state.load_contacts(self.scope, {o.contact for o in fresh.values()})
        if self.options.dry_run:  # what earlier chunks of this dry run counted
            rows.update({key: self._dry_rows[key] for key in rows.keys() | {
                o.contact for o in fresh.values()} if key in self._dry_rows})
        for order in fresh.values():
            row = rows.setdefault(order.contact, ContactRow(order.contact))
            pending = self.folder.load(row.pending)
            row.pending = self.folder.dump(self.folder.add(pending, order))
        self.summary.counted += len(fresh)
        if self.options.dry_run:
            self._dry_rows.update(rows)
            self._dry_seen.update(fresh)
            return
        self.state.save_counted(
            self.scope, self.run_id, rows.values(),
            [(o.order_id, o.contact, o.time.isoformat()) for o in fresh.values()])

    # -- contacts: phase 2, write ---------------------------------------------------------

    def _write(self) -> None:
        keys = list(self.state.dirty_contacts(self.scope))
        if self.options.dry_run:
            keys = sorted(set(keys) | set(self._dry_rows))
        self.progress.phase("writing contacts", len(keys))
        size = self.options.batch
        batches = [keys[i:i + size] for i in range(0, len(keys), size)]
        workers = max(1, min(self.options.workers, len(batches) or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(self._write_batch, batches):
                pass
        self.progress.done()

    def _write_batch(self, keys: list[str]) -> None:
        with self.lock:
            rows = self.state.load_contacts(self.scope, keys)
        for key, row in self._dry_rows.items():
            if key in keys:
                rows[key] = _merged_dry(rows.get(key), row)
        match_on = self.compiled.match_on
        try:
            current = self.client.batch_read_contacts(keys, id_property=match_on,
                                                      properties=self.properties)
        except (DailyLimitReached, HubSpotAuthError):
            raise
        except HubSpotError as error:
            self._fail(keys, f"reading the contacts failed: {error}")
            return
        new_baselines: list[ContactRow] = []
        drifted: list[tuple[str, str, str | None, str | None]] = []
        to_send: dict[str, dict[str, str]] = {}
        unchanged: list[ContactRow] = []
        for key in keys:
            row = rows[key]
            found = current.get(key)
            now = {name: (found or {}).get("properties", {}).get(name) for name in self.properties}
            if found is not None:
                row.hubspot_id = str(found.get("id")) if found.get("id") else row.hubspot_id
            if row.baseline is None:
                row.baseline = now
                new_baselines.append(row)
            else:
                drift = self._drift(row, now)
                if drift:
                    drifted.extend((key, name, expected, now.get(name))
                                   for name, expected in drift)
                    self._rebase(row, [name for name, _ in drift], now)
                missing = [name for name in self.properties if name not in row.baseline]
                if missing:  # properties new to the state: HubSpot's value is their baseline
                    row.baseline = {**row.baseline, **{name: now.get(name) for name in missing}}
                if drift or missing:
                    new_baselines.append(row)
            values = self.folder.to_wire(self.folder.final_values(
                self.folder.combine(self.folder.load(row.acc), self.folder.load(row.pending)),
                row.baseline))
            diff = changes(self.folder, now, values)
            row.written = values
            if diff:
                to_send[key] = {name: change.after for name, change in diff.items()}
            else:
                unchanged.append(row)
        if self.options.dry_run:
            self._report_dry(to_send, drifted)
            self.progress.advance(len(keys))
            return
        with self.lock:
            self.state.save_prepared(self.scope, self.run_id, new_baselines, drifted,
                                     {k: rows[k].written or {} for k in to_send})
            self.summary.drift += len(drifted)
        confirmed = list(unchanged)
        if to_send:
            try:
                result = self.client.batch_upsert_contacts(to_send, id_property=match_on)
            except (DailyLimitReached, HubSpotAuthError):
                raise
            except HubSpotError as error:
                self._fail(list(to_send), f"HubSpot refused the batch: {error}")
                result = None
            if result is not None:
                failures: dict[str, str] = {}
                for key in to_send:
                    error = result.error_for(key)
                    if error is not None:
                        failures[key] = self._explain(error)
                        continue
                    done = result.result_for(key)
                    row = rows[key]
                    if done is not None:
                        row.hubspot_id = done.id
                        if done.new:
                            self.summary.contacts_created += 1
                        else:
                            self.summary.contacts_updated += 1
                    confirmed.append(row)
                if failures:
                    self._fail(list(failures), None, failures)
        self.summary.contacts_unchanged += len(unchanged)
        for row in confirmed:
            row.acc = self.folder.dump(self.folder.combine(self.folder.load(row.acc),
                                                           self.folder.load(row.pending)))
        with self.lock:
            self.state.save_written(self.scope, confirmed)
        self.progress.advance(len(keys))

    def _drift(self, row: ContactRow, now: dict[str, str | None]) -> list[tuple[str, str | None]]:
        """Properties whose HubSpot value is neither what hubmap last wrote (or, before its first
        write, the baseline it read) nor what it was writing when an answer was lost."""
        written = row.written or {}
        writing = row.writing or {}
        baseline = row.baseline or {}
        drift = []
        for name in self.properties:
            if name in written:
                expected = written[name]
            elif name in baseline:
                expected = baseline[name]
            else:  # new to the state: no expectation yet
                continue
            value = now.get(name)
            if self.folder.same(name, value, expected) or (
                    name in writing and self.folder.same(name, value, writing[name])):
                continue
            if value in (None, "") and expected in (None, ""):
                continue
            drift.append((name, expected))
        return drift

    def _rebase(self, row: ContactRow, names: list[str], now: dict[str, str | None]) -> None:
        """Drift policy: HubSpot's edited value is the new starting point; the orders HubSpot had
        confirmed are inside it, so only orders not yet confirmed are added to it.  For a sum the
        confirmed orders stay in the accumulator and the baseline becomes the edited value minus
        them (the same values now, and a rebuild from the full history keeps the edit's delta);
        other rules forget the confirmed orders, and the edited value is their baseline."""
        acc = self.folder.load(row.acc)
        baseline = dict(row.baseline or {})
        for name in names:
            found = now.get(name)
            rule = self.folder.rules.get(name)
            edited = self.folder.parse_wire(name, found)
            if isinstance(rule, Sum) and edited is not None and name in acc:
                confirmed = acc[name].part.total if acc[name].part.count else Decimal(0)
                baseline[name] = format(parse_decimal(edited) - confirmed, "f")
            else:
                baseline[name] = found
                acc.pop(name, None)
        row.baseline = baseline
        row.acc = self.folder.dump(acc)

    def _explain(self, error: Any) -> str:
        names = list(getattr(error, "property_names", []) or [])
        where = ""
        for name in names:
            try:
                where = f" (property '{name}', {self.mapping.property(name).location})"
                break
            except KeyError:
                continue
        details = [d.message for d in getattr(error, "errors", None) or []
                   if getattr(d, "message", None) and d.message != error.message]
        detail = f": {'; '.join(details[:3])}" if details else ""
        return f"{error.message}{detail}{where}"

    def _fail(self, keys: list[str], reason: str | None,
              reasons: dict[str, str] | None = None) -> None:
        reasons = reasons or {key: reason or "failed" for key in keys}
        self.summary.contacts_failed += len(reasons)
        self.summary.failures.extend(reasons.items())
        if not self.options.dry_run:
            with self.lock:
                self.state.save_failed(self.scope, reasons)

    # -- dry run ------------------------------------------------------------------------

    def _report_dry(self, to_send: dict[str, dict[str, str]],
                    drifted: list[tuple[str, str, str | None, str | None]]) -> None:
        with self.lock:
            self.dry_changes.update(to_send)
            self.summary.planned.update(to_send)
            self.summary.drift += len(drifted)

    # -- forms ------------------------------------------------------------------------------

    def _forms(self, records: Iterator[tuple[OrderValues | Rejected | Skipped, Any]]) -> None:
        target = self.mapping.target
        assert isinstance(target, FormsTarget)
        portal = resolve_env(target.portal_id, self.environ)
        guid = resolve_env(target.form_guid, self.environ)
        consent = _consent(target)
        self.progress.phase("submitting forms", None)

        def submit(order: OrderValues, raw: Any) -> None:
            from hubmap.plan import submission_fields

            fields = submission_fields(self.compiled, order)
            if self.options.dry_run:
                return
            try:
                self.client.submit_form(portal, guid, fields, context=order.context,
                                        submitted_at=_submitted_at(order.time),
                                        legal_consent=consent)
            except (DailyLimitReached, HubSpotAuthError):
                raise
            except HubSpotError as error:
                with self.lock:
                    self.summary.submissions_failed += 1
                    self.summary.failures.append((order.order_id, self._explain(error)))
                    self.state.add_rejects(self.scope, self.run_id, [{
                        "where": order.where, "order_id": order.order_id, "kind": "failed",
                        "reason": self._explain(error), "code": "HM607", "record": raw}])
                return
            with self.lock:
                self.state.set_order(self.scope, order.order_id, order.contact,
                                     order.time.isoformat(), self.run_id, "sent")
                self.summary.submissions += 1
            self.progress.advance()

        with ThreadPoolExecutor(max_workers=max(1, self.options.workers)) as pool:
            futures = []
            seen: set[str] = set()
            for outcome, raw in records:
                self.summary.records += 1
                if isinstance(outcome, Rejected):
                    self._reject([outcome])
                elif isinstance(outcome, Skipped):
                    self.summary.skipped += 1
                elif outcome.order_id in seen or self.state.order_status(
                        self.scope, outcome.order_id) == "sent":
                    self.summary.already_counted += 1
                else:
                    seen.add(outcome.order_id)
                    self.summary.counted += 1
                    futures.append(pool.submit(submit, outcome, raw))
            for future in futures:
                future.result()
        self.progress.done()


FORMS_MAX_BACKDATE = timedelta(days=29)  # HubSpot refuses a submittedAt over a month old


def _submitted_at(order_time: datetime) -> datetime | None:
    """The order's time, so HubSpot dates the conversion right; for orders older than HubSpot
    accepts (a backfill), no time: HubSpot then dates the submission at its arrival."""
    if datetime.now(timezone.utc) - order_time > FORMS_MAX_BACKDATE:
        return None
    return order_time


def _merged_dry(stored: ContactRow | None, dry: ContactRow) -> ContactRow:
    if stored is None:
        return dry
    stored.pending = dry.pending
    return stored


def _consent(target: FormsTarget) -> dict[str, Any] | None:
    consent = target.legal_consent
    if consent is None:
        return None
    return {"consent": {
        "consentToProcess": consent.consent_to_process,
        "text": consent.text,
        "communications": [
            {"value": c["value"], "subscriptionTypeId": c["subscription_type_id"],
             "text": c["text"]} for c in consent.communications],
    }}


def resolve_env(text: str, environ: dict[str, str]) -> str:
    """Fill ${NAME} references from the environment; a missing one is a configuration error."""
    import re

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ or not environ[name]:
            raise HubmapError(Problem("HM411", f"environment variable {name} is not set",
                                      _nowhere(), hint=f"export {name}=... before running"))
        return environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", fill, text)


def _nowhere():  # type: ignore[no-untyped-def]
    from hubmap.problems import Location

    return Location("<environment>")
