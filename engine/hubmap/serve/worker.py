"""The worker: take queued webhooks in batches, run each mapping over them with
`hubmap.uses.run.sync_documents` (the same pipeline as `hubmap run`: stored order versions,
refunds, rate limiter, batch writes, forms), and settle each event's job from what the state
then says.

An event is *sent* for a mapping when every order and refund in it is stored and HubSpot has
confirmed it: for a contacts mapping, the order's version (or a newer one) is stored and its
contact is no longer waiting for HubSpot; for a forms mapping, the order's submission is marked
sent.  It is *skipped*
when the mapping skips all its records (records.when).  Otherwise the attempt failed: the job goes
back into the queue with a growing wait (retry_seconds, doubled each time, up to
max_retry_seconds) and, after max_attempts, becomes a *dead letter* with its reason.  A record
the mapping rejects (no email, another currency ...) is a dead letter at once: waiting will not
fix it; fix the mapping or the data, then `hubmap queue requeue`.

One event cannot hold back the others: each body is read (what
`hubmap.inputs.parse_json` says) and evaluated on its own first, so a body that is not usable
JSON or a record the evaluation fails on is a dead letter of its own; the run then takes those
outcomes as they are (an event is evaluated once), and after it what the state says of the
group's orders and contacts is read once for the group.  A contact HubSpot refuses (item by
item) fails only its events.  A run that fails as a whole with an unexpected error (a bug that
may be one event's) is run again in halves, down to single events, so the good ones are
delivered and the one that fails alone is retried (alone) and then dead; a failure of HubSpot
itself (unreachable, 5xx, token refused) retries the whole batch without splitting it, and
shows on /healthz as "degraded".

Because the state keeps every order's latest version, running an event again (after a crash, a
requeue, or a shop's retry with a new delivery id) never counts its order twice, and an older
copy arriving after a newer one is stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from hubmap import ledger
from hubmap.catalogs import load_catalogs
from hubmap.evaluate import CompiledMapping, OrderValues, RefundValues, Rejected, Skipped
from hubmap.hubspot import HubSpotError
from hubmap.hubspot.config import TOKEN_ENV
from hubmap.hubspot.retry import RetryPolicy
from hubmap.inputs import Document, InputError, parse_json
from hubmap.mapping.model import FormsTarget, Mapping
from hubmap.problems import HubmapError
from hubmap.serve.config import ServeConfig, token_environ
from hubmap.serve.queue import DEAD, QUEUED, SENT, SKIPPED, Claimed, Outcome, Queue, process_owner
from hubmap.state import StateLockedError, StateStore
from hubmap.uses.contacts import SyncOptions
from hubmap.uses.context import connect, default_sandbox_db, portal_of, scope_of
from hubmap.uses.forms import too_old
from hubmap.uses.outcome import ConfigurationError
from hubmap.uses.run import sync_documents

log = logging.getLogger("hubmap.serve")

PRUNE_EVERY_SECONDS = 3600.0
LOCKED_RETRY_SECONDS = 2.0  # another run holds the mapping's state: try again soon
REQUEST_MAX_WAIT_SECONDS = 20.0  # retries of one HubSpot call inside an attempt
RUN_WORKERS = 2  # parallel HubSpot calls inside one run (a batch is at most a few calls)
ROUND_FAILED_WAIT_SECONDS = 1.0  # after a round failed on the queue or the state
PROBE_MAX_SECONDS = 30.0  # while HubSpot fails, it is asked this often at most (retry_seconds)
MAX_REASON_CHARS = 1000
SHORT_DIRTY_LIST = 10_000  # unconfirmed contacts read as one list up to this many


class ProvisionOnce:
    """Remembers what provisioning found per scope (properties, form, fences checked), so each
    batch of events does not list HubSpot's properties again; forgotten after a failed run."""

    def __init__(self) -> None:
        self.done: dict[str, Any] = {}


