"""Errors raised by the HubSpot client, and the parsing of HubSpot's error bodies into them.

Every failure the client reports is a `HubSpotError`. The tree::

    HubSpotError                    status, category, message, correlation_id, errors, method, path
    ├── HubSpotConfigError          settings missing or malformed (no request was made; CLI exit 2)
    ├── HubSpotRejected             a 4xx other than 429: the request itself is wrong; never retried
    │   ├── HubSpotAuthError        401 / 403: token missing, expired, or lacking a scope
    │   ├── HubSpotNotFound         404
    │   ├── HubSpotConflict         409 (``existing_id`` parsed from "Existing ID: 123" when present)
    │   └── HubSpotValidationError  400 / 422: property values, form fields, request shape
    ├── HubSpotRateLimited          429 still answered after the retry policy gave up
    │   └── DailyLimitReached       429 with policy DAILY: stopped at once, never retried
    ├── HubSpotServerError          5xx still answered after the retry policy gave up
    └── HubSpotTransportError       no HTTP answer (after retries)
        ├── HubSpotTimeout          connect or read timeout
        └── HubSpotConnectionError  refused, reset, dropped mid-body

An error's ``errors`` is a list of `ErrorDetail`: one per item HubSpot complained about, with the
property (or form field) it names, so the caller can point at the mapping line that wrote it.

The access token is never part of an error: errors are built from the response body, the method
and the URL path, and the client scrubs the token from any text a server echoes back.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# "Error in 'fields.firstname'. Required field 'firstname' is missing" (Forms API v3);
# company fields are named "fields.0-2/name".
_FORM_FIELD_RE = re.compile(r"Error in '(?:fields\.)?(?:(?P<otype>\d+-\d+)/)?(?P<name>[^']+)'")
# "Contact already exists. Existing ID: 37765128953"
_EXISTING_ID_RE = re.compile(r"Existing ID:\s*(\d+)")
# "Property values were not valid: [{...}, ...]" — the JSON list names each property.
_PROPERTY_VALUES_RE = re.compile(r"Property values were not valid:\s*(\[.*\])", re.DOTALL)


@dataclass(frozen=True)
class ErrorDetail:
    """One item of HubSpot's ``errors`` list (or of a 207 batch's errors), made plain.

    ``property_name`` is the CRM property or form field the item names (empty if none);
    ``object_type_id`` is ``0-2`` for a company field of a form submission, else empty;
    ``ids`` are the batch input ids the item is about (from its ``context``).
    """

    message: str
    code: str = ""
    property_name: str = ""
    object_type_id: str = ""
    category: str = ""
    ids: tuple[str, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "code": self.code,
            "property_name": self.property_name,
            "object_type_id": self.object_type_id,
            "category": self.category,
            "ids": list(self.ids),
        }


class HubSpotError(Exception):
    """Base of everything the HubSpot client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        category: str = "",
        correlation_id: str = "",
        errors: Sequence[ErrorDetail] = (),
        method: str = "",
        path: str = "",
        attempts: int = 1,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.category = category
        self.correlation_id = correlation_id
        self.errors: list[ErrorDetail] = list(errors)
        self.method = method
        self.path = path
        self.attempts = attempts
        self.body = body

    @property
    def property_names(self) -> list[str]:
        """The properties / form fields the error names, in order, without repeats."""
        seen: dict[str, None] = {}
        for detail in self.errors:
            if detail.property_name:
                seen.setdefault(detail.property_name, None)
        return list(seen)

    def __str__(self) -> str:
        parts = []
        if self.method or self.path:
            parts.append(f"{self.method} {self.path}".strip())
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.category:
            parts.append(self.category)
        head = " ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        details = [d.message for d in self.errors if d.message and d.message != self.message]
        if details:
            text += " (" + "; ".join(details[:5]) + (" …" if len(details) > 5 else "") + ")"
        if self.correlation_id:
            text += f" [correlationId {self.correlation_id}]"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, category={self.category!r}, message={self.message!r})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "status": self.status,
            "category": self.category,
            "message": self.message,
            "correlation_id": self.correlation_id,
            "method": self.method,
            "path": self.path,
            "attempts": self.attempts,
            "errors": [d.to_dict() for d in self.errors],
        }


class HubSpotConfigError(HubSpotError, ValueError):
    """The settings are missing or malformed; nothing was sent."""


class HubSpotRejected(HubSpotError):
    """HubSpot answered 4xx (not 429): the request itself is wrong and is not retried."""


class HubSpotAuthError(HubSpotRejected):
    """401 / 403: the token is missing, expired, revoked, or lacks a scope."""


class HubSpotNotFound(HubSpotRejected):
    """404: the object, property, group or form does not exist."""


class HubSpotConflict(HubSpotRejected):
    """409: the thing exists already (``existing_id`` when HubSpot names it)."""

    @property
    def existing_id(self) -> str | None:
        match = _EXISTING_ID_RE.search(self.message)
        return match.group(1) if match else None


class HubSpotValidationError(HubSpotRejected):
    """400 / 422: bad property values, unknown properties, bad form fields, bad request shape."""


class HubSpotRateLimited(HubSpotError):
    """429 still answered when the retry policy gave up (attempts or total wait exhausted)."""

    @property
    def policy_name(self) -> str:
        return self.category


class DailyLimitReached(HubSpotRateLimited):
    """429 with policy DAILY: the portal's daily budget is spent; it resets at the portal's midnight."""


