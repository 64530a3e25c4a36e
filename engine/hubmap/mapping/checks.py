"""Checks on a mapping's meaning, beyond what the JSON Schema can say.

Each check yields Problems located at the key or value that is wrong:
expressions that do not compile (HM301/HM302), a merge rule that does not fit the type (HM401),
names HubSpot would refuse (HM402), HubSpot's read-only properties (HM403), rules a form cannot
honour (HM404), secrets written into a mapping (HM405), type options that do not fit (HM406),
a property with no value source or several (HM407), time zones that are not known (HM408),
example cases that cannot run (HM411),
refunds that cannot adjust their orders (HM414), catalogs that cannot be read (HM415), lookups of
catalogs the mapping does not declare (HM416), catalog keys that give no row a key (HM417) and
let values that are not declared, use themselves or are read where there is no record (HM418),
derive expressions that read a name that is no property (HM419), and (a warning) comparisons of
two fields where a text in single quotes was meant (HM306).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hubmap.expressions import (
    ExpressionError,
    ExpressionSyntaxError,
    compared_fields,
    compile_source,
    fields_read,
)
from hubmap.mapping.loader import LoadedDocument, shortened
from hubmap.mapping.model import Mapping, MergeRule, PropertyType, Source, SourceKind
from hubmap.problems import Location, Problem, Severity

PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_EXAMPLE_NODES = 1_000_000  # values of the examples' inputs looked at for their field names
MAX_PROPERTY_NAME_LENGTH = 100
ENV_REFERENCE = re.compile(r"\$\{([^}]*)\}")
PARAM_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# HubSpot computes these itself; a write is refused (READ_ONLY_VALUE).
READ_ONLY_PROPERTIES = frozenset(
    {
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
        "hs_createdate",
        "hs_lastmodifieddate",
        "hs_all_contact_vids",
        "hs_email_domain",
        "hs_is_contact",
        "hs_merged_object_ids",
        "num_conversion_events",
        "num_unique_conversion_events",
        "first_conversion_date",
        "first_conversion_event_name",
        "recent_conversion_date",
        "recent_conversion_event_name",
        "hs_analytics_source",
        "hs_analytics_num_visits",
        "hs_analytics_num_page_views",
        "hs_calculated_form_submissions",
        "hs_latest_source",
        "hs_lifecyclestage_customer_date",
    }
)

# Keys that name a credential.  Secrets come from the environment (HUBSPOT_ACCESS_TOKEN).
SECRET_KEY = re.compile(
    r"(^|_)(token|access_token|api_?key|hapikey|password|passwd|secret|client_secret|"
    r"private_app)($|_)",
    re.IGNORECASE,
)
# Values that look like a HubSpot private-app / service key token.
SECRET_VALUE = re.compile(r"\bpat-[a-z]{2,3}\d?-[0-9a-f]{8}-", re.IGNORECASE)

RULES_FOR_TYPE = {
    MergeRule.SUM: {PropertyType.NUMBER},
    MergeRule.MIN: {PropertyType.NUMBER, PropertyType.DATE, PropertyType.DATETIME},
    MergeRule.MAX: {PropertyType.NUMBER, PropertyType.DATE, PropertyType.DATETIME},
}


def raw_problems(doc: LoadedDocument) -> list[Problem]:
    """Checks that run on the raw data, even when the schema check failed."""
    return list(_secrets(doc))


def semantic_problems(mapping: Mapping, doc: LoadedDocument) -> list[Problem]:
    problems: list[Problem] = []
    problems += _expressions(mapping)
    problems += _properties(mapping, doc)
    problems += _target(mapping, doc)
    problems += _refunds(mapping, doc)
    problems += _catalogs(mapping, doc)
    problems += _lets(mapping)
    problems += _examples(mapping, doc)
    problems += _compared_names(mapping)
    problems += _derives(mapping)
    return problems


def _secrets(doc: LoadedDocument) -> Iterator[Problem]:
    hint = (
        "secrets never belong in a mapping file: set HUBSPOT_ACCESS_TOKEN (and other "
        "credentials) in the environment"
    )

    def walk(node: Any, path: tuple[Any, ...]) -> Iterator[Problem]:
        # Example inputs are shop payloads: their 'token' keys are cart tokens, not credentials.
        if len(path) >= 3 and path[0] == "examples" and path[2] in ("input", "existing"):
            return
        if isinstance(node, dict):
            for key, value in node.items():
                child = path + (key,)
                if SECRET_KEY.search(str(key)) and not (len(path) == 1 and path[0] == "properties"):
                    yield Problem(
                        "HM405", f"'{key}' looks like a secret", doc.key_location(child), hint=hint
                    )
                yield from walk(value, child)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                yield from walk(item, path + (index,))
        elif isinstance(node, str) and SECRET_VALUE.search(node):
            yield Problem(
                "HM405",
                "this value looks like a HubSpot access token",
                doc.location(path),
                hint=hint,
            )

    yield from walk(doc.data, ())


def _all_sources(mapping: Mapping) -> Iterator[tuple[str, Source]]:
    records = mapping.records
    yield "records.id", records.id
    yield "records.time", records.time
    yield "records.contact", records.contact
    if records.path:
        yield "records.path", records.path
    if records.group_by:
        yield "records.group_by", records.group_by
    if records.when:
        yield "records.when", records.when
    if records.version:
        yield "records.version", records.version
    for index, requirement in enumerate(records.require):
        yield f"records.require[{index}].that", requirement.that
    for name, source in mapping.lets:
        yield f"let.{name}", source
    for catalog in mapping.catalogs:
        for key in ("key", "path", "each"):
            source = getattr(catalog, key)
            if source is not None:
                yield f"catalogs.{catalog.name}.{key}", source
    refunds = mapping.refunds
    if refunds is not None:
        for key in ("id", "match", "path", "in_order", "order"):
            source = getattr(refunds, key)
            if source is not None:
                yield f"refunds.{key}", source
        for name, source in refunds.values:
            yield f"refunds.values.{name}", source
    target = mapping.target
    if mapping.is_forms:
        for key in ("hutk", "page_uri", "page_name", "ip_address"):
            source = getattr(target, key)
            if source is not None:
                yield f"target.context.{key}", source
    for spec in mapping.properties:
        for label, source in (("", spec.source), (".when", spec.when), (".derive", spec.derive)):
            if source is not None:
                yield f"properties.{spec.name}{label}", source


def _expressions(mapping: Mapping) -> Iterator[Problem]:
    declared = {p.name for p in mapping.params}
    for where, source in _all_sources(mapping):
        found = PARAM_REFERENCE.search(source.text or "")
        if found is not None:  # declared ones were put in already (or refused: HM420)
            if found.group(1) not in declared:
                from hubmap.mapping.schema import did_you_mean

                yield Problem(
                    "HM421",
                    f"${{{found.group(1)}}} names no parameter of this mapping (in {where})",
                    source.location_at(found.start()),
                    hint=did_you_mean(found.group(1), sorted(declared))
                    or f"declare it under params: with its default, for example "
                    f"params: {{{found.group(1)}: {{default: ...}}}}",
                )
            continue
        try:
            compile_source(source)
        except ExpressionSyntaxError as error:
            yield Problem(
                error.code,
                f"{error.message} (in {where})",
                source.location_at(error.offset),
                hint=error.hint,
            )
        except (RecursionError, ValueError) as error:  # the parsers' own limits: too deep, too long
            template = source.kind is SourceKind.TEMPLATE
            reason = (
                "it is nested too deeply"
                if isinstance(error, RecursionError)
                else shortened(str(error), 120)
            )
            yield Problem(
                "HM302" if template else "HM301",
                f"the {'template' if template else 'expression'} cannot be compiled: {reason} "
                f"(in {where})",
                source.location,
                hint="write it shorter, or split it over several properties or let: values",
            )


def _properties(mapping: Mapping, doc: LoadedDocument) -> Iterator[Problem]:
    match_on = getattr(mapping.target, "match_on", None)
    for spec in mapping.properties:
        path = ("properties", spec.name)
        key = spec.location
        raw = doc.data["properties"][spec.name]
        if not PROPERTY_NAME.match(spec.name) or len(spec.name) > MAX_PROPERTY_NAME_LENGTH:
            yield Problem(
                "HM402",
                f"'{spec.name}' is not a valid HubSpot property name",
                key,
                hint="internal names use lower case letters, digits and underscores, "
                "start with a letter, and are at most 100 characters",
            )
        if spec.name in READ_ONLY_PROPERTIES:
            yield Problem(
                "HM403",
                f"'{spec.name}' is computed by HubSpot and cannot be written",
                key,
                hint="choose another property name",
            )
        elif spec.name.startswith("hs_"):
            yield Problem(
                "HM403",
                f"'{spec.name}' is in HubSpot's own 'hs_' namespace",
                key,
                hint="custom properties cannot start with 'hs_'; rename it",
                severity=Severity.WARNING,
            )
        if spec.name in ("email", match_on) and not mapping.is_forms:
            yield Problem(
                "HM413",
                f"'{spec.name}' is the contact key; it is set from records.contact",
                key,
                hint="remove this property",
            )
        kinds = [k for k in ("from", "template", "value", "derive") if k in raw]
        if len(kinds) != 1:
            yield Problem(
                "HM407",
                f"property '{spec.name}' needs exactly one of from, template, value or derive"
                + (f" (it has {', '.join(kinds)})" if kinds else ""),
                key,
                hint="'from' reads the order with JMESPath, 'template' writes text with "
                "Jinja, 'value' is fixed, 'derive' computes from merged values",
            )
        allowed_types = RULES_FOR_TYPE.get(spec.merge)
        if allowed_types and spec.type not in allowed_types:
            names = " or ".join(sorted(t.value for t in allowed_types))
            yield Problem(
                "HM401",
                f"merge '{spec.merge.value}' needs a {names} property, not {spec.type.value}",
                doc.location(path + ("merge",)),
                hint=f"change the type to {names}, or use merge: overwrite",
            )
        if spec.merge is MergeRule.PREPEND and not (
            spec.type is PropertyType.STRING
            or (spec.type is PropertyType.ENUMERATION and spec.multiple)
        ):
            yield Problem(
                "HM401",
                f"merge 'prepend' builds a list; it needs a string or a "
                f"multiple enumeration, not {spec.type.value}",
                doc.location(path + ("merge",)),
                hint="use type: string (items joined with ';') or add multiple: true",
            )
        if "derive" in raw and "merge" in raw:
            yield Problem(
                "HM401",
                "a derived property is computed after merging; it has no merge rule",
                doc.key_location(path + ("merge",)),
                hint="remove 'merge'",
            )
        if spec.type is PropertyType.ENUMERATION and not spec.options:
            yield Problem(
                "HM406",
                f"enumeration '{spec.name}' needs options",
                key,
                hint="list the allowed values under 'options:'",
            )
        for extra in ("options", "multiple"):
            if extra in raw and spec.type is not PropertyType.ENUMERATION:
                yield Problem(
                    "HM406",
                    f"'{extra}' is only for enumeration properties",
                    doc.key_location(path + (extra,)),
                    hint="remove it, or set type: enumeration",
                )
        if "decimals" in raw and spec.type is not PropertyType.NUMBER:
            yield Problem(
                "HM406",
                "'decimals' is only for number properties",
                doc.key_location(path + ("decimals",)),
                hint="remove it",
            )
        if "timezone" in raw and spec.type not in (PropertyType.DATE, PropertyType.DATETIME):
            yield Problem(
                "HM406",
                "'timezone' is only for date and datetime properties",
                doc.key_location(path + ("timezone",)),
                hint="remove it",
            )
        if "max_items" in raw and spec.merge is not MergeRule.PREPEND:
            yield Problem(
                "HM406",
                "'max_items' only applies to merge: prepend",
                doc.key_location(path + ("max_items",)),
                hint="remove it",
                severity=Severity.WARNING,
            )
        values = [o.value for o in spec.options]
        if len(set(values)) != len(values):
            yield Problem(
                "HM406",
                f"enumeration '{spec.name}' lists an option twice",
                doc.key_location(path + ("options",)),
                hint="remove the repeated one",
            )
        for zone_path in (path + ("timezone",),):
            if "timezone" in raw:
                yield from _zone(raw["timezone"], doc.location(zone_path))
    if mapping.timezone:
        yield from _zone(mapping.timezone, doc.location(("timezone",)))


def _refunds(mapping: Mapping, doc: LoadedDocument) -> Iterator[Problem]:
    refunds = mapping.refunds
    if refunds is None:
        return
    if mapping.is_forms:
        yield Problem(
            "HM414",
            "a form submission is one purchase as it happened; refunds cannot adjust it",
            refunds.location,
            hint="move refunds to a contacts mapping, or remove them",
        )
        return
    if refunds.match is None and refunds.in_order is None:
        yield Problem(
            "HM414",
            "refunds need 'match' (refund documents of their own) or "
            "'in_order' (refunds inside order records), or both",
            refunds.location,
            hint="for example in_order: refunds",
        )
    if refunds.match is not None and refunds.order is None:
        yield Problem(
            "HM414",
            "refund documents ('match') need 'order': the id of the order each refund belongs to",
            doc.key_location(("refunds", "match")),
            hint='for example order: "to_string(order_id)"',
        )
    specs = {spec.name: spec for spec in mapping.properties}
    for name, _ in refunds.values:
        where = doc.key_location(("refunds", "values", name))
        spec = specs.get(name)
        if spec is None:
            yield Problem(
                "HM414",
                f"'{name}' is not a property of this mapping",
                where,
                hint=_close(name, set(specs)),
            )
        elif spec.type is not PropertyType.NUMBER or spec.source is None:
            yield Problem(
                "HM414",
                f"a refund adds an amount to an order's value, so '{name}' "
                f"must be a number property read from the order, not "
                f"{'derived' if spec.source is None else spec.type.value}",
                where,
                hint="refund only number properties such as the order's value",
            )


LOOKUP = re.compile(r"\blookup\(\s*'([^']*)'")
LET = re.compile(r"\blet\(\s*'([^']*)'")


def _lets(mapping: Mapping) -> Iterator[Problem]:
    """let('name') must name a value of the let: section, be read in a record's expressions
    (not in catalogs, refunds or derive, which have no record), and not lead back to itself."""
    declared = {name: source for name, source in mapping.lets}
    uses = {
        name: [m.group(1) for m in LET.finditer(source.text or "")] for name, source in mapping.lets
    }
    for where, source in _all_sources(mapping):
        for found in LET.finditer(source.text or ""):
            name = found.group(1)
            at = source.location_at(found.start(1))
            if name not in declared:
                yield Problem(
                    "HM418",
                    f"let('{name}') names no value of this mapping's let: section (in {where})",
                    at,
                    hint=_close_let(name, sorted(declared)),
                )
            elif where.startswith(("catalogs.", "refunds.")) or where.endswith(".derive"):
                yield Problem(
                    "HM418",
                    f"let('{name}') is read in {where}, which is not worked out from a record",
                    at,
                    hint="use let values in records: and in properties' from: and when:",
                )
    for name, source in declared.items():
        path = _path_back(name, uses)
        if path:
            yield Problem(
                "HM418",
                f"let '{name}' leads back to itself: {' -> '.join(path)}",
                source.location,
                hint="a let value may use the others, but not one that needs it",
            )


def _path_back(start: str, uses: dict[str, list[str]]) -> list[str]:
    """The let names from `start` back to itself ([] when there is no such path)."""
    todo, seen = [(start, [start])], set()
    while todo:
        name, path = todo.pop()
        for used in uses.get(name, []):
            if used == start:
                return path + [start]
            if used in uses and used not in seen:
                seen.add(used)
                todo.append((used, path + [used]))
    return []


def _catalogs(mapping: Mapping, doc: LoadedDocument) -> Iterator[Problem]:
    from hubmap.catalogs import catalog_path

    declared = {c.name for c in mapping.catalogs}
    for where, source in _all_sources(mapping):
        for found in LOOKUP.finditer(source.text or ""):
            if found.group(1) not in declared:
                yield Problem(
                    "HM416",
                    f"lookup('{found.group(1)}', ...) names no catalog of "
                    f"this mapping (in {where})",
                    source.location_at(found.start(1)),
                    hint=_close(found.group(1), declared)
                    if declared
                    else "declare the catalog under catalogs: with its file and key",
                )
    for spec in mapping.catalogs:
        path = catalog_path(mapping, spec)
        if not _is_file(path):
            yield Problem(
                "HM415",
                f"catalog file '{spec.file}' does not exist",
                doc.location(("catalogs", spec.name, "file")),
                hint=f"the path is relative to the mapping's folder ({path.parent})",
            )


def catalog_problems(mapping: Mapping, doc: LoadedDocument) -> Iterator[Problem]:
    """What `validate` finds by reading each catalog (a run reads it once, when it starts): a
    file that cannot be read, a key that gives no row a key."""
    from hubmap.catalogs import catalog_path, load_catalog
    from hubmap.problems import HubmapError

    for spec in mapping.catalogs:
        if not _is_file(catalog_path(mapping, spec)):
            continue  # said by the semantic checks
        try:
            catalog = load_catalog(mapping, spec)
        except (HubmapError, ExpressionError, OSError) as error:
            yield Problem(
                "HM415",
                f"catalog '{spec.name}' cannot be read: {error}",
                doc.location(("catalogs", spec.name, "file")),
                hint="check the file, path and each",
            )
            continue
        if not catalog.rows:
            yield Problem(
                "HM417",
                f"catalog '{spec.name}': the key gives no row of '{spec.file}' a value",
                spec.key.location,
                hint="name a field every row has, such as sku or id (with each: for "
                "lists inside rows, such as variants)",
            )


def _is_file(path: Path) -> bool:
    """Whether `path` names a file; False for names the system refuses (too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _zone(name: str, where: Location) -> Iterator[Problem]:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        yield Problem(
            "HM408",
            f"'{name}' is not a known time zone",
            where,
            hint="use an IANA name such as 'Europe/Berlin' or 'America/New_York'",
        )


def _target(mapping: Mapping, doc: LoadedDocument) -> Iterator[Problem]:
    if not mapping.is_forms:
        return
    for spec in mapping.properties:
        if spec.merge is not MergeRule.OVERWRITE or spec.derive is not None:
            raw = doc.data["properties"][spec.name]
            where = doc.location(("properties", spec.name, "merge" if "merge" in raw else "derive"))
            yield Problem(
                "HM404",
                f"a form submission overwrites values, so '{spec.name}' cannot use "
                f"{'derive' if spec.derive else 'merge: ' + spec.merge.value}",
                where,
                hint="totals and lists over many orders belong in a contacts mapping; here use "
                "merge: overwrite (the values of this purchase)",
            )
    for key in ("portal_id", "form_guid"):
        text = str(doc.data["target"][key])
        for match in ENV_REFERENCE.finditer(text):
            if not ENV_NAME.match(match.group(1)):
                yield Problem(
                    "HM410",
                    f"'{match.group(0)}' is not a valid environment reference",
                    doc.location(("target", key)),
                    hint="write ${NAME} with letters, digits and underscores",
                )
        if "$" in ENV_REFERENCE.sub("", text):
            yield Problem(
                "HM410",
                f"'{text}' has a '$' that is not a ${{NAME}} reference",
                doc.location(("target", key)),
                hint="write ${NAME}",
            )


def _examples(mapping: Mapping, doc: LoadedDocument) -> Iterator[Problem]:
    names = {spec.name for spec in mapping.properties}
    key_field = mapping.target.email_field if mapping.is_forms else mapping.target.match_on  # type: ignore[union-attr]
    names.add(key_field)
    base = Path(mapping.file).parent
    for index, example in enumerate(mapping.examples):
        path = ("examples", index)
        raw = doc.data["examples"][index]
        has = [k for k in ("input", "input_file") if k in raw]
        if len(has) != 1:
            yield Problem(
                "HM411",
                f"example '{example.name}' needs exactly one of input or input_file",
                doc.key_location(path),
                hint="put the order under 'input:', or name a JSON file in 'input_file:'",
            )
        if example.input_file and not _is_file(base / example.input_file):
            yield Problem(
                "HM411",
                f"example input file '{example.input_file}' does not exist",
                doc.location(path + ("input_file",)),
                hint=f"the path is relative to the mapping's folder ({base})",
            )
        for section in ("expect", "existing"):
            for prop in raw.get(section) or {}:
                if prop not in names:
                    yield Problem(
                        "HM411",
                        f"'{prop}' in {section} is not a property of this mapping",
                        doc.key_location(path + (section, prop)),
                        hint=_close(prop, names),
                    )
        for contact, values in (raw.get("expect_contacts") or {}).items():
            for prop in values or {}:
                if prop not in names:
                    yield Problem(
                        "HM411",
                        f"'{prop}' is not a property of this mapping",
                        doc.key_location(path + ("expect_contacts", contact, prop)),
                        hint=_close(prop, names),
                    )
        if "expect" in raw and "expect_contacts" in raw:
            yield Problem(
                "HM411",
                "use either expect (one contact) or expect_contacts",
                doc.key_location(path + ("expect_contacts",)),
                hint="keep one of them",
            )
        declared = sorted(p.name for p in mapping.params)
        for name in example.params:
            if name not in declared:
                from hubmap.mapping.schema import did_you_mean

                yield Problem(
                    "HM421",
                    f"example '{example.name}' sets {name}, which is no parameter of this mapping",
                    doc.key_location(path + ("params", name)),
                    hint=did_you_mean(name, declared)
                    or "name one of the parameters declared under params:",
                )


def _compared_names(mapping: Mapping) -> Iterator[Problem]:
    """HM306 (a warning): `currency == "USD"` or `status == Completed` compares two fields,
    where a text ('USD', in single quotes) was almost always meant.  Said of a name no example
    record has (with no example input: of a name written in double quotes only)."""
    known = _example_fields(mapping)
    for where, source in _all_sources(mapping):
        if (
            source.kind is not SourceKind.JMESPATH
            or where.startswith("catalogs.")
            or where.endswith(".derive")
        ):  # these read catalog rows and merged values
            continue
        text = source.text
        for left, right in compared_fields(text):

            def quoted(name: str, text: str = text) -> bool:
                return f'"{name}"' in text

            if "null" in (left, right) and not quoted("null"):
                continue  # a field no record has is null: `x == null` works as meant
            suspects = [
                n for n in (right, left) if (n not in known if known is not None else quoted(n))
            ]
            if not suspects:
                continue
            # both unknown: the one in double quotes, else the right-hand side
            name = next((n for n in suspects if quoted(n)), suspects[0])
            shown = f'"{name}"' if quoted(name) else name
            found = re.search(
                re.escape(shown) if quoted(name) else rf"\b{re.escape(name)}\b", source.text
            )
            yield Problem(
                "HM306",
                f"{shown} reads a field called {name}, which "
                f"{'no example record has' if known is not None else 'records rarely have'} "
                f"(in {where})",
                source.location_at(found.start() if found else 0),
                hint=_literal_hint(name),
                severity=Severity.WARNING,
            )


def _derives(mapping: Mapping) -> Iterator[Problem]:
    """HM419: a derive expression reads the contact's merged values by property name; a name
    that is no property of the mapping would always be null."""
    names = {spec.name for spec in mapping.properties}
    for spec in mapping.properties:
        source = spec.derive
        if source is None or source.kind is not SourceKind.JMESPATH:
            continue
        for unknown in sorted(fields_read(source.text) - names):
            found = re.search(rf"\b{re.escape(unknown)}\b", source.text)
            yield Problem(
                "HM419",
                f"properties.{spec.name}.derive reads '{unknown}', which is not a "
                "property of this mapping",
                source.location_at(found.start() if found else 0),
                hint=_close(unknown, names - {spec.name})
                or "derive reads the merged values of the mapping's properties, by their names",
            )


def _literal_hint(name: str) -> str:
    if name in ("true", "false", "null"):
        return f"to compare with {name}, write it in backticks: `{name}`"
    return (
        f"to compare with the text {name}, write it in single quotes: '{name}' (double "
        "quotes and bare names are field names in JMESPath)"
    )


def _example_fields(mapping: Mapping) -> set[str] | None:
    """Every key of every object in the examples' input records (any depth); None when no
    example gives an input that can be read."""
    base = Path(mapping.file).parent
    documents: list[Any] = []
    for example in mapping.examples:
        if example.input is not None:
            documents.append(example.input)
        elif example.input_file and _is_file(base / example.input_file):
            try:
                documents.append(json.loads((base / example.input_file).read_bytes()))
            except (OSError, ValueError, RecursionError):
                continue
    if not documents:
        return None
    keys: set[str] = set()
    stack, seen = documents, 0
    while stack and seen < MAX_EXAMPLE_NODES:
        node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            keys.update(str(k) for k in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return keys


def _close_let(word: str, names: list[str]) -> str:
    from hubmap.mapping.schema import did_you_mean

    if not names:
        return "declare it under let: with the expression it stands for"
    return did_you_mean(word, names) or f"the let: section has {', '.join(names)}"


def _close(word: str, names: set[str]) -> str:
    from hubmap.mapping.schema import did_you_mean

    return did_you_mean(word, sorted(names)) or "expected values name the mapping's properties"
