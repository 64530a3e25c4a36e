"""Use-cases that talk to HubSpot: run, apply, replay, status, validate --portal.

Each opens what it needs (mapping, state store, HubSpot connection or embedded sandbox), does its
work through `hubmap.run` / `hubmap.provision`, closes everything, and returns data for the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubmap import provision
from hubmap.connect import connect, default_sandbox_db
from hubmap.hubspot import HubSpotConfigError, HubSpotError
from hubmap.hubspot.errors import HubSpotAuthError
from hubmap.inputs import Document
from hubmap.mapping import load_mapping
from hubmap.problems import HubmapError, Problem
from hubmap.run import Progress, RunOptions, Runner, Summary, scope_of
from hubmap.state import StateError, StateLockedError, StateStore


class ConfigurationError(RuntimeError):
    """The command cannot start: missing token, unusable state file, another run holds the lock."""


def _open_state(path: str) -> StateStore:
    try:
        return StateStore(path)
    except StateError as error:
        raise ConfigurationError(str(error)) from None


def run(mapping_path: str, input_path: str, *, environ: dict[str, str],
        input_format: str | None = None, state_path: str, dry_run: bool = False,
        reject_file: str | None = None, workers: int = 4, sandbox: bool = False,
        progress: Progress | None = None, rebuild: bool = False,
        options: dict[str, Any] | None = None) -> tuple[Summary, str | None]:
    """`hubmap run`.  `rebuild`: forget the stored counts of this mapping and count the input,
    which must be the full order history, again (see `hubmap.run`).  `options`: further
    `RunOptions` fields (count_chunk, batch), for tests and benchmarks."""
    mapping = load_mapping(mapping_path)
    sandbox_db = default_sandbox_db(state_path) if sandbox else None
    state = _open_state(state_path)
    try:
        with connect(environ, sandbox=sandbox, sandbox_db=sandbox_db, mapping=mapping) as conn:
            run_options = RunOptions(input_path=input_path, input_format=input_format,
                                     dry_run=dry_run, workers=workers, reject_file=reject_file,
                                     rebuild=rebuild, **(options or {}))
            runner = Runner(mapping, conn.client, state, run_options, progress, conn.environ)
            return runner.run(), sandbox_db
    except StateLockedError as error:
        raise ConfigurationError(str(error)) from None
    except HubSpotConfigError as error:
        raise ConfigurationError(str(error)) from None
    except HubSpotAuthError as error:
        raise ConfigurationError(f"HubSpot refused the token: {error}") from None
    except HubSpotError as error:
        raise HubmapError(Problem("HM600", f"HubSpot: {error}", _file(mapping_path),
                                  hint="check HUBSPOT_API_BASE, the token's scopes, and "
                                       "HubSpot's status")) from None
    finally:
        state.close()


def replay(mapping_path: str, environ: dict[str, str], *, state_path: str,
           sandbox: bool = False, reject_file: str | None = None,
           progress: Progress | None = None) -> tuple[Summary, str | None]:
    """Evaluate the stored rejected records again and send what now passes, plus every contact
    still waiting for HubSpot's confirmation."""
    mapping = load_mapping(mapping_path)
    sandbox_db = default_sandbox_db(state_path) if sandbox else None
    state = _open_state(state_path)
    try:
        with connect(environ, sandbox=sandbox, sandbox_db=sandbox_db, mapping=mapping) as conn:
            scope = scope_of(mapping, conn.client.settings.api_base, conn.client.settings.portal_id)
            pending = [r for r in state.pending_rejects(scope) if r.get("record") is not None]
            documents = [Document(r["record"], _replayed_where(r["where"])) for r in pending]
            options = RunOptions(input_path="(replay)", reject_file=reject_file)
            runner = Runner(mapping, conn.client, state, options, progress, conn.environ)
            return runner.run(documents, replayed=[r["id"] for r in pending]), sandbox_db
    except (StateLockedError, HubSpotConfigError) as error:
        raise ConfigurationError(str(error)) from None
    except HubSpotAuthError as error:
        raise ConfigurationError(f"HubSpot refused the token: {error}") from None
    finally:
        state.close()


def apply(mapping_path: str, environ: dict[str, str]) -> provision.ApplyResult:
    mapping = load_mapping(mapping_path)
    try:
        with connect(environ) as conn:
            return provision.apply(conn.client, mapping)
    except HubSpotConfigError as error:
        raise ConfigurationError(str(error)) from None
    except HubSpotError as error:
        raise ConfigurationError(f"HubSpot: {error}") from None


def portal_problems(paths: list[str], environ: dict[str, str]) -> list[Problem]:
    """`hubmap validate --portal`: each usable mapping compared with the portal's properties."""
    from hubmap.mapping import check_file, collect_files

    files, problems = collect_files(paths)
    try:
        with connect(environ) as conn:
            existing, groups = provision.read_portal(conn.client)
            for path in files:
                checked = check_file(path)
                problems.extend(checked.problems)
                if checked.mapping is not None and checked.ok:
                    comparison = provision.compare(checked.mapping, existing, groups)
                    problems.extend(provision.portal_problems(checked.mapping, comparison))
    except HubSpotConfigError as error:
        raise ConfigurationError(str(error)) from None
    except HubSpotError as error:
        raise ConfigurationError(f"HubSpot: {error}") from None
    return problems


def status(state_path: str) -> dict[str, Any]:
    if not Path(state_path).exists():
        raise ConfigurationError(f"no state file at '{state_path}' (nothing has run yet)")
    state = _open_state(state_path)
    try:
        report: dict[str, Any] = {"state": state_path, "scopes": []}
        for scope in state.scopes():
            report["scopes"].append({
                "scope": scope,
                "orders_counted": state.count_orders(scope),
                "contacts_unconfirmed": state.count_dirty(scope),
                "rebuild_unfinished": state.rebuilding(scope),
                "drift": state.drift_items(scope)[-20:],
                "contacts_failed": [{"contact": c, "reason": r}
                                    for c, r in state.failed_contacts(scope)],
                "pending_rejects": [
                    {k: v for k, v in r.items() if k != "record"}
                    for r in state.pending_rejects(scope)],
                "runs": state.runs(scope, limit=5),
            })
        return report
    finally:
        state.close()


def _replayed_where(where: str | None) -> str:
    where = where or "a stored record"
    return where if where.startswith("replay of ") else f"replay of {where}"


def _file(path: str):  # type: ignore[no-untyped-def]
    from hubmap.problems import Location

    return Location(path)
