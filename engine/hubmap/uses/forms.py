"""A run's forms part: one submission per order, the first time one of its versions counts.

A submission is one purchase and a conversion in HubSpot, so an order is never submitted twice:
a later version (a refund, an edit) is counted in the summary (changed, stale, unchanged) and
remembered, not submitted again, and a withdrawn order cannot be taken back.  HubSpot has no
idempotency key for submissions: an answer lost in transit may be retried and recorded twice by
HubSpot (the contact's values are the same either way, as a form overwrites them).  A submission
HubSpot refused is kept with its record, for `hubmap replay`.

Each submission carries the order's time as `submittedAt`.  An order older than HubSpot accepts
for it (a month) is not submitted: sent without a time it would be recorded as today's
conversion, so it is skipped with its reason (the contacts mapping is what carries order history).

A hutk HubSpot calls invalid (`INVALID_HUTK`: the visitor cookie was not copied right) fails the
whole submission; the order is then submitted once more without it - the conversion still lands
on the contact, by email, only not tied to the visitor's page views - and the summary counts and
names those orders.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from hubmap import sync, versions
from hubmap.evaluate import OrderValues, Rejected, Skipped
from hubmap.fold import ContactFolder, encode_values
from hubmap.hubspot import HubSpotError
from hubmap.hubspot.errors import DailyLimitReached, HubSpotAuthError, HubSpotValidationError
from hubmap.ledger import COUNTED, SENT, StoredOrder
from hubmap.mapping.model import FormsTarget
from hubmap.plan import submission_fields
from hubmap.uses.contacts import explain
from hubmap.uses.context import resolve_env
from hubmap.uses.job import Job, JobPart

FORMS_MAX_BACKDATE = timedelta(days=29)  # HubSpot refuses a submittedAt over a month old
INVALID_HUTK = "INVALID_HUTK"
#: Why an order older than that is skipped.
TOO_OLD = (
    f"placed more than {FORMS_MAX_BACKDATE.days} days ago: HubSpot refuses a form "
    "submission dated more than a month back, and one sent without its date would count "
    "as today's conversion; send past orders with a contacts mapping (kind: contacts, "
    "such as mappings/shopify-orders-contacts.yaml), which keeps the order history"
)


def too_old(order_time: datetime, now: datetime) -> bool:
    """Whether HubSpot would refuse the order's time as `submittedAt` (a backfill)."""
    return now - order_time > FORMS_MAX_BACKDATE


def only_invalid_hutk(error: HubSpotError) -> bool:
    """Whether HubSpot refused the submission for its hutk alone (then it is sent again
    without it; with other errors too, a second try would fail anyway)."""
    codes = {detail.code for detail in error.errors}
    return isinstance(error, HubSpotValidationError) and codes == {INVALID_HUTK}