class HubSpotServerError(HubSpotError):
    """5xx still answered when the retry policy gave up."""


class HubSpotTransportError(HubSpotError):
    """No HTTP answer at all (after retries): timeouts, refused or dropped connections."""


class HubSpotTimeout(HubSpotTransportError):
    """The connection or the answer took longer than the configured timeout."""


class HubSpotConnectionError(HubSpotTransportError):
    """The connection was refused, reset, or dropped before the answer was complete."""


# --------------------------------------------------------------------------- parsing


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in _as_list(values) if isinstance(v, (str, int)))


def parse_error_detail(item: Mapping[str, Any]) -> ErrorDetail:
    """One entry of a HubSpot ``errors`` list (CRM `ErrorDetail`/`StandardError` or forms error)."""
    message = str(item.get("message") or "")
    code = str(item.get("code") or item.get("errorType") or item.get("error") or "")
    raw_context = item.get("context")
    context: Mapping[str, Any] = raw_context if isinstance(raw_context, Mapping) else {}
    property_name = ""
    object_type_id = ""
    names = _strings(context.get("propertyName")) or _strings(context.get("propertyNames"))
    if names:
        property_name = names[0]
    elif item.get("propertyName") or item.get("name"):
        property_name = str(item.get("propertyName") or item.get("name"))
    else:
        match = _FORM_FIELD_RE.search(message)
        if match:
            property_name = match.group("name")
            object_type_id = match.group("otype") or ""
    ids: tuple[str, ...] = ()
    for key in ("ids", "id", "email", "emails", "objectWriteTraceId"):
        if key in context:
            ids = _strings(context[key])
            if ids:
                break
    return ErrorDetail(
        message=message,
        code=code,
        property_name=property_name,
        object_type_id=object_type_id,
        category=str(item.get("category") or ""),
        ids=ids,
        context=dict(context),
    )


def _details_from_property_values(message: str) -> list[ErrorDetail]:
    """Parse the JSON list HubSpot embeds in "Property values were not valid: [...]"."""
    match = _PROPERTY_VALUES_RE.search(message)
    if not match:
        return []
    try:
        items = _json.loads(match.group(1))
    except ValueError:
        return []
    return [parse_error_detail(i) for i in items if isinstance(i, Mapping)]


def parse_error_body(body: Any) -> tuple[str, str, str, list[ErrorDetail]]:
    """(message, category, correlation_id, details) from a HubSpot error body of any of its shapes.

    CRM bodies carry ``category`` and ``errors[].context.propertyName``; "Property values were not
    valid: [...]" messages embed a JSON list naming the properties; Forms API bodies carry
    ``errors[].errorType`` and messages like ``Error in 'fields.NAME'``; 429 bodies carry
    ``policyName`` (returned as the category).
    """
    if not isinstance(body, Mapping):
        text = body.strip() if isinstance(body, str) else ""
        return (text[:500], "", "", [])
    message = str(body.get("message") or "")
    category = str(body.get("policyName") or body.get("category") or body.get("errorType") or "")
    correlation_id = str(body.get("correlationId") or "")
    details = [
        parse_error_detail(i) for i in _as_list(body.get("errors")) if isinstance(i, Mapping)
    ]
    if not details:
        details = _details_from_property_values(message)
    elif not any(d.property_name for d in details):
        extra = _details_from_property_values(message)
        if extra:
            details = extra
    if not details and _FORM_FIELD_RE.search(message):
        details = [parse_error_detail({"message": message})]
    return message, category, correlation_id, details


_STATUS_CLASSES: dict[int, type[HubSpotError]] = {
    400: HubSpotValidationError,
    401: HubSpotAuthError,
    403: HubSpotAuthError,
    404: HubSpotNotFound,
    409: HubSpotConflict,
    422: HubSpotValidationError,
    429: HubSpotRateLimited,
}


def error_class_for(status: int, category: str = "") -> type[HubSpotError]:
    if status == 429:
        return DailyLimitReached if category.upper() == "DAILY" else HubSpotRateLimited
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return HubSpotServerError
    if status >= 400:
        return HubSpotRejected
    return HubSpotError


def error_from_body(
    status: int,
    body: Any,
    *,
    method: str = "",
    path: str = "",
    attempts: int = 1,
    redact: Any = None,
) -> HubSpotError:
    """The right `HubSpotError` subclass for an HTTP status and its (parsed) body.

    ``redact`` is a callable applied to every text taken from the body (the client passes one that
    removes the access token, in case a server echoes it).
    """
    message, category, correlation_id, details = parse_error_body(body)
    if redact is not None:
        message = redact(message)
        details = [
            ErrorDetail(
                message=redact(d.message),
                code=d.code,
                property_name=d.property_name,
                object_type_id=d.object_type_id,
                category=d.category,
                ids=d.ids,
                context=d.context,
            )
            for d in details
        ]
        try:
            raw = _json.dumps(body, default=str)
        except (TypeError, ValueError):
            raw = str(body)
        if redact(raw) != raw:
            body = None  # the raw body echoes the secret; keep only the scrubbed parts
    if not message:
        message = f"HubSpot answered HTTP {status}"
    cls = error_class_for(status, category)
    return cls(
        message,
        status=status,
        category=category,
        correlation_id=correlation_id,
        errors=details,
        method=method,
        path=path,
        attempts=attempts,
        body=body,
    )
