"""The HubSpot client: the API calls hubmap makes, over a transport, a rate limiter and retries.

Each call returns plain data (dicts, lists, small frozen dataclasses) and raises a `HubSpotError`
subclass when HubSpot refuses. Batch calls never raise for one bad item: a 207 (or a batch that
HubSpot rejected whole, which the client splits until the bad inputs are isolated) comes back as
per-input `ItemError`s keyed like the inputs. One client is shared by all threads of a run; its
counters (`stats()`) feed the run summary and the benchmarks, its ``on_request`` hook (and the
``hubmap.hubspot`` logger at DEBUG) sees (method, path, status, elapsed) for every attempt — never
the token, never a body.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Self, TypeVar
from urllib.parse import quote

from hubmap.hubspot.config import HubSpotSettings
from hubmap.hubspot.errors import (
    ErrorDetail,
    HubSpotAuthError,
    HubSpotConfigError,
    HubSpotConflict,
    HubSpotConnectionError,
    HubSpotError,
    HubSpotNotFound,
    HubSpotRejected,
    HubSpotTimeout,
    error_from_body,
    parse_error_detail,
)
from hubmap.hubspot.ratelimit import RateLimiter
from hubmap.hubspot.retry import Outcome, RetryPolicy, classify, parse_retry_after
from hubmap.hubspot.transport import RequestsTransport, Response, Transport, _path

logger = logging.getLogger("hubmap.hubspot")

BATCH_LIMIT = 100  # inputs per CRM batch request (HubSpot's documented limit)
FORM_FIELDS_LIMIT = 1000  # fields per form submission
# HubSpot's unauthenticated form-submission endpoint allows 50 requests per 10 s.
UNAUTHENTICATED_FORMS_MAX = 50
UNAUTHENTICATED_FORMS_INTERVAL = 10.0
CONTACT_OBJECT_TYPE_ID = "0-1"

T = TypeVar("T")


# --------------------------------------------------------------------------- plain results


@dataclass(frozen=True)
class RequestRecord:
    """One attempt, for ``--verbose``: no token, no body, no query string."""

    method: str
    path: str
    status: int | None  # None: no answer (timeout, dropped connection)
    elapsed: float
    attempt: int
    error: str = ""

    def __str__(self) -> str:
        status = self.status if self.status is not None else self.error or "no answer"
        retry = f" (attempt {self.attempt})" if self.attempt > 1 else ""
        return f"{self.method} {self.path} -> {status} in {self.elapsed * 1000:.0f} ms{retry}"


@dataclass(frozen=True)
class ClientStats:
    """Counters for the run summary and benchmarks (summed over all threads)."""

    calls: int  # HTTP attempts made, retries included
    rate_limited: int  # 429 answers received
    retries: int  # attempts that were retries
    limiter_wait_seconds: float  # time threads spent waiting for the rate limiter
    retry_wait_seconds: float  # time spent sleeping in backoff (5xx, network, secondly 429)
    server_errors: int  # 5xx answers received
    transport_errors: int  # attempts without an answer
    daily_remaining: int | None  # from X-HubSpot-RateLimit-Daily-Remaining, if sent

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "rate_limited": self.rate_limited,
            "retries": self.retries,
            "limiter_wait_seconds": round(self.limiter_wait_seconds, 3),
            "retry_wait_seconds": round(self.retry_wait_seconds, 3),
            "server_errors": self.server_errors,
            "transport_errors": self.transport_errors,
            "daily_remaining": self.daily_remaining,
        }


@dataclass(frozen=True)
class ItemError:
    """Why one batch input (a contact key, a property name) was not written."""

    key: str
    message: str
    status: int | None = None
    category: str = ""
    code: str = ""
    correlation_id: str = ""
    details: tuple[ErrorDetail, ...] = ()

    @property
    def property_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for detail in self.details:
            if detail.property_name:
                seen.setdefault(detail.property_name, None)
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "message": self.message,
            "status": self.status,
            "category": self.category,
            "code": self.code,
            "correlation_id": self.correlation_id,
            "property_names": self.property_names,
            "details": [d.to_dict() for d in self.details],
        }


@dataclass(frozen=True)
class BatchReadResult:
    """Contacts found (keyed by the normalised id: email lower-cased) and the ids not found."""

    found: dict[str, dict[str, Any]]
    not_found: list[str]
    id_property: str | None = "email"
    unmatched: list[dict[str, Any]] = field(default_factory=list)  # results we could not key

    def get(self, key: str) -> dict[str, Any] | None:
        return self.found.get(normalize_key(key, self.id_property))


@dataclass(frozen=True)
class UpsertedContact:
    key: str  # the input's key as given
    id: str  # HubSpot's record id
    new: bool  # created (True) or updated (False)
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchUpsertResult:
    """Per input: either a result or an error, both keyed by the normalised input key."""

    results: dict[str, UpsertedContact]
    errors: dict[str, ItemError]
    id_property: str = "email"

    def result_for(self, key: str) -> UpsertedContact | None:
        return self.results.get(normalize_key(key, self.id_property))

    def error_for(self, key: str) -> ItemError | None:
        return self.errors.get(normalize_key(key, self.id_property))


@dataclass(frozen=True)
class PropertyBatchResult:
    created: list[dict[str, Any]]
    errors: dict[str, ItemError]  # by property name


class DuplicateKeyError(ValueError):
    """The same key appears twice, with different values, in one batch (HubSpot rejects it)."""

    def __init__(self, keys: Sequence[str]):
        self.keys = list(keys)
        shown = ", ".join(self.keys[:5]) + (" …" if len(self.keys) > 5 else "")
        super().__init__(
            f"{len(self.keys)} key(s) appear more than once with different properties: {shown}; "
            "fold each contact's records into one input before sending"
        )


def normalize_key(key: str, id_property: str | None) -> str:
    """Emails compare case-insensitively in HubSpot; other ids compare exactly (both in Unicode
    NFC, the form hubmap's own keys are in)."""
    text = unicodedata.normalize("NFC", str(key)).strip()
    return text.lower() if id_property == "email" else text


def chunked(items: Sequence[T], size: int = BATCH_LIMIT) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# --------------------------------------------------------------------------- counters


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.rate_limited = 0
        self.retries = 0
        self.limiter_wait = 0.0
        self.retry_wait = 0.0
        self.server_errors = 0
        self.transport_errors = 0

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)


