"""`hubmap init SAMPLE`: a real payload of each shipped platform gives its shipped mapping, with
the shop's values in and its example cases still passing; any other payload gives a skeleton
that validates and maps the sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hubmap.cli import main
from tests.conftest import shared_data

REAL_SAMPLES = [
    (("shopify", "order.json"), "shopify-orders-contacts.yaml", {"SHOP_CURRENCY": "USD"}),
    (("shopify", "checkouts.json"), "shopify-checkout-form.yaml", {"SHOP_CURRENCY": "USD"}),
    (("woocommerce", "order.json"), "woocommerce-orders-contacts.yaml", {"SHOP_CURRENCY": "USD"}),
    (
        ("magento", "order-create-order_GET_V1_orders_3.json"),
        "magento-orders-contacts.yaml",
        {"SHOP_CURRENCY": "USD"},
    ),
    (("bigcommerce", "order.json"), "bigcommerce-orders-contacts.yaml", {"SHOP_CURRENCY": "USD"}),
    (
        ("stripe", "charge_succeeded__card.json"),
        "stripe-checkout-contacts.yaml",
        {"SHOP_CURRENCY": "AUD"},
    ),
    (("online_retail", "by-day", "2010-12-01.csv"), "online-retail-contacts.yaml", {}),
]


def init(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["init", *args], env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    ("sample", "shipped", "params"), REAL_SAMPLES, ids=[s[1] for s in REAL_SAMPLES]
)
def test_a_real_payload_gets_its_platforms_mapping_with_the_samples_values(
    sample, shipped, params, tmp_path, monkeypatch
):  # type: ignore[no-untyped-def]
    path = shared_data(*sample)
    monkeypatch.chdir(tmp_path)
    done = init(str(path))
    assert done.exit_code == 0, done.output
    written = tmp_path / "mappings" / shipped
    assert f"wrote mappings/{shipped}" in done.output
    data = yaml.safe_load(written.read_text())
    for name, value in params.items():
        assert data["params"][name]["default"] == value
        assert f"parameter {name} = {value} (from the sample)" in done.output
    assert "0 failed" in done.output
    tested = CliRunner().invoke(main, ["test", str(written)])
    assert tested.exit_code == 0, tested.output
    planned = CliRunner().invoke(main, ["plan", str(written), "--input", str(path)])
    assert planned.exit_code in (0, 1) and "Traceback" not in planned.output


def test_a_shop_in_another_currency_gets_it_as_default_and_the_cases_keep_theirs(
    tmp_path, monkeypatch
):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    order = {
        "id": 9,
        "financial_status": "paid",
        "currency": "EUR",
        "total_price": "20.00",
        "email": "eve@example.com",
        "created_at": "2024-05-01T10:00:00+02:00",
        "line_items": [{"sku": "S-1", "title": "Shirt", "price": "20.00", "quantity": 1}],
    }
    (tmp_path / "order.json").write_text(json.dumps(order))
    done = init("order.json", "--into", "shop")
    assert done.exit_code == 0, done.output
    text = (tmp_path / "shop" / "shopify-orders-contacts.yaml").read_text()
    data = yaml.safe_load(text)
    assert data["params"]["SHOP_CURRENCY"]["default"] == "EUR"
    assert all(case["params"] == {"SHOP_CURRENCY": "USD"} for case in data["examples"])
    assert text.startswith("# yaml-language-server: $schema=mapping.schema.json\n")
    assert json.loads((tmp_path / "shop" / "mapping.schema.json").read_text())["$schema"]
    # the copy counts the shop's EUR order, where the shipped default would reject it
    planned = CliRunner().invoke(
        main, ["plan", "shop/shopify-orders-contacts.yaml", "--input", "order.json"]
    )
    assert planned.exit_code == 0, planned.output
    assert "eve@example.com" in planned.output and "'20.00'" in planned.output


def test_a_value_from_param_or_the_environment_wins_over_the_sample(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "o.json").write_text(
        json.dumps(
            {
                "id": 1,
                "order_key": "k",
                "currency": "USD",
                "billing": {"email": "a@example.com"},
                "date_created_gmt": "2024-01-01T00:00:00",
            }
        )
    )
    done = init("o.json", env={"SHOP_TIMEZONE": "Europe/Berlin"})
    assert done.exit_code == 0, done.output
    assert (
        "parameter SHOP_TIMEZONE = Europe/Berlin (from --param or the environment)" in done.output
    )
    data = yaml.safe_load((tmp_path / "mappings" / "woocommerce-orders-contacts.yaml").read_text())
    assert data["params"]["SHOP_TIMEZONE"]["default"] == "Europe/Berlin"
    assert all(c["params"] == {"SHOP_TIMEZONE": "America/New_York"} for c in data["examples"])


def test_a_file_that_differs_is_not_replaced_without_force(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "o.json").write_text(
        json.dumps({"id": 1, "financial_status": "paid", "total_price": "1", "currency": "USD"})
    )
    mine = tmp_path / "mappings" / "shopify-orders-contacts.yaml"
    mine.parent.mkdir()
    mine.write_text("# my own edits\n")
    done = init("o.json")
    assert done.exit_code == 2
    assert "exists and differs" in done.output and "--force" in done.output
    assert mine.read_text() == "# my own edits\n"
    again = init("o.json", "--force")
    assert again.exit_code == 0 and mine.read_text() != "# my own edits\n"
    twice = init("o.json")
    assert twice.exit_code == 0 and "kept  mappings/shopify-orders-contacts.yaml" in twice.output


def test_an_unknown_platform_gets_a_skeleton_that_validates_and_maps_the_sample(
    tmp_path, monkeypatch
):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    lines = [
        {
            "id": "o-1",
            "state": "COMPLETED",
            "created_at": "2025-02-14T18:22:05Z",
            "updated_at": "2025-02-14T18:25:40Z",
            "customer_email": "grace@example.com",
            "total": "50.88",
            "line_items": [{"name": "Coffee"}, {"name": "Mug"}],
        },
        {
            "id": "o-2",
            "state": "COMPLETED",
            "created_at": "2025-03-01T10:00:00Z",
            "updated_at": "2025-03-01T10:00:00Z",
            "customer_email": "grace@example.com",
            "total": "9.12",
            "line_items": [{"name": "Tea"}],
        },
    ]
    (tmp_path / "square-orders.ndjson").write_text("\n".join(json.dumps(x) for x in lines))
    done = init("square-orders.ndjson")
    assert done.exit_code == 0, done.output
    assert "no platform hubmap ships a mapping for" in done.output
    written = tmp_path / "mappings" / "square-orders-contacts.yaml"
    assert "#   customer_email: text, grace@example.com" in written.read_text()
    planned = CliRunner().invoke(main, ["plan", str(written), "--input", "square-orders.ndjson"])
    assert planned.exit_code == 0, planned.output
    assert "total_value_of_orders: (none) -> '60.00'" in planned.output
    assert "products_bought: (none) -> 'Tea;Coffee;Mug'" in planned.output


def test_a_sample_without_records_says_what_to_give(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.json").write_text("[]")
    done = init("empty.json")
    assert done.exit_code == 2 and "no records to start from" in done.output
    missing = init("nothere.json")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert not Path(tmp_path / "mappings").exists()