@dataclass(frozen=True)
class HubSpotHealth:
    """What the worker last learnt of HubSpot; replaced whole, so other threads (/healthz) read a
    consistent copy."""

    failing: bool = False
    error: str | None = None  # the last failure of a whole batch (or probe) on HubSpot's side
    error_at: float | None = None  # epoch seconds
    ok_at: float | None = None  # the last time HubSpot answered a batch or a probe
    checked: float = float("-inf")  # monotonic time of the last batch or probe

    def report(self) -> dict[str, Any]:
        return {
            "status": "failing" if self.failing else "ok" if self.ok_at else "unknown",
            "last_error": self.error,
            "last_error_at": _iso(self.error_at),
            "last_ok_at": _iso(self.ok_at),
        }


@dataclass
class _Work:
    """One mapping the worker serves."""

    mapping: Mapping
    compiled: CompiledMapping
    token_env: str = TOKEN_ENV  # the variable of the HubSpot token its portal is written with


@dataclass
class _Event:
    """A claimed job whose body was read and evaluated on its own."""

    job: Claimed
    document: Document
    results: list[Any]
    warnings: list[str] = field(default_factory=list)  # what its evaluation cut or missed


class _EvaluatedOnce:
    """The mapping compiled, for a run over events already evaluated one by one (each on its own,
    so one that fails cannot take the others with it): the run takes each event's outcomes as
    they are instead of evaluating the event again; anything else is the compiled mapping's."""

    def __init__(self, compiled: CompiledMapping, events: list[_Event]):
        self._compiled = compiled
        self._outcomes = {id(e.document): e.results for e in events}
        self._warnings = [w for e in events for w in e.warnings]

    def outcomes(self, documents: Iterable[Document | InputError]) -> Iterator[Any]:
        for document in documents:
            known = self._outcomes.get(id(document))
            if known is None:
                yield from self._compiled.outcomes([document])
            else:
                yield from known

    def take_warnings(self) -> list[str]:
        taken, self._warnings = self._warnings, []
        return taken + self._compiled.take_warnings()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compiled, name)


@dataclass
class _Run:
    """How one run of the mapping over a group of events went."""

    scope: str | None = None
    failures: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    crashed: bool = False  # an unexpected exception: maybe one event's, so the group is split
    locked: bool = False


@dataclass
class _Split:
    """What splitting one failed group found: whether any part went through, and the events that
    failed alone (poison, if another part went through)."""

    succeeded: bool = False
    alone: list[int] = field(default_factory=list)


