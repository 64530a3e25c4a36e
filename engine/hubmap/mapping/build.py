"""Build the `Mapping` model from a schema-valid loaded document, keeping each piece's location."""

from __future__ import annotations

from typing import Any

from hubmap.mapping.loader import JsonPath, LoadedDocument
from hubmap.mapping.model import (
    DEFAULT_MAX_ITEMS,
    CatalogSpec,
    ContactsTarget,
    Example,
    FormsTarget,
    Group,
    LegalConsent,
    Mapping,
    MergeRule,
    Option,
    PropertySpec,
    PropertyType,
    RecordsSpec,
    RefundsSpec,
    Requirement,
    Source,
    SourceKind,
)


def build_mapping(doc: LoadedDocument) -> Mapping:
    data: dict[str, Any] = doc.data
    records = data["records"]
    name = data.get("name") or _stem(doc.file)
    return Mapping(
        file=doc.file,
        name=name,
        description=data.get("description", ""),
        timezone=data.get("timezone"),
        records=RecordsSpec(
            id=_source(doc, ("records", "id")),
            time=_source(doc, ("records", "time")),
            contact=_source(doc, ("records", "contact")),
            path=_jmespath(doc, ("records", "path")) if "path" in records else None,
            when=_jmespath(doc, ("records", "when")) if "when" in records else None,
            group_by=(_jmespath(doc, ("records", "group_by")) if "group_by" in records else None),
            version=_source(doc, ("records", "version")) if "version" in records else None,
            require=tuple(
                Requirement(_jmespath(doc, ("records", "require", i, "that")), item["reason"])
                for i, item in enumerate(records.get("require", ()))
            ),
        ),
        target=_target(doc),
        group=_group(data.get("group")),
        properties=tuple(_property(doc, prop_name) for prop_name in data["properties"]),
        examples=tuple(_example(doc, i) for i in range(len(data.get("examples", [])))),
        refunds=_refunds(doc) if "refunds" in data else None,
        catalogs=tuple(_catalog(doc, name) for name in data.get("catalogs", {})),
        lets=tuple((name, _source(doc, ("let", name))) for name in data.get("let", {})),
    )


def _catalog(doc: LoadedDocument, name: str) -> CatalogSpec:
    raw = doc.data["catalogs"][name]
    base = ("catalogs", name)
    return CatalogSpec(
        name=name,
        file=raw["file"],
        key=_source(doc, base + ("key",)),
        path=_jmespath(doc, base + ("path",)) if "path" in raw else None,
        each=_jmespath(doc, base + ("each",)) if "each" in raw else None,
        many=bool(raw.get("many", False)),
        location=doc.key_location(base),
    )


def _refunds(doc: LoadedDocument) -> RefundsSpec:
    raw = doc.data["refunds"]
    base = ("refunds",)
    return RefundsSpec(
        id=_source(doc, base + ("id",)),
        values=tuple((name, _source(doc, base + ("values", name))) for name in raw["values"]),
        match=_jmespath(doc, base + ("match",)) if "match" in raw else None,
        path=_jmespath(doc, base + ("path",)) if "path" in raw else None,
        in_order=_jmespath(doc, base + ("in_order",)) if "in_order" in raw else None,
        order=_source(doc, base + ("order",)) if "order" in raw else None,
        location=doc.key_location(base),
    )


def _stem(file: str) -> str:
    base = file.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0]


def _value_at(doc: LoadedDocument, path: JsonPath) -> Any:
    node: Any = doc.data
    for part in path:
        node = node[part]
    return node


def _jmespath(doc: LoadedDocument, path: JsonPath) -> Source:
    info = doc.positions[path]
    return Source(
        SourceKind.JMESPATH,
        text=_value_at(doc, path),
        location=info.text_start,
        continuation_column=info.continuation_column,
    )


