"""Drift (someone edits a contact in HubSpot between runs), replay of rejected records, `status`,
dry runs, and what a changed mapping does to an existing state (new property, changed definition,
changed rule, `rebuild`).  Over real HTTP against the local stand-in.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import requests

from hubmap.mapping import load_mapping
from hubmap.problems import HubmapError
from hubmap.state import StateStore
from hubmap.uses.context import scope_of
from tests.acceptance import helpers


@pytest.fixture
def sandbox():  # type: ignore[no-untyped-def]
    running = helpers.start()
    yield running
    running.stop()


def _edit(sandbox, email: str, values: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    response = requests.patch(
        f"{sandbox.url}/crm/v3/objects/contacts/{email}",
        params={"idProperty": "email"},
        json={"properties": values},
        headers={"Authorization": f"Bearer {helpers.TOKEN}"},
        timeout=10,
    )
    response.raise_for_status()


def _mine(items, email: str):  # type: ignore[no-untyped-def]
    return sorted((i for i in items if i["email"] == email), key=lambda i: (i["at"], i["id"]))


def test_an_edit_in_hubspot_is_reported_as_drift_and_becomes_the_new_baseline(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    old, new = helpers.orders(range(1, 71)), helpers.orders(range(71, 141))
    helpers.run(mapping, helpers.write_orders(tmp_path / "old.ndjson", old), sandbox, state)
    edited = "buyer3@example.com"
    _edit(sandbox, edited, {"tiny_total": "1000.50", "tiny_last_sku": "MANUAL"})

    summary = helpers.run(
        mapping, helpers.write_orders(tmp_path / "new.ndjson", new), sandbox, state
    )

    assert summary.drift == 2
    values = helpers.held(helpers.contacts(sandbox)[edited])
    # sum: the edited value, plus only the orders counted after it
    assert values["tiny_total"] == Decimal("1000.50") + sum(
        Decimal(i["amount"]) for i in _mine(new, edited)
    )
    # not edited: all orders, counted once
    assert values["tiny_count"] == len(_mine(old + new, edited))
    # overwrite: the edit is the baseline, the newer orders overwrite it
    assert values["tiny_last_sku"] == _mine(new, edited)[-1]["sku"]
    others = {e: v for e, v in helpers.expected(old + new).items() if e != edited}
    assert {
        e: helpers.held(v) for e, v in helpers.contacts(sandbox).items() if e != edited
    } == others
    store = StateStore(state)
    try:
        scope = scope_of(load_mapping(str(mapping)), str(helpers.PORTAL_ID))
        drift = {(d["contact"], d["property"]): d["found"] for d in store.drift_items(scope)}
        assert drift == {(edited, "tiny_total"): "1000.50", (edited, "tiny_last_sku"): "MANUAL"}
    finally:
        store.close()
    report = helpers.status(str(state))
    assert {(d["contact"], d["property"]) for d in report["scopes"][0]["drift"]} == set(drift)

    # The next run is quiet: the new values are what hubmap wrote.
    again = helpers.run(
        mapping,
        helpers.write_orders(tmp_path / "more.ndjson", helpers.orders(range(141, 161))),
        sandbox,
        state,
    )
    assert again.drift == 0

    # A rebuild from the full history keeps the edit's difference for the sum, counts no order
    # twice, and recomputes the rest from the orders.
    everything = old + new + helpers.orders(range(141, 161))
    before = helpers.held(helpers.contacts(sandbox)[edited])
    rebuilt = helpers.run(
        mapping,
        helpers.write_orders(tmp_path / "all.ndjson", everything),
        sandbox,
        state,
        rebuild=True,
    )
    assert rebuilt.rebuilt and rebuilt.new == 160
    after = helpers.held(helpers.contacts(sandbox)[edited])
    assert after["tiny_total"] == before["tiny_total"]
    assert after == {**helpers.expected(everything)[edited], "tiny_total": before["tiny_total"]}


def test_rejected_records_are_kept_and_replayed_after_the_mapping_is_fixed(
    tmp_path: Path, sandbox, new_state
) -> None:
    strict = helpers.write_mapping(
        tmp_path,
        records_extra=("  require:\n    - that: sku\n      reason: the order has no SKU\n"),
    )
    items = helpers.orders(range(1, 41))
    for item in items[::4]:
        del item["sku"]
    state = new_state("state.db")
    first = helpers.run(strict, helpers.write_orders(tmp_path / "o.ndjson", items), sandbox, state)
    assert (first.new, first.rejected, first.ok) == (30, 10, False)
    again = helpers.run(strict, helpers.write_orders(tmp_path / "o.ndjson", items), sandbox, state)
    assert (again.new, again.rejected) == (0, 10)

    report = helpers.status(str(state))["scopes"][0]
    assert len(report["pending_rejects"]) == 10  # once each, though rejected twice
    assert {r["reason"] for r in report["pending_rejects"]} == {"the order has no SKU"}
    assert [r["outcome"] for r in report["runs"]] == ["partial", "partial"]

    fixed = helpers.write_mapping(tmp_path, file_name="fixed.yaml")  # same name, no require
    summary = helpers.replay(str(fixed), helpers.environ(sandbox), state_path=str(state))
    assert (summary.new, summary.rejected, summary.ok) == (10, 0, True)
    assert summary.mapping_changed == ["records"]
    assert helpers.status(str(state))["scopes"][0]["pending_rejects"] == []
    held = helpers.contacts(sandbox)
    for email, want in helpers.expected([i for i in items if "sku" in i]).items():
        mine = [i for i in items if i["email"] == email]
        assert Decimal(held[email]["tiny_total"]) == sum(Decimal(i["amount"]) for i in mine)
        assert Decimal(held[email]["tiny_count"]) == len(mine)
        assert held[email]["tiny_skus"].split(";") == want["tiny_skus"]
    replayed_again = helpers.replay(str(fixed), helpers.environ(sandbox), state_path=str(state))
    assert (replayed_again.records, replayed_again.new) == (0, 0)


def test_a_dry_run_writes_nothing_and_counts_like_a_run(tmp_path: Path, sandbox, new_state) -> None:
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    helpers.run(
        mapping,
        helpers.write_orders(tmp_path / "a.ndjson", helpers.orders(range(1, 31))),
        sandbox,
        state,
    )
    before = helpers.contacts(sandbox)
    more = helpers.write_orders(tmp_path / "b.ndjson", helpers.orders(range(20, 91)))
    dry = helpers.run(
        mapping, more, sandbox, state, dry_run=True, options={"count_chunk": 9}
    )  # several chunks: each contact summed over all
    assert (dry.new, dry.unchanged) == (60, 11)
    assert helpers.contacts(sandbox) == before
    real = helpers.run(mapping, more, sandbox, state)
    assert real.new == 60  # the dry run stored no order
    helpers.assert_hubspot_holds(sandbox, helpers.orders(range(1, 91)))


def test_a_dry_run_predicts_the_values_a_run_writes(tmp_path: Path, sandbox, new_state) -> None:
    from hubmap.inputs import read_documents

    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    helpers.run(
        mapping,
        helpers.write_orders(tmp_path / "a.ndjson", helpers.orders(range(1, 31))),
        sandbox,
        state,
    )
    more = helpers.write_orders(tmp_path / "b.ndjson", helpers.orders(range(20, 91)))
    job = helpers.runner(mapping, sandbox, state, dry_run=True, count_chunk=9)
    try:
        dry = job.run(read_documents(str(more)))
    finally:
        job.client.close()
        job.state.close()
    assert len(dry.planned) == 7
    helpers.run(mapping, more, sandbox, state)
    held = helpers.contacts(sandbox)
    for email, values in dry.planned.items():
        for name, value in values.items():
            assert helpers.held({name: held[email][name]}) == helpers.held({name: value})


def test_a_property_added_to_the_mapping_starts_from_now_unless_rebuilt(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    old, new = helpers.orders(range(1, 51)), helpers.orders(range(51, 101))
    helpers.run(mapping, helpers.write_orders(tmp_path / "old.ndjson", old), sandbox, state)
    largest = (
        "  tiny_largest:\n    label: Tiny largest\n    type: number\n    from: amount\n"
        "    merge: max\n"
    )
    grown = helpers.write_mapping(tmp_path, extra=largest, file_name="grown.yaml")

    summary = helpers.run(grown, helpers.write_orders(tmp_path / "new.ndjson", new), sandbox, state)

    assert summary.properties_started == ["tiny_largest"]
    held = helpers.contacts(sandbox)
    for email, values in held.items():
        assert Decimal(values["tiny_largest"]) == max(
            Decimal(i["amount"]) for i in _mine(new, email)
        )
    assert {
        e: helpers.held({k: v for k, v in values.items() if k != "tiny_largest"})
        for e, values in held.items()
    } == helpers.expected(old + new)

    rebuilt = helpers.run(
        grown,
        helpers.write_orders(tmp_path / "all.ndjson", old + new),
        sandbox,
        state,
        rebuild=True,
    )
    assert rebuilt.new == 100 and rebuilt.drift == 0
    held = helpers.contacts(sandbox)
    for email, values in held.items():
        assert Decimal(values["tiny_largest"]) == max(
            Decimal(i["amount"]) for i in _mine(old + new, email)
        )
    assert {
        e: helpers.held({k: v for k, v in values.items() if k != "tiny_largest"})
        for e, values in held.items()
    } == helpers.expected(old + new)


def test_a_changed_merge_rule_is_refused_until_rebuilt(tmp_path: Path, sandbox, new_state) -> None:
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    items = helpers.orders(range(1, 41))
    source = helpers.write_orders(tmp_path / "o.ndjson", items)
    helpers.run(mapping, source, sandbox, state)
    changed = helpers.write_mapping(tmp_path, total_merge="max", file_name="changed.yaml")
    with pytest.raises(HubmapError) as refused:
        helpers.run(changed, source, sandbox, state)
    assert [p.code for p in refused.value.problems] == ["HM702"]
    assert "tiny_total" in refused.value.problems[0].message

    summary = helpers.run(changed, source, sandbox, state, rebuild=True)
    assert summary.new == 40
    for email, values in helpers.contacts(sandbox).items():
        assert Decimal(values["tiny_total"]) == max(
            Decimal(i["amount"]) for i in _mine(items, email)
        )


def test_a_changed_order_id_is_refused(tmp_path: Path, sandbox, new_state) -> None:
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    source = helpers.write_orders(tmp_path / "o.ndjson", helpers.orders(range(1, 11)))
    helpers.run(mapping, source, sandbox, state)
    text = mapping.read_text(encoding="utf-8").replace("  id: id\n", "  id: sku\n")
    changed = tmp_path / "changed.yaml"
    changed.write_text(text, encoding="utf-8")
    with pytest.raises(HubmapError) as refused:
        helpers.run(changed, source, sandbox, state)
    assert [p.code for p in refused.value.problems] == ["HM701"]


def test_an_interrupted_rebuild_must_be_finished_by_a_rebuild(
    tmp_path: Path, sandbox, new_state
) -> None:
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    items = helpers.orders(range(1, 81))
    source = helpers.write_orders(tmp_path / "o.ndjson", items)
    helpers.run(mapping, source, sandbox, state)
    assert helpers.run_until_crash(
        mapping, sandbox, state, source, record=30, rebuild=True, count_chunk=10
    )
    with pytest.raises(HubmapError) as refused:
        helpers.run(mapping, source, sandbox, state)
    assert [p.code for p in refused.value.problems] == ["HM703"]
    assert helpers.status(str(state))["scopes"][0]["rebuild_unfinished"] is True
    helpers.run(mapping, source, sandbox, state, rebuild=True)
    helpers.assert_hubspot_holds(sandbox, items)
    assert helpers.run(mapping, source, sandbox, state).new == 0


FORM_MAPPING = """\
version: 1
name: tiny-form
records:
  id: id
  time: at
  contact: email
