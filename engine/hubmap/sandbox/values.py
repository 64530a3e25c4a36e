"""Checks one property value against its property definition, the way HubSpot's CRM does.

Pure functions, no I/O. Values arrive as strings (HUBSPOT-API.md §5): numbers are plain decimals,
dates are `YYYY-MM-DD` or UTC-midnight epoch ms, datetimes ISO 8601 or epoch ms, bools
`true`/`false`, enumerations the options' internal values (`;`-joined for checkboxes).
`display_value` turns a stored value into what HubSpot returns on reads.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from hubmap.sandbox.errors import PropertyProblem

#: CRM text limit (HUBSPOT-API.md §2, §3).
MAX_STRING_LENGTH = 65_536
MS_PER_DAY = 86_400_000
MULTI_VALUE_SEPARATOR = ";"

NUMBER_PATTERN = re.compile(r"-?\d+(\.\d+)?", re.ASCII)
EPOCH_MS_PATTERN = re.compile(r"-?\d+", re.ASCII)
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# Deliberately plain: one @, no spaces, a dot in the domain, no empty labels.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def is_valid_email(value: str) -> bool:
    return EMAIL_PATTERN.fullmatch(value) is not None and not value.startswith(".")


def split_multi(value: str | None) -> list[str]:
    """The items of a `;`-separated value (empty items dropped)."""
    return [item for item in (value or "").split(MULTI_VALUE_SEPARATOR) if item]


def join_multi(items: list[str]) -> str:
    """`;`-join `items`, each once, in first-seen order."""
    return MULTI_VALUE_SEPARATOR.join(dict.fromkeys(item for item in items if item))


def iso_utc(moment: datetime) -> str:
    """`2024-05-16T10:20:30.123Z`, HubSpot's timestamp format."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def now_iso() -> str:
    return iso_utc(datetime.now(UTC))


def _java_time(moment: datetime) -> str:
    """Time of day as Java's LocalTime prints it (HubSpot quotes it in INVALID_DATE)."""
    text = moment.strftime("%H:%M")
    if moment.second or moment.microsecond:
        text += moment.strftime(":%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text


def _from_epoch_ms(value: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_iso_datetime(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def options_of(definition: dict[str, Any]) -> list[str]:
    return [option["value"] for option in definition.get("options") or []]


def check_value(definition: dict[str, Any], value: str) -> PropertyProblem | None:
    """None if `value` is acceptable for the property, else the problem HubSpot would report.

    The empty string clears a value and is always accepted.
    """
    name = definition["name"]
    if value == "":
        return None
    kind = definition["type"]
    if kind == "number":
        if NUMBER_PATTERN.fullmatch(value) is None:
            return PropertyProblem(name, "INVALID_INTEGER", f"{value} was not a valid number.")
    elif kind == "date":
        return _check_date(name, value)
    elif kind == "datetime":
        if EPOCH_MS_PATTERN.fullmatch(value) is None and _parse_iso_datetime(value) is None:
            return PropertyProblem(
                name, "INVALID_DATETIME", f"{value} is not a valid datetime (ISO 8601 or epoch ms)."
            )
    elif kind in ("enumeration", "bool"):
        return _check_option(definition, value)
    if len(value) > MAX_STRING_LENGTH:
        return PropertyProblem(
            name,
            "INVALID_LENGTH",
            f"Property {name} has a value of {len(value)} characters; "
            f"the limit is {MAX_STRING_LENGTH}.",
        )
    if name == "email" and not is_valid_email(value):
        return PropertyProblem(name, "INVALID_EMAIL", f"Email address {value} is invalid")
    return None


def _check_date(name: str, value: str) -> PropertyProblem | None:
    if DATE_PATTERN.fullmatch(value):
        try:
            date.fromisoformat(value)
            return None
        except ValueError:
            pass
    elif EPOCH_MS_PATTERN.fullmatch(value):
        moment = _from_epoch_ms(value)
        if moment is not None:
            if int(value) % MS_PER_DAY == 0:
                return None
            return PropertyProblem(
                name, "INVALID_DATE", f"{value} is at {_java_time(moment)} UTC, not midnight!"
            )
    return PropertyProblem(
        name,
        "INVALID_DATE",
        f"{value} is not a valid date; use YYYY-MM-DD or epoch milliseconds at UTC midnight.",
    )


def _check_option(definition: dict[str, Any], value: str) -> PropertyProblem | None:
    allowed = ["true", "false"] if definition["type"] == "bool" else options_of(definition)
    if definition.get("fieldType") == "checkbox" and definition["type"] == "enumeration":
        # Empty segments (a leading ";" as HubSpot itself writes) are tolerated.
        chosen = [part for part in value.split(MULTI_VALUE_SEPARATOR) if part]
    else:
        chosen = [value]
    for part in chosen:
        if part not in allowed:
            return PropertyProblem(
                definition["name"],
                "INVALID_OPTION",
                f"{part} was not one of the allowed options: [{', '.join(allowed)}]",
            )
    return None


def display_value(definition: dict[str, Any] | None, value: str) -> str:
    """The stored value as HubSpot returns it: dates as YYYY-MM-DD, datetimes as ISO 8601 UTC."""
    if definition is None or value == "":
        return value
    kind = definition["type"]
    if kind == "date" and EPOCH_MS_PATTERN.fullmatch(value):
        moment = _from_epoch_ms(value)
        return moment.date().isoformat() if moment else value
    if kind == "datetime":
        if EPOCH_MS_PATTERN.fullmatch(value):
            moment = _from_epoch_ms(value)
        else:
            moment = _parse_iso_datetime(value)
            if moment is not None and moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        return iso_utc(moment) if moment else value
    return value
