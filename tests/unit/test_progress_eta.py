"""The progress's estimate of the time left: the input's records counted first (NDJSON lines,
CSV rows), and the time left from the pace so far."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubmap.inputs import expected_records
from hubmap.report import progress


def test_records_are_counted_from_ndjson_lines_and_csv_rows(tmp_path: Path) -> None:
    (tmp_path / "a.ndjson").write_bytes(b'{"id": 1}\n{"id": 2}\n{"id": 3}')  # no last newline
    (tmp_path / "b.csv").write_bytes(b"id,total\n1,2\n3,4\n")
    assert expected_records(str(tmp_path / "a.ndjson")) == 3
    assert expected_records(str(tmp_path / "b.csv")) == 2
    assert expected_records(str(tmp_path)) == 5  # a folder: all its files
    (tmp_path / "c.json").write_text("[]")
    assert expected_records(str(tmp_path)) is None  # a JSON file's records are not counted
    assert expected_records(str(tmp_path / "missing.ndjson")) is None
    assert expected_records("-") is None


def test_the_plain_lines_say_the_time_left(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = iter([100.0, 130.0, 130.0, 130.0])  # the phase starts, then 30 s later
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    shown = progress._PlainProgress()
    shown.phase("counting orders", 400)
    shown.advance(100)  # 100 of 400 in 30 s: 300 more take 90 s
    assert capsys.readouterr().err.strip() == "counting orders: 100/400 (about 1 min 30 s left)"


def test_a_count_past_the_lines_drops_the_total(capsys: pytest.CaptureFixture[str]) -> None:
    shown = progress._PlainProgress()  # 6 lines, 7 records: a refund inside an order
    shown.phase("counting orders", 6)
    shown.advance(7)
    shown.done()
    assert capsys.readouterr().err.strip() == "counting orders: 7"


def test_time_texts() -> None:
    assert [progress.time_text(s) for s in (4.4, 59.6, 61, 3600 * 2 + 60 * 5)] == [
        "4 s",
        "1 min 00 s",
        "1 min 01 s",
        "2 h 05 min",
    ]
