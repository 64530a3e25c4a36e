"""HubSpot's error bodies, built in one place, and the exception handlers raise to send one.

CRM errors: `{"status": "error", "message", "correlationId", "category", "errors"?: [...]}`.
Forms submission errors carry `errors[].errorType` and no category; 429 bodies carry `errorType`
and `policyName` (HUBSPOT-API.md §2, §3, §6). Handlers raise `ApiError`; the app turns it into a
response.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

AUTH_MISSING_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
FORMS_INVALID_MESSAGE = "The request is not valid"


def correlation_id() -> str:
    return str(uuid.uuid4())


@dataclass
class PropertyProblem:
    """One rejected property value: HubSpot's `errors[]` item and its legacy message entry."""

    name: str
    code: str
    message: str
    where: str | None = None  # e.g. "inputs[3]" in batch calls

    def detail(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "message": self.message,
            "code": self.code,
            "context": {"propertyName": [self.name]},
        }
        if self.where is not None:
            item["in"] = self.where
        return item

    def legacy(self, portal_id: int) -> dict[str, Any]:
        return {
            "isValid": False,
            "message": self.message,
            "error": self.code,
            "name": self.name,
            "localizedErrorMessage": self.message,
            "portalId": portal_id,
        }


@dataclass
class ApiError(Exception):
    """An error response: HTTP status and the JSON body (correlationId is added when sent)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.body.get('message')}"


def crm_error(status: int, category: str, message: str, **extra: Any) -> ApiError:
    return ApiError(status, {"status": "error", "message": message, "category": category, **extra})


def validation_error(message: str, errors: list[dict[str, Any]] | None = None) -> ApiError:
    extra = {"errors": errors} if errors else {}
    return crm_error(400, "VALIDATION_ERROR", message, **extra)


def property_errors(problems: list[PropertyProblem], portal_id: int) -> ApiError:
    """HubSpot's 400 for bad property values: a JSON list in the message plus `errors[]`."""
    legacy = json.dumps([p.legacy(portal_id) for p in problems], separators=(",", ":"))
    return validation_error(
        f"Property values were not valid: {legacy}", [p.detail() for p in problems]
    )


def bad_json(message: str) -> ApiError:
    return validation_error(f"Invalid input JSON: {message}")


def not_found(message: str = "resource not found") -> ApiError:
    return crm_error(404, "OBJECT_NOT_FOUND", message)


def conflict(message: str) -> ApiError:
    return crm_error(409, "CONFLICT", message)


def unauthorized(message: str = AUTH_MISSING_MESSAGE) -> ApiError:
    return crm_error(401, "INVALID_AUTHENTICATION", message)


def forms_error(errors: list[tuple[str, str]], status: int = 400) -> ApiError:
    """The forms submission 400: `errors` is a list of (message, errorType)."""
    return ApiError(
        status,
        {
            "status": "error",
            "message": FORMS_INVALID_MESSAGE,
            "errors": [{"message": message, "errorType": kind} for message, kind in errors],
        },
    )


def rate_limited(policy: str, group_name: str) -> ApiError:
    if policy == "DAILY":
        message = "You have reached your daily limit."
    else:
        message = "You have reached your ten_secondly_rolling limit."
    return ApiError(
        429,
        {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "policyName": policy,
            "groupName": group_name,
        },
    )


def finish_body(body: dict[str, Any]) -> dict[str, Any]:
    """The body as sent: a fresh correlationId right after `message`, as HubSpot orders it."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        out[key] = value
        if key == "message":
            out["correlationId"] = correlation_id()
    out.setdefault("correlationId", correlation_id())
    return out
