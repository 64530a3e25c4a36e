"""A client that reads HubSpot but never writes: what a dry run talks to.

Reads go to the real client; writes (properties, groups, contacts, form submissions) are not
sent: they are recorded in `planned` and answered as HubSpot would answer a success, so a dry run
goes through exactly the code of a run and prints what it would have written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hubmap.hubspot.client import (
    BatchUpsertResult,
    ClientStats,
    HubSpotClient,
    PropertyBatchResult,
    UpsertedContact,
    normalize_key,
)
from hubmap.hubspot.config import HubSpotSettings


@dataclass
class Planned:
    """What a dry run would have written."""

    properties: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    contacts: dict[str, dict[str, str]] = field(default_factory=dict)
    submissions: list[dict[str, Any]] = field(default_factory=list)


class ReadOnlyClient:
    """The subset of `HubSpotClient` a run uses, with writes recorded instead of sent."""

    def __init__(self, client: HubSpotClient):
        self.client = client
        self.planned = Planned()
        self._known: set[str] = set()  # contacts read that HubSpot has
        self._names: dict[str, str] = {}  # record id -> the key it was read by

    @property
    def settings(self) -> HubSpotSettings:
        return self.client.settings

    def stats(self) -> ClientStats:
        return self.client.stats()

    # -- reads -----------------------------------------------------------------------------

    def account_details(self) -> dict[str, Any]:
        return self.client.account_details()

    def list_properties(self, object_type: str = "contacts") -> list[dict[str, Any]]:
        return self.client.list_properties(object_type)

    def list_groups(self, object_type: str = "contacts") -> list[dict[str, Any]]:
        return self.client.list_groups(object_type)

    def get_form(self, form_guid: str) -> dict[str, Any]:
        return self.client.get_form(form_guid)

    def batch_read_contacts(
        self, ids: Any, id_property: str | None = "email", properties: Any = ()
    ) -> Any:
        result = self.client.batch_read_contacts(
            ids, id_property=id_property, properties=properties
        )
        self._known.update(result.found)
        for key, record in result.found.items():  # what a write by record id is shown as
            self._names.setdefault(str(record.get("id", "")), key)
        return result

    # -- writes, recorded ------------------------------------------------------------------

    def create_group(
        self, object_type: str, name: str, label: str | None = None, *, display_order: int = -1
    ) -> bool:
        self.planned.groups.append(name)
        return True

    def create_properties_batch(
        self, object_type: str, definitions: Sequence[Mapping[str, Any]]
    ) -> PropertyBatchResult:
        self.planned.properties.extend(str(d.get("name", "")) for d in definitions)
        return PropertyBatchResult(created=[dict(d) for d in definitions], errors={})

    def update_property(
        self, object_type: str, name: str, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {"name": name, **dict(changes)}

    def batch_upsert_contacts(
        self, inputs: Mapping[str, Mapping[str, str]], id_property: str = "email"
    ) -> BatchUpsertResult:
        results = {}
        for key, values in inputs.items():
            normal = normalize_key(key, id_property)
            self.planned.contacts[key] = dict(values)
            results[normal] = UpsertedContact(key, "", normal not in self._known, dict(values))
        return BatchUpsertResult(results, {}, id_property)

    def batch_update_contacts(self, inputs: Mapping[str, Mapping[str, str]]) -> BatchUpsertResult:
        results = {}
        for key, values in inputs.items():
            self.planned.contacts[self._names.get(str(key), f"record {key}")] = dict(values)
            results[str(key)] = UpsertedContact(str(key), str(key), False, dict(values))
        return BatchUpsertResult(results, {}, "hs_object_id")

    def submit_form(
        self,
        portal_id: Any,
        form_guid: str,
        fields: Any,
        context: Any = None,
        submitted_at: Any = None,
        legal_consent: Any = None,
        secure: bool = True,
    ) -> dict[str, Any]:
        self.planned.submissions.append({"fields": dict(fields), "context": dict(context or {})})
        return {"inlineMessage": "(dry run: not sent)"}
