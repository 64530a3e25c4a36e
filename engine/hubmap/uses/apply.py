"""`hubmap apply` and the provisioning every run starts with: the property group and the
properties a mapping writes, created after the whole comparison with the portal passed (a type
clash writes nothing); for a forms mapping, the form must carry every field the mapping sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hubmap import fence, provision
from hubmap.mapping import load_mapping
from hubmap.mapping.model import FormsTarget, Mapping
from hubmap.problems import HubmapError, Location, Problem
from hubmap.uses.context import connect, resolve_env
from hubmap.uses.outcome import EXIT_OK, EXIT_PROBLEMS, Outcome, outcome_of


@dataclass
class Provisioned:
    created: list[str] = field(default_factory=list)  # properties created now
    # fences of other mappings that write the same properties (this mapping's, renamed)
    other_fences: list[str] = field(default_factory=list)


def provision_for_run(client: Any, mapping: Mapping, environ: dict[str, str],
                      fence_name: str | None = None) -> Provisioned:
    """Create what the mapping needs (and its fence property, for a contacts mapping)."""
    extra = []
    if fence_name is not None:
        names = [spec.name for spec in mapping.properties]
        extra.append(provision.Definition(fence_name, fence.definition(
            fence_name, mapping.name, names, provision.group_name(mapping)),
            Location(mapping.file)))
    result = provision.apply(client, mapping, extra)
    if result.problems:
        raise HubmapError(result.problems)
    if isinstance(mapping.target, FormsTarget):
        check_form(client, mapping, environ)
    # Another mapping's fence over exactly these properties is this mapping under another name
    # (two shops' mappings feeding one portal write other sets, and keep their own fences).
    ours = {spec.name for spec in mapping.properties}
    others = sorted(p["name"] for p in result.existing
                    if str(p.get("name", "")).startswith(fence.FENCE_PREFIX)
                    and p["name"] != fence_name and fence.owned_properties(p) == ours)
    return Provisioned(result.created, others)


def check_form(client: Any, mapping: Mapping, environ: dict[str, str]) -> None:
    target = mapping.target
    assert isinstance(target, FormsTarget)
    form = client.get_form(resolve_env(target.form_guid, environ))
    on_form = {f.get("name") for group in form.get("fieldGroups", [])
               for f in group.get("fields", [])}
    names = [spec.name for spec in mapping.properties]
    missing = [name for name in [target.email_field, *names] if name not in on_form]
    if missing:
        raise HubmapError([Problem(
            "HM606", f"the form lacks field(s) {', '.join(missing)}; HubSpot refuses "
            f"submissions with fields that are not on the form",
            mapping.property(missing[0]).location if missing[0] in names
            else mapping.records.contact.location,
            hint="add these fields to the form in HubSpot, or remove them from the mapping")])


def apply(mapping_path: str, environ: dict[str, str]) -> Outcome:
    def work() -> provision.ApplyResult:
        mapping = load_mapping(mapping_path)
        with connect(environ) as conn:
            return provision.apply(conn.client, mapping)

    return outcome_of(work, lambda r: EXIT_PROBLEMS if r.problems else EXIT_OK, mapping_path)


def portal_problems(paths: list[str], environ: dict[str, str]) -> Outcome:
    """`hubmap validate --portal`: each usable mapping compared with the portal's properties."""
    from hubmap.mapping import check_file, collect_files

    def work() -> list[Problem]:
        files, problems = collect_files(paths)
        with connect(environ) as conn:
            existing, groups = provision.read_portal(conn.client)
            for path in files:
                checked = check_file(path)
                problems.extend(checked.problems)
                if checked.mapping is not None and checked.ok:
                    comparison = provision.compare(checked.mapping, existing, groups)
                    problems.extend(provision.portal_problems(checked.mapping, comparison))
        return problems

    return outcome_of(work, lambda ps: EXIT_PROBLEMS if any(p.is_error for p in ps) else EXIT_OK)
