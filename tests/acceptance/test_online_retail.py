"""Line-item exports: `records.group_by` joins rows into orders, and the online-retail mapping
gives every customer the exact totals of the real UCI "Online Retail" rows.

The expected totals are computed here straight from the CSV files with `csv` and `Decimal`,
apart from the mapping's expressions, so a wrong expression, a wrong grouping or a lost row shows.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from hubmap import evaluate
from hubmap.evaluate import GROUP_ROWS_KEY, GROUP_WINDOW, CompiledMapping, Rejected
from hubmap.inputs import Document, InputFormatError, read_documents
from hubmap.mapping import load_mapping
from hubmap.mapping.model import Source, SourceKind
from hubmap.plan import plan_outcomes
from tests.conftest import MAPPINGS, shared_data

ONLINE_RETAIL = MAPPINGS / "online-retail-contacts.yaml"
DAYS = ("2010-12-01.csv", "2010-12-02.csv", "2011-01-31.csv", "2011-02-01.csv", "2011-08-12.csv")
"""Real day files: the first day, a day whose invoice 542806 is interrupted by a cancellation
(2011-02-01), and the day of the three 'A' bad-debt adjustments (2011-08-12)."""


@pytest.fixture(scope="module")
def compiled() -> CompiledMapping:
    return CompiledMapping(load_mapping(str(ONLINE_RETAIL)))


def grouping(mapping: CompiledMapping) -> CompiledMapping:
    """The same mapping, grouping by a plain 'key' field (for small hand-written records)."""
    records = replace(
        mapping.mapping.records,
        group_by=Source(SourceKind.JMESPATH, text="key"),
        id=Source(SourceKind.JMESPATH, text="key"),
    )
    return CompiledMapping(replace(mapping.mapping, records=records))


def rows(*keys: str) -> list[Document]:
    return [Document({"key": key, "n": n}, f"in.csv:{n + 2}") for n, key in enumerate(keys)]


def groups(mapping: CompiledMapping, documents: list[Document]) -> list:
    return list(mapping.record_stream(iter(documents)))


# ----------------------------------------------------------------------- group_by semantics


def test_consecutive_rows_become_one_record_with_the_first_rows_fields_and_all_rows(compiled):
    got = groups(grouping(compiled), rows("a", "a", "a", "b"))
    assert [
        (record["key"], record["n"], [r["n"] for r in record[GROUP_ROWS_KEY]], where)
        for record, where in got
    ] == [
        ("a", 0, [0, 1, 2], "in.csv:2-4"),
        ("b", 3, [3], "in.csv:5"),
    ]


def test_a_few_rows_of_another_key_in_between_do_not_split_a_group(compiled):
    got = groups(grouping(compiled), rows("a", "a", "c", "c", "a", "b"))
    assert [(r["key"], [x["n"] for x in r[GROUP_ROWS_KEY]]) for r, _ in got] == [
        ("c", [2, 3]),
        ("a", [0, 1, 4]),
        ("b", [5]),
    ]


def test_rows_of_a_group_that_already_closed_are_rejected_with_a_reason(compiled):
    keys = ["late"] + [f"k{i}" for i in range(GROUP_WINDOW + 1)] + ["late", "late"]
    got = groups(grouping(compiled), rows(*keys))
    rejected = [item for item in got if isinstance(item, Rejected)]
    assert len(rejected) == 1
    assert rejected[0].code == "HM508"
    assert rejected[0].order_id == "late"
    assert "2 row(s) of 'late'" in rejected[0].reason
    assert [r["n"] for r in rejected[0].raw] == [GROUP_WINDOW + 2, GROUP_WINDOW + 3]
    accepted = [record for record in got if not isinstance(record, Rejected)]
    assert len(accepted) == GROUP_WINDOW + 2  # 'late' once, with its first row only
    assert [r["n"] for r in accepted[0][0][GROUP_ROWS_KEY]] == [0]


def test_a_record_without_a_group_key_is_rejected_not_dropped(compiled):
    documents = [
        Document({"key": "", "n": 0}, "in.csv:2"),
        Document({"n": 1}, "in.csv:3"),
        Document(["not", "an", "object"], "in.csv:4"),
    ]
    got = groups(grouping(compiled), documents)
    assert [(item.where, item.code) for item in got] == [
        ("in.csv:2", "HM503"),
        ("in.csv:3", "HM503"),
        ("in.csv:4#0", "HM503"),
        ("in.csv:4#1", "HM503"),
        ("in.csv:4#2", "HM503"),
    ]


def test_grouping_streams_a_group_comes_out_before_the_input_ends(compiled, monkeypatch):
    monkeypatch.setattr(evaluate, "GROUP_WINDOW", 5)
    read = 0

    def endless():
        nonlocal read
        for n in itertools.count():
            read += 1
            yield Document({"key": f"k{n // 3}", "n": n}, f"in.csv:{n}")

    first, _ = next(grouping(compiled).record_stream(endless()))
    assert [r["n"] for r in first[GROUP_ROWS_KEY]] == [0, 1, 2]
    assert read <= 3 + 5 + 2


def test_a_rejected_group_keeps_its_rows_and_a_replay_groups_them_again(compiled):
    documents = [
        Document({**row, "CustomerID": ""}, f"day.csv:{n}")
        for n, row in enumerate(
            [
                {
                    "InvoiceNo": "1",
                    "StockCode": "22423",
                    "Description": "CAKESTAND",
                    "Quantity": "1",
                    "InvoiceDate": "2011-01-01 10:00:00",
                    "UnitPrice": "12.75",
                    "Country": "France",
                },
                {
                    "InvoiceNo": "1",
                    "StockCode": "POST",
                    "Description": "POSTAGE",
                    "Quantity": "1",
                    "InvoiceDate": "2011-01-01 10:00:00",
                    "UnitPrice": "18",
                    "Country": "France",
                },
            ]
        )
    ]
    (rejected,) = list(compiled.outcomes(iter(documents)))
    assert isinstance(rejected, Rejected) and "no CustomerID" in rejected.reason
    assert [r["StockCode"] for r in rejected.raw] == ["22423", "POST"]
    fixed = [{**row, "CustomerID": "12345.0"} for row in rejected.raw]
    (order,) = list(compiled.outcomes(iter([Document(fixed, "replay")])))
    assert (order.order_id, order.contact, order.values["total_value_of_orders"]) == (
        "1",
        "12345",
        Decimal("30.75"),
    )


def test_group_by_joins_rows_across_files_of_an_input_folder(compiled, tmp_path: Path):
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    (tmp_path / "b.csv").write_text(
        header + "7,22423,CAKESTAND,1,2011-01-01 23:59:00,12.75,17850.0,United Kingdom\n"
    )
    (tmp_path / "a.csv").write_text(
        header + "6,85123A,HEART HOLDER,6,2011-01-01 23:00:00,2.55,17850.0,United Kingdom\n"
        "7,POST,POSTAGE,1,2011-01-01 23:59:00,18.0,17850.0,United Kingdom\n"
    )
    (tmp_path / ".hidden").write_text("not read")
    plan = plan_outcomes(compiled, compiled.outcomes(read_documents(str(tmp_path))))
    (contact,) = plan.contacts
    assert (contact.contact, contact.orders) == ("17850", 2)
    assert contact.values["total_value_of_orders"] == "46.05"
    assert contact.values["skus_bought"] == "22423;85123A"


def test_an_input_folder_is_read_in_name_order_and_refuses_unknown_files(tmp_path: Path):
    (tmp_path / "2.ndjson").write_text('{"n": 2}\n')
    (tmp_path / "1.ndjson").write_text('{"n": 1}\n')
    assert [d.data["n"] for d in read_documents(str(tmp_path))] == [1, 2]
    (tmp_path / "notes.txt").write_text("?")
    with pytest.raises(InputFormatError, match="notes.txt"):
        list(read_documents(str(tmp_path)))


# ------------------------------------------------------------------- real rows, exact totals


def independent_totals(files: list[Path]) -> dict[str, dict[str, object]]:
    """Per customer, from the rows alone: value of all invoices (cancellations subtract), number
    of order invoices and of cancellation invoices, first and last order day, countries."""
    totals: dict[str, dict[str, object]] = {}
    for path in files:
        with path.open(newline="", encoding="utf-8") as stream:
            for row in csv.DictReader(stream):
                invoice, customer = row["InvoiceNo"], row["CustomerID"]
                if not customer or invoice.startswith("A"):
                    continue
                entry = totals.setdefault(
                    str(int(Decimal(customer))),
                    {"value": Decimal(0), "orders": set(), "cancellations": set(), "days": set()},
                )
                entry["value"] += Decimal(row["Quantity"]) * Decimal(row["UnitPrice"])
                if invoice.startswith("C"):
                    entry["cancellations"].add(invoice)
                else:
                    entry["orders"].add(invoice)
                    entry["days"].add(row["InvoiceDate"][:10])
    return totals


def test_real_day_files_give_every_customer_exact_totals(compiled, tmp_path: Path):
    files = [shared_data("online_retail", "by-day", name) for name in DAYS]
    for path in files:
        (tmp_path / path.name).symlink_to(path)
    plan = plan_outcomes(compiled, compiled.outcomes(read_documents(str(tmp_path))))
    expected = independent_totals(files)

    got = {
        c.contact: {k: v for k, v in c.values.items() if v != ""}  # "": no value
        for c in plan.contacts
    }
    assert set(got) == set(expected)
    for customer, want in expected.items():
        values = got[customer]
        assert Decimal(values["total_value_of_orders"]) == want["value"], customer
        assert int(values.get("total_number_of_orders", "0")) == len(want["orders"]), customer
        assert int(values.get("total_number_of_cancellations", "0")) == len(
            want["cancellations"]
        ), customer
        if want["days"]:
            assert values["first_order_date"] == min(want["days"]), customer
            assert values["last_order_date"] == max(want["days"]), customer
        else:
            assert "last_order_date" not in values, customer

    assert got["12836"]["total_value_of_orders"] == "846.69"  # 542806, rows interrupted
    assert not [r for r in plan.rejected if "no CustomerID" not in r.reason]
    assert len(plan.skipped) == 3  # the 'A' bad-debt adjustments
    with_customer = {inv for p in files for inv, c in _invoices(p) if c}
    without = {inv for p in files for inv, c in _invoices(p) if not c and not inv.startswith("A")}
    assert sum(c.orders for c in plan.contacts) == len(with_customer)
    assert {r.order_id for r in plan.rejected} == without


def _invoices(path: Path) -> set[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return {(row["InvoiceNo"], row["CustomerID"]) for row in csv.DictReader(stream)}
