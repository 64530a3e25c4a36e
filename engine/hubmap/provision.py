"""Property provisioning: the HubSpot property definitions a mapping needs, compared with a portal.

`definitions(mapping)` derives the group and each property's definition (type, fieldType, label,
options, unique value).  The group is the mapping's `group`; without one, a contacts mapping uses
HubSpot's own `contactinformation` and a forms mapping a group of its own named after the mapping
(`forms_group`), so the fields to put on the form are easy to find in HubSpot's form editor.
`compare(mapping, existing)` says what is missing, which enumeration options to add, and which
existing properties disagree with the mapping (refused: hubmap never writes into a property of
another type).  `apply(client, mapping)` creates what is missing after the whole comparison
passed, so a refusal writes nothing.  `hubmap validate --portal` uses `compare` alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hubmap.hubspot import HubSpotClient
from hubmap.mapping.build import default_label
from hubmap.mapping.model import ContactsTarget, Group, Mapping, PropertySpec, PropertyType
from hubmap.problems import Location, Problem

OBJECT_TYPE = "contacts"
DEFAULT_GROUP = "contactinformation"  # HubSpot's own group for contact properties
BUILT_IN_KEYS = {"email"}


@dataclass
class Definition:
    name: str
    body: dict[str, Any]
    location: Location


@dataclass
class Comparison:
    group: dict[str, Any] | None = None  # the group to create, if missing
    missing: list[Definition] = field(default_factory=list)
    add_options: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # name -> options
    problems: list[Problem] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return any(p.is_error for p in self.problems)


def _hubspot_type(spec: PropertySpec) -> str:
    return "datetime" if spec.type is PropertyType.DATETIME else spec.type.value


def definitions(mapping: Mapping) -> list[Definition]:
    group = group_name(mapping)
    result = []
    for spec in mapping.properties:
        body: dict[str, Any] = {
            "name": spec.name,
            "label": spec.label,
            "type": _hubspot_type(spec),
            "fieldType": spec.hubspot_field_type,
            "groupName": group,
            "formField": True,
        }
        if spec.description:
            body["description"] = spec.description
        if spec.unique:
            body["hasUniqueValue"] = True
        if spec.type is PropertyType.ENUMERATION:
            body["options"] = [
                {"label": o.label, "value": o.value, "displayOrder": i, "hidden": False}
                for i, o in enumerate(spec.options)
            ]
        if spec.type is PropertyType.BOOL:
            body["options"] = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        result.append(Definition(spec.name, body, spec.location))
    target = mapping.target
    if isinstance(target, ContactsTarget) and target.match_on not in BUILT_IN_KEYS:
        result.append(
            Definition(
                target.match_on,
                {
                    "name": target.match_on,
                    "label": target.match_label or default_label(target.match_on),
                    "type": "string",
                    "fieldType": "text",
                    "groupName": group,
                    "hasUniqueValue": True,
                    "formField": False,
                },
                Location(mapping.file, path=("target", "match_on")),
            )
        )
    return result


def group_name(mapping: Mapping) -> str:
    group = property_group(mapping)
    return group.name if group else DEFAULT_GROUP


def property_group(mapping: Mapping) -> Group | None:
    """The group hubmap creates the mapping's properties in: the mapping's `group`, else for a
    forms mapping its own (`forms_group`); None: HubSpot's `contactinformation`."""
    if mapping.group:
        return mapping.group
    if mapping.is_forms:
        return forms_group(mapping.name)
    return None


