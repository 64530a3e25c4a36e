"""What the use-cases open: the state store, and where HubSpot is - the real one (settings
from the environment) or an embedded stand-in (`--sandbox`), started in this process with a fresh
token, so no account is needed - plus the scope a run's state is kept under and `${ENV}`
references of a mapping.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from hubmap import provision, sql
from hubmap.hubspot import (
    HubSpotAuthError,
    HubSpotClient,
    HubSpotConfigError,
    HubSpotError,
    HubSpotServerError,
    HubSpotSettings,
    HubSpotTransportError,
)
from hubmap.hubspot.config import TOKEN_ENV
from hubmap.hubspot.ratelimit import RateLimiter
from hubmap.mapping.model import FormsTarget, Mapping, PropertyType
from hubmap.problems import HubmapError, Location, Problem
from hubmap.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from hubmap.shared_limit import SharedRateLimiter, budget_name
from hubmap.state import DEFAULT_STATE_FILE, StateError, StateStore
from hubmap.uses.outcome import ConfigurationError

SANDBOX_FORM_GUID_VARIABLE = "HUBSPOT_FORM_GUID"

_FIELD_TYPES = {
    PropertyType.NUMBER: "number",
    PropertyType.DATE: "datepicker",
    PropertyType.DATETIME: "single_line_text",
    PropertyType.BOOL: "single_checkbox",
    PropertyType.ENUMERATION: "dropdown",
    PropertyType.STRING: "single_line_text",
}


@dataclass
class Connection:
    client: HubSpotClient
    environ: dict[str, str]
    sandbox: RunningSandbox | None = None
    sandbox_db: str | None = None


@contextmanager
def connect(
    environ: dict[str, str],
    *,
    sandbox: bool = False,
    sandbox_db: str | None = None,
    mapping: Mapping | None = None,
    state: str | None = None,
    offers_sandbox: bool = False,
) -> Iterator[Connection]:
    """A client for the environment's HubSpot, or for an embedded sandbox.  With a `state` in
    PostgreSQL, the client's rate limit is shared through it with every other process on the
    same token (`hubmap.shared_limit`).  `offers_sandbox`: the command has --sandbox, which a
    missing token's message then mentions."""
    running = None
    limiter: SharedRateLimiter | None = None
    environ = dict(environ)
    if sandbox:
        token = secrets.token_urlsafe(24)
        config = SandboxConfig(token=token)
        running = start_sandbox(db_path=sandbox_db, config=config)
        environ.update(
            {
                "HUBSPOT_ACCESS_TOKEN": token,
                "HUBSPOT_API_BASE": running.url,
                "HUBSPOT_FORMS_BASE": running.url,
                "HUBSPOT_PORTAL_ID": str(config.portal_id),
            }
        )
    try:
        try:
            settings = HubSpotSettings.from_env(environ)
        except HubSpotConfigError as error:
            if offers_sandbox and TOKEN_ENV not in environ:
                raise HubSpotConfigError(
                    f"{error}; or add --sandbox to try the mapping "
                    "against the local HubSpot stand-in (no account "
                    "needed)"
                ) from None
            raise
        limiter = _shared_limiter(settings, state)
        with HubSpotClient(settings, limiter=limiter) as client:
            if (
                running is not None
                and mapping is not None
                and isinstance(mapping.target, FormsTarget)
            ):
                # A form GUID of a real portal means nothing to the stand-in: its own form wins.
                environ[_form_guid_variable(mapping.target)] = _sandbox_form(
                    client, running, mapping, token
                )
            yield Connection(client, environ, running, sandbox_db)
    finally:
        if limiter is not None:
            limiter.close()
        if running is not None:
            running.stop()


def _shared_limiter(settings: HubSpotSettings, state: str | None) -> SharedRateLimiter | None:
    if state is None or not sql.is_url(state):
        return None  # one machine: the process's own limiter (and HubSpot's headers) suffice
    local = RateLimiter(
        max_requests=settings.rate_limit_max, interval=settings.rate_limit_interval_ms / 1000
    )
    return SharedRateLimiter(state, budget_name(settings.api_base, settings.access_token), local)