def _source(doc: LoadedDocument, path: JsonPath) -> Source:
    """A source written as a JMESPath string, {template: ...} or {value: ...}."""
    raw = _value_at(doc, path)
    if isinstance(raw, str):
        return _jmespath(doc, path)
    if "template" in raw:
        inner = path + ("template",)
        info = doc.positions[inner]
        return Source(
            SourceKind.TEMPLATE,
            text=raw["template"],
            location=info.text_start,
            continuation_column=info.continuation_column,
        )
    return Source(
        SourceKind.LITERAL, value=raw["value"], location=doc.positions[path + ("value",)].value
    )


def _target(doc: LoadedDocument) -> ContactsTarget | FormsTarget:
    raw = doc.data["target"]
    if raw["kind"] == "contacts":
        return ContactsTarget(
            match_on=raw.get("match_on", "email"), match_label=raw.get("match_label")
        )
    context = raw["context"]
    consent = raw.get("legal_consent")
    return FormsTarget(
        portal_id=str(raw["portal_id"]),
        form_guid=str(raw["form_guid"]),
        email_field=raw.get("email_field", "email"),
        hutk=_source(doc, ("target", "context", "hutk")),
        page_uri=_source(doc, ("target", "context", "page_uri")) if "page_uri" in context else None,
        page_name=(
            _source(doc, ("target", "context", "page_name")) if "page_name" in context else None
        ),
        ip_address=(
            _source(doc, ("target", "context", "ip_address")) if "ip_address" in context else None
        ),
        legal_consent=LegalConsent(
            consent_to_process=consent["consent_to_process"],
            text=consent["text"],
            communications=tuple(consent.get("communications", ())),
        )
        if consent
        else None,
    )


def _group(raw: dict[str, Any] | None) -> Group | None:
    if not raw:
        return None
    return Group(name=raw["name"], label=raw.get("label") or raw["name"])


def default_label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize() or name


def _property(doc: LoadedDocument, name: str) -> PropertySpec:
    path = ("properties", name)
    raw = doc.data["properties"][name]
    source: Source | None = None
    if "from" in raw:
        source = _jmespath(doc, path + ("from",))
    elif "template" in raw:
        info = doc.positions[path + ("template",)]
        source = Source(
            SourceKind.TEMPLATE,
            text=raw["template"],
            location=info.text_start,
            continuation_column=info.continuation_column,
        )
    elif "value" in raw:
        source = Source(
            SourceKind.LITERAL, value=raw["value"], location=doc.positions[path + ("value",)].value
        )
    options = tuple(
        Option(value=o, label=o)
        if isinstance(o, str)
        else Option(value=o["value"], label=o.get("label", o["value"]))
        for o in raw.get("options", ())
    )
    return PropertySpec(
        name=name,
        type=PropertyType(raw["type"]),
        source=source,
        label=raw.get("label") or default_label(name),
        description=raw.get("description", ""),
        merge=MergeRule(raw.get("merge", "overwrite")),
        multiple=bool(raw.get("multiple", False)),
        options=options,
        max_items=raw.get("max_items", DEFAULT_MAX_ITEMS),
        decimals=raw.get("decimals"),
        timezone=raw.get("timezone"),
        when=_jmespath(doc, path + ("when",)) if "when" in raw else None,
        required=bool(raw.get("required", False)),
        derive=_jmespath(doc, path + ("derive",)) if "derive" in raw else None,
        field_type=raw.get("field_type"),
        unique=bool(raw.get("unique", False)),
        location=doc.key_location(path),
    )


def _example(doc: LoadedDocument, index: int) -> Example:
    raw = doc.data["examples"][index]
    return Example(
        name=raw["name"],
        input=raw.get("input"),
        input_file=raw.get("input_file"),
        existing=dict(raw.get("existing") or {}),
        expect=raw.get("expect"),
        expect_contacts=raw.get("expect_contacts"),
        expect_rejected=tuple(raw.get("expect_rejected", ())),
        expect_skipped=raw.get("expect_skipped"),
        expect_orders=raw.get("expect_orders"),
        params={str(k): str(v) for k, v in (raw.get("params") or {}).items()},
        location=doc.location(("examples", index)),
    )
