"""The contact property groups and properties every portal has from the start (HubSpot-defined).

Plain data, plus the type <-> fieldType table of HUBSPOT-API.md §4 that property definitions are
checked against.
"""

from __future__ import annotations

from typing import Any

#: Which fieldTypes each property type accepts (HUBSPOT-API.md §4; `html` and the
#: phone_number/phonenumber pair are marked unverified there and accepted here).
FIELD_TYPES_BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "file", "calculation_equation", "html"}),
    "number": frozenset({"number", "calculation_equation"}),
    "bool": frozenset({"booleancheckbox", "calculation_equation"}),
    "enumeration": frozenset(
        {"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"}
    ),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "phone_number": frozenset({"phonenumber"}),
}
#: HubSpot's docs write `dateTime`; both spellings are accepted and stored as `datetime`.
TYPE_ALIASES = {"dateTime": "datetime"}

CONTACT_INFORMATION = "contactinformation"
CONVERSION_INFORMATION = "conversioninformation"

BUILTIN_GROUPS: list[dict[str, Any]] = [
    {"name": CONTACT_INFORMATION, "label": "Contact information", "displayOrder": 0},
    {"name": CONVERSION_INFORMATION, "label": "Conversion information", "displayOrder": 1},
]

LIFECYCLE_STAGES = [
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
]

#: Properties whose value only HubSpot writes; an API write is a READ_ONLY_VALUE error.
READ_ONLY = frozenset(
    {
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
        "num_conversion_events",
        "recent_conversion_event_name",
        "recent_conversion_date",
        "first_conversion_event_name",
        "first_conversion_date",
        "hs_additional_emails",
        "hs_merged_object_ids",
    }
)
#: A contact's secondary addresses, `;`-separated (HUBSPOT-API.md §10); HubSpot writes it (merges,
#: form submissions), the API cannot.
ADDITIONAL_EMAILS = "hs_additional_emails"
#: Ids of the contacts merged into this one, `;`-separated (HUBSPOT-API.md §10).
MERGED_OBJECT_IDS = "hs_merged_object_ids"


def _builtin(
    name: str,
    label: str,
    kind: str,
    field_type: str,
    group: str = CONTACT_INFORMATION,
    **extra: Any,
) -> dict[str, Any]:
    read_only = name in READ_ONLY
    return {
        "name": name,
        "label": label,
        "type": kind,
        "fieldType": field_type,
        "description": "",
        "groupName": group,
        "options": extra.pop("options", []),
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": False,
        "hidden": False,
        "hubspotDefined": True,
        "modificationMetadata": {
            "archivable": False,
            "readOnlyDefinition": True,
            "readOnlyValue": read_only,
        },
        "formField": not read_only,
        "dataSensitivity": "non_sensitive",
        **extra,
    }


def builtin_properties() -> list[dict[str, Any]]:
    """Fresh copies of the HubSpot-defined contact properties."""
    lifecycle = [
        {"label": label, "value": value, "displayOrder": i, "hidden": False, "description": ""}
        for i, (value, label) in enumerate(LIFECYCLE_STAGES)
    ]
    conv = CONVERSION_INFORMATION
    return [
        _builtin("email", "Email", "string", "text"),
        _builtin("firstname", "First Name", "string", "text"),
        _builtin("lastname", "Last Name", "string", "text"),
        _builtin("phone", "Phone Number", "string", "phonenumber"),
        _builtin("company", "Company Name", "string", "text"),
        _builtin("website", "Website URL", "string", "text"),
        _builtin("city", "City", "string", "text"),
        _builtin("country", "Country/Region", "string", "text"),
        _builtin("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options=lifecycle),
        _builtin("hs_object_id", "Record ID", "number", "number"),
        _builtin(ADDITIONAL_EMAILS, "Additional email addresses", "enumeration", "select"),
        _builtin(MERGED_OBJECT_IDS, "Merged Contact IDs", "enumeration", "checkbox"),
        _builtin("createdate", "Create Date", "datetime", "date"),
        _builtin("lastmodifieddate", "Last Modified Date", "datetime", "date"),
        _builtin("num_conversion_events", "Number of Form Submissions", "number", "number", conv),
        _builtin("recent_conversion_event_name", "Recent Conversion", "string", "text", conv),
        _builtin("recent_conversion_date", "Recent Conversion Date", "datetime", "date", conv),
        _builtin("first_conversion_event_name", "First Conversion", "string", "text", conv),
        _builtin("first_conversion_date", "First Conversion Date", "datetime", "date", conv),
    ]
