"""CRM contacts v3: create, read, update, archive and the batch endpoints, as strict as HubSpot.

Batch reporting rule (kept the same everywhere): anything wrong with the request itself — shape,
size, duplicate keys, property names or values — rejects the whole batch with one 400 listing
every problem (`errors[].in` names the input, e.g. `inputs[3]`), as HubSpot does for validation
errors; an email or unique value already taken rejects the whole batch with 409 naming the first
one (HubSpot's batch create behaviour); ids that do not exist are reported per item in a 207
(`OBJECT_NOT_FOUND`, one error listing the ids) while the found ones succeed.

Identity, as HubSpot keeps it (HUBSPOT-API.md §10):
- `hs_additional_emails` (read-only, `;`-separated) holds a contact's secondary addresses. A
  lookup by email (`idProperty=email` on reads, updates, batch read and batch upsert) finds the
  contact whose primary `email` is the address, else the one listing it as a secondary; the
  result is that record, so its `email` can differ from the key asked for. An upsert keyed by a
  secondary address updates that contact and leaves its primary email alone. Creating or
  changing a contact to an address some other contact has (primary or secondary) is a 409.
  Changing the primary email drops the old one (it is not kept as a secondary); making a
  secondary the primary takes it out of `hs_additional_emails`.
- `POST .../contacts/merge {"primaryObjectId", "objectIdToMerge"}` folds the second contact
  into the first (see `merge`). The merged id lives on in the survivor's
  `hs_merged_object_ids`: reads by id (`GET /{id}`, batch read by id/`hs_object_id`) and
  updates by id follow it to the survivor, which answers with its own id. DELETE does not
  follow it (a merged id is simply gone: 204).
- Tests give a contact secondary addresses through the admin route
  `POST /_sandbox/contacts/{id}/additional_emails {"emails": [...]}` (replaces the list) or
  `RunningSandbox.set_additional_emails(id, emails)`, both ending in `set_additional_emails`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubmap.sandbox import errors
from hubmap.sandbox.catalog import ADDITIONAL_EMAILS, MERGED_OBJECT_IDS, READ_ONLY
from hubmap.sandbox.config import SandboxConfig
from hubmap.sandbox.errors import ApiError, PropertyProblem
from hubmap.sandbox.store import ContactRecord, Store
from hubmap.sandbox.values import (
    check_value,
    display_value,
    is_valid_email,
    join_multi,
    now_iso,
    split_multi,
)

#: Returned on reads that do not name `properties`.
DEFAULT_PROPERTIES = ("firstname", "lastname", "email")
#: Always present in a returned contact.
ALWAYS_PROPERTIES = ("createdate", "hs_object_id", "lastmodifieddate")
#: A new contact needs at least one of these.
IDENTITY_PROPERTIES = ("email", "firstname", "lastname")
#: Batch reads asking for property history are capped lower (HUBSPOT-API.md §3).
MAX_BATCH_WITH_HISTORY = 50
OBJECT_ID = "hs_object_id"
EMAIL = "email"
#: Properties a merge combines itself instead of "the primary's value, else the merged one's".
MERGE_COMBINED = (EMAIL, ADDITIONAL_EMAILS, MERGED_OBJECT_IDS)
NOT_FOUND_MESSAGE = (
    "Could not get some CONTACT objects, they may be deleted or not exist. "
    "Check that ids are valid."
)


@dataclass
class Batch:
    """What a batch endpoint answers: results, and per-item errors that make it a 207."""

    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    requested_at: str
    created: bool = False

    def response(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": self.results,
            "requestedAt": self.requested_at,
            "startedAt": self.requested_at,
            "completedAt": now_iso(),
        }
        if self.errors:
            body["numErrors"] = len(self.errors)
            body["errors"] = self.errors
            return 207, body
        return (201 if self.created else 200), body


class Contacts:
    """The contact endpoints over one store; every method runs inside the caller's transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- helpers ------------------------------------------------------------------------------

    def _definitions(self) -> dict[str, dict[str, Any]]:
        return {definition["name"]: definition for definition in self.store.list_properties()}

    def serialize(
        self,
        record: ContactRecord,
        requested: list[str] | None = None,
        everything_set: bool = False,
    ) -> dict[str, Any]:
        """HubSpot's contact object. Requested-but-empty properties come back as null."""
        definitions = self._definitions()
        computed = {
            "hs_object_id": str(record.id),
            "createdate": record.created_at,
            "lastmodifieddate": record.updated_at,
        }
        if everything_set:
            names = sorted(set(record.values) | set(ALWAYS_PROPERTIES))
        else:
            names = sorted(set(requested or DEFAULT_PROPERTIES) | set(ALWAYS_PROPERTIES))
        properties: dict[str, str | None] = {}
        for name in names:
            if name in computed:
                properties[name] = computed[name]
            elif name in record.values:
                properties[name] = display_value(definitions.get(name), record.values[name])
            elif name in definitions:
                properties[name] = None
        return {
            "id": str(record.id),
            "properties": properties,
            "createdAt": record.created_at,
            "updatedAt": record.updated_at,
            "archived": False,
        }

    def _load(self, contact_id: int) -> ContactRecord:
        record = self.store.get_contact(contact_id)
        if record is None:
            raise errors.not_found()
        return record

    def check_properties(
        self, properties: Any, where: str | None, portal_id: int
    ) -> tuple[dict[str, str], list[PropertyProblem]]:
        """Type, existence, read-only and value checks; returns the values to store (emails
        lower-cased) and the problems found."""
        if not isinstance(properties, dict):
            raise errors.bad_json(f"{where + '.' if where else ''}properties must be an object")
        definitions = self._definitions()
        problems: list[PropertyProblem] = []
        clean: dict[str, str] = {}
        for name, value in properties.items():
            if not isinstance(value, str):
                kind = "null" if value is None else type(value).__name__
                problems.append(
                    PropertyProblem(
                        name,
                        "INVALID_TYPE",
                        f"Property {name} must be a JSON string, got {kind}: {value!r}",
                        where,
                    )
                )
                continue
            definition = definitions.get(name)
            if definition is None:
                problems.append(
                    PropertyProblem(
                        name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist', where
                    )
                )
                continue
            if name in READ_ONLY or definition["modificationMetadata"].get("readOnlyValue"):
                problems.append(
                    PropertyProblem(
                        name,
                        "READ_ONLY_VALUE",
                        f'"{name}" is a read only property; its value cannot be set.',
                        where,
                    )
                )
                continue
            problem = check_value(definition, value)
            if problem is not None:
                problem.where = where
                problems.append(problem)
                continue
            clean[name] = value.lower() if name == "email" else value
        return clean, problems

    def _unique_names(self) -> list[str]:
        return [d["name"] for d in self.store.list_properties() if d.get("hasUniqueValue")]

    def _conflict(self, values: dict[str, str], own_id: int | None) -> ApiError | None:
        """409 if the email or a unique property value already belongs to another contact."""
        email = values.get("email")
        if email:
            other = self.store.find_contact_by_email(email)
            if other is not None and other != own_id:
                return errors.conflict(f"Contact already exists. Existing ID: {other}")
        for name in self._unique_names():
            value = values.get(name)
            if value:
                other = self.store.find_contact(name, value)
                if other is not None and other != own_id:
                    return errors.conflict(
                        f"A contact with the value '{value}' for unique property '{name}' "
                        f"already exists. Existing ID: {other}"
                    )
        return None

    def resolve(self, key: str, id_property: str | None) -> int | None:
        """The contact id for `key` read as `id_property` (id, email or a unique property)."""
        if id_property in (None, "", OBJECT_ID):
            if not (key.isascii() and key.isdigit()):
                return None
            if self.store.get_contact(int(key)) is not None:
                return int(key)
            return self.store.find_contact_by_merged_id(int(key))
        if id_property == "email":
            return self.store.find_contact_by_email(key)
        definition = self.store.get_property(id_property)
        if definition is None:
            raise errors.validation_error(f"Property {id_property} does not exist")
        if not definition.get("hasUniqueValue"):
            raise errors.validation_error(
                f"{id_property} is not a unique property; idProperty must be email, "
                "hs_object_id or a property with hasUniqueValue"
            )
        return self.store.find_contact(id_property, key)

    def _check_batch_inputs(self, body: Any, config: SandboxConfig) -> list[Any]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise errors.bad_json("the body must be an object with an 'inputs' array")
        inputs: list[Any] = body["inputs"]
        limit = config.max_batch
        if body.get("propertiesWithHistory"):
            limit = min(limit, MAX_BATCH_WITH_HISTORY)
        if len(inputs) > limit:
            raise errors.validation_error(
                f"Too many inputs: {len(inputs)} were given, the limit is {limit}",
                [
                    {
                        "message": f"inputs may contain at most {limit} items",
                        "code": "TOO_MANY_INPUTS",
                        "context": {"limit": [str(limit)]},
                    }
                ],
            )
        for index, item in enumerate(inputs):
            if not isinstance(item, dict):
                raise errors.bad_json(f"inputs[{index}] must be an object")
        return inputs

    @staticmethod
    def _reject_duplicates(keys: list[tuple[str, str]]) -> None:
        seen: set[tuple[str, str]] = set()
        duplicates: list[str] = []
        for key in keys:
            if key in seen and key[1] not in duplicates:
                duplicates.append(key[1])
            seen.add(key)
        if duplicates:
            raise errors.validation_error(
                f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. "
                "IDs must be unique",
                [
                    {
                        "message": f"Duplicate ID {value}",
                        "code": "DUPLICATE_ID",
                        "context": {"ids": [value]},
                    }
                    for value in duplicates
                ],
            )

    @staticmethod
    def _requested(value: Any) -> list[str] | None:
        if value is None:
            return None
        if isinstance(value, str):
            return [name for name in value.split(",") if name]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise errors.bad_json("properties must be a list of property names")

    # -- single-object endpoints -----------------------------------------------------------

    def create(self, body: Any, config: SandboxConfig) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            raise errors.bad_json("the body must be an object")
        values, problems = self.check_properties(body.get("properties"), None, config.portal_id)
        if problems:
            raise errors.property_errors(problems, config.portal_id)
        self._require_identity(values, None)
        conflict = self._conflict(values, None)
        if conflict:
            raise conflict
        contact_id = self.store.create_contact(values, now_iso())
        return 201, self.serialize(self._load(contact_id), everything_set=True)

    @staticmethod
    def _require_identity(values: dict[str, str], where: str | None) -> None:
        if not any(values.get(name) for name in IDENTITY_PROPERTIES):
            prefix = f"{where}: " if where else ""
            raise errors.validation_error(
                f"{prefix}A contact needs at least one of the properties email, firstname "
                "or lastname",
                [
                    {
                        "message": "One of email, firstname, lastname is required",
                        "code": "REQUIRED_PROPERTY_MISSING",
                        "context": {"propertyName": list(IDENTITY_PROPERTIES)},
                        **({"in": where} if where else {}),
                    }
                ],
            )

    def read(self, key: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        contact_id = self.resolve(key, query.get("idProperty"))
        if contact_id is None:
            raise errors.not_found()
        requested = self._requested(query.get("properties"))
        return 200, self.serialize(self._load(contact_id), requested)

    def update(
        self, key: str, query: dict[str, str], body: Any, config: SandboxConfig
    ) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            raise errors.bad_json("the body must be an object")
        values, problems = self.check_properties(body.get("properties"), None, config.portal_id)
        if problems:
            raise errors.property_errors(problems, config.portal_id)
        contact_id = self.resolve(key, query.get("idProperty"))
        if contact_id is None:
            raise errors.not_found()
        conflict = self._conflict(values, contact_id)
        if conflict:
            raise conflict
        self._write(contact_id, values, now_iso())
        return 200, self.serialize(self._load(contact_id), everything_set=True)

    def archive(self, key: str) -> tuple[int, None]:
        # Only a live record's own id: an id merged into another contact is gone (no redirect).
        if key.isascii() and key.isdigit() and self.store.get_contact(int(key)) is not None:
            self.store.delete_contact(int(key))
        return 204, None  # HubSpot answers 204 for unknown ids too

    def _write(self, contact_id: int, values: dict[str, str], now: str) -> None:
        """Update a contact; a new primary email that was one of its secondary ones leaves
        `hs_additional_emails` (the old primary is not kept)."""
        email = values.get(EMAIL)
        if email:
            record = self._load(contact_id)
            secondary = split_multi(record.values.get(ADDITIONAL_EMAILS))
            if email in secondary:
                values = {
                    **values,
                    ADDITIONAL_EMAILS: join_multi([e for e in secondary if e != email]),
                }
        self.store.update_contact(contact_id, values, now)

    def merge(self, body: Any, config: SandboxConfig) -> tuple[int, dict[str, Any]]:
        """`POST .../merge`: `objectIdToMerge` is folded into `primaryObjectId`, which survives.

        The primary's values win; a property it has no value for takes the merged contact's.
        The merged contact's primary and secondary emails become secondary emails of the
        survivor (its primary, if the survivor had none); the survivor's
        `hs_merged_object_ids` gains the merged id and every id merged into that one before.
        Hutks and form submissions move to the survivor; the merged record is gone, its id
        redirects to the survivor.
        """
        del config
        if not isinstance(body, dict):
            raise errors.bad_json("the body must be an object")
        keys = []
        for name in ("primaryObjectId", "objectIdToMerge"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                raise errors.bad_json(f"{name} must be a non-empty string")
            keys.append(value)
        primary_key, merged_key = keys
        if primary_key == merged_key:
            raise self._self_merge(primary_key)
        primary_id = self.resolve(primary_key, None)
        merged_id = self.resolve(merged_key, None)
        missing = [
            key
            for key, found in ((primary_key, primary_id), (merged_key, merged_id))
            if found is None
        ]
        if missing or primary_id is None or merged_id is None:
            raise errors.not_found(
                f"Could not merge CONTACT objects: {', '.join(missing)} "
                f"{'does' if len(missing) == 1 else 'do'} not exist"
            )
        if primary_id == merged_id:
            raise self._self_merge(merged_key, primary_id)
        primary, merged = self._load(primary_id), self._load(merged_id)
        values = {
            name: value
            for name, value in merged.values.items()
            if name not in MERGE_COMBINED and name not in primary.values
        }
        emails = [
            *split_multi(primary.values.get(ADDITIONAL_EMAILS)),
            merged.values.get(EMAIL, ""),
            *split_multi(merged.values.get(ADDITIONAL_EMAILS)),
        ]
        email = primary.values.get(EMAIL)
        if not email:
            email = next((e for e in emails if e), "")
            if email:
                values[EMAIL] = email
        secondary = join_multi([e for e in emails if e != email])
        if secondary:
            values[ADDITIONAL_EMAILS] = secondary
        values[MERGED_OBJECT_IDS] = join_multi(
            [
                *split_multi(primary.values.get(MERGED_OBJECT_IDS)),
                str(merged_id),
                *split_multi(merged.values.get(MERGED_OBJECT_IDS)),
            ]
        )
        self.store.merge_contacts(primary_id, merged_id, values, now_iso())
        return 200, self.serialize(self._load(primary_id), everything_set=True)

    @staticmethod
    def _self_merge(key: str, survivor: int | None = None) -> ApiError:
        detail = f" (it was merged into {survivor})" if survivor is not None else ""
        return errors.validation_error(
            f"Cannot merge object {key} into itself{detail}; primaryObjectId and "
            "objectIdToMerge must name two different objects",
            [
                {
                    "message": "primaryObjectId and objectIdToMerge are the same object",
                    "code": "INVALID_MERGE",
                    "context": {"ids": [key]},
                }
            ],
        )

    def set_additional_emails(self, contact_id: int, emails: Any) -> dict[str, Any]:
        """Not HubSpot's: replace a contact's `hs_additional_emails` (the admin backdoor; the
        API refuses the read-only property). Addresses are lower-cased; one that is the
        contact's own primary email is a 400, one another contact has (primary or secondary)
        a 409. Returns the contact with all its values."""
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise errors.bad_json("emails must be a list of email addresses")
        record = self.store.get_contact(contact_id)
        if record is None:
            raise errors.not_found(f"No contact with id {contact_id}")
        clean = [e.strip().lower() for e in emails]
        bad = [e for e in clean if not is_valid_email(e) or ";" in e]
        if bad:
            raise errors.validation_error(f"Not valid email addresses: {', '.join(bad)}")
        if record.values.get(EMAIL) in clean:
            raise errors.validation_error(
                f"{record.values[EMAIL]} is the primary email of contact {contact_id}"
            )
        for email in clean:
            other = self.store.find_contact_by_email(email)
            if other is not None and other != contact_id:
                raise errors.conflict(f"Contact already exists. Existing ID: {other}")
        self.store.update_contact(contact_id, {ADDITIONAL_EMAILS: join_multi(clean)}, now_iso())
        return self.serialize(self._load(contact_id), everything_set=True)

    # -- batch endpoints ----------------------------------------------------------------------

    def batch_read(self, body: Any, config: SandboxConfig) -> tuple[int, dict[str, Any]]:
        requested_at = now_iso()
        inputs = self._check_batch_inputs(body, config)
        id_property = body.get("idProperty")
        requested = self._requested(body.get("properties")) or None
        results, missing, seen = [], [], set()
        for index, item in enumerate(inputs):
            key = item.get("id")
            if not isinstance(key, str) or not key:
                raise errors.bad_json(f"inputs[{index}].id must be a non-empty string")
            contact_id = self.resolve(key, id_property)
            if contact_id is None:
                missing.append(key)
            elif contact_id not in seen:
                seen.add(contact_id)
                results.append(self.serialize(self._load(contact_id), requested))
        return Batch(results, self._not_found_errors(missing), requested_at).response()

    @staticmethod
    def _not_found_errors(missing: list[str]) -> list[dict[str, Any]]:
        if not missing:
            return []
        return [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": NOT_FOUND_MESSAGE,
                "context": {"ids": missing},
                "errors": [],
                "links": {},
            }
        ]

    def _check_all(
        self, inputs: list[Any], portal_id: int, problems: list[PropertyProblem] | None = None
    ) -> list[dict[str, str]]:
        """Check every input's properties; one 400 listing all problems (with `problems` found
        earlier) if there are any."""
        all_values, all_problems = [], list(problems or [])
        for index, item in enumerate(inputs):
            values, found = self.check_properties(
                item.get("properties"), f"inputs[{index}]", portal_id
            )
            all_values.append(values)
            all_problems.extend(found)
        if all_problems:
            raise errors.property_errors(all_problems, portal_id)
        return all_values

    def _unique_keys(self, values_list: list[dict[str, str]]) -> list[tuple[str, str]]:
        unique = ["email", *self._unique_names()]
        return [
            (name, values[name]) for values in values_list for name in unique if values.get(name)
        ]

    def batch_create(self, body: Any, config: SandboxConfig) -> tuple[int, dict[str, Any]]:
        requested_at = now_iso()
        inputs = self._check_batch_inputs(body, config)
        values_list = self._check_all(inputs, config.portal_id)
        for index, values in enumerate(values_list):
            self._require_identity(values, f"inputs[{index}]")
        self._reject_duplicates(self._unique_keys(values_list))
        for values in values_list:
            conflict = self._conflict(values, None)
            if conflict:
                raise conflict
        now = now_iso()
        ids = [self.store.create_contact(values, now) for values in values_list]
        results = [self.serialize(self._load(i), everything_set=True) for i in ids]
        return Batch(results, [], requested_at, created=True).response()

    def batch_update(self, body: Any, config: SandboxConfig) -> tuple[int, dict[str, Any]]:
        requested_at = now_iso()
        inputs = self._check_batch_inputs(body, config)
        keys = []
        for index, item in enumerate(inputs):
            key, id_property = item.get("id"), item.get("idProperty")
            if not isinstance(key, str) or not key:
                raise errors.bad_json(f"inputs[{index}].id must be a non-empty string")
            if id_property not in (None, OBJECT_ID):
                definition = (
                    self.store.get_property(id_property) if isinstance(id_property, str) else None
                )
                if (
                    id_property == "email"
                    or definition is None
                    or not definition.get("hasUniqueValue")
                ):
                    raise errors.validation_error(
                        f"Unable to perform update by non-unique 0-1 property {id_property}; "
                        "update by id or by a property with hasUniqueValue, or use batch upsert",
                        [
                            {
                                "message": f"{id_property} cannot be used as idProperty for update",
                                "code": "INVALID_ID_PROPERTY",
                                "in": f"inputs[{index}].idProperty",
                                "context": {"propertyName": [str(id_property)]},
                            }
                        ],
                    )
            keys.append((id_property or OBJECT_ID, key))
        self._reject_duplicates(keys)
        values_list = self._check_all(inputs, config.portal_id)
        targets: list[tuple[int, dict[str, str]]] = []
        missing = []
        for (id_property, key), values in zip(keys, values_list, strict=True):
            contact_id = self.resolve(key, id_property)
            if contact_id is None:
                missing.append(key)
            else:
                targets.append((contact_id, values))
        self._reject_duplicates([("id", str(cid)) for cid, _ in targets])
        for contact_id, values in targets:
            conflict = self._conflict(values, contact_id)
            if conflict:
                raise conflict
        self._reject_duplicates(self._unique_keys([values for _, values in targets]))
        now = now_iso()
        results = []
        for contact_id, values in targets:
            self._write(contact_id, values, now)
            results.append(self.serialize(self._load(contact_id), everything_set=True))
        return Batch(results, self._not_found_errors(missing), requested_at).response()

    def batch_upsert(self, body: Any, config: SandboxConfig) -> tuple[int, dict[str, Any]]:
        requested_at = now_iso()
        inputs = self._check_batch_inputs(body, config)
        keys: list[tuple[str, str]] = []
        problems: list[PropertyProblem] = []
        for index, item in enumerate(inputs):
            key, id_property = item.get("id"), item.get("idProperty")
            if not isinstance(key, str) or not key:
                raise errors.bad_json(f"inputs[{index}].id must be a non-empty string")
            if not isinstance(id_property, str) or not id_property:
                raise errors.bad_json(
                    f"inputs[{index}].idProperty is required for upsert "
                    "(email or a unique property)"
                )
            if id_property == "email":
                if not is_valid_email(key):
                    problems.append(
                        PropertyProblem(
                            "email",
                            "INVALID_EMAIL",
                            f"Email address {key} is invalid",
                            f"inputs[{index}]",
                        )
                    )
                key = key.lower()
            else:
                definition = self.store.get_property(id_property)
                if definition is None or not definition.get("hasUniqueValue"):
                    raise errors.validation_error(
                        f"Unable to perform upsert by non-unique 0-1 property {id_property}",
                        [
                            {
                                "message": f"{id_property} is not a unique property",
                                "code": "INVALID_ID_PROPERTY",
                                "in": f"inputs[{index}].idProperty",
                                "context": {"propertyName": [id_property]},
                            }
                        ],
                    )
                problem = check_value(definition, key)
                if problem is not None:
                    problem.where = f"inputs[{index}]"
                    problems.append(problem)
            keys.append((id_property, key))
        self._reject_duplicates(keys)
        values_list = self._check_all(inputs, config.portal_id, problems)
        planned: list[tuple[int | None, dict[str, str]]] = []
        for (id_property, key), values in zip(keys, values_list, strict=True):
            contact_id = self.resolve(key, id_property)
            # A new contact gets the key as its value; a found one already has it (as its primary
            # email, or as a secondary one, which does not become the primary).
            if contact_id is None and id_property not in values:
                values = {id_property: key, **values}
            planned.append((contact_id, values))
        self._reject_duplicates(
            [("id", str(contact_id)) for contact_id, _ in planned if contact_id is not None]
        )
        self._reject_duplicates(self._unique_keys([values for _, values in planned]))
        for contact_id, values in planned:
            conflict = self._conflict(values, contact_id)
            if conflict:
                raise conflict
        now = now_iso()
        results = []
        for contact_id, values in planned:
            is_new = contact_id is None
            if contact_id is None:
                contact_id = self.store.create_contact(values, now)
            else:
                self._write(contact_id, values, now)
            results.append(
                {**self.serialize(self._load(contact_id), everything_set=True), "new": is_new}
            )
        return Batch(results, [], requested_at).response()
