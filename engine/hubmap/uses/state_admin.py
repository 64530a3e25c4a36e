"""`hubmap state copy` and `hubmap state migrate`: a state moved to another database, and a
state brought to this hubmap's schema version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubmap import sql
from hubmap.state import SCHEMA_VERSION
from hubmap.uses.context import open_state
from hubmap.uses.outcome import ConfigurationError, Outcome, outcome_of


def copy(source: str, target: str, progress: Callable[[str, int], None] | None = None) -> Outcome:
    """Copy the state `source` into the empty state `target` (a file or a PostgreSQL URL)."""
    return outcome_of(lambda: _copy(source, target, progress))


def _copy(source: str, target: str, progress: Callable[[str, int], None] | None) -> dict[str, Any]:
    _must_exist(source)
    if (
        not sql.is_url(source)
        and not sql.is_url(target)
        and Path(source).resolve() == Path(target).resolve()
    ):
        raise ConfigurationError("the state cannot be copied onto itself: name another target")
    from_state = open_state(source)
    try:
        to_state = open_state(target)
        try:
            rows = from_state.copy_into(to_state, progress)
        finally:
            to_state.close()
    finally:
        from_state.close()
    return {"from": sql.shown(source), "to": sql.shown(target), "rows": rows}


def migrate(path: str) -> Outcome:
    """Open the state, which brings its schema to this hubmap's version; what it is now."""
    return outcome_of(lambda: _migrate(path))


def _migrate(path: str) -> dict[str, Any]:
    _must_exist(path)
    state = open_state(path)  # opening upgrades the schema, in a transaction
    try:
        return {
            "state": sql.shown(path),
            "version": state.schema_version(),
            "current": SCHEMA_VERSION,
        }
    finally:
        state.close()


def _must_exist(path: str) -> None:
    if not sql.is_url(path) and not Path(path).exists():
        raise ConfigurationError(f"no state file at '{path}'")