class FormsSync(JobPart):
    def __init__(self, job: Job, workers: int, environ: dict[str, str], now: datetime):
        super().__init__(job)
        target = self.mapping.target
        assert isinstance(target, FormsTarget)
        self.target = target
        self.workers = workers
        self.environ = environ
        self.now = now

    def run(self, outcomes: Iterable[Any]) -> None:
        portal = resolve_env(self.target.portal_id, self.environ)
        guid = resolve_env(self.target.form_guid, self.environ)
        consent = _consent(self.target)
        self.summary.forms = True
        self.progress.phase("submitting forms", None)
        seen: dict[str, StoredOrder | None] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            futures = []
            for outcome in outcomes:
                self.summary.records += 1
                if isinstance(outcome, Rejected):
                    self.summary.rejected += 1
                    self.rejects.rejected([outcome])
                    continue
                if not isinstance(outcome, (OrderValues, Skipped)):
                    continue
                if outcome.order_id is None:
                    self.summary.orders.skipped += 1
                    continue
                if outcome.order_id not in seen:
                    with self.lock:
                        seen[outcome.order_id] = self.state.orders(
                            self.scope, [outcome.order_id]
                        ).get(outcome.order_id)
                before = seen[outcome.order_id]
                view = (
                    None
                    if before is None
                    else versions.Stored(COUNTED, before.version, before.digest, before.contact)
                )
                digest = sync.order_digest(outcome) if isinstance(outcome, OrderValues) else None
                arrival = versions.Arrival(outcome.version, digest)
                result = versions.classify(view, arrival, self.versioned)
                tally = self.summary.orders
                if result == versions.NEW and too_old(outcome.time, self.now):
                    # not stored: never submitted (a later copy is judged by its time again)
                    tally.skipped += 1
                    self.summary.skipped_orders.append((outcome.order_id, TOO_OLD))
                    continue
                setattr(tally, result, getattr(tally, result) + 1)
                if result == versions.NEW:
                    assert isinstance(outcome, OrderValues)
                    seen[outcome.order_id] = self._stored(outcome, digest)
                    futures.append(pool.submit(self._submit, outcome, portal, guid, consent))
                elif (
                    result == versions.CHANGED
                    and before is not None
                    and isinstance(outcome, OrderValues)
                ):
                    # remembered (not submitted again), so older copies are known as stale
                    seen[outcome.order_id] = self._stored(outcome, digest, before.first_seq)
                    with self.lock:
                        self.state.put_orders(self.scope, self.run_id, [seen[outcome.order_id]])
                elif result == versions.WITHDRAWN and before is not None:
                    self.summary.failures.append(
                        (
                            outcome.order_id,
                            "withdrawn after its form "
                            "was submitted: a submission cannot be taken "
                            "back",
                        )
                    )
            for future in futures:
                future.result()
        self.progress.done()

    def _stored(self, order: OrderValues, digest: str | None, first_seq: int = 0) -> StoredOrder:
        return StoredOrder(
            order.order_id,
            SENT,
            order.contact,
            order.time.isoformat(),
            order.version,
            digest,
            encode_values(order.values),
            first_seq=first_seq,
        )

    def _submit(
        self, order: OrderValues, portal: str, guid: str, consent: dict[str, Any] | None
    ) -> None:
        fields = submission_fields(self.compiled, ContactFolder(self.compiled), order)
        context = dict(order.context)
        without_hutk = False
        try:
            try:
                self._send(portal, guid, fields, context, order, consent)
            except HubSpotValidationError as refused:
                if not (context.get("hutk") and only_invalid_hutk(refused)):
                    raise
                del context["hutk"]
                self._send(portal, guid, fields, context, order, consent)
                without_hutk = True
        except (DailyLimitReached, HubSpotAuthError):
            raise
        except HubSpotError as error:
            reason = explain(self.mapping, error)
            with self.lock:
                self.summary.submissions_failed += 1
                self.summary.failures.append((order.order_id, reason))
            self.rejects.add(
                [
                    {
                        "where": order.where,
                        "order_id": order.order_id,
                        "kind": "failed",
                        "reason": reason,
                        "code": "HM607",
                        "record": order.raw,
                    }
                ]
            )
            return
        with self.lock:
            digest = sync.order_digest(order)
            self.state.put_orders(self.scope, self.run_id, [self._stored(order, digest)])
            self.summary.submissions += 1
            if without_hutk:
                self.summary.submissions_without_hutk += 1
                self.summary.hutk_refused.append(order.order_id)
        self.progress.advance()

    def _send(
        self,
        portal: str,
        guid: str,
        fields: dict[str, str],
        context: dict[str, str],
        order: OrderValues,
        consent: dict[str, Any] | None,
    ) -> None:
        self.client.submit_form(
            portal, guid, fields, context=context, submitted_at=order.time, legal_consent=consent
        )


def _consent(target: FormsTarget) -> dict[str, Any] | None:
    consent = target.legal_consent
    if consent is None:
        return None
    return {
        "consent": {
            "consentToProcess": consent.consent_to_process,
            "text": consent.text,
            "communications": [
                {
                    "value": c["value"],
                    "subscriptionTypeId": c["subscription_type_id"],
                    "text": c["text"],
                }
                for c in consent.communications
            ],
        }
    }