class Worker:
    def __init__(
        self,
        config: ServeConfig,
        works: dict[str, tuple[Mapping, str]],
        queue: Queue,
        environ: dict[str, str],
        *,
        sandbox: bool = False,
    ):
        self.config = config
        self.queue = queue
        self.environ = dict(environ)
        self.sandbox = sandbox
        # each mapping (per portal) compiled with its catalogs (read at start; read again when
        # a file changes)
        self.work = {
            name: _Work(m, CompiledMapping(m, load_catalogs(m)), token_env)
            for name, (m, token_env) in works.items()
        }
        self.owner = process_owner()
        self.gate = ProvisionOnce()
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self.batches = 0
        self.next_batch: dict[str, float] = {}  # mapping -> monotonic time it may batch again
        self.hubspot = HubSpotHealth()
        self.portals: dict[str, Any] = {}  # token variable -> its connection, while running
        # events that failed alone with an unexpected error: run alone when claimed again, so
        # their retries do not split a batch of good events each time
        self.suspects: set[int] = set()

    def portal_stats(self) -> dict[str, Any]:
        """Per portal (by its token's variable) the client's counters: calls, 429s ..."""
        return {token_env: conn.client.stats() for token_env, conn in dict(self.portals).items()}

    def wake(self) -> None:
        self.wake_event.set()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Work until `stop()`; the batch in hand is finished first."""
        forms = next(
            (w.mapping for w in self.work.values() if isinstance(w.mapping.target, FormsTarget)),
            None,
        )
        sandbox_db = default_sandbox_db(self.config.state_path) if self.sandbox else None
        state = StateStore(self.config.state_path)
        try:
            with ExitStack() as connections:
                portals = self.portals  # token variable -> its connection
                for token_env in sorted({w.token_env for w in self.work.values()}):
                    if self.sandbox and portals:  # the one embedded stand-in takes them all
                        portals[token_env] = next(iter(portals.values()))
                        continue
                    conn = portals[token_env] = connections.enter_context(
                        connect(
                            token_environ(self.environ, token_env),
                            sandbox=self.sandbox,
                            sandbox_db=sandbox_db,
                            mapping=forms,
                            state=self.config.state_path,
                        )
                    )
                    conn.client.retry = RetryPolicy(
                        max_attempts=self.config.worker.hubspot_attempts,
                        max_total_wait=REQUEST_MAX_WAIT_SECONDS,
                    )
                    if conn.sandbox is not None:
                        log.info(
                            "embedded HubSpot stand-in at %s (data in %s)",
                            conn.sandbox.url,
                            sandbox_db,
                        )
                self._loop(portals, state)
        finally:
            state.close()

    def _loop(self, portals: dict[str, Any], state: StateStore) -> None:
        last_recover = last_prune = float("-inf")
        probed = False
        while not self.stop_event.is_set():
            try:
                if not probed:  # /healthz tells from the start whether HubSpot takes the token
                    self._probe(portals)
                    probed = True
                now = time.monotonic()
                if now - last_recover >= self.config.worker.recover_every_seconds:
                    recovered = self.queue.recover()
                    if recovered:
                        log.info("%d event job(s) of a stopped worker queued again", recovered)
                    last_recover = now
                if now - last_prune >= PRUNE_EVERY_SECONDS:
                    self.queue.prune(self.config.worker.keep_days * 86_400)
                    last_prune = now
                full, handled_any = self._round(portals, state)
                if not handled_any and self.hubspot.failing and self._probe_due():
                    self._probe(portals)
                if not full:
                    self.wake_event.wait(self._idle_wait())
                    self.wake_event.clear()
            except Exception:  # the queue or the state cannot be used now: the worker lives on
                log.exception("the worker's round failed; trying again shortly")
                self.stop_event.wait(ROUND_FAILED_WAIT_SECONDS)
        handed_back = self.queue.hand_back(self.owner)  # none, unless a batch was cut short
        if handed_back:
            log.info("%d claimed event job(s) handed back to the queue", handed_back)

    def _round(self, portals: dict[str, Any], state: StateStore) -> tuple[bool, bool]:
        """One batch of each mapping that is due: (a batch was full, any event was handled)."""
        full = handled_any = False
        for name, work in self.work.items():
            if self.stop_event.is_set():
                break
            if time.monotonic() < self.next_batch.get(name, 0.0):
                continue
            started = time.monotonic()
            conn = portals[work.token_env]
            handled = self.process(name, work, conn.client, state, conn.environ)
            handled_any = handled_any or handled > 0
            if handled >= self.config.worker.batch_size:
                full = True  # a backlog: the next batch goes at once
            elif handled:
                self.next_batch[name] = started + self.config.worker.batch_every_seconds
        return full, handled_any

    def _idle_wait(self) -> float:
        wait = self.config.worker.poll_seconds
        now, clock = time.time(), time.monotonic()
        for name in self.work:
            due = self.queue.next_due(name)
            if due is not None:
                ready = max(due - now, self.next_batch.get(name, 0.0) - clock)
                wait = min(wait, max(0.0, ready))
        if self.hubspot.failing:
            wait = min(wait, max(0.0, self.hubspot.checked + self._probe_every() - clock))
        return wait

    # -- HubSpot's health --------------------------------------------------------------------

    def _probe_every(self) -> float:
        return min(self.config.worker.retry_seconds, PROBE_MAX_SECONDS)

    def _probe_due(self) -> bool:
        return time.monotonic() - self.hubspot.checked >= self._probe_every()

    def _probe(self, portals: dict[str, Any]) -> None:
        """Ask HubSpot, for each token, its portal (once) and one property definition (a small
        read that is never cached), to see whether it answers when no batch is due."""
        try:
            for conn in {id(c): c for c in portals.values()}.values():
                portal_of(conn.client)
                conn.client.get_property("contacts", "email")
        except (HubSpotError, ConfigurationError) as failure:
            self._hubspot_failed(str(failure))
        else:
            self._hubspot_ok()

    def _hubspot_ok(self) -> None:
        self.hubspot = replace(
            self.hubspot, failing=False, ok_at=time.time(), checked=time.monotonic()
        )

    def _hubspot_failed(self, error: str) -> None:
        if not self.hubspot.failing:
            log.warning("HubSpot is failing: %s", error)
        self.hubspot = replace(
            self.hubspot,
            failing=True,
            error=_clip(error),
            error_at=time.time(),
            checked=time.monotonic(),
        )

    # -- one batch of one mapping --------------------------------------------------------------

    def process(
        self, name: str, work: _Work, client: Any, state: StateStore, environ: dict[str, str]
    ) -> int:
        """Claim a batch of `name`'s due jobs, run the mapping over them, settle them.  Each
        event is read and evaluated on its own, so a body or a record that fails settles only
        its event; a group whose run fails unexpectedly is split until the event that fails
        alone is found."""
        claimed = self.queue.claim(name, self.config.worker.batch_size, self.owner)
        if not claimed:
            return 0
        if work.compiled.catalogs is not None and work.compiled.catalogs.stale():
            try:
                work.compiled = CompiledMapping(work.mapping, load_catalogs(work.mapping))
                log.info("%s: a catalog file changed; read again", name)
            except HubmapError as unreadable:  # keep the catalogs in hand
                log.warning("%s: a changed catalog cannot be read: %s", name, unreadable)
        self.batches += 1
        settled: list[Outcome] = []
        events: list[_Event] = []
        for job in claimed:
            read = self._read(job, work)
            if isinstance(read, Outcome):
                settled.append(read)
            else:
                events.append(read)
        rest = [e for e in events if e.job.event_id not in self.suspects]
        groups = [[e] for e in events if e.job.event_id in self.suspects] + ([rest] if rest else [])
        for group in groups:
            split = _Split()
            settled += self._deliver(work, group, client, state, environ, split)
            if split.succeeded:  # others went through: what failed alone is poison
                self.suspects.update(split.alone)
        self.suspects.difference_update(o.event_id for o in settled if o.status != QUEUED)
        self.queue.finish(name, settled)
        failed = [o for o in settled if o.status in (QUEUED, DEAD)]
        if failed:
            log.warning(
                "%s: %d of %d event(s) not sent (%d dead); first reason: %s",
                name,
                len(failed),
                len(settled),
                sum(o.status == DEAD for o in failed),
                failed[0].detail,
            )
        return len(claimed)

    def _read(self, job: Claimed, work: _Work) -> _Event | Outcome:
        """The event's body parsed and evaluated alone, or its dead letter: waiting does not
        change a body or what the mapping makes of it."""
        parsed = parse_json(job.body, f"webhook event {job.event_id} ({job.route})")
        if isinstance(parsed, InputError):
            return Outcome(
                job.event_id, DEAD, f"the body cannot be read: {parsed.where}: {parsed.reason}"
            )
        if not isinstance(parsed.data, (dict, list)):
            return Outcome(job.event_id, DEAD, "the body is not a JSON object or list")
        try:
            results = list(work.compiled.outcomes(iter([parsed])))
            warnings = work.compiled.take_warnings()  # reported by the run that takes the event
        except Exception as bug:  # hubmap's fault, not the shop's: said so, and kept
            log.exception("event %d: the mapping failed on it", job.event_id)
            return Outcome(
                job.event_id,
                DEAD,
                _clip(
                    f"hubmap failed evaluating this event ({bug!r}); please report it, and send "
                    f"it again after upgrading: hubmap queue requeue {job.event_id}"
                ),
            )
        return _Event(job, parsed, results, warnings)

    def _deliver(
        self,
        work: _Work,
        events: list[_Event],
        client: Any,
        state: StateStore,
        environ: dict[str, str],
        split: _Split,
    ) -> list[Outcome]:
        """Run `events` through the mapping and settle each.  When the run fails with an
        unexpected error, the events it did not deliver are run again in two halves (and so on),
        so one poison event fails alone and the others go through; the state's ledger makes a
        run again count nothing twice."""
        run = self._run(work, events, client, state, environ)
        if run.locked:
            retry_at = time.time() + LOCKED_RETRY_SECONDS
            return [
                Outcome(e.job.event_id, QUEUED, run.error, retry_at, failed=False) for e in events
            ]
        split.succeeded = split.succeeded or run.error is None  # this part went through
        settled: list[Outcome] = []
        waiting: list[tuple[_Event, list[Any]]] = []
        seen = None if run.scope is None else _Confirmed.read(state, run.scope, events)
        for event in events:
            verdict = self._verdict(event, work, seen)
            if isinstance(verdict, Outcome):
                settled.append(verdict)
            else:
                waiting.append((event, verdict))
        if run.crashed and len(waiting) > 1:
            half = len(waiting) // 2
            for part in (waiting[:half], waiting[half:]):
                settled += self._deliver(work, [e for e, _ in part], client, state, environ, split)
            return settled
        if run.crashed and waiting:
            split.alone.append(waiting[0][0].job.event_id)
        return settled + [self._failed(e.job, records, run, state) for e, records in waiting]

    def _run(
        self,
        work: _Work,
        events: list[_Event],
        client: Any,
        state: StateStore,
        environ: dict[str, str],
    ) -> _Run:
        run = _Run()
        before = client.stats()
        try:
            run.scope = scope_of(work.mapping, portal_of(client))
            summary = sync_documents(
                work.mapping,
                client,
                state,
                [e.document for e in events],
                environ=environ,
                input_name=f"webhooks ({len(events)} event(s))",
                provisioned=self.gate.done,
                options=SyncOptions(workers=RUN_WORKERS),
                compiled=_EvaluatedOnce(work.compiled, events),
            )  # type: ignore[arg-type]
        except StateLockedError as locked:
            log.info("%s: %s; trying again shortly", work.mapping.name, locked)
            run.locked, run.error = True, str(locked)
            return run
        except (HubSpotError, ConfigurationError) as failure:  # HubSpot down or refusing: all
            run.error = str(failure)
            self._hubspot_failed(run.error)
        except HubmapError as failure:  # the mapping cannot go on (fences, rebuild): all
            run.error = str(failure)
        except Exception as failure:  # a worker must outlive any one batch
            log.exception("%s: the run failed", work.mapping.name)
            run.error, run.crashed = _clip(f"unexpected error: {failure!r}"), True
        else:
            run.error = summary.stopped
            run.failures = dict(summary.failures)
            after = client.stats()
            unanswered = (
                after.server_errors + after.transport_errors
                > before.server_errors + before.transport_errors
            )
            if summary.stopped:
                self._hubspot_failed(summary.stopped)
            elif summary.failures and unanswered:  # contacts failed because HubSpot did
                self._hubspot_failed(summary.failures[0][1])
            elif after.calls > before.calls:  # HubSpot answered (a run may need no call)
                self._hubspot_ok()
        if run.error and run.scope is not None:
            self.gate.done.pop(run.scope, None)
        return run

    def _verdict(self, event: _Event, work: _Work, seen: _Confirmed | None) -> Outcome | list[Any]:
        """The event's outcome when the run's fate does not decide it (rejected, skipped,
        delivered), else its orders and refunds HubSpot has not confirmed (`seen`: what the
        state says after the run; None when the run could not start)."""
        job, results = event.job, event.results
        rejected = [r for r in results if isinstance(r, Rejected)]
        if rejected:
            reasons = "; ".join(f"{r.record}: {r.reason}" for r in rejected)
            return Outcome(job.event_id, DEAD, _clip(f"rejected by the mapping: {reasons}"))
        now = datetime.now(timezone.utc)
        forms = isinstance(work.mapping.target, FormsTarget)
        old = [r for r in results if forms and isinstance(r, OrderValues) and too_old(r.time, now)]
        orders = [
            r
            for r in results
            if (isinstance(r, OrderValues) and r not in old)
            or (
                isinstance(r, Skipped)
                and r.order_id is not None
                and (seen is None or r.order_id in seen.orders)
            )
        ]
        refunds = [r for r in results if isinstance(r, RefundValues)]
        if not orders and not refunds:
            reasons = "; ".join(
                [r.reason for r in results if isinstance(r, Skipped)]
                + [
                    f"order {r.order_id} is older than a form submission may be "
                    "(skipped: the contacts mapping carries history)"
                    for r in old
                ]
            )
            return Outcome(job.event_id, SKIPPED, reasons or "no records in the body")
        if seen is None:  # the run could not start: nothing of this event is delivered
            return orders + refunds
        waiting = [o for o in orders if not seen.delivered(o.order_id, forms=forms)]
        waiting += [r for r in refunds if not seen.refund_delivered(r)]
        return waiting or Outcome(job.event_id, SENT)

    def _failed(self, job: Claimed, waiting: list[Any], run: _Run, state: StateStore) -> Outcome:
        """A failed attempt: queued again after a growing wait, or dead after the last one."""
        reason = _clip(
            run.error
            or "; ".join(
                run.failures.get(w.order_id)
                or run.failures.get(getattr(w, "contact", ""))
                or _last_error(w.order_id, state, run.scope or "")
                for w in waiting
            )
        )
        attempts = job.attempts + 1
        if attempts >= self.config.worker.max_attempts:
            return Outcome(job.event_id, DEAD, f"{attempts} attempt(s) failed; last: {reason}")
        return Outcome(
            job.event_id, QUEUED, reason, time.time() + self.config.worker.retry_delay(attempts)
        )


def _clip(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """A reason short enough to read in a status line (exception texts can hold whole rows)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso(moment: float | None) -> str | None:
    return (
        None
        if moment is None
        else datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds")
    )


