"""Settings of the local HubSpot stand-in: the token it accepts, its limits and its faults.

`SandboxConfig` is a frozen value; the running server swaps in a new one when an admin call
(`POST /_sandbox/config`) changes it, so a request always sees one consistent set of settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

DEFAULT_TOKEN = "sandbox-token"
DEFAULT_PORTAL_ID = 1234567
#: HubSpot Professional/Enterprise private-app burst: 190 requests per rolling 10 s
#: (HUBSPOT-API.md §6).
DEFAULT_RATE_LIMIT_MAX = 190
DEFAULT_RATE_LIMIT_INTERVAL_MS = 10_000
#: Enterprise daily budget.
DEFAULT_DAILY_LIMIT = 1_000_000
#: CRM batch endpoints accept at most 100 inputs (HUBSPOT-API.md §3).
DEFAULT_MAX_BATCH = 100
#: The unauthenticated forms endpoint has its own budget: 50 requests per 10 s (HUBSPOT-API.md §2).
DEFAULT_FORMS_RATE_LIMIT_MAX = 50


class ConfigError(ValueError):
    """A settings change names an unknown field or gives a value of the wrong type."""


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """How the sandbox behaves; every field can be changed at runtime through `/_sandbox/config`."""

    token: str = DEFAULT_TOKEN
    portal_id: int = DEFAULT_PORTAL_ID
    rate_limit_max: int = DEFAULT_RATE_LIMIT_MAX
    rate_limit_interval_ms: int = DEFAULT_RATE_LIMIT_INTERVAL_MS
    daily_limit: int = DEFAULT_DAILY_LIMIT
    max_batch: int = DEFAULT_MAX_BATCH
    #: Budget of the unauthenticated form submit endpoint per portal, over the same interval.
    forms_rate_limit_max: int = DEFAULT_FORMS_RATE_LIMIT_MAX
    #: Share of requests answered 502/503 before anything else happens.
    error_rate: float = 0.0
    #: Share of successful writes whose connection is closed after the commit, with no response.
    drop_after_write_rate: float = 0.0
    #: Delay added before every HubSpot request is handled.
    latency_ms: float = 0
    #: Seed of the fault dice; the same seed and the same request sequence give the same faults.
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_after_write_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {rate}")
        for name in (
            "rate_limit_max",
            "rate_limit_interval_ms",
            "daily_limit",
            "max_batch",
            "forms_rate_limit_max",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.latency_ms < 0:
            raise ConfigError(f"latency_ms must not be negative, got {self.latency_ms}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_changes(self, changes: dict[str, Any]) -> SandboxConfig:
        """A copy with `changes` (field name -> value) applied, checking names and value types."""
        fields = {field.name: field for field in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in fields:
                raise ConfigError(f"unknown setting {name!r}; known: {', '.join(sorted(fields))}")
            if not _type_fits(fields[name].type, value):
                raise ConfigError(f"setting {name!r} has the wrong type: {value!r}")
        return dataclasses.replace(self, **changes)


def _type_fits(annotation: Any, value: Any) -> bool:
    text = str(annotation)
    if value is None:
        return "None" in text
    if isinstance(value, bool):
        return False
    if text.startswith("str"):
        return isinstance(value, str)
    if text.startswith("int"):
        return isinstance(value, int)
    if text.startswith("float"):
        return isinstance(value, (int, float))
    return False
