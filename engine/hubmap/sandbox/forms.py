"""Marketing forms v3 definitions and Forms API v3 submissions.

A submission is checked the way HubSpot checks it (HUBSPOT-API.md §2) and every problem is
reported in one 400 (`errors[].errorType`). A valid one is stored with its context and creates or
updates the contact by email with the submitted contact (`0-1`) values — or, without an email,
updates the contact already tied to the hutk — records the hutk on that contact and bumps its
conversion properties, as HubSpot does. An email that is one of a contact's secondary addresses
(`hs_additional_emails`) finds that contact and becomes its primary email; the old primary
becomes a secondary one (HubSpot: a form submission with a secondary email can make it the
primary one, HUBSPOT-API.md §10).

Rules the stand-in decides where HubSpot's notes leave them open:

- **hutk**: a valid `context.hutk` is what HubSpot's tracking code writes into the `hubspotutk`
  cookie, 32 lower-case hexadecimal characters; anything else is an invented value and fails the
  whole submission with `INVALID_HUTK` ("Error in 'context.hutk'. '…' is not a valid Hutk"), as
  HubSpot does (HUBSPOT-API.md §2, §9, §10).  A submission without a hutk is fine.
- **Required fields**: a field the definition marks `required` that the submission leaves out
  (or sends empty) fails it with `REQUIRED_FIELD`.
- **Hidden fields** (`hidden: true`) are fields of the form like the others: a submission may
  fill them (values for fields the form lacks fail with `FIELD_NOT_IN_FORM_DEFINITION`), and a
  hidden field that is required is required here too - the API fills in no default value (the
  notes list `hidden` beside `required` on the definition and say nothing that exempts it).
- **submittedAt** more than 30 days back fails with `INVALID_METADATA`; without one, the
  submission is dated at its arrival.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from hubmap.sandbox import errors
from hubmap.sandbox.catalog import ADDITIONAL_EMAILS
from hubmap.sandbox.config import SandboxConfig
from hubmap.sandbox.store import Store
from hubmap.sandbox.values import (
    MAX_STRING_LENGTH,
    check_value,
    is_valid_email,
    join_multi,
    now_iso,
    split_multi,
)

CONTACT = "0-1"
COMPANY = "0-2"
#: A submission carries at most 1000 field values (HUBSPOT-API.md §2).
MAX_SUBMITTED_FIELDS = 1000
#: submittedAt may be back-dated by at most about one month.
MAX_SUBMISSION_AGE_MS = 30 * 86_400_000
#: The hubspotutk cookie value: 32 lower-case hex characters (anything else: INVALID_HUTK).
HUTK_PATTERN = re.compile(r"[0-9a-f]{32}")
THANKS = "Thanks for submitting the form."
FORM_FIELD_TYPES = frozenset(
    {
        "email",
        "phone",
        "mobile_phone",
        "single_line_text",
        "multi_line_text",
        "number",
        "single_checkbox",
        "multiple_checkboxes",
        "dropdown",
        "radio",
        "datepicker",
        "file",
        "payment_link_radio",
    }
)
LEGAL_BASES = frozenset({"LEAD", "CUSTOMER"})
#: Property types whose values are option values on forms.
OPTION_TYPES = frozenset({"enumeration", "bool"})


LEGAL_FORMAT = "INVALID_LEGAL_OPTION_FORMAT"

#: A submission problem: (message, errorType).
Problem = tuple[str, str]


def _problem(where: str, text: str, error_type: str) -> Problem:
    """HubSpot's wording: `Error in 'fields.email'. <what is wrong>`."""
    return f"Error in '{where}'. {text}", error_type


def _field_label(object_type: str, name: str) -> str:
    """How HubSpot names a field in errors: `firstname`, or `0-2/name` for other objects."""
    return name if object_type == CONTACT else f"{object_type}/{name}"


def _ms_now() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