# --------------------------------------------------------------------------- the client


class HubSpotClient:
    """The HubSpot calls hubmap needs. Thread-safe; share one per run."""

    def __init__(
        self,
        settings: HubSpotSettings,
        transport: Transport | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        *,
        forms_limiter: RateLimiter | None = None,
        on_request: Callable[[RequestRecord], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._transport = transport or RequestsTransport(pool_size=settings.pool_size)
        self.limiter = limiter or RateLimiter(
            max_requests=settings.rate_limit_max,
            interval=settings.rate_limit_interval_ms / 1000,
        )
        self.forms_limiter = forms_limiter or RateLimiter(
            max_requests=UNAUTHENTICATED_FORMS_MAX,
            interval=UNAUTHENTICATED_FORMS_INTERVAL,
            learn_from_headers=False,
        )
        self.retry = retry or RetryPolicy()
        self._on_request = on_request
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._counters = _Counters()
        self._account: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return (
            f"HubSpotClient(api_base={self._settings.api_base!r}, "
            f"api_version={self._settings.api_version!r})"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    @property
    def settings(self) -> HubSpotSettings:
        return self._settings

    def stats(self) -> ClientStats:
        c = self._counters
        with c._lock:
            return ClientStats(
                calls=c.calls,
                rate_limited=c.rate_limited,
                retries=c.retries,
                limiter_wait_seconds=c.limiter_wait,
                retry_wait_seconds=c.retry_wait,
                server_errors=c.server_errors,
                transport_errors=c.transport_errors,
                daily_remaining=self.limiter.daily_remaining,
            )

    # ------------------------------------------------------------------ the portal

    def account_details(self) -> dict[str, Any]:
        """The portal the token belongs to (``GET /account-info/v3/details``: ``portalId``,
        time zone, currency), read once per client."""
        if self._account is None:
            self._account = self._api("GET", "/account-info/v3/details")
        return self._account

    # ------------------------------------------------------------------ properties

    def list_properties(
        self, object_type: str = "contacts", *, archived: bool = False
    ) -> list[dict[str, Any]]:
        """Every property definition of the object type (``GET …/properties/{objectType}``)."""
        data = self._api(
            "GET", self._settings.properties_path(object_type), params=_archived(archived)
        )
        return list(data.get("results", []))

    def get_property(self, object_type: str, name: str) -> dict[str, Any] | None:
        """One property definition, or None when it does not exist."""
        try:
            return self._api("GET", f"{self._settings.properties_path(object_type)}/{_seg(name)}")
        except HubSpotNotFound:
            return None

    def create_property(self, object_type: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Create one property (409 `HubSpotConflict` if the name is taken)."""
        return self._api("POST", self._settings.properties_path(object_type), json=dict(definition))

    def create_properties_batch(
        self, object_type: str, definitions: Sequence[Mapping[str, Any]]
    ) -> PropertyBatchResult:
        """Create properties, ≤ 100 per call; per-property errors instead of one failure.

        A 207 maps its errors to the properties they name; a chunk rejected whole (400/409) is
        split until the offending definitions are isolated, so the valid ones are still created.
        """
        names = [str(d.get("name", "")) for d in definitions]
        dupes = _duplicates(names)
        if dupes:
            raise DuplicateKeyError(dupes)
        path = f"{self._settings.properties_path(object_type)}/batch/create"
        created: list[dict[str, Any]] = []
        errors: dict[str, ItemError] = {}
        keyed = [(n, dict(d)) for n, d in zip(names, definitions)]
        for chunk in chunked(keyed):
            ok, failed = self._batch_isolating(
                path,
                chunk,
                body=lambda part: {"inputs": [d for _, d in part]},
                key_of_result=lambda r: str(r.get("name", "")),
                id_property=None,
            )
            created.extend(ok.values())
            errors.update(failed)
        return PropertyBatchResult(created=created, errors=errors)

    def update_property(
        self, object_type: str, name: str, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PATCH a property definition (e.g. ``{"options": [...]}`` to add enumeration options).

        Note HubSpot replaces the whole ``options`` list: send the old options plus the new ones.
        """
        path = f"{self._settings.properties_path(object_type)}/{_seg(name)}"
        return self._api("PATCH", path, json=dict(changes))

    def list_groups(self, object_type: str = "contacts") -> list[dict[str, Any]]:
        data = self._api("GET", f"{self._settings.properties_path(object_type)}/groups")
        return list(data.get("results", []))

    def create_group(
        self, object_type: str, name: str, label: str | None = None, *, display_order: int = -1
    ) -> bool:
        """Create a property group; True if created, False if it existed already (409)."""
        body = {"name": name, "label": label or name, "displayOrder": display_order}
        try:
            self._api("POST", f"{self._settings.properties_path(object_type)}/groups", json=body)
        except HubSpotConflict:
            return False
        return True

    # ------------------------------------------------------------------ contacts

    def get_contact(
        self,
        id_or_email: str,
        id_property: str | None = None,
        properties: Iterable[str] = (),
    ) -> dict[str, Any] | None:
        """One contact by record id, or by a unique property (``email`` is assumed for an
        ``@``-address when ``id_property`` is not given); None when there is no such contact."""
        if id_property is None and "@" in id_or_email:
            id_property = "email"
        params: dict[str, str] = {}
        props = list(properties)
        if props:
            params["properties"] = ",".join(props)
        if id_property:
            params["idProperty"] = id_property
        path = f"{self._settings.objects_path('contacts')}/{_seg(id_or_email)}"
        try:
            return self._api("GET", path, params=params or None)
        except HubSpotNotFound:
            return None

    def batch_read_contacts(
        self,
        ids: Iterable[str],
        id_property: str | None = "email",
        properties: Iterable[str] = (),
    ) -> BatchReadResult:
        """Read contacts by email (or another unique property; None: record ids), 100 per call.

        Returns found contacts keyed by the normalised id and the ids HubSpot does not know
        (a 207 whose errors are OBJECT_NOT_FOUND is an answer, not a failure).
        """
        wanted: dict[str, str] = {}
        for raw in ids:
            wanted.setdefault(normalize_key(raw, id_property), str(raw).strip())
        identity = [id_property] if id_property else []
        if id_property == "email":
            identity += [ADDITIONAL_EMAILS, MERGED_IDS]
        elif not id_property or id_property == "hs_object_id":
            identity += [MERGED_IDS]
        props = list(dict.fromkeys([*properties, *identity]))
        path = f"{self._settings.objects_path('contacts')}/batch/read"
        found: dict[str, dict[str, Any]] = {}
        not_found: list[str] = []
        unmatched: list[dict[str, Any]] = []
        for chunk in chunked(list(wanted.items())):
            body: dict[str, Any] = {
                "inputs": [{"id": given} for _, given in chunk],
                "properties": props,
                "propertiesWithHistory": [],
            }
            if id_property and id_property != "hs_object_id":
                body["idProperty"] = id_property
            chunk_keys = {norm for norm, _ in chunk}
            try:
                data = self._api("POST", path, json=body, params={"archived": "false"})
            except HubSpotNotFound as exc:  # a batch where nothing exists may come back as 404
                named = _named_keys(exc.errors, chunk_keys, id_property)
                missing = named or chunk_keys
                not_found.extend(given for norm, given in chunk if norm in missing)
                continue
            chunk_found: dict[str, dict[str, Any]] = {}
            for obj in data.get("results", []):
                keys = {_object_key(obj, id_property)} & chunk_keys
                if id_property == "email":  # a record found through a secondary address
                    keys |= _additional_emails(obj) & chunk_keys
                elif not id_property or id_property == "hs_object_id":  # a merged record's id
                    keys |= _merged_ids(obj) & chunk_keys
                for key in keys:
                    chunk_found[key] = obj
                if not keys:
                    unmatched.append(obj)
            missing = set()
            for item in data.get("errors", []):
                if not isinstance(item, Mapping):
                    continue
                detail = parse_error_detail(item)
                missing |= _named_keys([detail], chunk_keys, id_property)
            found.update(chunk_found)
            not_found.extend(
                given for norm, given in chunk if norm in missing and norm not in chunk_found
            )
        return BatchReadResult(
            found=found, not_found=not_found, id_property=id_property, unmatched=unmatched
        )

    def batch_upsert_contacts(
        self,
        inputs: Mapping[str, Mapping[str, str]] | Sequence[Mapping[str, Any]],
        id_property: str = "email",
    ) -> BatchUpsertResult:
        """Create-or-update contacts keyed by ``id_property``, 100 per call.

        ``inputs``: ``{key: {property: value}}`` or ``[{"id": key, "properties": {...}}]``; values
        must be strings (HubSpot's wire format). Keys are de-duplicated before chunking (HubSpot
        rejects a batch that repeats a key): exact repeats are sent once; the same key with
        different properties raises `DuplicateKeyError` — the caller folds records first.

        Returns, per input key (normalised), an `UpsertedContact` (id, new) or an `ItemError`.
        A 207's per-item errors are mapped to the inputs they name; a chunk HubSpot rejected
        whole (400/409) is split and re-sent until the offending inputs are isolated (safe: the
        values are absolute). Auth errors, exhausted retries and the daily limit still raise.
        """
        pairs = _upsert_pairs(inputs)
        unique: dict[str, tuple[str, dict[str, str]]] = {}
        conflicting: list[str] = []
        for key, props in pairs:
            norm = normalize_key(key, id_property)
            for name, value in props.items():
                if not isinstance(value, str):
                    raise TypeError(
                        f"property {name!r} of {key!r} is {type(value).__name__}, not str: "
                        "HubSpot takes every value as a string"
                    )
            if norm in unique:
                if unique[norm][1] != props:
                    conflicting.append(key)
                continue
            unique[norm] = (key, dict(props))
        if conflicting:
            raise DuplicateKeyError(conflicting)
        path = f"{self._settings.objects_path('contacts')}/batch/upsert"
        results: dict[str, UpsertedContact] = {}
        errors: dict[str, ItemError] = {}

        def body(part: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
            return {
                "inputs": [
                    {"idProperty": id_property, "id": item["key"], "properties": item["properties"]}
                    for _, item in part
                ]
            }

        keyed = [(norm, {"key": key, "properties": props}) for norm, (key, props) in unique.items()]
        for chunk in chunked(keyed):
            ok, failed = self._batch_isolating(
                path,
                chunk,
                body=body,
                key_of_result=lambda r: _object_key(r, id_property),
                id_property=id_property,
            )
            for norm, obj in ok.items():
                results[norm] = UpsertedContact(
                    key=unique[norm][0],
                    id=str(obj.get("id", "")),
                    new=bool(obj.get("new", False)),
                    properties=dict(obj.get("properties") or {}),
                )
            for norm, err in failed.items():
                errors[norm] = ItemError(
                    key=unique[norm][0],
                    message=err.message,
                    status=err.status,
                    category=err.category,
                    code=err.code,
                    correlation_id=err.correlation_id,
                    details=err.details,
                )
        return BatchUpsertResult(results=results, errors=errors, id_property=id_property)

    def batch_update_contacts(self, inputs: Mapping[str, Mapping[str, str]]) -> BatchUpsertResult:
        """Update contacts by HubSpot record id (``{record id: {property: value}}``), 100 per
        call: for a contact whose email (or match key) changed in HubSpot, or that a merge made
        one record with another.  Results and errors are keyed by record id."""
        for key, props in inputs.items():
            for name, value in props.items():
                if not isinstance(value, str):
                    raise TypeError(
                        f"property {name!r} of {key!r} is {type(value).__name__}, "
                        "not str: HubSpot takes every value as a string"
                    )
        path = f"{self._settings.objects_path('contacts')}/batch/update"
        results: dict[str, UpsertedContact] = {}
        errors: dict[str, ItemError] = {}
        keyed = [
            (str(key), {"id": str(key), "properties": dict(props)}) for key, props in inputs.items()
        ]
        for chunk in chunked(keyed):
            ok, failed = self._batch_isolating(
                path,
                chunk,
                body=lambda part: {"inputs": [item for _, item in part]},
                key_of_result=lambda r: str(r.get("id", "")),
                id_property=None,
            )
            for key, obj in ok.items():
                results[key] = UpsertedContact(
                    key=key,
                    id=str(obj.get("id", key)),
                    new=False,
                    properties=dict(obj.get("properties") or {}),
                )
            for key, err in failed.items():
                errors[key] = ItemError(
                    key=key,
                    message=err.message,
                    status=err.status,
                    category=err.category,
                    code=err.code,
                    correlation_id=err.correlation_id,
                    details=err.details,
                )
        return BatchUpsertResult(results=results, errors=errors, id_property="hs_object_id")

    # ------------------------------------------------------------------ forms

    def get_form(self, form_guid: str) -> dict[str, Any]:
        """The form definition (``GET /marketing/v3/forms/{formId}``) to validate a mapping."""
        return self._api("GET", f"/marketing/v3/forms/{_seg(form_guid)}")

    def submit_form(
        self,
        portal_id: str | int | None,
        form_guid: str,
        fields: Mapping[str, str] | Sequence[Mapping[str, str]],
        context: Mapping[str, Any] | None = None,
        submitted_at: datetime | int | None = None,
        legal_consent: Mapping[str, Any] | None = None,
        secure: bool = True,
    ) -> dict[str, Any]:
        """Submit one form (Forms API v3) on the forms base.

        ``fields``: ``{name: value}`` (contact properties) or ``[{"objectTypeId", "name",
        "value"}]``; ``context``: ``hutk`` (the hubspotutk cookie, only if really captured),
        ``pageUri``, ``pageName``, ``ipAddress``; ``submitted_at``: an aware datetime or epoch ms;
        ``legal_consent``: the ``legalConsentOptions`` object. ``secure`` uses the authenticated
        endpoint (Bearer token, scope ``forms``); otherwise the public one (50 per 10 s).
        Returns HubSpot's answer (``inlineMessage`` or ``redirectUri``).
        """
        portal = str(portal_id or self._settings.portal_id or "").strip()
        if not portal:
            raise HubSpotConfigError(
                "no HubSpot portal id for the form submission: set HUBSPOT_PORTAL_ID"
            )
        field_list = _form_fields(fields)
        if len(field_list) > FORM_FIELDS_LIMIT:
            raise ValueError(
                f"{len(field_list)} form fields; HubSpot accepts at most {FORM_FIELDS_LIMIT}"
            )
        body: dict[str, Any] = {"fields": field_list}
        if submitted_at is not None:
            body["submittedAt"] = str(_epoch_ms(submitted_at))
        if context:
            body["context"] = {k: v for k, v in context.items() if v not in (None, "")}
        if legal_consent:
            body["legalConsentOptions"] = dict(legal_consent)
        kind = "secure/submit" if secure else "submit"
        url = (
            f"{self._settings.forms_base}/submissions/v3/integration/{kind}/"
            f"{_seg(portal)}/{_seg(form_guid)}"
        )
        limiter = self.limiter if secure else self.forms_limiter
        response = self._send("POST", url, json=body, auth=secure, limiter=limiter)
        data = response.json()
        return data if isinstance(data, dict) else {}

    # ------------------------------------------------------------------ plumbing

    def _api(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A JSON object from the API base ({} for an empty or non-object body)."""
        response = self._send(method, self._settings.api_base + path, json=json, params=params)
        data = response.json()
        return data if isinstance(data, dict) else {}

    def _redact(self, text: str) -> str:
        token = self._settings.access_token
        return text.replace(token, "***") if token and token in text else text

    def _record(self, record: RequestRecord) -> None:
        logger.debug("%s", record)
        if self._on_request is not None:
            self._on_request(record)

    def _send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        limiter: RateLimiter | None = None,
    ) -> Response:
        """One logical request: rate-limited attempts until success, a final error, or give-up."""
        limiter = limiter or self.limiter
        path = _path(url)
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._settings.access_token}"
        policy = self.retry
        attempt = 0
        waited = 0.0  # backoff and rate-limit waits of this request, against max_total_wait
        while True:
            attempt += 1
            self._counters.add(limiter_wait=limiter.acquire())
            started = time.monotonic()
            try:
                response = self._transport.send(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=self._settings.timeout,
                )
            except (HubSpotTimeout, HubSpotConnectionError) as exc:
                limiter.release(None)
                elapsed = time.monotonic() - started
                self._counters.add(calls=1, transport_errors=1)
                self._record(
                    RequestRecord(method, path, None, elapsed, attempt, type(exc).__name__)
                )
                wait = policy.backoff(attempt, self._rng)
                if policy.retries(Outcome.TRANSPORT_ERROR) and policy.allows(attempt, waited, wait):
                    waited += wait
                    self._backoff(wait)
                    continue
                exc.attempts = attempt
                exc.message = self._redact(exc.message)
                raise
            except BaseException:
                limiter.release(None)
                raise
            limiter.release(response.headers)
            self._counters.add(calls=1)
            self._record(RequestRecord(method, path, response.status, response.elapsed, attempt))
            if response.status < 300:
                return response

            data = response.json()
            body = data if data is not None else response.text
            policy_name = str(data.get("policyName") or "") if isinstance(data, Mapping) else ""
            message = str(data.get("message") or "") if isinstance(data, Mapping) else ""
            outcome = classify(response.status, policy_name, message)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))

            if outcome in (Outcome.RATE_LIMITED, Outcome.SECONDLY_LIMITED, Outcome.DAILY_LIMITED):
                self._counters.add(rate_limited=1)
            if outcome is Outcome.SERVER_ERROR:
                self._counters.add(server_errors=1)
            if not policy.retries(outcome):
                raise self._failure(response.status, body, method, path, attempt)

            if outcome is Outcome.RATE_LIMITED:
                # Close the limiter for every thread until HubSpot's window has room again;
                # the next acquire() does the waiting (counted as limiter wait).
                wait = limiter.penalize(retry_after)
                if not policy.allows(attempt, waited, wait):
                    raise self._failure(response.status, body, method, path, attempt)
                waited += wait
                self._counters.add(retries=1)
                continue
            if outcome is Outcome.SECONDLY_LIMITED:
                wait = retry_after if retry_after is not None else policy.secondly_wait
            else:  # server error
                wait = (
                    retry_after if retry_after is not None else policy.backoff(attempt, self._rng)
                )
            if not policy.allows(attempt, waited, wait):
                raise self._failure(response.status, body, method, path, attempt)
            waited += wait
            self._backoff(wait)

    def _failure(
        self, status: int, body: Any, method: str, path: str, attempts: int
    ) -> HubSpotError:
        return error_from_body(
            status, body, method=method, path=path, attempts=attempts, redact=self._redact
        )

    def _backoff(self, wait: float) -> None:
        self._counters.add(retries=1, retry_wait=wait)
        if wait > 0:
            self._sleep(wait)

    def _batch_isolating(
        self,
        path: str,
        chunk: list[tuple[str, Any]],
        *,
        body: Callable[[list[tuple[str, Any]]], dict[str, Any]],
        key_of_result: Callable[[Mapping[str, Any]], str],
        id_property: str | None,
    ) -> tuple[dict[str, dict[str, Any]], dict[str, ItemError]]:
        """POST one batch; map results and per-item errors back to the chunk's keys.

        A chunk rejected whole with a 4xx (not auth) is split in halves and re-sent until each
        rejected input stands alone; inputs the error names explicitly are failed at once.
        """
        keys = [k for k, _ in chunk]
        key_set = set(keys)
        try:
            data = self._api("POST", path, json=body(chunk))
        except HubSpotRejected as exc:
            if isinstance(exc, HubSpotAuthError):
                raise
            err = _item_error("", exc)
            named = _named_keys(exc.errors, key_set, id_property)
            if len(chunk) == 1:
                return {}, {keys[0]: _rekey(err, keys[0])}
            if named:
                failed = {k: _rekey(err, k) for k in keys if k in named}
                rest = [item for item in chunk if item[0] not in named]
                if not rest:
                    return {}, failed
                ok, more = self._batch_isolating(
                    path, rest, body=body, key_of_result=key_of_result, id_property=id_property
                )
                return ok, {**failed, **more}
            half = len(chunk) // 2
            ok1, bad1 = self._batch_isolating(
                path, chunk[:half], body=body, key_of_result=key_of_result, id_property=id_property
            )
            ok2, bad2 = self._batch_isolating(
                path, chunk[half:], body=body, key_of_result=key_of_result, id_property=id_property
            )
            return {**ok1, **ok2}, {**bad1, **bad2}

        written: dict[str, dict[str, Any]] = {}
        stray: list[dict[str, Any]] = []
        for obj in data.get("results", []):
            key = (
                normalize_key(key_of_result(obj), id_property)
                if id_property
                else key_of_result(obj)
            )
            if key in key_set and key not in written:
                written[key] = obj
            else:
                stray.append(obj)
        refused: dict[str, ItemError] = {}
        unmapped: list[ErrorDetail] = []
        for item in data.get("errors", []):
            if not isinstance(item, Mapping):
                continue
            detail = parse_error_detail(item)
            named = _named_keys([detail], key_set, id_property) - set(written)
            if not named:
                unmapped.append(detail)
            for key in named:
                refused[key] = ItemError(
                    key=key,
                    message=self._redact(detail.message),
                    status=_int(item.get("status")),
                    category=detail.category,
                    code=detail.code,
                    correlation_id=str(data.get("correlationId") or ""),
                    details=(detail,),
                )
        leftover = [k for k in keys if k not in written and k not in refused]
        if leftover and len(stray) == len(leftover) and not unmapped:
            # The results do not echo their keys (e.g. a property we did not ask back) and
            # nothing else is unaccounted for: pair them with the inputs in input order.
            written.update(zip(leftover, stray))
            leftover = []
        for key in leftover:
            refused[key] = ItemError(
                key=key,
                message=(
                    "; ".join(self._redact(d.message) for d in unmapped)
                    or "HubSpot's batch answer did not mention this input"
                ),
                details=tuple(unmapped),
            )
        return written, refused


# --------------------------------------------------------------------------- helpers


def _seg(value: str) -> str:
    """A URL path segment (emails carry '@' and '+')."""
    return quote(str(value), safe="")


def _archived(archived: bool) -> dict[str, str]:
    return {"archived": "true" if archived else "false"}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _duplicates(keys: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dupes: list[str] = []
    for key in keys:
        if key in seen and key not in dupes:
            dupes.append(key)
        seen.add(key)
    return dupes


def _named_keys(
    details: Iterable[ErrorDetail], keys: set[str], id_property: str | None
) -> set[str]:
    """The chunk keys an error names: in its context ids, its property name, or any context value."""
    named: set[str] = set()
    for detail in details:
        candidates: list[str] = [*detail.ids]
        if detail.property_name:
            candidates.append(detail.property_name)
        for value in detail.context.values():
            values = value if isinstance(value, (list, tuple)) else [value]
            candidates.extend(str(v) for v in values if isinstance(v, (str, int)))
        for candidate in candidates:
            norm = normalize_key(candidate, id_property) if id_property else candidate
            if norm in keys:
                named.add(norm)
    return named


ADDITIONAL_EMAILS = "hs_additional_emails"  # a contact's other addresses, ';'-separated
MERGED_IDS = "hs_merged_object_ids"  # the records merged into this one, ';'-separated


def _additional_emails(obj: Mapping[str, Any]) -> set[str]:
    text = str((obj.get("properties") or {}).get(ADDITIONAL_EMAILS) or "")
    return {normalize_key(e, "email") for e in text.split(";") if e.strip()}


def _merged_ids(obj: Mapping[str, Any]) -> set[str]:
    text = str((obj.get("properties") or {}).get(MERGED_IDS) or "")
    return {i.strip() for i in text.split(";") if i.strip()}


def _object_key(obj: Mapping[str, Any], id_property: str | None) -> str:
    if not id_property or id_property == "hs_object_id":
        return str(obj.get("id", ""))
    props = obj.get("properties") or {}
    return normalize_key(str(props.get(id_property) or ""), id_property)


def _item_error(key: str, exc: HubSpotError) -> ItemError:
    return ItemError(
        key=key,
        message=exc.message,
        status=exc.status,
        category=exc.category,
        code=exc.errors[0].code if exc.errors else "",
        correlation_id=exc.correlation_id,
        details=tuple(exc.errors),
    )


def _rekey(err: ItemError, key: str) -> ItemError:
    return ItemError(
        key=key,
        message=err.message,
        status=err.status,
        category=err.category,
        code=err.code,
        correlation_id=err.correlation_id,
        details=err.details,
    )


def _upsert_pairs(
    inputs: Mapping[str, Mapping[str, str]] | Sequence[Mapping[str, Any]],
) -> list[tuple[str, dict[str, str]]]:
    if isinstance(inputs, Mapping):
        return [(str(k), dict(v)) for k, v in inputs.items()]
    pairs = []
    for item in inputs:
        if "id" not in item:
            raise ValueError(f"batch upsert input without an 'id': {sorted(item)}")
        pairs.append((str(item["id"]), dict(item.get("properties") or {})))
    return pairs


def _form_fields(fields: Mapping[str, str] | Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    if isinstance(fields, Mapping):
        items = [
            {"objectTypeId": CONTACT_OBJECT_TYPE_ID, "name": str(k), "value": v}
            for k, v in fields.items()
        ]
    else:
        items = [
            {
                "objectTypeId": str(f.get("objectTypeId") or CONTACT_OBJECT_TYPE_ID),
                "name": str(f["name"]),
                "value": f["value"],
            }
            for f in fields
        ]
    for item in items:
        if not isinstance(item["value"], str):
            raise TypeError(
                f"form field {item['name']!r} is {type(item['value']).__name__}, not str: "
                "HubSpot takes every value as a string"
            )
    return items


def _epoch_ms(value: datetime | int) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("submitted_at must be timezone-aware (naive datetimes are ambiguous)")
        return int(value.astimezone(timezone.utc).timestamp() * 1000)
    return int(value)
