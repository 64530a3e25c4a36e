"""`hubmap status`: per scope of a state file, the stored orders by what they are now, refunds,
contacts waiting for HubSpot, drift, rejected records pending, and the last runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubmap import sql
from hubmap.uses.context import open_state
from hubmap.uses.outcome import ConfigurationError, Outcome, outcome_of


def status(state_path: str) -> Outcome:
    return outcome_of(lambda: report(state_path))


def report(state_path: str) -> dict[str, Any]:
    if not sql.is_url(state_path) and not Path(state_path).exists():
        raise ConfigurationError(f"no state file at '{state_path}' (nothing has run yet)")
    state = open_state(state_path)
    try:
        result: dict[str, Any] = {"state": state_path, "scopes": []}
        for scope in state.scopes():
            counts = state.order_counts(scope)
            result["scopes"].append(
                {
                    "scope": scope,
                    "orders_counted": counts.get("counted", 0) + counts.get("sent", 0),
                    "orders_withdrawn": counts.get("withdrawn", 0),
                    "orders_skipped": counts.get("skipped", 0),  # remembered, never counted
                    "refunds": counts["refunds"],
                    "refunds_waiting": counts["refunds_waiting"],
                    "contacts_unconfirmed": state.count_dirty(scope),
                    "rebuild_unfinished": state.rebuilding(scope),
                    "rebuild_needed": state.needs_rebuild(scope),
                    "drift": state.drift_items(scope)[-20:],
                    "contacts_failed": [
                        {"contact": c, "reason": r} for c, r in state.failed_contacts(scope)
                    ],
                    "pending_rejects": [
                        {k: v for k, v in r.items() if k != "record"}
                        for r in state.pending_rejects(scope)
                    ],
                    "runs": state.runs(scope, limit=5),
                }
            )
        return result
    finally:
        state.close()
