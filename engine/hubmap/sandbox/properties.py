"""Properties v3 for contacts: property definitions and property groups.

Creation is checked like HubSpot checks it: the required fields, the internal-name syntax, the
type <-> fieldType pairs, options for enumerations, an existing group, and a 409 for a name that
is taken. `hasUniqueValue` and `type` cannot change after creation (a PATCH trying is a 400).
Batch create reports invalid definitions with one 400 for the batch and taken names per item (207).
"""

from __future__ import annotations

import re
from typing import Any

from hubmap.sandbox import errors
from hubmap.sandbox.catalog import FIELD_TYPES_BY_TYPE, TYPE_ALIASES
from hubmap.sandbox.config import SandboxConfig
from hubmap.sandbox.contacts import Batch
from hubmap.sandbox.store import Store
from hubmap.sandbox.values import now_iso

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)
MAX_NAME_LENGTH = 100
#: Knowledge-base limits for enumerations (HUBSPOT-API.md §4).
MAX_OPTIONS = 5000
MAX_OPTION_CHARS = 3000
#: HubSpot allows at most 10 unique-value properties per object.
MAX_UNIQUE_PROPERTIES = 10
REQUIRED_FIELDS = ("name", "label", "type", "fieldType", "groupName")
#: Fields a PATCH may change.
PATCHABLE = frozenset(
    {
        "label",
        "description",
        "groupName",
        "fieldType",
        "options",
        "displayOrder",
        "hidden",
        "formField",
        "calculationFormula",
        "numberDisplayHint",
        "textDisplayHint",
        "dataSensitivity",
        "showCurrencySymbol",
        "currencyPropertyName",
        "type",
        "hasUniqueValue",
    }
)
NUMBER_DISPLAY_HINTS = frozenset(
    {"unformatted", "formatted", "currency", "percentage", "duration", "probability"}
)


def _problem(message: str, code: str, field: str, where: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"message": message, "code": code, "context": {"fieldName": [field]}}
    if where:
        item["in"] = where
    return item


def check_options(options: Any, where: str | None = None) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    if not isinstance(options, list):
        return [_problem("options must be a list", "INVALID_OPTIONS", "options", where)]
    if len(options) > MAX_OPTIONS:
        problems.append(
            _problem(
                f"at most {MAX_OPTIONS} options are allowed", "TOO_MANY_OPTIONS", "options", where
            )
        )
    seen: set[str] = set()
    for index, option in enumerate(options):
        if (
            not isinstance(option, dict)
            or not isinstance(option.get("label"), str)
            or not isinstance(option.get("value"), str)
            or not option["value"]
        ):
            problems.append(
                _problem(
                    f"options[{index}] needs a string label and a non-empty string value",
                    "INVALID_OPTIONS",
                    "options",
                    where,
                )
            )
            continue
        if option["value"] in seen:
            problems.append(
                _problem(
                    f"option value {option['value']!r} is listed twice",
                    "DUPLICATE_OPTION",
                    "options",
                    where,
                )
            )
        seen.add(option["value"])
        size = sum(len(str(option.get(k) or "")) for k in ("label", "value", "description"))
        if size > MAX_OPTION_CHARS:
            problems.append(
                _problem(
                    f"option {option['value']!r} is longer than {MAX_OPTION_CHARS} characters",
                    "OPTION_TOO_LONG",
                    "options",
                    where,
                )
            )
    return problems


def _normalize_options(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "label": option["label"],
            "value": option["value"],
            "description": option.get("description", ""),
            "displayOrder": option.get("displayOrder", index),
            "hidden": bool(option.get("hidden", False)),
        }
        for index, option in enumerate(options)
    ]


