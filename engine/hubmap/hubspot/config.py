"""HubSpot connection settings: read once from the environment, then immutable.

The access token comes only from ``HUBSPOT_ACCESS_TOKEN`` (never from a mapping file) and never
appears in ``repr()``, ``str()``, logs or error messages. The API version decides the CRM path
shape: ``v3`` gives ``/crm/v3/objects/contacts``; a date such as ``2026-03`` gives HubSpot's
date-based form ``/crm/objects/2026-03/contacts``.

Environment variables::

    HUBSPOT_ACCESS_TOKEN             required: private-app / service-key / OAuth access token
    HUBSPOT_API_BASE                 default https://api.hubapi.com
    HUBSPOT_FORMS_BASE               default https://api.hsforms.com
    HUBSPOT_PORTAL_ID                the portal (hub) id, needed for form submissions
    HUBSPOT_API_VERSION              v3 (default) or YYYY-MM
    HUBSPOT_TIMEOUT                  read timeout in seconds (default 30)
    HUBSPOT_CONNECT_TIMEOUT          connect timeout in seconds (default 5)
    HUBSPOT_RATE_LIMIT_MAX           requests per window assumed until HubSpot's headers say (100)
    HUBSPOT_RATE_LIMIT_INTERVAL_MS   that window in milliseconds (10000)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from hubmap.hubspot.errors import HubSpotConfigError

DEFAULT_API_BASE = "https://api.hubapi.com"
DEFAULT_FORMS_BASE = "https://api.hsforms.com"
DEFAULT_API_VERSION = "v3"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_POOL_SIZE = 16
# HubSpot's smallest burst limit for private apps (Free/Starter): 100 requests per 10 s.
DEFAULT_RATE_LIMIT_MAX = 100
DEFAULT_RATE_LIMIT_INTERVAL_MS = 10_000

_NUMERIC_VERSION_RE = re.compile(r"^v[1-9][0-9]*$")
_DATE_VERSION_RE = re.compile(r"^20[0-9]{2}-(0[1-9]|1[0-2])$")

TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"


@dataclass(frozen=True, kw_only=True)
class HubSpotSettings:
    """Where and how to reach HubSpot. Build with `from_env`; the token is hidden from repr."""

    access_token: str
    api_base: str = DEFAULT_API_BASE
    forms_base: str = DEFAULT_FORMS_BASE
    portal_id: str | None = None
    api_version: str = DEFAULT_API_VERSION
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    pool_size: int = DEFAULT_POOL_SIZE
    rate_limit_max: int = DEFAULT_RATE_LIMIT_MAX
    rate_limit_interval_ms: int = DEFAULT_RATE_LIMIT_INTERVAL_MS

    def __post_init__(self) -> None:
        if not self.access_token or not self.access_token.strip():
            raise HubSpotConfigError(
                f"no HubSpot access token: set {TOKEN_ENV} to a private-app (or service-key) "
                "access token"
            )
        odd = next(
            (
                i
                for i, c in enumerate(self.access_token)
                if not (c.isascii() and c.isprintable()) or c.isspace()
            ),
            None,
        )
        if odd is not None:
            # An HTTP header carries only such characters: a token holding others was pasted
            # with something else (a quote, a non-breaking space, an accent from a keyboard).
            raise HubSpotConfigError(
                f"{TOKEN_ENV} holds a character that is not in any HubSpot token (character "
                f"{odd + 1} of {len(self.access_token)}, U+{ord(self.access_token[odd]):04X}): "
                "copy the token again from HubSpot > Settings > Integrations > Private apps"
            )
        if not (
            _NUMERIC_VERSION_RE.match(self.api_version) or _DATE_VERSION_RE.match(self.api_version)
        ):
            raise HubSpotConfigError(
                f"HUBSPOT_API_VERSION {self.api_version!r} is not a version: use 'v3' or a date "
                "like '2026-03'"
            )
        for name in ("api_base", "forms_base"):
            value = getattr(self, name)
            if not value.startswith(("http://", "https://")):
                raise HubSpotConfigError(f"{name} {value!r} must start with https:// (or http://)")
            object.__setattr__(self, name, value.rstrip("/"))
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise HubSpotConfigError("HubSpot timeouts must be positive numbers of seconds")
        if self.pool_size < 1 or self.rate_limit_max < 1 or self.rate_limit_interval_ms < 1:
            raise HubSpotConfigError("pool size and rate limit must be positive")

    def __repr__(self) -> str:
        return (
            f"HubSpotSettings(access_token='***', api_base={self.api_base!r}, "
            f"forms_base={self.forms_base!r}, portal_id={self.portal_id!r}, "
            f"api_version={self.api_version!r}, connect_timeout={self.connect_timeout!r}, "
            f"read_timeout={self.read_timeout!r}, pool_size={self.pool_size!r}, "
            f"rate_limit_max={self.rate_limit_max!r}, "
            f"rate_limit_interval_ms={self.rate_limit_interval_ms!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> HubSpotSettings:
        """Settings from environment variables (pass ``os.environ``); see the module docstring."""
        token = (environ.get(TOKEN_ENV) or "").strip()
        if not token:
            raise HubSpotConfigError(
                f"{TOKEN_ENV} is not set: export {TOKEN_ENV}=<your private-app access token> "
                "(HubSpot > Settings > Integrations > Private apps); hubmap never reads tokens "
                "from mapping files"
            )
        return cls(
            access_token=token,
            api_base=environ.get("HUBSPOT_API_BASE") or DEFAULT_API_BASE,
            forms_base=environ.get("HUBSPOT_FORMS_BASE") or DEFAULT_FORMS_BASE,
            portal_id=(environ.get("HUBSPOT_PORTAL_ID") or "").strip() or None,
            api_version=(environ.get("HUBSPOT_API_VERSION") or DEFAULT_API_VERSION).strip(),
            connect_timeout=_number(environ, "HUBSPOT_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
            read_timeout=_number(environ, "HUBSPOT_TIMEOUT", DEFAULT_READ_TIMEOUT),
            rate_limit_max=int(_number(environ, "HUBSPOT_RATE_LIMIT_MAX", DEFAULT_RATE_LIMIT_MAX)),
            rate_limit_interval_ms=int(
                _number(environ, "HUBSPOT_RATE_LIMIT_INTERVAL_MS", DEFAULT_RATE_LIMIT_INTERVAL_MS)
            ),
        )

    # ------------------------------------------------------------------ paths

    @property
    def date_versioned(self) -> bool:
        return bool(_DATE_VERSION_RE.match(self.api_version))

    def objects_path(self, object_type: str) -> str:
        """``/crm/v3/objects/contacts`` or ``/crm/objects/2026-03/contacts``."""
        if self.date_versioned:
            return f"/crm/objects/{self.api_version}/{object_type}"
        return f"/crm/{self.api_version}/objects/{object_type}"

    def properties_path(self, object_type: str) -> str:
        """``/crm/v3/properties/contacts`` or ``/crm/properties/2026-03/contacts``."""
        if self.date_versioned:
            return f"/crm/properties/{self.api_version}/{object_type}"
        return f"/crm/{self.api_version}/properties/{object_type}"

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise HubSpotConfigError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise HubSpotConfigError(f"{name}={raw!r} must be greater than 0")
    return value
