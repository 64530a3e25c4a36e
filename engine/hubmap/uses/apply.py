"""`hubmap apply` and the provisioning every run starts with: the property group and the
properties a mapping writes, created after the whole comparison with the portal passed (a type
clash writes nothing); for a forms mapping, the form is checked first (`form_problems`: every
field the mapping sends is on it, every field it requires is filled), and a form that would refuse
the submissions stops the run before anything is created."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubmap import fence, provision
from hubmap.hubspot.errors import HubSpotNotFound
from hubmap.mapping import load_mapping
from hubmap.mapping.model import FormsTarget, Mapping
from hubmap.problems import HubmapError, Location, Problem, Severity
from hubmap.uses.context import connect, resolve_env
from hubmap.uses.outcome import EXIT_OK, EXIT_PROBLEMS, Outcome, outcome_of

CONTACT = "0-1"  # the object type id of contact fields on a form


@dataclass
class Provisioned:
    created: list[str] = field(default_factory=list)  # properties created now
    # fences of other mappings that write the same properties (this mapping's, renamed)
    other_fences: list[str] = field(default_factory=list)


def provision_for_run(
    client: Any, mapping: Mapping, environ: dict[str, str], fence_name: str | None = None
) -> Provisioned:
    """Create what the mapping needs (and its fence property, for a contacts mapping).  A forms
    mapping's form is checked first: a form that would refuse the submissions creates nothing."""
    if isinstance(mapping.target, FormsTarget):
        check_form(client, mapping, environ)
    extra = []
    if fence_name is not None:
        names = [spec.name for spec in mapping.properties]
        extra.append(
            provision.Definition(
                fence_name,
                fence.definition(fence_name, mapping.name, names, provision.group_name(mapping)),
                Location(mapping.file),
            )
        )
    result = provision.apply(client, mapping, extra)
    if result.problems:
        raise HubmapError(result.problems)
    # Another mapping's fence over exactly these properties is this mapping under another name
    # (two shops' mappings feeding one portal write other sets, and keep their own fences).
    ours = {spec.name for spec in mapping.properties}
    others = sorted(
        p["name"]
        for p in result.existing
        if str(p.get("name", "")).startswith(fence.FENCE_PREFIX)
        and p["name"] != fence_name
        and fence.owned_properties(p) == ours
    )
    return Provisioned(result.created, others)


def check_form(client: Any, mapping: Mapping, environ: dict[str, str]) -> None:
    """Refuse (HM606, nothing created or sent) a form that would refuse the mapping's
    submissions: see `form_problems`."""
    target = mapping.target
    assert isinstance(target, FormsTarget)
    problems = form_problems(client, mapping, resolve_env(target.form_guid, environ))
    if any(p.is_error for p in problems):
        raise HubmapError([p for p in problems if p.is_error])