class Properties:
    """Property and group endpoints over one store (inside the caller's transaction)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- properties ------------------------------------------------------------------------

    def check_definition(self, body: Any, where: str | None = None) -> list[dict[str, Any]]:
        """Every problem with a property definition to create (not counting a taken name)."""
        if not isinstance(body, dict):
            return [
                _problem("a property definition must be an object", "INVALID_INPUT", "body", where)
            ]
        problems = []
        for name in REQUIRED_FIELDS:
            if not isinstance(body.get(name), str) or not body[name]:
                problems.append(
                    _problem(
                        f"{name} is required and must be a non-empty string",
                        "REQUIRED_FIELD_MISSING",
                        name,
                        where,
                    )
                )
        if problems:
            return problems
        name = body["name"]
        if not NAME_PATTERN.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
            problems.append(
                _problem(
                    f"Invalid property name '{name}': internal names start with a lower-case "
                    "letter and contain only lower-case letters, digits and underscores",
                    "INVALID_PROPERTY_NAME",
                    "name",
                    where,
                )
            )
        kind = TYPE_ALIASES.get(body["type"], body["type"])
        if kind not in FIELD_TYPES_BY_TYPE:
            problems.append(
                _problem(
                    f"Invalid property type '{body['type']}'; allowed: "
                    f"{', '.join(sorted(FIELD_TYPES_BY_TYPE))}",
                    "INVALID_PROPERTY_TYPE",
                    "type",
                    where,
                )
            )
        elif body["fieldType"] not in FIELD_TYPES_BY_TYPE[kind]:
            problems.append(
                _problem(
                    f"fieldType '{body['fieldType']}' is not valid for type '{kind}'; allowed: "
                    f"{', '.join(sorted(FIELD_TYPES_BY_TYPE[kind]))}",
                    "INVALID_FIELD_TYPE",
                    "fieldType",
                    where,
                )
            )
        if kind == "enumeration":
            if not body.get("options") and body["fieldType"] != "booleancheckbox":
                problems.append(
                    _problem(
                        "enumeration properties need options", "OPTIONS_REQUIRED", "options", where
                    )
                )
            if "options" in body:
                problems.extend(check_options(body["options"], where))
        elif body.get("options"):
            problems.extend(check_options(body["options"], where))
        if self.store.get_group(body["groupName"]) is None:
            problems.append(
                _problem(
                    f"Property group '{body['groupName']}' does not exist",
                    "GROUP_DOESNT_EXIST",
                    "groupName",
                    where,
                )
            )
        for flag in ("hasUniqueValue", "hidden", "formField"):
            if flag in body and not isinstance(body[flag], bool):
                problems.append(_problem(f"{flag} must be a boolean", "INVALID_INPUT", flag, where))
        hint = body.get("numberDisplayHint")
        if hint is not None and hint not in NUMBER_DISPLAY_HINTS:
            problems.append(
                _problem(
                    f"invalid numberDisplayHint '{hint}'",
                    "INVALID_INPUT",
                    "numberDisplayHint",
                    where,
                )
            )
        if body.get("hasUniqueValue") is True:
            unique = sum(1 for d in self.store.list_properties() if d.get("hasUniqueValue"))
            if unique >= MAX_UNIQUE_PROPERTIES:
                problems.append(
                    _problem(
                        f"at most {MAX_UNIQUE_PROPERTIES} properties can have unique values",
                        "TOO_MANY_UNIQUE_PROPERTIES",
                        "hasUniqueValue",
                        where,
                    )
                )
        return problems

    @staticmethod
    def build(body: dict[str, Any]) -> dict[str, Any]:
        now = now_iso()
        kind = TYPE_ALIASES.get(body["type"], body["type"])
        options = body.get("options") or []
        if kind == "bool" and not options:
            options = [{"label": "Yes", "value": "true"}, {"label": "No", "value": "false"}]
        return {
            "name": body["name"],
            "label": body["label"],
            "type": kind,
            "fieldType": body["fieldType"],
            "description": body.get("description", ""),
            "groupName": body["groupName"],
            "options": _normalize_options(options),
            "displayOrder": body.get("displayOrder", -1),
            "calculated": False,
            "externalOptions": bool(body.get("externalOptions", False)),
            "hasUniqueValue": bool(body.get("hasUniqueValue", False)),
            "hidden": bool(body.get("hidden", False)),
            "hubspotDefined": False,
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": False,
                "readOnlyValue": False,
            },
            "formField": bool(body.get("formField", False)),
            "dataSensitivity": body.get("dataSensitivity", "non_sensitive"),
            **(
                {"numberDisplayHint": body["numberDisplayHint"]}
                if "numberDisplayHint" in body
                else {}
            ),
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }

    @staticmethod
    def _taken(name: str) -> errors.ApiError:
        return errors.conflict(f"Property named '{name}' already exists.")

    def list_all(self) -> tuple[int, dict[str, Any]]:
        return 200, {"results": self.store.list_properties()}

    def get(self, name: str) -> tuple[int, dict[str, Any]]:
        definition = self.store.get_property(name)
        if definition is None:
            raise errors.not_found(f"Unable to find property {name} for object type 0-1")
        return 200, definition

    def create(self, body: Any) -> tuple[int, dict[str, Any]]:
        problems = self.check_definition(body)
        if problems:
            raise errors.validation_error(problems[0]["message"], problems)
        if self.store.get_property(body["name"]) is not None:
            raise self._taken(body["name"])
        definition = self.build(body)
        self.store.put_property(definition)
        return 201, definition

    def update(self, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        definition = self.store.get_property(name)
        if definition is None:
            raise errors.not_found(f"Unable to find property {name} for object type 0-1")
        if not isinstance(body, dict):
            raise errors.bad_json("the body must be an object")
        if definition["modificationMetadata"].get("readOnlyDefinition"):
            raise errors.validation_error(
                f"Property {name} is HubSpot-defined; its definition cannot be changed"
            )
        unknown = sorted(set(body) - PATCHABLE - {"name"})
        if unknown or body.get("name", name) != name:
            raise errors.validation_error(
                f"These fields cannot be changed: {', '.join(unknown) or 'name'}"
            )
        if "type" in body and TYPE_ALIASES.get(body["type"], body["type"]) != definition["type"]:
            raise errors.validation_error(
                f"The type of property {name} cannot be changed from {definition['type']} to "
                f"{body['type']}; create a new property instead"
            )
        if "hasUniqueValue" in body and body["hasUniqueValue"] != definition["hasUniqueValue"]:
            raise errors.validation_error(f"hasUniqueValue of property {name} cannot be changed")
        field_type = body.get("fieldType", definition["fieldType"])
        if field_type not in FIELD_TYPES_BY_TYPE[definition["type"]]:
            raise errors.validation_error(
                f"fieldType '{field_type}' is not valid for type '{definition['type']}'"
            )
        if "options" in body:
            problems = check_options(body["options"])
            if problems:
                raise errors.validation_error(problems[0]["message"], problems)
        if "groupName" in body and self.store.get_group(body["groupName"]) is None:
            raise errors.validation_error(f"Property group '{body['groupName']}' does not exist")
        changed = {**definition, **{k: v for k, v in body.items() if k != "type"}}
        if "options" in body:  # HubSpot replaces the whole option list
            changed["options"] = _normalize_options(body["options"])
        changed["updatedAt"] = now_iso()
        self.store.put_property(changed)
        return 200, changed

    def archive(self, name: str) -> tuple[int, None]:
        definition = self.store.get_property(name)
        if definition is None:
            raise errors.not_found(f"Unable to find property {name} for object type 0-1")
        if not definition["modificationMetadata"].get("archivable"):
            raise errors.validation_error(
                f"Property {name} is HubSpot-defined and cannot be archived"
            )
        self.store.delete_property(name)
        return 204, None

    def batch_create(self, body: Any, config: SandboxConfig) -> tuple[int, dict[str, Any]]:
        requested_at = now_iso()
        inputs = self._inputs(body, config)
        problems = []
        for index, item in enumerate(inputs):
            problems.extend(self.check_definition(item, f"inputs[{index}]"))
        if problems:
            raise errors.validation_error(problems[0]["message"], problems)
        names = [item["name"] for item in inputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise errors.validation_error(
                f"Duplicate property names in batch input: [{', '.join(duplicates)}]"
            )
        results, failures = [], []
        for item in inputs:
            if self.store.get_property(item["name"]) is not None:
                failures.append(
                    {**self._taken(item["name"]).body, "context": {"name": [item["name"]]}}
                )
                continue
            definition = self.build(item)
            self.store.put_property(definition)
            results.append(definition)
        return Batch(results, failures, requested_at, created=True).response()

    def batch_read(self, body: Any, config: SandboxConfig) -> tuple[int, dict[str, Any]]:
        requested_at = now_iso()
        inputs = self._inputs(body, config)
        results, missing = [], []
        for index, item in enumerate(inputs):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                raise errors.bad_json(f"inputs[{index}].name must be a string")
            definition = self.store.get_property(name)
            if definition is None:
                missing.append(name)
            else:
                results.append(definition)
        failures = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": f"Unable to find property {name} for object type 0-1",
                "context": {"name": [name]},
            }
            for name in missing
        ]
        return Batch(results, failures, requested_at).response()

    def batch_archive(self, body: Any, config: SandboxConfig) -> tuple[int, None]:
        for index, item in enumerate(self._inputs(body, config)):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                raise errors.bad_json(f"inputs[{index}].name must be a string")
            definition = self.store.get_property(name)
            if definition is not None and definition["modificationMetadata"].get("archivable"):
                self.store.delete_property(name)
        return 204, None

    @staticmethod
    def _inputs(body: Any, config: SandboxConfig) -> list[Any]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise errors.bad_json("the body must be an object with an 'inputs' array")
        if len(body["inputs"]) > config.max_batch:
            raise errors.validation_error(
                f"Too many inputs: {len(body['inputs'])} were given, "
                f"the limit is {config.max_batch}"
            )
        inputs: list[Any] = body["inputs"]
        return inputs

    # -- groups ------------------------------------------------------------------------------

    def list_groups(self) -> tuple[int, dict[str, Any]]:
        return 200, {"results": self.store.list_groups()}

    def get_group(self, name: str) -> tuple[int, dict[str, Any]]:
        group = self.store.get_group(name)
        if group is None:
            raise errors.not_found(f"Unable to find property group {name}")
        return 200, group

    def create_group(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            raise errors.bad_json("the body must be an object")
        for field in ("name", "label"):
            if not isinstance(body.get(field), str) or not body[field]:
                raise errors.validation_error(
                    f"{field} is required and must be a non-empty string",
                    [_problem(f"{field} is required", "REQUIRED_FIELD_MISSING", field)],
                )
        if not NAME_PATTERN.fullmatch(body["name"]):
            raise errors.validation_error(
                f"Invalid group name '{body['name']}': use lower-case "
                "letters, digits and underscores, starting with a letter"
            )
        if self.store.get_group(body["name"]) is not None:
            raise errors.conflict(f"Property group named '{body['name']}' already exists.")
        group = {
            "name": body["name"],
            "label": body["label"],
            "displayOrder": body.get("displayOrder", -1),
            "archived": False,
        }
        self.store.put_group(group)
        return 201, group

    def update_group(self, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        group = self.store.get_group(name)
        if group is None:
            raise errors.not_found(f"Unable to find property group {name}")
        if not isinstance(body, dict):
            raise errors.bad_json("the body must be an object")
        unknown = sorted(set(body) - {"label", "displayOrder"})
        if unknown:
            raise errors.validation_error(
                f"These group fields cannot be changed: {', '.join(unknown)}"
            )
        group = {**group, **body}
        self.store.put_group(group)
        return 200, group

    def archive_group(self, name: str) -> tuple[int, None]:
        group = self.store.get_group(name)
        if group is None:
            raise errors.not_found(f"Unable to find property group {name}")
        if group.get("hubspotDefined"):
            raise errors.validation_error(f"Property group {name} is HubSpot-defined")
        used = [d["name"] for d in self.store.list_properties() if d["groupName"] == name]
        if used:
            raise errors.validation_error(
                f"Property group {name} still holds properties: {', '.join(used)}"
            )
        self.store.delete_group(name)
        return 204, None
