"""The mapping as data: frozen dataclasses built from a validated mapping file.

Every piece keeps the `Location` of the YAML node it came from, so that later stages (expression
compilation, HubSpot's answers) can point at the line of the mapping that caused a problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hubmap.problems import Location


class PropertyType(str, Enum):
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    BOOL = "bool"
    ENUMERATION = "enumeration"


class MergeRule(str, Enum):
    OVERWRITE = "overwrite"
    LATEST_KNOWN = "latest_known"
    SUM = "sum"
    PREPEND = "prepend"
    MIN = "min"
    MAX = "max"
    SET_ONCE = "set_once"


class SourceKind(str, Enum):
    JMESPATH = "jmespath"
    TEMPLATE = "template"
    LITERAL = "literal"


DEFAULT_MAX_ITEMS = 50
DEFAULT_FIELD_TYPES = {
    PropertyType.STRING: "text",
    PropertyType.NUMBER: "number",
    PropertyType.DATE: "date",
    PropertyType.DATETIME: "date",
    PropertyType.BOOL: "booleancheckbox",
}


@dataclass(frozen=True)
class Source:
    """Where a value comes from. `text` is the expression or template; `value` the literal."""

    kind: SourceKind
    text: str = ""
    value: Any = None
    # Location of the first character of the expression/template text (for column mapping),
    # and the column (from 1) where continuation lines of a block scalar start.
    location: Location = field(default_factory=lambda: Location(""), compare=False)
    continuation_column: int = 0

    def location_at(self, offset: int) -> Location:
        """The file location of character `offset` (from 0) of the expression text."""
        offset = max(0, min(offset, len(self.text)))
        before = self.text[:offset]
        line_in_text = before.count("\n")
        if line_in_text == 0 or not self.location.line:
            return self.location.shifted(offset)
        column = offset - (before.rfind("\n") + 1)
        start = self.continuation_column or self.location.column
        return Location(
            self.location.file,
            self.location.line + line_in_text,
            start + column,
            self.location.path,
        )


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class PropertySpec:
    name: str
    type: PropertyType
    source: Source | None  # None when the property is derived
    label: str
    description: str = ""
    merge: MergeRule = MergeRule.OVERWRITE
    multiple: bool = False
    options: tuple[Option, ...] = ()
    max_items: int = DEFAULT_MAX_ITEMS
    decimals: int | None = None
    timezone: str | None = None
    when: Source | None = None
    required: bool = False
    derive: Source | None = None
    field_type: str | None = None
    unique: bool = False
    location: Location = field(default_factory=lambda: Location(""), compare=False)

    @property
    def is_list(self) -> bool:
        """True when the value is a list of items on the wire (prepend or multi-value enumeration)."""
        return self.merge is MergeRule.PREPEND or (
            self.type is PropertyType.ENUMERATION and self.multiple
        )

    @property
    def hubspot_field_type(self) -> str:
        if self.field_type:
            return self.field_type
        if self.type is PropertyType.ENUMERATION:
            return "checkbox" if self.multiple else "select"
        if self.type is PropertyType.STRING and self.merge is MergeRule.PREPEND:
            return "textarea"
        return DEFAULT_FIELD_TYPES[self.type]


@dataclass(frozen=True)
class Requirement:
    that: Source
    reason: str


@dataclass(frozen=True)
class RecordsSpec:
    id: Source
    time: Source
    contact: Source
    path: Source | None = None
    when: Source | None = None
    require: tuple[Requirement, ...] = ()
    group_by: Source | None = None  # JMESPath key joining line-item rows into one record
    version: Source | None = None  # which version of an order a record is (updated_at ...)


@dataclass(frozen=True)
class RefundsSpec:
    """Refund records: each adjusts the number values of the order it names (see the schema)."""

    id: Source
    values: tuple[tuple[str, Source], ...]  # (property name, the amount added to the order's)
    match: Source | None = None  # which documents are refunds (not orders)
    path: Source | None = None  # from a refund document to its refund records
    in_order: Source | None = None  # from an order record to the refunds inside it
    order: Source | None = None  # the order id a refund names (defaults to its order's)
    location: Location = field(default_factory=lambda: Location(""), compare=False)


@dataclass(frozen=True)
class CatalogSpec:
    """A table the mapping looks things up in (see the schema's `catalogs`)."""

    name: str
    file: str  # relative to the mapping file
    key: Source
    path: Source | None = None
    each: Source | None = None
    many: bool = False  # a key may have many rows: lookup gives the list of them
    location: Location = field(default_factory=lambda: Location(""), compare=False)


@dataclass(frozen=True)
class ContactsTarget:
    match_on: str = "email"
    match_label: str | None = None
    kind: str = "contacts"


@dataclass(frozen=True)
class LegalConsent:
    consent_to_process: bool
    text: str
    communications: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class FormsTarget:
    portal_id: str  # may hold ${ENV} references; resolved by the runner, never here
    form_guid: str
    hutk: Source
    page_uri: Source | None = None
    page_name: Source | None = None
    ip_address: Source | None = None
    email_field: str = "email"
    legal_consent: LegalConsent | None = None
    kind: str = "forms"


@dataclass(frozen=True)
class Group:
    name: str
    label: str


@dataclass(frozen=True)
class Example:
    name: str
    input: Any = None
    input_file: str | None = None
    existing: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] | None = None
    expect_contacts: dict[str, dict[str, Any]] | None = None
    expect_rejected: tuple[dict[str, Any], ...] = ()
    expect_skipped: int | None = None
    expect_orders: dict[str, int] | None = None
    # the parameter values the case was written for (they win over --param and the environment)
    params: dict[str, str] = field(default_factory=dict)
    location: Location = field(default_factory=lambda: Location(""), compare=False)


@dataclass(frozen=True)
class Mapping:
    file: str
    name: str
    records: RecordsSpec
    target: ContactsTarget | FormsTarget
    properties: tuple[PropertySpec, ...]
    group: Group | None = None
    description: str = ""
    timezone: str | None = None
    examples: tuple[Example, ...] = ()
    refunds: RefundsSpec | None = None
    catalogs: tuple[CatalogSpec, ...] = ()
    lets: tuple[tuple[str, Source], ...] = ()  # let: name -> source, in file order
    params: tuple[Any, ...] = ()  # mapping.params.Param: each parameter's value and origin

    @property
    def is_forms(self) -> bool:
        return isinstance(self.target, FormsTarget)

    def property(self, name: str) -> PropertySpec:
        for spec in self.properties:
            if spec.name == name:
                return spec
        raise KeyError(name)