def form_problems(client: Any, mapping: Mapping, form_guid: str) -> list[Problem]:
    """The form's definition (`GET /marketing/v3/forms/{formId}`) against what the mapping sends
    (its email field and its properties, contact fields `0-1`).  Errors (HM606): a field the
    mapping sends that the form lacks (FIELD_NOT_IN_FORM_DEFINITION), a required field of the form
    that the mapping does not fill (REQUIRED_FIELD: every submission would be refused), an unknown
    form.  Hidden fields are fields of the form like the others (HubSpot's notes: the definition
    lists them with `hidden`): the mapping may fill them - the usual place for values a shopper
    does not type - and a hidden field that is required is required of the API too, which fills
    in no default value.  Warning: a required field the mapping fills only for some orders (its
    `when`, or a value that may be missing), whose other submissions HubSpot refuses."""
    target = mapping.target
    assert isinstance(target, FormsTarget)
    where = _target_location(mapping, "form_guid")
    try:
        form = client.get_form(form_guid)
    except HubSpotNotFound:
        return [
            Problem(
                "HM606",
                f"the portal has no form {form_guid} (GET /marketing/v3/forms/"
                f"{form_guid} answered 404)",
                where,
                hint="copy the form's GUID from HubSpot (Marketing > Forms: it is in "
                "the form editor's address) into the variable form_guid names",
            )
        ]
    on_form: dict[tuple[str, str], dict[str, Any]] = {}
    for group in form.get("fieldGroups") or []:
        for item in group.get("fields") or []:
            if isinstance(item, dict) and item.get("name"):
                on_form[(str(item.get("objectTypeId") or CONTACT), str(item["name"]))] = item
    specs = {spec.name: spec for spec in mapping.properties}
    sent = [target.email_field, *specs]
    problems: list[Problem] = []
    missing = [name for name in sent if (CONTACT, name) not in on_form]
    if missing:
        problems.append(
            Problem(
                "HM606",
                f"the form lacks field(s) {', '.join(missing)}; HubSpot refuses "
                f"submissions with fields that are not on the form",
                specs[missing[0]].location
                if missing[0] in specs
                else mapping.records.contact.location,
                hint="add these fields to the form in HubSpot (hidden fields will do), or remove "
                "them from the mapping",
            )
        )
    unfilled = [
        (key, item)
        for key, item in on_form.items()
        if item.get("required") and not (key[0] == CONTACT and key[1] in sent)
    ]
    if unfilled:
        names = ", ".join(
            _field_label(key) + (" (hidden)" if item.get("hidden") else "")
            for key, item in unfilled
        )
        hidden = any(item.get("hidden") for _, item in unfilled)
        problems.append(
            Problem(
                "HM606",
                f"the form requires field(s) {names}, which the mapping does not fill; "
                "HubSpot would refuse every submission (REQUIRED_FIELD)",
                where,
                hint="make these fields optional on the form in HubSpot, or add them to the mapping"
                + (
                    "; a hidden field keeps its required setting, and a submission through the "
                    "API gets no default value"
                    if hidden
                    else ""
                ),
            )
        )
    for name in sent:
        item = on_form.get((CONTACT, name))
        spec = specs.get(name)
        if item is None or not item.get("required") or spec is None:
            continue
        if spec.when is not None or not spec.required:
            problems.append(
                Problem(
                    "HM606",
                    f"the form requires field '{name}', but the mapping leaves it out of "
                    "orders "
                    + ("its `when` excludes" if spec.when is not None else "without a value")
                    + "; HubSpot refuses those submissions "
                    "(REQUIRED_FIELD)",
                    spec.location,
                    hint="make the field optional on the form, or give every order a value "
                    "(`required: true` rejects orders without one, with their reason)",
                    severity=Severity.WARNING,
                )
            )
    return problems


def _field_label(key: tuple[str, str]) -> str:
    """A form field as HubSpot names it in errors: `firstname`, `0-2/name`."""
    object_type, name = key
    return name if object_type == CONTACT else f"{object_type}/{name}"


def _target_location(mapping: Mapping, key: str) -> Location:
    """Where `target.<key>` is written in the mapping file (the model keeps no location for it)."""
    try:
        lines = Path(mapping.file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return Location(mapping.file, path=("target", key))
    in_target = False
    for number, line in enumerate(lines, 1):
        if re.match(r"target\s*:", line):
            in_target = True
        elif in_target and re.match(r"\S", line):
            in_target = False
        elif in_target:
            match = re.match(rf"(\s+){re.escape(key)}\s*:", line)
            if match:
                return Location(mapping.file, number, len(match.group(1)) + 1, ("target", key))
    return Location(mapping.file, path=("target", key))


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
                    if checked.mapping.is_forms:
                        problems.extend(
                            _portal_form_problems(conn.client, checked.mapping, environ)
                        )
        return problems

    return outcome_of(work, lambda ps: EXIT_PROBLEMS if any(p.is_error for p in ps) else EXIT_OK)


def _portal_form_problems(client: Any, mapping: Mapping, environ: dict[str, str]) -> list[Problem]:
    """`validate --portal` for a forms mapping: its form checked as a run checks it; without the
    form's GUID in the environment, a warning that the form was not checked."""
    target = mapping.target
    assert isinstance(target, FormsTarget)
    try:
        guid = resolve_env(target.form_guid, environ)
    except HubmapError as unset:
        return [
            Problem(
                "HM412",
                f"{p.message}: the form was not checked",
                _target_location(mapping, "form_guid"),
                hint=p.hint,
                severity=Severity.WARNING,
            )
            for p in unset.problems
        ]
    return form_problems(client, mapping, guid)