def _form_guid_variable(target: FormsTarget) -> str:
    """The variable the mapping reads its form GUID from (`form_guid: "${NAME}"`)."""
    match = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", target.form_guid.strip())
    return match.group(1) if match else SANDBOX_FORM_GUID_VARIABLE


def _sandbox_form(
    client: HubSpotClient, running: RunningSandbox, mapping: Mapping, token: str
) -> str:
    """Create the mapping's properties and a form carrying them, as a HubSpot user would; a form
    made by an earlier run (same name, every field the mapping writes) is used again."""
    provision.apply(client, mapping)
    target = mapping.target
    assert isinstance(target, FormsTarget)
    name = f"{mapping.name} (sandbox)"
    headers = {"Authorization": f"Bearer {token}"}
    wanted = {target.email_field} | {spec.name for spec in mapping.properties}
    listed = requests.get(f"{running.url}/marketing/v3/forms", headers=headers, timeout=10)
    listed.raise_for_status()
    for form in listed.json().get("results", []):
        on_form = {
            f.get("name") for group in form.get("fieldGroups", []) for f in group.get("fields", [])
        }
        if form.get("name") == name and wanted <= on_form:
            return str(form["id"])
    fields: list[dict[str, Any]] = [
        {
            "name": target.email_field,
            "objectTypeId": "0-1",
            "fieldType": "email",
            "required": True,
            "label": "Email",
        }
    ]
    for spec in mapping.properties:
        fields.append(
            {
                "name": spec.name,
                "objectTypeId": "0-1",
                "label": spec.label,
                "fieldType": "multiple_checkboxes" if spec.multiple else _FIELD_TYPES[spec.type],
                "required": False,
            }
        )
    response = requests.post(
        f"{running.url}/marketing/v3/forms",
        json={
            "name": name,
            "formType": "hubspot",
            "fieldGroups": [{"groupType": "default_group", "fields": fields}],
        },
        headers=headers,
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["id"])


def default_sandbox_db(state_path: str) -> str:
    """Keep the embedded sandbox's data next to the state file, so it can be looked at later
    (a state in PostgreSQL: in the working folder)."""
    if sql.is_url(state_path):
        return Path(DEFAULT_STATE_FILE).stem + "-sandbox.db"
    return str(Path(state_path).with_name(Path(state_path).stem + "-sandbox.db"))


def open_state(path: str) -> StateStore:
    try:
        return StateStore(path)
    except StateError as error:
        raise ConfigurationError(str(error)) from None


def scope_of(mapping: Mapping, portal_id: str) -> str:
    """What the state keeps apart: the portal (as HubSpot names it) and the mapping's name."""
    return portal_scopes(portal_id) + mapping.name


def portal_scopes(portal_id: str) -> str:
    """What every scope of one portal starts with."""
    return f"portal {portal_id}|"


def portal_of(client: Any) -> str:
    """The id of the portal the token belongs to, as HubSpot reports it; HUBSPOT_PORTAL_ID, when
    set, must name the same portal (the state of one portal is never used for another)."""
    try:
        reported = client.account_details().get("portalId")
    except (HubSpotAuthError, HubSpotTransportError, HubSpotServerError):
        raise  # HubSpot not reached, or the token refused: said as such by the caller
    except HubSpotError as error:
        raise ConfigurationError(
            f"HubSpot did not say which portal the token belongs to (GET "
            f"/account-info/v3/details: {error}); hubmap keeps each portal's state apart by it"
        )
    if reported in (None, ""):
        raise ConfigurationError("HubSpot's account details name no portalId for this token")
    portal = str(reported)
    configured = client.settings.portal_id
    if configured and str(configured) != portal:
        raise ConfigurationError(
            f"HUBSPOT_PORTAL_ID is {configured}, but the token belongs to portal {portal}; "
            "unset HUBSPOT_PORTAL_ID or use the token of that portal"
        )
    return portal


def resolve_env(text: str, environ: dict[str, str]) -> str:
    """Fill ${NAME} references from the environment; a missing one is a configuration error."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ or not environ[name]:
            raise HubmapError(
                Problem(
                    "HM412",
                    f"environment variable {name} is not set",
                    Location("<environment>"),
                    hint=f"export {name}=... before running",
                )
            )
        return environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", fill, text)