class Forms:
    """Form definition endpoints and the submit endpoints over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- definitions -------------------------------------------------------------------------

    def create(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            raise errors.bad_json("the body must be an object")
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise errors.validation_error("name is required and must be a non-empty string")
        groups = body.get("fieldGroups")
        if not isinstance(groups, list):
            raise errors.validation_error("fieldGroups is required and must be a list")
        seen: set[tuple[str, str]] = set()
        clean_groups = []
        for g, group in enumerate(groups):
            if not isinstance(group, dict) or not isinstance(group.get("fields", []), list):
                raise errors.validation_error(
                    f"fieldGroups[{g}] must be an object with a fields list"
                )
            fields = []
            for f, field in enumerate(group.get("fields", [])):
                where = f"fieldGroups[{g}].fields[{f}]"
                fields.append(self._check_field(field, where, seen))
            clean_groups.append(
                {
                    "groupType": group.get("groupType", "default_group"),
                    "richTextType": group.get("richTextType", "text"),
                    "fields": fields,
                }
            )
        now = now_iso()
        form = {
            "id": str(uuid.uuid4()),
            "name": body["name"],
            "formType": body.get("formType", "hubspot"),
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
            "fieldGroups": clean_groups,
            "configuration": body.get("configuration", {}),
            "displayOptions": body.get("displayOptions", {}),
            "legalConsentOptions": body.get("legalConsentOptions", {"type": "none"}),
        }
        self.store.put_form(form)
        return 201, form

    def _check_field(self, field: Any, where: str, seen: set[tuple[str, str]]) -> dict[str, Any]:
        if not isinstance(field, dict):
            raise errors.validation_error(f"{where} must be an object")
        name, object_type = field.get("name"), field.get("objectTypeId", CONTACT)
        field_type = field.get("fieldType")
        if not isinstance(name, str) or not name:
            raise errors.validation_error(f"{where}.name is required")
        if not isinstance(object_type, str) or not re.fullmatch(r"\d+-\d+", object_type):
            raise errors.validation_error(f"{where}.objectTypeId must look like '0-1'")
        if field_type not in FORM_FIELD_TYPES:
            raise errors.validation_error(
                f"{where}.fieldType must be one of {', '.join(sorted(FORM_FIELD_TYPES))}"
            )
        for flag in ("required", "hidden"):
            if flag in field and not isinstance(field[flag], bool):
                raise errors.validation_error(f"{where}.{flag} must be a boolean")
        if object_type == CONTACT and self.store.get_property(name) is None:
            raise errors.validation_error(f"{where}: contact property '{name}' does not exist")
        if (object_type, name) in seen:
            raise errors.validation_error(f"{where}: field '{name}' is on the form twice")
        seen.add((object_type, name))
        return {
            **field,
            "objectTypeId": object_type,
            "required": field.get("required", False),
            "hidden": field.get("hidden", False),
            "label": field.get("label", name),
        }

    def get(self, form_id: str) -> tuple[int, dict[str, Any]]:
        form = self.store.get_form(form_id)
        if form is None:
            raise errors.not_found(f"Form {form_id} does not exist")
        return 200, form

    def list_all(self) -> tuple[int, dict[str, Any]]:
        return 200, {"results": self.store.list_forms()}

    # -- submissions -------------------------------------------------------------------------

    def submit(
        self, portal_id: str, form_id: str, body: Any, *, authenticated: bool, config: SandboxConfig
    ) -> tuple[int, dict[str, Any]]:
        form = self.store.get_form(form_id)
        if str(config.portal_id) != portal_id or form is None:
            raise errors.not_found(f"Form {form_id} was not found in portal {portal_id}")
        if not isinstance(body, dict):
            raise errors.forms_error(
                [("The request body must be a JSON object", "INVALID_REQUEST_BODY")]
            )
        problems: list[Problem] = []
        values = self._check_fields(form, body.get("fields", []), problems)
        submitted_at = self._check_submitted_at(body.get("submittedAt"), problems)
        context = body.get("context", {})
        self._check_context(context, problems)
        self._check_legal(body.get("legalConsentOptions"), problems)
        if problems:
            raise errors.forms_error(problems)
        contact_id = self._apply(form, values, context if isinstance(context, dict) else {})
        self.store.add_submission(
            form_id=form_id,
            portal_id=config.portal_id,
            submitted_at=submitted_at,
            received_at=now_iso(),
            authenticated=authenticated,
            contact_id=contact_id,
            body=body,
        )
        action = (form.get("configuration") or {}).get("postSubmitAction") or {}
        if action.get("type") == "redirect_url" and action.get("value"):
            return 200, {"redirectUri": action["value"]}
        return 200, {"inlineMessage": action.get("value") or THANKS}

    def _check_fields(
        self, form: dict[str, Any], fields: Any, problems: list[Problem]
    ) -> dict[str, str]:
        """Check the submitted fields against the form; returns the contact values to write."""
        if not isinstance(fields, list):
            problems.append(_problem("fields", "fields must be a list", "INVALID_REQUEST_BODY"))
            return {}
        if len(fields) > MAX_SUBMITTED_FIELDS:
            problems.append(
                _problem(
                    "fields",
                    f"{len(fields)} values were submitted; the limit is {MAX_SUBMITTED_FIELDS}",
                    "MAX_NUMBER_OF_SUBMITTED_VALUES_EXCEEDED",
                )
            )
            return {}
        on_form = {
            (f["objectTypeId"], f["name"]): f
            for group in form["fieldGroups"]
            for f in group["fields"]
        }
        given: dict[tuple[str, str], str] = {}
        contact_values: dict[str, str] = {}
        for index, field in enumerate(fields):
            if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                problems.append(
                    _problem(
                        f"fields[{index}]",
                        "Each field needs a name and a value",
                        "INVALID_REQUEST_BODY",
                    )
                )
                continue
            object_type = str(field.get("objectTypeId", CONTACT))
            name, value = field["name"], field.get("value")
            where = f"fields.{_field_label(object_type, name)}"
            if not isinstance(value, str):
                problems.append(
                    _problem(
                        where,
                        f"The value must be a string, got {type(value).__name__}",
                        "INVALID_REQUEST_BODY",
                    )
                )
                continue
            definition = on_form.get((object_type, name))
            if definition is None:
                problems.append(
                    _problem(
                        where,
                        f"Field '{_field_label(object_type, name)}' is not in the form definition",
                        "FIELD_NOT_IN_FORM_DEFINITION",
                    )
                )
                continue
            given[(object_type, name)] = value
            if value != "":
                problem = self._check_value(where, definition, value)
                if problem:
                    problems.append(problem)
                elif object_type == CONTACT:
                    contact_values[name] = value.lower() if name == "email" else value
        for key, definition in on_form.items():
            if definition.get("required") and not given.get(key):
                label = _field_label(*key)
                problems.append(
                    _problem(
                        f"fields.{label}", f"Required field '{label}' is missing", "REQUIRED_FIELD"
                    )
                )
        return contact_values

    def _check_value(self, where: str, field: dict[str, Any], value: str) -> Problem | None:
        is_contact = field["objectTypeId"] == CONTACT
        is_email = field["fieldType"] == "email" or (is_contact and field["name"] == "email")
        if is_email and not is_valid_email(value):
            return _problem(where, "Invalid email address", "INVALID_EMAIL")
        if len(value) > MAX_STRING_LENGTH:
            return _problem(
                where, f"The value is longer than {MAX_STRING_LENGTH} characters", "INPUT_TOO_LARGE"
            )
        definition = self.store.get_property(field["name"]) if is_contact else None
        kind = definition["type"] if definition else None
        is_number = field["fieldType"] == "number" or kind == "number"
        if is_number and check_value({"name": field["name"], "type": "number"}, value):
            return _problem(where, f"{value} is not a valid number", "INVALID_NUMBER")
        if definition is not None and kind in OPTION_TYPES | {"date", "datetime"}:
            problem = check_value(definition, value)
            if problem is not None:
                error_type = (
                    "VALUE_NOT_IN_FIELD_DEFINITION" if kind in OPTION_TYPES else "INVALID_DATE"
                )
                return _problem(where, problem.message, error_type)
        return None

    @staticmethod
    def _check_submitted_at(value: Any, problems: list[Problem]) -> int:
        now = _ms_now()
        if value is None:
            return now
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str) or not text.isascii() or not text.isdigit():
            problems.append(
                _problem(
                    "submittedAt",
                    "submittedAt must be a timestamp in epoch milliseconds",
                    "INVALID_METADATA",
                )
            )
            return now
        if now - int(text) > MAX_SUBMISSION_AGE_MS:
            problems.append(
                _problem(
                    "submittedAt",
                    "The submission timestamp is more than 30 days in the past",
                    "INVALID_METADATA",
                )
            )
        return int(text)

    @staticmethod
    def _check_context(context: Any, problems: list[Problem]) -> None:
        if not isinstance(context, dict):
            problems.append(_problem("context", "context must be an object", "INVALID_METADATA"))
            return
        for key, value in context.items():
            if not isinstance(value, str):
                problems.append(
                    _problem(f"context.{key}", "The value must be a string", "INVALID_METADATA")
                )
        hutk = context.get("hutk")
        if isinstance(hutk, str) and not HUTK_PATTERN.fullmatch(hutk):
            problems.append(
                _problem("context.hutk", f"'{hutk}' is not a valid Hutk", "INVALID_HUTK")
            )
        ip = context.get("ipAddress")
        if isinstance(ip, str):
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                problems.append(
                    _problem(
                        "context.ipAddress", f"'{ip}' is not an IP address", "INVALID_IP_ADDRESS"
                    )
                )
        page = context.get("pageUri")
        if isinstance(page, str):
            parts = urlsplit(page)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                problems.append(
                    _problem(
                        "context.pageUri", f"'{page}' is not an absolute URL", "INVALID_PAGE_URI"
                    )
                )
        key = context.get("goToWebinarWebinarKey")
        if isinstance(key, str) and not key.isdigit():
            problems.append(
                _problem(
                    "context.goToWebinarWebinarKey",
                    "Invalid webinar key",
                    "INVALID_GOTOWEBINAR_WEBINAR_KEY",
                )
            )

    @staticmethod
    def _check_legal(options: Any, problems: list[Problem]) -> None:
        if options is None:
            return
        kinds = {"consent", "legitimateInterest"}
        if not isinstance(options, dict) or len(set(options) & kinds) != 1 or set(options) - kinds:
            problems.append(
                _problem(
                    "legalConsentOptions",
                    "Use exactly one of 'consent' or 'legitimateInterest'",
                    LEGAL_FORMAT,
                )
            )
            return
        if "consent" in options:
            Forms._check_consent(options["consent"], problems)
        else:
            Forms._check_legitimate_interest(options["legitimateInterest"], problems)

    @staticmethod
    def _check_consent(consent: Any, problems: list[Problem]) -> None:
        where = "legalConsentOptions.consent"
        if not isinstance(consent, dict):
            problems.append(_problem(where, "consent must be an object", LEGAL_FORMAT))
            return
        if not isinstance(consent.get("consentToProcess"), bool):
            problems.append(
                _problem(where, "consentToProcess is missing", "MISSING_PROCESSING_CONSENT")
            )
        if not isinstance(consent.get("text"), str) or not consent["text"]:
            problems.append(
                _problem(
                    where,
                    "The processing consent text is missing",
                    "MISSING_PROCESSING_CONSENT_TEXT",
                )
            )
        communications = consent.get("communications", [])
        if not isinstance(communications, list):
            problems.append(_problem(where, "communications must be a list", LEGAL_FORMAT))
            return
        where += ".communications"
        seen: set[int] = set()
        for item in communications:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("value"), bool)
                or not isinstance(item.get("subscriptionTypeId"), int)
            ):
                problems.append(
                    _problem(
                        where,
                        "Each needs a boolean value and an integer subscriptionTypeId",
                        LEGAL_FORMAT,
                    )
                )
                continue
            if not isinstance(item.get("text"), str) or not item["text"]:
                problems.append(
                    _problem(
                        where,
                        "The communication consent text is missing",
                        "MISSING_COMMUNICATION_CONSENT_TEXT",
                    )
                )
            if item["subscriptionTypeId"] in seen:
                problems.append(
                    _problem(
                        where,
                        f"subscriptionTypeId {item['subscriptionTypeId']} is listed twice",
                        "DUPLICATE_SUBSCRIPTION_TYPE_ID",
                    )
                )
            seen.add(item["subscriptionTypeId"])

    @staticmethod
    def _check_legitimate_interest(interest: Any, problems: list[Problem]) -> None:
        where = "legalConsentOptions.legitimateInterest"
        if (
            not isinstance(interest, dict)
            or not isinstance(interest.get("value"), bool)
            or not isinstance(interest.get("subscriptionTypeId"), int)
            or interest.get("legalBasis") not in LEGAL_BASES
        ):
            problems.append(
                _problem(
                    where,
                    "It needs a boolean value, an integer "
                    "subscriptionTypeId and legalBasis LEAD or CUSTOMER",
                    LEGAL_FORMAT,
                )
            )
            return
        if not isinstance(interest.get("text"), str) or not interest["text"]:
            problems.append(
                _problem(
                    where,
                    "The legitimate interest text is missing",
                    "MISSING_LEGITIMATE_INTEREST_TEXT",
                )
            )

    def _apply(
        self, form: dict[str, Any], values: dict[str, str], context: dict[str, Any]
    ) -> int | None:
        """Create or update the contact the submission belongs to; None if it names nobody."""
        hutk = context.get("hutk")
        email = values.get("email")
        contact_id = self.store.find_contact_by_email(email) if email else None
        if contact_id is None and not email and hutk:
            contact_id = self.store.find_contact_by_hutk(hutk)
        if contact_id is None and not email:
            return None
        if contact_id is not None and email:
            found = self.store.get_contact(contact_id)
            primary = found.values.get("email", "") if found else ""
            if primary != email:  # found by a secondary address: swap it with the primary
                secondary = split_multi(found.values.get(ADDITIONAL_EMAILS) if found else None)
                values[ADDITIONAL_EMAILS] = join_multi(
                    [e for e in secondary if e != email] + [primary]
                )
        # A unique value already held by another contact is left out rather than failing the form.
        for name, value in list(values.items()):
            definition = self.store.get_property(name)
            if name != "email" and definition and definition.get("hasUniqueValue"):
                other = self.store.find_contact(name, value)
                if other is not None and other != contact_id:
                    del values[name]
        now = now_iso()
        if contact_id is None:
            contact_id = self.store.create_contact(values, now)
        else:
            self.store.update_contact(contact_id, values, now)
        record = self.store.get_contact(contact_id)
        count = int(record.values.get("num_conversion_events", "0")) if record else 0
        conversion = {
            "num_conversion_events": str(count + 1),
            "recent_conversion_event_name": form["name"],
            "recent_conversion_date": now,
        }
        if record is not None and "first_conversion_date" not in record.values:
            conversion["first_conversion_event_name"] = form["name"]
            conversion["first_conversion_date"] = now
        self.store.update_contact(contact_id, conversion, now)
        if hutk:
            self.store.add_hutk(contact_id, hutk)
        return contact_id