@dataclass(frozen=True)
class _Confirmed:
    """What the state says, after a run, of a group's orders, refunds and contacts: read in a
    few queries for the whole group, not a few per event."""

    orders: dict[str, Any]  # order id -> its stored version
    refunds: set[str]  # refund ids stored
    unconfirmed: set[str]  # the group's contacts whose values HubSpot has not confirmed

    @classmethod
    def read(cls, state: StateStore, scope: str, events: list[_Event]) -> _Confirmed:
        results = [r for e in events for r in e.results]
        refund_ids = {r.refund_id for r in results if isinstance(r, RefundValues)}
        order_ids = {
            r.order_id
            for r in results
            if isinstance(r, OrderValues | Skipped) and r.order_id is not None
        }
        order_ids |= {r.order_id for r in results if isinstance(r, RefundValues)}
        orders = state.orders(scope, order_ids)
        contacts = {o.contact for o in orders.values() if o.contact is not None}
        return cls(
            orders, set(state.refunds(scope, refund_ids)), _unconfirmed(state, scope, contacts)
        )

    def delivered(self, order_id: str, *, forms: bool) -> bool:
        """Whether the order (this version or a newer one) is stored and HubSpot confirmed it."""
        stored = self.orders.get(order_id)
        if stored is None:
            return False
        if forms:
            return bool(stored.status == ledger.SENT)
        # a withdrawn order (no contact) never counted: nothing to write
        return stored.contact is None or stored.contact not in self.unconfirmed

    def refund_delivered(self, refund: RefundValues) -> bool:
        if refund.refund_id not in self.refunds:
            return False
        stored = self.orders.get(refund.order_id)
        if stored is None or stored.contact is None:
            return True  # waiting for its order: it applies when the order comes
        return stored.contact not in self.unconfirmed


def _unconfirmed(state: StateStore, scope: str, contacts: set[str]) -> set[str]:
    """Which of `contacts` hold values HubSpot has not confirmed.  After a run that went through
    the state lists none or few such contacts, and that list is one indexed query; a long one
    (HubSpot failing for a while) is not read whole, the group's contacts are read instead."""
    if not contacts:
        return set()
    if state.count_dirty(scope) <= SHORT_DIRTY_LIST:
        return contacts & set(state.dirty_contacts(scope))
    return {key for key, row in state.load_contacts(scope, contacts).items() if row.dirty}


def _last_error(order_id: str, state: StateStore, scope: str) -> str:
    stored = state.orders(scope, [order_id]).get(order_id)
    if stored is not None and stored.contact is not None:
        row = state.load_contacts(scope, [stored.contact]).get(stored.contact)
        if row is not None and row.last_error:
            return str(row.last_error)
    return f"order {order_id}: HubSpot has not confirmed it yet"
