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

Because the state keeps every order's latest version, running an event again (after a crash, a
requeue, or a shop's retry with a new delivery id) never counts its order twice, and an older
copy arriving after a newer one is stale.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from hubmap import ledger
from hubmap.catalogs import load_catalogs
from hubmap.evaluate import CompiledMapping, OrderValues, RefundValues, Rejected, Skipped
from hubmap.hubspot import HubSpotError
from hubmap.hubspot.errors import HubSpotConfigError
from hubmap.hubspot.retry import RetryPolicy
from hubmap.inputs import Document
from hubmap.mapping.model import FormsTarget, Mapping
from hubmap.problems import HubmapError
from hubmap.serve.config import ServeConfig
from hubmap.serve.queue import DEAD, QUEUED, SENT, SKIPPED, Claimed, Outcome, Queue, process_owner
from hubmap.state import StateLockedError, StateStore
from hubmap.uses.contacts import SyncOptions
from hubmap.uses.context import connect, default_sandbox_db, portal_of, scope_of
from hubmap.uses.forms import too_old
from hubmap.uses.outcome import ConfigurationError
from hubmap.uses.run import sync_documents

log = logging.getLogger("hubmap.serve")

RECOVER_EVERY_SECONDS = 30.0  # how often jobs of vanished workers are looked for
PRUNE_EVERY_SECONDS = 3600.0
LOCKED_RETRY_SECONDS = 2.0  # another run holds the mapping's state: try again soon
REQUEST_MAX_WAIT_SECONDS = 20.0  # retries of one HubSpot call inside an attempt
RUN_WORKERS = 2  # parallel HubSpot calls inside one run (a batch is at most a few calls)


class ProvisionOnce:
    """Remembers what provisioning found per scope (properties, form, fences checked), so each
    batch of events does not list HubSpot's properties again; forgotten after a failed run."""

    def __init__(self) -> None:
        self.done: dict[str, Any] = {}


@dataclass
class _Work:
    """One mapping the worker serves."""

    mapping: Mapping
    compiled: CompiledMapping


