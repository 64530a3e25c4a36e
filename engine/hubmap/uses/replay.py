"""`hubmap replay`: evaluate the stored rejected records again (after the mapping or the data
was fixed) and send what now passes, plus every contact still waiting for HubSpot.

Rows of a CSV order that came after the order was read (HM508) are not replayed on their own:
alone they are not the order; run the input again with the rows together, and the complete
order replaces the one counted (a changed version)."""

from __future__ import annotations

from hubmap.inputs import Document
from hubmap.mapping import load_mapping
from hubmap.uses.context import connect, default_sandbox_db, open_state, portal_of, scope_of
from hubmap.uses.outcome import EXIT_OK, EXIT_PROBLEMS, Outcome, outcome_of
from hubmap.uses.run import RunResult, sync_documents
from hubmap.uses.summary import Progress

NOT_REPLAYED = frozenset({"HM508"})  # late rows of a grouped order


def replay(
    mapping_path: str,
    environ: dict[str, str],
    *,
    state_path: str,
    sandbox: bool = False,
    reject_file: str | None = None,
    progress: Progress | None = None,
) -> Outcome:
    def work() -> RunResult:
        mapping = load_mapping(mapping_path)
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
                scope = scope_of(mapping, portal_of(conn.client))
                pending = [
                    r
                    for r in state.pending_rejects(scope)
                    if r.get("record") is not None and r.get("code") not in NOT_REPLAYED
                ]
                documents = [Document(r["record"], _replayed_where(r["where"])) for r in pending]
                summary = sync_documents(
                    mapping,
                    conn.client,
                    state,
                    documents,
                    environ=conn.environ,
                    input_name="(replay)",
                    reject_file=reject_file,
                    progress=progress,
                    replayed=[r["id"] for r in pending],
                )
            return RunResult(summary, sandbox_db)
        finally:
            state.close()

    return outcome_of(work, lambda r: EXIT_OK if r.summary.ok else EXIT_PROBLEMS, mapping_path)


def _replayed_where(where: str | None) -> str:
    where = where or "a stored record"
    return where if where.startswith("replay of ") else f"replay of {where}"