target:
  kind: forms
  portal_id: "${HUBSPOT_PORTAL_ID}"
  form_guid: "${HUBSPOT_FORM_GUID}"
  email_field: email
  context:
    hutk: hutk
    page_uri: page
properties:
  tiny_last_sku:
    label: Tiny last SKU
    type: string
    from: sku
"""


class _RefusingSubmissions:
    """A real transport, except that HubSpot refuses the submissions of `refused` emails."""

    def __init__(self, refused: set[str]):
        from hubmap.hubspot.transport import RequestsTransport

        self.inner = RequestsTransport()
        self.refused = refused

    def send(self, method: str, url: str, **kwargs):  # type: ignore[no-untyped-def]
        from hubmap.hubspot.transport import Response

        fields = {f["name"]: f["value"] for f in (kwargs.get("json") or {}).get("fields", [])}
        if "/submit/" in url and fields.get("email") in self.refused:
            return Response.of_json(
                400,
                {
                    "status": "error",
                    "message": "refused for the test",
                    "category": "VALIDATION_ERROR",
                },
            )
        return self.inner.send(method, url, **kwargs)

    def close(self) -> None:
        self.inner.close()


def test_forms_submit_each_order_once_and_failed_submissions_are_replayed(
    tmp_path: Path, sandbox, new_state
) -> None:
    from datetime import datetime, timedelta, timezone

    from hubmap.hubspot import HubSpotClient, HubSpotSettings
    from hubmap.inputs import read_documents
    from hubmap.uses.context import _sandbox_form

    mapping = tmp_path / "form.yaml"
    mapping.write_text(FORM_MAPPING, encoding="utf-8")
    env = helpers.environ(sandbox)
    with HubSpotClient(HubSpotSettings.from_env(env)) as client:
        env["HUBSPOT_FORM_GUID"] = _sandbox_form(
            client, sandbox, load_mapping(str(mapping)), helpers.TOKEN
        )
    now = datetime.now(timezone.utc)
    items = [
        {
            "id": n,
            "email": f"visitor{n % 4}@example.com",
            "sku": f"SKU-{n}",
            "at": (now - timedelta(hours=n)).isoformat(),
        }
        for n in range(1, 13)
    ]
    source = helpers.write_orders(tmp_path / "checkouts.ndjson", items)
    state = new_state("state.db")

    job = helpers.runner(
        mapping, sandbox, state, transport=_RefusingSubmissions({"visitor1@example.com"})
    )
    job.env = env
    try:
        first = job.run(read_documents(str(source)))
    finally:
        job.client.close()
        job.state.close()
    assert (first.submissions, first.submissions_failed) == (9, 3)
    pending = helpers.status(str(state))["scopes"][0]["pending_rejects"]
    assert sorted(r["order_id"] for r in pending) == ["1", "5", "9"]
    assert {r["kind"] for r in pending} == {"failed"}

    replayed = helpers.replay(str(mapping), env, state_path=str(state))
    assert (replayed.submissions, replayed.submissions_failed) == (3, 0)
    assert helpers.status(str(state))["scopes"][0]["pending_rejects"] == []

    again = helpers.run_env(str(mapping), str(source), env, str(state))
    assert (again.unchanged, again.submissions) == (12, 0)
    sent = [
        f["value"]
        for s in sandbox.store.submissions()
        for f in s["fields"]
        if f["name"] == "tiny_last_sku"
    ]
    assert sorted(sent) == sorted(f"SKU-{n}" for n in range(1, 13))  # each order once


def test_an_order_that_passes_later_resolves_its_stored_reject(
    tmp_path: Path, sandbox, new_state
) -> None:
    strict = helpers.write_mapping(
        tmp_path,
        records_extra=(
            "  require:\n    - that: \"sku != 'SKU-3'\"\n      reason: SKU-3 is not sold\n"
        ),
    )
    items = helpers.orders(range(1, 41))
    source = helpers.write_orders(tmp_path / "o.ndjson", items)
    state = new_state("state.db")
    first = helpers.run(strict, source, sandbox, state)
    assert first.rejected > 0
    fixed = helpers.write_mapping(tmp_path, file_name="fixed.yaml")
    second = helpers.run(fixed, source, sandbox, state)  # a run, not a replay
    assert second.new == first.rejected
    assert helpers.status(str(state))["scopes"][0]["pending_rejects"] == []
    helpers.assert_hubspot_holds(sandbox, items)


def test_a_contact_folded_afresh_for_drift_keeps_that_fold_for_the_next_runs(
    tmp_path: Path, sandbox, new_state
) -> None:
    """An edit of a min property cuts the orders HubSpot had confirmed out of its fold; the fold
    made so must be what the state keeps, or a later run's new order is added to the old fold and
    the cut-out orders come back."""
    mapping = helpers.write_mapping(tmp_path)
    state = new_state("state.db")
    email = "kim@example.com"

    def placed(order_id: int, day: int) -> dict:
        return {
            "id": order_id,
            "email": email,
            "at": f"2024-01-{day:02d}T12:00:00Z",
            "amount": "10.00",
            "sku": f"SKU-{order_id}",
        }

    helpers.run(
        mapping,
        helpers.write_orders(tmp_path / "1.ndjson", [placed(1, 5), placed(2, 6)]),
        sandbox,
        state,
    )
    _edit(sandbox, email, {"tiny_first_date": "2024-01-09T12:00:00Z"})
    helpers.run(
        mapping, helpers.write_orders(tmp_path / "2.ndjson", [placed(3, 8)]), sandbox, state
    )
    # the edit is the baseline; of the orders only the one counted after it
    assert helpers.held(helpers.contacts(sandbox)[email])["tiny_first_date"] == helpers.parse_time(
        "2024-01-08T12:00:00Z"
    )
    helpers.run(
        mapping, helpers.write_orders(tmp_path / "3.ndjson", [placed(4, 10)]), sandbox, state
    )
    assert helpers.held(helpers.contacts(sandbox)[email])["tiny_first_date"] == helpers.parse_time(
        "2024-01-08T12:00:00Z"
    )