class Worker:
    def __init__(self, config: ServeConfig, mappings: dict[str, Mapping], queue: Queue,
                 environ: dict[str, str], *, sandbox: bool = False):
        self.config = config
        self.queue = queue
        self.environ = dict(environ)
        self.sandbox = sandbox
        # each mapping compiled with its catalogs (read at start; read again when a file changes)
        self.work = {m.name: _Work(m, CompiledMapping(m, load_catalogs(m)))
                     for m in mappings.values()}
        self.owner = process_owner()
        self.gate = ProvisionOnce()
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self.batches = 0
        self.next_batch: dict[str, float] = {}  # mapping -> monotonic time it may batch again

    def wake(self) -> None:
        self.wake_event.set()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Work until `stop()`; the batch in hand is finished first."""
        forms = next((w.mapping for w in self.work.values()
                      if isinstance(w.mapping.target, FormsTarget)), None)
        sandbox_db = default_sandbox_db(self.config.state_path) if self.sandbox else None
        state = StateStore(self.config.state_path)
        try:
            with connect(self.environ, sandbox=self.sandbox, sandbox_db=sandbox_db,
                         mapping=forms) as conn:
                conn.client.retry = RetryPolicy(max_attempts=self.config.worker.hubspot_attempts,
                                                max_total_wait=REQUEST_MAX_WAIT_SECONDS)
                if conn.sandbox is not None:
                    log.info("embedded HubSpot stand-in at %s (data in %s)", conn.sandbox.url,
                             sandbox_db)
                self._loop(conn.client, state, conn.environ)
        finally:
            state.close()

    def _loop(self, client: Any, state: StateStore, environ: dict[str, str]) -> None:
        last_recover = last_prune = float("-inf")
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now - last_recover >= RECOVER_EVERY_SECONDS:
                recovered = self.queue.recover()
                if recovered:
                    log.info("%d event job(s) of a stopped worker queued again", recovered)
                last_recover = now
            if now - last_prune >= PRUNE_EVERY_SECONDS:
                self.queue.prune(self.config.worker.keep_days * 86_400)
                last_prune = now
            full = False
            for name, work in self.work.items():
                if self.stop_event.is_set():
                    break
                if time.monotonic() < self.next_batch.get(name, 0.0):
                    continue
                started = time.monotonic()
                handled = self.process(name, work, client, state, environ)
                if handled >= self.config.worker.batch_size:
                    full = True  # a backlog: the next batch goes at once
                elif handled:
                    self.next_batch[name] = started + self.config.worker.batch_every_seconds
            if not full:
                self.wake_event.wait(self._idle_wait())
                self.wake_event.clear()

    def _idle_wait(self) -> float:
        wait = self.config.worker.poll_seconds
        now, clock = time.time(), time.monotonic()
        for name in self.work:
            due = self.queue.next_due(name)
            if due is not None:
                ready = max(due - now, self.next_batch.get(name, 0.0) - clock)
                wait = min(wait, max(0.0, ready))
        return wait

    # -- one batch of one mapping --------------------------------------------------------------

    def process(self, name: str, work: _Work, client: Any, state: StateStore,
                environ: dict[str, str]) -> int:
        """Claim a batch of `name`'s due jobs, run the mapping over them, settle them."""
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
        documents: list[Document] = []
        evaluated: dict[int, list[Any]] = {}
        for job in claimed:
            try:
                data = json.loads(job.body, parse_float=Decimal)
            except (ValueError, UnicodeDecodeError) as bad:
                settled.append(Outcome(job.event_id, DEAD, f"the body is not JSON: {bad}"))
                continue
            document = Document(data, f"webhook event {job.event_id} ({job.route})")
            documents.append(document)
            evaluated[job.event_id] = list(work.compiled.outcomes(iter([document])))
        scope: str | None = None
        failures: dict[str, str] = {}
        error: str | None = None
        try:
            scope = scope_of(work.mapping, portal_of(client))
            summary = sync_documents(
                work.mapping, client, state, documents, environ=environ,
                input_name=f"webhooks ({len(documents)} event(s))",
                provisioned=self.gate.done, options=SyncOptions(workers=RUN_WORKERS),
                compiled=work.compiled)
            error = summary.stopped
            failures = dict(summary.failures)
        except StateLockedError as locked:
            log.info("%s: %s; trying again shortly", name, locked)
            retry_at = time.time() + LOCKED_RETRY_SECONDS
            self.queue.finish(name, [Outcome(job.event_id, QUEUED, str(locked), retry_at,
                                             failed=False) for job in claimed])
            return len(claimed)
        except (HubmapError, HubSpotError, HubSpotConfigError, ConfigurationError) as failure:
            error = str(failure)
        except Exception as failure:  # a worker must outlive any one batch
            log.exception("%s: the run failed", name)
            error = f"unexpected error: {failure!r}"
        if error and scope is not None:
            self.gate.done.pop(scope, None)
        for job in claimed:
            if job.event_id in evaluated:
                settled.append(self._settle(job, evaluated[job.event_id], work, state, scope,
                                            failures, error))
        self.queue.finish(name, settled)
        failed = [o for o in settled if o.status in (QUEUED, DEAD)]
        if failed:
            log.warning("%s: %d of %d event(s) not sent (%d dead); first reason: %s", name,
                        len(failed), len(settled), sum(o.status == DEAD for o in failed),
                        failed[0].detail)
        return len(claimed)

    def _settle(self, job: Claimed, results: list[Any], work: _Work, state: StateStore,
                scope: str | None, failures: dict[str, str], error: str | None) -> Outcome:
        rejected = [r for r in results if isinstance(r, Rejected)]
        if rejected:
            reasons = "; ".join(f"{r.record}: {r.reason}" for r in rejected)
            return Outcome(job.event_id, DEAD, f"rejected by the mapping: {reasons}")
        now = datetime.now(timezone.utc)
        forms = isinstance(work.mapping.target, FormsTarget)
        old = [r for r in results if forms and isinstance(r, OrderValues) and too_old(r.time, now)]
        orders = [r for r in results if (isinstance(r, OrderValues) and r not in old)
                  or (isinstance(r, Skipped) and r.order_id is not None
                      and (scope is None or state.orders(scope, [r.order_id])))]
        refunds = [r for r in results if isinstance(r, RefundValues)]
        if not orders and not refunds:
            reasons = "; ".join([r.reason for r in results if isinstance(r, Skipped)]
                                + [f"order {r.order_id} is older than a form submission may be "
                                   "(skipped: the contacts mapping carries history)" for r in old])
            return Outcome(job.event_id, SKIPPED, reasons or "no records in the body")
        if scope is None:  # the run could not start: nothing of this event is delivered
            waiting: list[Any] = orders + refunds
        else:
            waiting = [o for o in orders if not _delivered(o.order_id, work, state, scope)]
            waiting += [r for r in refunds if not _refund_delivered(r, state, scope)]
        if not waiting:
            return Outcome(job.event_id, SENT)
        reason = error or "; ".join(
            failures.get(w.order_id) or failures.get(getattr(w, "contact", "")) or
            _last_error(w.order_id, state, scope or "") for w in waiting)
        attempts = job.attempts + 1
        if attempts >= self.config.worker.max_attempts:
            return Outcome(job.event_id, DEAD, f"{attempts} attempt(s) failed; last: {reason}")
        return Outcome(job.event_id, QUEUED, reason,
                       time.time() + self.config.worker.retry_delay(attempts))


def _delivered(order_id: str, work: _Work, state: StateStore, scope: str) -> bool:
    """Whether the order (this version or a newer one) is stored and HubSpot confirmed it."""
    stored = state.orders(scope, [order_id]).get(order_id)
    if stored is None:
        return False
    if isinstance(work.mapping.target, FormsTarget):
        return stored.status == ledger.SENT
    if stored.contact is None:
        return True  # a withdrawn order never counted: nothing to write
    row = state.load_contacts(scope, [stored.contact]).get(stored.contact)
    return row is None or not row.dirty


def _refund_delivered(refund: RefundValues, state: StateStore, scope: str) -> bool:
    if refund.refund_id not in state.refunds(scope, [refund.refund_id]):
        return False
    stored = state.orders(scope, [refund.order_id]).get(refund.order_id)
    if stored is None or stored.contact is None:
        return True  # waiting for its order: it applies when the order comes
    row = state.load_contacts(scope, [stored.contact]).get(stored.contact)
    return row is None or not row.dirty


def _last_error(order_id: str, state: StateStore, scope: str) -> str:
    stored = state.orders(scope, [order_id]).get(order_id)
    if stored is not None and stored.contact is not None:
        row = state.load_contacts(scope, [stored.contact]).get(stored.contact)
        if row is not None and row.last_error:
            return str(row.last_error)
    return f"order {order_id}: HubSpot has not confirmed it yet"
