"""`hubmap plan`: what the orders in an input would write, per contact (HubSpot's values unknown:
every contact is shown as if HubSpot had nothing yet)."""

from __future__ import annotations

from hubmap.catalogs import load_catalogs
from hubmap.evaluate import CompiledMapping
from hubmap.inputs import read_documents
from hubmap.mapping import load_mapping
from hubmap.plan import Plan, plan_outcomes
from hubmap.uses.outcome import EXIT_OK, EXIT_PROBLEMS, Outcome, outcome_of


def plan(mapping_path: str, input_path: str, input_format: str | None = None) -> Outcome:
    def work() -> Plan:
        mapping = load_mapping(mapping_path)
        catalogs = load_catalogs(mapping)
        compiled = CompiledMapping(mapping, catalogs)
        plan = plan_outcomes(compiled, compiled.outcomes(read_documents(input_path,
                                                                        input_format)))
        plan.warnings = compiled.take_warnings()
        return plan

    return outcome_of(work, lambda p: EXIT_PROBLEMS if p.rejected or p.unwritable else EXIT_OK, mapping_path)
