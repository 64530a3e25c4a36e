"""hubmap.report.summary: the words a run's summary and the state's status say, and what they
leave out when there is nothing to say."""

from __future__ import annotations

from typing import Any

from hubmap.report.summary import status_text, summary_text
from hubmap.sync import Tally
from hubmap.uses.summary import Summary


def lines(
    summary: Summary, reject_file: str | None = None, sandbox: str | None = None
) -> list[str]:
    return summary_text(summary, reject_file, sandbox).splitlines()


def test_an_empty_run_says_its_counts_and_nothing_else() -> None:
    assert lines(Summary()) == [
        (
            "records read: 0  orders: 0 new, 0 changed, 0 unchanged, 0 stale, 0 withdrawn  "
            "skipped: 0  rejected: 0"
        ),
        "contacts: 0 created, 0 updated, 0 unchanged, 0 failed",
        "HubSpot calls: 0 (0 answered 429, 0 retried)  time: 0.0 s",
    ]


def test_the_counts_land_in_their_words() -> None:
    summary = Summary(
        records=9,
        orders=Tally(new=1, changed=2, unchanged=3, stale=4, withdrawn=5, skipped=6),
        rejected=7,
        contacts_created=10,
        contacts_updated=11,
        contacts_unchanged=12,
        contacts_failed=13,
        calls=14,
        rate_limited=15,
        retries=16,
        seconds=1.26,
    )
    text = lines(summary)
    assert text[0] == (
        "records read: 9  orders: 1 new, 2 changed, 3 unchanged, 4 stale, 5 withdrawn  "
        "skipped: 6  rejected: 7"
    )
    assert text[1] == "contacts: 10 created, 11 updated, 12 unchanged, 13 failed"
    assert text[-1] == "HubSpot calls: 14 (15 answered 429, 16 retried)  time: 1.3 s"


def test_refunds_are_said_only_when_there_are_some() -> None:
    assert not any(line.startswith("refunds:") for line in lines(Summary()))
    summary = Summary(orders=Tally(refunds=2, refunds_changed=1), refunds_waiting=3)
    assert "refunds: 2 new, 1 changed, 0 unchanged; 3 waiting for their order" in lines(summary)


def test_a_forms_run_counts_submissions_instead_of_contacts() -> None:
    summary = Summary(
        forms=True,
        submissions=4,
        submissions_failed=1,
        submissions_without_hutk=2,
        hutk_refused=["#1", "#2"],
    )
    text = lines(summary)
    assert "form submissions: 4 sent, 1 failed" in text
    assert not any(line.startswith("contacts:") for line in text)
    (hutk,) = [line for line in text if line.startswith("sent without the hutk: 2")]
    assert hutk.endswith(": #1, #2")


def test_skipped_orders_are_grouped_by_reason_and_long_lists_cut() -> None:
    keys = [f"#{i}" for i in range(12)]
    summary = Summary(skipped_orders=[(k, "too old to submit") for k in keys] + [("#x", "other")])
    text = lines(summary)
    assert (
        "skipped 12 order(s), too old to submit: #0, #1, #2, #3, #4, #5, #6, #7, #8, #9 ... "
        "and 2 more (--format json)"
    ) in text
    assert "skipped 1 order(s), other: #x" in text


def test_warnings_and_failures_are_capped_with_how_many_more() -> None:
    summary = Summary(
        warnings=[f"w{i}" for i in range(12)],
        failures=[(f"c{i}@example.com", "429") for i in range(21)],
    )
    text = lines(summary)
    assert [line for line in text if line.startswith("warning: ")] == [
        f"warning: w{i}" for i in range(10)
    ]
    assert "... and 2 more warnings (--format json)" in text
    assert sum(line.startswith("failed ") for line in text) == 20
    assert "... and 1 more failures (hubmap status)" in text


def test_the_reject_file_is_named_only_when_records_were_rejected() -> None:
    assert not any("rejected records" in line for line in lines(Summary(), "rej.ndjson"))
    named = lines(Summary(rejected=1), "rej.ndjson")
    assert "rejected records and their reasons: rej.ndjson" in named


def test_a_dry_run_says_what_it_would_write_and_the_sandbox_where_it_is() -> None:
    summary = Summary(dry_run=True, planned={"b@x.io": {"total": "5"}, "a@x.io": {"n": "1"}})
    text = lines(summary, sandbox="sb.db")
    assert "dry run: nothing was written (HubSpot was read; the state is unchanged)" in text
    assert [line for line in text if line.startswith("would write")] == [
        "would write a@x.io: n='1'",
        "would write b@x.io: total='5'",
    ]
    assert text[-1] == "sandbox data: sb.db (look with: hubmap sandbox show EMAIL --db sb.db)"


def scope(**extra: Any) -> dict[str, Any]:
    return {
        "scope": "shop",
        "orders_counted": 3,
        "orders_withdrawn": 1,
        "refunds": 2,
        "refunds_waiting": 1,
        "contacts_unconfirmed": 0,
        "pending_rejects": [],
        "contacts_failed": [],
        "runs": [],
        **extra,
    }


def test_status_of_a_state_that_never_ran() -> None:
    assert status_text({"state": "s.db", "scopes": []}) == "state: s.db\nnothing has run yet"


def test_status_of_a_scope_its_rejects_and_runs() -> None:
    report = {
        "state": "s.db",
        "scopes": [
            scope(
                pending_rejects=[
                    {"order_id": "#7", "where": "f:1", "property": "total", "reason": "no"},
                    {"order_id": None, "where": "f:2", "property": None, "reason": "no id"},
                ],
                runs=[
                    {
                        "id": 4,
                        "started": "t0",
                        "ended": None,
                        "outcome": "running",
                        "counts": {"new": 2},
                    }
                ],
            )
        ],
    }
    assert status_text(report).splitlines() == [
        "state: s.db",
        (
            "shop: 3 orders counted, 1 withdrawn, 2 refunds (1 waiting for their order), "
            "0 contacts waiting for HubSpot, 2 rejected records pending"
        ),
        "  rejected #7: total: no",
        "  rejected f:2: no id",
        (
            "  run 4 t0 -> ... running: 2 new, 0 changed, 0 unchanged, 0 stale, 0 withdrawn, "
            "0 refunds, 0 rejected, 0 calls"
        ),
    ]
