"""`hubmap run`: open the input, the state and HubSpot, then `sync_documents`.

`sync_documents` is the pipeline every sending command shares (`run`, `replay`, the webhook
worker): compare the mapping with the one the state was made with (`hubmap.sync.compatibility`),
take the scope's lock, create the properties, then count and write contacts
(`hubmap.uses.contacts`) or submit forms (`hubmap.uses.forms`).

A dry run is the same code over a private in-memory copy of the state and a client that reads
HubSpot but records its writes instead of sending them (`hubmap.hubspot.readonly`).

`rebuild` recomputes everything: the scope's orders, refunds and folds are forgotten (the
baselines, HubSpot's values before hubmap first wrote, are kept, as drift left them) and the
input - which must then be the full order history - is counted again; every contact of the scope
is written.  A state from hubmap 0.1 (no per-order contributions) must be rebuilt once.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hubmap import fence, sync
from hubmap.catalogs import load_catalogs
from hubmap.evaluate import CompiledMapping
from hubmap.hubspot.errors import DailyLimitReached, HubSpotAuthError
from hubmap.hubspot.readonly import ReadOnlyClient
from hubmap.inputs import Document, InputError, expected_records, read_documents
from hubmap.mapping import load_mapping
from hubmap.mapping.model import Mapping, MergeRule
from hubmap.problems import HubmapError, Location, Problem
from hubmap.state import StateStore
from hubmap.uses.apply import Provisioned, provision_for_run
from hubmap.uses.contacts import ContactsSync, Fences, SyncOptions
from hubmap.uses.context import (
    connect,
    default_sandbox_db,
    open_state,
    portal_of,
    portal_scopes,
    scope_of,
)
from hubmap.uses.forms import FormsSync
from hubmap.uses.job import Job
from hubmap.uses.outcome import EXIT_OK, EXIT_PROBLEMS, Outcome, outcome_of
from hubmap.uses.rejects import RejectSink
from hubmap.uses.summary import Progress, Summary


@dataclass
class RunResult:
    summary: Summary
    sandbox_db: str | None = None


def run(
    mapping_path: str,
    input_path: str,
    *,
    environ: dict[str, str],
    input_format: str | None = None,
    state_path: str,
    dry_run: bool = False,
    reject_file: str | None = None,
    workers: int = 4,
    sandbox: bool = False,
    progress: Progress | None = None,
    rebuild: bool = False,
    options: dict[str, Any] | None = None,
) -> Outcome:
    """`hubmap run`.  `options`: further `SyncOptions` fields (count_chunk, batch), for tests
    and benchmarks."""

    def work() -> RunResult:
        mapping = load_mapping(mapping_path)
        documents = opened(read_documents(input_path, input_format))
        sandbox_db = default_sandbox_db(state_path) if sandbox else None
        state = open_state(state_path)
        try:
            with connect(
                environ,
                sandbox=sandbox,
                sandbox_db=sandbox_db,
                mapping=mapping,
                state=state_path,
                offers_sandbox=True,
            ) as conn:
                summary = sync_documents(
                    mapping,
                    conn.client,
                    state,
                    documents,
                    environ=conn.environ,
                    input_name=input_path,
                    reject_file=reject_file,
                    rebuild=rebuild,
                    dry_run=dry_run,
                    progress=progress,
                    options=SyncOptions(
                        workers=workers,
                        expected_records=expected_records(input_path, input_format)
                        if progress is not None
                        else None,
                        **(options or {}),
                    ),
                )
            return RunResult(summary, sandbox_db)
        finally:
            state.close()

    return outcome_of(work, lambda r: EXIT_OK if r.summary.ok else EXIT_PROBLEMS, mapping_path)


def opened(documents: Iterator[Document | InputError]) -> Iterator[Document | InputError]:
    """The documents, with the input opened now: a missing file or an unknown format stops the
    command before anything is written."""
    first = list(itertools.islice(documents, 1))
    return itertools.chain(first, documents)


def sync_documents(
    mapping: Mapping,
    client: Any,
    state: StateStore,
    documents: Iterable[Document | InputError],
    *,
    environ: dict[str, str],
    input_name: str,
    reject_file: str | None = None,
    rebuild: bool = False,
    dry_run: bool = False,
    provisioned: dict[str, Provisioned] | None = None,
    options: SyncOptions | None = None,
    progress: Progress | None = None,
    replayed: Iterable[int] = (),
    now: datetime | None = None,
    compiled: CompiledMapping | None = None,
) -> Summary:
    """Send `documents` through `mapping` (see the module docstring).  `replayed`: ids of stored
    rejected records that `documents` hold again, marked resolved once taken in.
    `provisioned`: what provisioning found, by scope, kept by a caller that runs the same mapping
    often (the webhook worker): a scope in it is not provisioned again; `compiled`: the mapping
    compiled with its catalogs, kept by such a caller (else they are read now)."""
    if rebuild and dry_run:
        raise HubmapError(
            Problem(
                "HM704",
                "a rebuild cannot be a dry run: it forgets the stored counts",
                Location(mapping.file),
                hint="use `hubmap plan` to see the values the full "
                "history gives, or run --rebuild without --dry-run",
            )
        )
    options = options or SyncOptions()
    progress = progress or Progress()
    if dry_run:
        state = state.copy_in_memory()
        client = ReadOnlyClient(client)
    started = time.monotonic()
    summary = Summary(dry_run=dry_run)
    compiled = compiled or CompiledMapping(mapping, load_catalogs(mapping))
    portal = portal_of(client)
    scope = scope_of(mapping, portal)
    summary.renamed_from = _follow_rename(mapping, state, scope, portal)
    _check_state(mapping, state, scope, rebuild, summary)
    run_id = state.start_run(scope, mapping.file, input_name)
    lock = threading.Lock()
    rejects = RejectSink(state, scope, run_id, reject_file, lock)
    outcome = "failed"
    try:
        state.save_fingerprint(scope, sync.fingerprint(mapping), summary.properties_started)
        fence_name = None if mapping.is_forms else fence_property_for(state, scope, mapping)
        done = (provisioned or {}).get(scope)
        if done is None:
            done = provision_for_run(client, mapping, environ, fence_name)
            summary.properties_created = done.created
            if provisioned is not None:
                provisioned[scope] = done
        if rebuild:
            state.start_rebuild(scope)
            summary.rebuilt = True
        outcomes = compiled.outcomes(documents)
        job = Job(compiled, client, state, scope, run_id, summary, rejects, progress, lock)
        if mapping.is_forms:
            FormsSync(job, options.workers, environ, now or datetime.now(timezone.utc)).run(
                outcomes
            )
        else:
            assert fence_name is not None
            fences = Fences(
                fence_name,
                state.ledger_id(),
                tuple(done.other_fences),
                {s.name: s.max_items for s in mapping.properties if s.merge is MergeRule.PREPEND},
                rebuild,
            )
            contacts = ContactsSync(job, options, fences)
            contacts.count(outcomes)
            ids = list(replayed)
            if ids:
                state.resolve_rejects(ids)
            contacts.write()
        if rebuild:
            state.end_rebuild(scope)
        summary.refunds_waiting = state.refunds_waiting(scope)
        summary.warnings += compiled.take_warnings()
        outcome = "ok" if summary.ok else "partial"
    except DailyLimitReached as error:
        summary.stopped = str(error)
        outcome = "stopped"
    except HubSpotAuthError as error:
        # A refused token is a configuration problem: record the run, then let the caller
        # report it (exit 2), rather than a partly done run.
        summary.stopped = str(error)
        outcome = "stopped"
        raise
    finally:
        rejects.close()
        stats = client.stats()
        summary.calls, summary.rate_limited, summary.retries = (
            stats.calls,
            stats.rate_limited,
            stats.retries,
        )
        summary.seconds = round(time.monotonic() - started, 3)
        if isinstance(client, ReadOnlyClient):
            summary.planned = dict(client.planned.contacts)
        state.finish_run(scope, run_id, outcome, summary.to_dict())
        if dry_run:
            state.close()
    return summary


def _follow_rename(mapping: Mapping, state: StateStore, scope: str, portal: str) -> str | None:
    """A mapping whose `name:` changed takes its state along: a scope new to the state, whose
    file ran before under another name with the same identities, is that mapping renamed.  Its
    old name, or None.  (A rename that is not seen here - another file, another state - meets
    the old name's fences at the first contact, and is refused there.)"""
    if state.fingerprint(scope) is not None:
        return None
    identity = sync.fingerprint(mapping)["identity"]
    here = Path(mapping.file).resolve()
    before = [
        old
        for old, file in state.mapping_files(portal_scopes(portal)).items()
        if old != scope
        and file
        and Path(file).resolve() == here
        and (state.fingerprint(old) or {}).get("identity") == identity
    ]
    if len(before) != 1:
        return None
    state.rename_scope(before[0], scope)
    return before[0].split("|", 1)[1]


def fence_property_for(state: StateStore, scope: str, mapping: Mapping) -> str:
    """The scope's fence property: chosen from the mapping's name at its first run, then kept
    (so a renamed mapping whose state followed it keeps its fence)."""
    name = state.fence_property(scope)
    if name is None:
        name = fence.property_name(mapping.name)
        state.save_fence_property(scope, name)
    return name


def _check_state(
    mapping: Mapping, state: StateStore, scope: str, rebuild: bool, summary: Summary
) -> None:
    """Refuse a state the mapping cannot go on from; note what starts or changes from now on."""
    if rebuild:
        return
    if state.rebuilding(scope):
        raise sync.rebuild_needed(
            mapping,
            "a rebuild of this mapping's counts was started and "
            "did not finish; the stored counts are incomplete",
        )
    if state.needs_rebuild(scope):
        raise sync.rebuild_needed(
            mapping,
            "this state file was written by hubmap 0.1, which "
            "kept no per-order contributions; the stored counts cannot "
            "follow orders that change (the baselines are kept)",
        )
    result = sync.compatibility(mapping, state.fingerprint(scope), sync.fingerprint(mapping))
    summary.properties_started = result.started
    summary.mapping_changed = result.changed
