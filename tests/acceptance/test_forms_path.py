"""The forms path over real HTTP against the stand-in: a hutk HubSpot calls invalid is dropped and
the order sent again (and counted); a form that would refuse every submission (a required field
the mapping does not fill, hidden or not) stops run, dry run and `validate --portal` before any
property is created; hidden fields take the mapping's values; forms properties go in a group of
their own; orders older than HubSpot's month are skipped with their reason, and the others carry
their time as submittedAt."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from hubmap.hubspot.errors import ErrorDetail, HubSpotValidationError
from hubmap.sandbox import SandboxConfig, start_sandbox
from hubmap.uses.forms import FORMS_MAX_BACKDATE, only_invalid_hutk
from tests.acceptance.test_forms_run import MAPPING, PAGE, TOKEN, checkouts, environment, hubmap
from tests.conftest import MAPPINGS

GROUP = "checkout_form"  # the group of its own of the mapping named checkout-form
FIELD_TYPES = {
    "email": "email",
    "last_order_value": "number",
    "last_products_bought": "single_line_text",
    "firstname": "single_line_text",
}
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def sandbox(tmp_path):
    with start_sandbox(tmp_path / "sandbox.db", config=SandboxConfig(token=TOKEN)) as running:
        yield running


def write(folder: Path, orders: list[dict[str, Any]], mapping: str = MAPPING) -> None:
    (folder / "checkout-form.yaml").write_text(mapping, encoding="utf-8")
    (folder / "checkouts.ndjson").write_text(
        "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in orders), encoding="utf-8"
    )


def run(folder: Path, env: dict[str, str], *extra: str):
    return hubmap(
        "run", "checkout-form.yaml", "--input", "checkouts.ndjson", *extra, cwd=folder, env=env
    )


def api(sandbox, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, sandbox.url + path, headers=HEADERS, timeout=10, **kwargs)


def apply(sandbox, folder: Path) -> None:
    applied = hubmap("apply", "checkout-form.yaml", cwd=folder, env=environment(sandbox, "unused"))
    assert applied.returncode == 0, applied.stderr


def form(
    sandbox,
    fields: list[str],
    *,
    required: tuple[str, ...] = ("email",),
    hidden: tuple[str, ...] = (),
) -> str:
    """A form with `fields` (their properties must exist), as a HubSpot user makes it."""
    response = api(
        sandbox,
        "POST",
        "/marketing/v3/forms",
        json={
            "name": "Checkout",
            "formType": "hubspot",
            "fieldGroups": [
                {
                    "groupType": "default_group",
                    "fields": [
                        {
                            "name": name,
                            "objectTypeId": "0-1",
                            "label": name,
                            "required": name in required,
                            "hidden": name in hidden,
                            "fieldType": FIELD_TYPES[name],
                        }
                        for name in fields
                    ],
                }
            ],
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def dump(sandbox) -> dict[str, Any]:
    return requests.get(f"{sandbox.url}/_sandbox/dump", timeout=10).json()


def property_of(sandbox, name: str) -> requests.Response:
    return api(sandbox, "GET", f"/crm/v3/properties/contacts/{name}")


def group_names(sandbox) -> set[str]:
    return {
        g["name"]
        for g in api(sandbox, "GET", "/crm/v3/properties/contacts/groups").json()["results"]
    }


def last_run(folder: Path) -> dict[str, Any]:
    status = hubmap("status", "--format", "json", cwd=folder)
    assert status.returncode == 0, status.stderr
    return json.loads(status.stdout)["scopes"][0]["runs"][0]["counts"]


def by_email(submissions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {next(f["value"] for f in s["fields"] if f["name"] == "email"): s for s in submissions}


# -- INVALID_HUTK ------------------------------------------------------------------------------


def test_an_invalid_hutk_is_dropped_and_the_order_sent_again_and_counted(tmp_path, sandbox):
    orders = checkouts(3)
    orders[1]["note_attributes"] = [{"name": "hubspotutk", "value": "not-a-hubspot-cookie"}]
    write(tmp_path, orders)
    apply(sandbox, tmp_path)
    env = environment(sandbox, form(sandbox, ["email", "last_order_value", "last_products_bought"]))
    result = run(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "form submissions: 3 sent, 0 failed" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith("sent without the hutk"))
    assert "sent without the hutk: 1 " in line and "INVALID_HUTK" in line
    assert line.endswith(": 501")

    sent = by_email(dump(sandbox)["submissions"])
    assert len(sent) == 3
    assert "hutk" not in sent["zoë.1@example.com"]["context"]
    assert sent["zoë.1@example.com"]["context"]["pageUri"] == PAGE  # the rest of the context
    assert sent["zoë.0@example.com"]["context"]["hutk"] == f"{1:032x}"
    contact = requests.get(f"{sandbox.url}/_sandbox/contacts/zoë.1@example.com", timeout=10).json()
    assert contact["hutks"] == [] and contact["properties"]["last_order_value"] == "11.50"

    counts = last_run(tmp_path)
    assert (counts["submissions"], counts["submissions_without_hutk"], counts["hutk_refused"]) == (
        3,
        1,
        ["501"],
    )
    # the stand-in was asked four times: the refused try, then the three that landed
    assert counts["calls"] >= 4


def test_only_a_refusal_for_the_hutk_alone_is_sent_again():
    def refused(*codes: str) -> HubSpotValidationError:
        return HubSpotValidationError(
            "The request is not valid",
            status=400,
            errors=[ErrorDetail(f"Error in 'x'. {code}", code=code) for code in codes],
        )

    assert only_invalid_hutk(refused("INVALID_HUTK"))
    assert not only_invalid_hutk(refused("INVALID_HUTK", "REQUIRED_FIELD"))
    assert not only_invalid_hutk(refused("INVALID_EMAIL"))


# -- the form check: required fields, before anything is created -------------------------------


def test_a_required_field_the_mapping_lacks_is_refused_before_anything_is_sent(tmp_path, sandbox):
    write(tmp_path, checkouts(3))
    apply(sandbox, tmp_path)
    guid = form(
        sandbox,
        ["email", "last_order_value", "last_products_bought", "firstname"],
        required=("email", "firstname"),
    )
    for extra in ((), ("--dry-run",)):
        result = run(tmp_path, environment(sandbox, guid), *extra)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        line = MAPPING.splitlines().index('  form_guid: "${HUBSPOT_FORM_GUID}"') + 1
        assert f"checkout-form.yaml:{line}:" in result.stderr
        assert "HM606" in result.stderr and "requires field(s) firstname" in result.stderr
        assert "REQUIRED_FIELD" in result.stderr
    assert dump(sandbox)["submissions"] == [] and dump(sandbox)["contacts"] == []


def test_a_failed_form_check_creates_no_property_in_run_dry_run_and_validate(tmp_path, sandbox):
    write(tmp_path, checkouts(2))
    # the portal has one of the mapping's two properties; the form carries it and requires
    # firstname, which the mapping does not fill
    created = api(
        sandbox,
        "POST",
        "/crm/v3/properties/contacts",
        json={
            "name": "last_order_value",
            "label": "Last order value",
            "type": "number",
            "fieldType": "number",
            "groupName": "contactinformation",
        },
    )
    assert created.status_code == 201, created.text
    guid = form(
        sandbox, ["email", "last_order_value", "firstname"], required=("email", "firstname")
    )
    env = environment(sandbox, guid)
    groups = group_names(sandbox)
    for result in (
        run(tmp_path, env),
        run(tmp_path, env, "--dry-run"),
        hubmap("validate", "--portal", "checkout-form.yaml", cwd=tmp_path, env=env),
    ):
        output = result.stderr + result.stdout
        assert result.returncode == 1, output
        assert "lacks field(s) last_products_bought" in output
        assert "requires field(s) firstname" in output
        assert "properties created" not in output
        assert property_of(sandbox, "last_products_bought").status_code == 404
        assert group_names(sandbox) == groups  # no group made either
    assert dump(sandbox)["submissions"] == []


def test_validate_portal_checks_the_form_only_when_its_guid_is_set(tmp_path, sandbox):
    write(tmp_path, checkouts(1))
    apply(sandbox, tmp_path)
    good = form(sandbox, ["email", "last_order_value", "last_products_bought"])
    env = environment(sandbox, good)
    checked = hubmap("validate", "--portal", "checkout-form.yaml", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr + checked.stdout
    del env["HUBSPOT_FORM_GUID"]
    unchecked = hubmap(
        "validate", "--portal", "--format", "json", "checkout-form.yaml", cwd=tmp_path, env=env
    )
    assert unchecked.returncode == 0, unchecked.stderr
    problems = json.loads(unchecked.stdout)
    problems = problems.get("problems", problems) if isinstance(problems, dict) else problems
    assert [(p["code"], p["severity"]) for p in problems] == [("HM412", "warning")]
    assert "the form was not checked" in problems[0]["message"]
    env["HUBSPOT_FORM_GUID"] = "no-such-form"
    missing = hubmap("validate", "--portal", "checkout-form.yaml", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert "HM606" in missing.stderr + missing.stdout and "no-such-form" in (
        missing.stderr + missing.stdout
    )


# -- hidden fields -----------------------------------------------------------------------------


def test_hidden_fields_take_the_mapping_values(tmp_path, sandbox):
    write(tmp_path, checkouts(2))
    apply(sandbox, tmp_path)
    guid = form(
        sandbox,
        ["email", "last_order_value", "last_products_bought"],
        hidden=("last_order_value", "last_products_bought"),
    )
    result = run(tmp_path, environment(sandbox, guid))
    assert result.returncode == 0, result.stderr
    assert "form submissions: 2 sent, 0 failed" in result.stdout
    contacts = {c["properties"]["email"]: c["properties"] for c in dump(sandbox)["contacts"]}
    assert contacts["zoë.1@example.com"]["last_products_bought"] == "Café crème;Mug"
    assert contacts["zoë.1@example.com"]["last_order_value"] == "11.50"


def test_a_hidden_required_field_the_mapping_lacks_is_refused(tmp_path, sandbox):
    write(tmp_path, checkouts(1))
    apply(sandbox, tmp_path)
    guid = form(
        sandbox,
        ["email", "last_order_value", "last_products_bought", "firstname"],
        required=("email", "firstname"),
        hidden=("firstname",),
    )
    result = run(tmp_path, environment(sandbox, guid))
    assert result.returncode == 1
    assert "requires field(s) firstname (hidden)" in result.stderr
    assert dump(sandbox)["submissions"] == []


def test_a_required_field_filled_for_some_orders_only_is_a_warning(tmp_path, sandbox):
    mapping = MAPPING.replace(
        "    decimals: 2\n", "    decimals: 2\n    when: \"total_price != '0'\"\n"
    )
    write(tmp_path, checkouts(1), mapping)
    apply(sandbox, tmp_path)
    guid = form(
        sandbox,
        ["email", "last_order_value", "last_products_bought"],
        required=("email", "last_order_value"),
    )
    result = hubmap(
        "validate", "--portal", "checkout-form.yaml", cwd=tmp_path, env=environment(sandbox, guid)
    )
    assert result.returncode == 0, result.stderr
    output = result.stderr + result.stdout
    assert "warning HM606" in output and "requires field 'last_order_value'" in output


# -- the forms group ---------------------------------------------------------------------------


def test_forms_properties_go_in_a_group_of_their_own(tmp_path, sandbox):
    write(tmp_path, checkouts(1))
    assert GROUP not in group_names(sandbox)
    apply(sandbox, tmp_path)
    groups = {
        g["name"]: g
        for g in api(sandbox, "GET", "/crm/v3/properties/contacts/groups").json()["results"]
    }
    assert groups[GROUP]["label"] == "checkout-form"
    for name in ("last_order_value", "last_products_bought"):
        assert property_of(sandbox, name).json()["groupName"] == GROUP


def test_a_group_the_forms_mapping_names_is_used(tmp_path, sandbox):
    mapping = MAPPING.replace(
        "target:\n", "group:\n  name: shop_checkout\n  label: Shop checkout\ntarget:\n"
    )
    write(tmp_path, checkouts(1), mapping)
    apply(sandbox, tmp_path)
    assert "shop_checkout" in group_names(sandbox) and GROUP not in group_names(sandbox)
    assert property_of(sandbox, "last_order_value").json()["groupName"] == "shop_checkout"


def test_sandbox_run_creates_the_forms_group(tmp_path):
    write(tmp_path, checkouts(1))
    result = run(tmp_path, {}, "--sandbox")
    assert result.returncode == 0, result.stderr
    dumped = json.loads(
        hubmap("sandbox", "dump", "--db", "hubmap-state-sandbox.db", cwd=tmp_path).stdout
    )
    properties = {p["name"]: p for p in dumped["properties"]}
    assert properties["last_order_value"]["groupName"] == GROUP


# -- orders older than HubSpot's month ----------------------------------------------------------


def test_orders_older_than_a_month_are_skipped_with_a_reason(tmp_path, sandbox):
    orders = checkouts(3)
    now = datetime.now(timezone.utc)
    orders[2]["created_at"] = (now - FORMS_MAX_BACKDATE - timedelta(days=5)).isoformat()
    write(tmp_path, orders)
    apply(sandbox, tmp_path)
    env = environment(sandbox, form(sandbox, ["email", "last_order_value", "last_products_bought"]))
    for extra in (("--dry-run",), ()):
        result = run(tmp_path, env, *extra)
        assert result.returncode == 0, result.stderr
        assert "orders: 2 new" in result.stdout and "skipped: 1" in result.stdout
        line = next(x for x in result.stdout.splitlines() if x.startswith("skipped 1 order(s)"))
        assert "more than 29 days ago" in line and "contacts mapping" in line
        assert line.endswith(": 502")
    sent = by_email(dump(sandbox)["submissions"])
    assert sorted(sent) == ["zoë.0@example.com", "zoë.1@example.com"]
    for n in range(2):  # the others carry their own time
        placed = datetime.fromisoformat(orders[n]["created_at"])
        assert int(sent[f"zoë.{n}@example.com"]["submittedAt"]) == int(placed.timestamp() * 1000)
    counts = last_run(tmp_path)
    assert counts["skipped"] == 1 and counts["skipped_orders"][0]["key"] == "502"

    again = run(tmp_path, env)  # never stored: skipped again, the others unchanged
    assert again.returncode == 0, again.stderr
    assert "2 unchanged" in again.stdout and "skipped: 1" in again.stdout
    assert len(dump(sandbox)["submissions"]) == 2


def test_plan_and_test_do_not_judge_the_age_of_orders(tmp_path):
    orders = checkouts(2)
    orders[1]["created_at"] = "2020-01-02T03:04:05+00:00"
    write(tmp_path, orders)
    planned = hubmap(
        "plan",
        "checkout-form.yaml",
        "--input",
        "checkouts.ndjson",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert sorted(s["order"] for s in plan["submissions"]) == ["500", "501"]
    assert plan["orders"]["skipped"] == 0
    for name in ("shopify-checkout-form.yaml", "woocommerce-checkout-form.yaml"):
        tested = hubmap("test", str(MAPPINGS / name), cwd=tmp_path)  # examples from 2023/2024
        assert tested.returncode == 0, tested.stdout + tested.stderr
