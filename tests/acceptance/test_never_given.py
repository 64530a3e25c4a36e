"""A property that no record gives a value (most often an expression reading a field by the
wrong name) is a warning in `hubmap test` (over the example records) and in `hubmap plan` (over
the input)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

MAPPING = """\
version: 1
name: typo
records: {id: id, time: at, contact: email}
target: {kind: contacts}
properties:
  total:
    type: number
    from: amount
    merge: sum
  last_coupon:
    type: string
    from: cupon_code
examples:
  - name: one order
    input: {id: 1, email: a@example.com, at: "2024-01-01", amount: "5", coupon_code: X}
    expect: {total: "5"}
"""


def hubmap(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "engine")}
    return subprocess.run(
        [sys.executable, "-m", "hubmap.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_test_and_plan_warn_of_a_property_no_record_gives(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    tested = hubmap("test", "m.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stderr  # a warning, the case passes
    assert "property last_coupon got no value from any example record" in tested.stderr
    assert "property total" not in tested.stderr
    (tmp_path / "in.ndjson").write_text(
        json.dumps(
            {
                "id": 2,
                "email": "b@example.com",
                "at": "2024-02-01",
                "amount": "7",
                "coupon_code": "Y",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    planned = hubmap("plan", "m.yaml", "--input", "in.ndjson", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    out = planned.stdout + planned.stderr
    assert "warning: property last_coupon got no value from any input record" in out
    assert "property total got" not in out