def forms_group(mapping_name: str) -> Group:
    """A forms mapping's own group: its name in HubSpot's spelling (lower-case letters, digits
    and underscores, from a letter; `shopify-checkout-form` -> `shopify_checkout_form`), labelled
    with the mapping's name."""
    name = re.sub(r"[^a-z0-9]+", "_", mapping_name.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"hubmap_{name}".rstrip("_")
    return Group(name, mapping_name)


def compare(
    mapping: Mapping,
    existing: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    extra: list[Definition] | None = None,
) -> Comparison:
    """What the portal lacks or holds otherwise than the mapping (and `extra` definitions, such
    as the mapping's fence) needs."""
    by_name = {p["name"]: p for p in existing}
    result = Comparison()
    for definition in definitions(mapping) + list(extra or ()):
        have = by_name.get(definition.name)
        if have is None:
            result.missing.append(definition)
            continue
        want_type = definition.body["type"]
        have_type = str(have.get("type", "")).lower()
        if have_type != want_type.lower():
            result.problems.append(
                Problem(
                    "HM601",
                    f"property '{definition.name}' exists in HubSpot as {have_type} "
                    f"({have.get('fieldType')}), but the mapping writes {want_type}",
                    definition.location,
                    hint="change the mapping's type to match, or use another property name; hubmap "
                    "never writes into a property of another type",
                )
            )
            continue
        if definition.body.get("hasUniqueValue") and not have.get("hasUniqueValue"):
            result.problems.append(
                Problem(
                    "HM602",
                    f"property '{definition.name}' is used to match contacts but HubSpot "
                    "does not keep its values unique",
                    definition.location,
                    hint="match on a property created with unique values (hasUniqueValue)",
                )
            )
        if want_type == "enumeration":
            have_values = {o.get("value") for o in have.get("options") or ()}
            missing_options = [
                o for o in definition.body["options"] if o["value"] not in have_values
            ]
            if missing_options:
                result.add_options[definition.name] = list(have.get("options") or []) + [
                    dict(o, displayOrder=len(have_values) + i)
                    for i, o in enumerate(missing_options)
                ]
    group = property_group(mapping)
    # a forms mapping's own group is made only when a property is to go in it
    wanted = mapping.group is not None or bool(result.missing)
    if group and wanted and group.name not in {g.get("name") for g in groups}:
        result.group = {"name": group.name, "label": group.label}
    return result


def portal_problems(mapping: Mapping, comparison: Comparison) -> list[Problem]:
    """What `hubmap validate --portal` reports: refusals, plus what a run would create."""
    problems = list(comparison.problems)
    for definition in comparison.missing:
        problems.append(
            Problem(
                "HM603",
                f"property '{definition.name}' does not exist in the portal yet",
                definition.location,
                hint="'hubmap run' or 'hubmap apply' creates it",
                severity=_warning(),
            )
        )
    for name, options in comparison.add_options.items():
        problems.append(
            Problem(
                "HM604",
                f"enumeration '{name}' lacks options the mapping uses",
                mapping.property(name).location,
                hint="'hubmap apply' adds them",
                severity=_warning(),
            )
        )
    return problems


def _warning():  # type: ignore[no-untyped-def]
    from hubmap.problems import Severity

    return Severity.WARNING


def read_portal(client: HubSpotClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return client.list_properties(OBJECT_TYPE), client.list_groups(OBJECT_TYPE)


@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    existing: list[dict[str, Any]] = field(default_factory=list)  # the portal's, before
    options_added: list[str] = field(default_factory=list)
    group_created: bool = False
    problems: list[Problem] = field(default_factory=list)


def _after_refusals(
    client: HubSpotClient,
    mapping: Mapping,
    extra: list[Definition] | None,
    errors: dict[str, Any],
    result: ApplyResult,
) -> list[Problem]:
    """What creation errors mean once the portal is read again.  A property that exists now was
    created by an attempt whose answer was lost (the retry then hears "already exists", in
    whatever words) or by someone else meanwhile: it counts as there, and is compared like any
    existing one.  Only a property still missing was refused (HM605)."""
    existing, groups = read_portal(client)
    again = compare(mapping, existing, groups, extra)
    still_missing = {d.name: d for d in again.missing}
    problems = [p for p in again.problems if p.is_error]  # a clash with what is there now
    for name, error in errors.items():
        if name not in still_missing:
            result.created.append(name)
            continue
        problems.append(
            Problem(
                "HM605",
                f"HubSpot refused to create property '{name}': {error.message}",
                still_missing[name].location,
                hint="fix the property's definition in the mapping",
            )
        )
    return problems


def apply(
    client: HubSpotClient, mapping: Mapping, extra: list[Definition] | None = None
) -> ApplyResult:
    """Create the group and missing properties, add options; refuse (writing nothing) on a clash.
    `extra`: definitions beyond the mapping's properties (its fence)."""
    existing, groups = read_portal(client)
    comparison = compare(mapping, existing, groups, extra)
    result = ApplyResult(problems=list(comparison.problems), existing=existing)
    if comparison.refused:
        return result
    if comparison.group:
        result.group_created = client.create_group(
            OBJECT_TYPE, comparison.group["name"], comparison.group["label"]
        )
    if comparison.missing:
        batch = client.create_properties_batch(OBJECT_TYPE, [d.body for d in comparison.missing])
        result.created = [p.get("name", "") for p in batch.created]
        if batch.errors:
            result.problems += _after_refusals(client, mapping, extra, batch.errors, result)
    for name, options in comparison.add_options.items():
        client.update_property(OBJECT_TYPE, name, {"options": options})
        result.options_added.append(name)
    return result
