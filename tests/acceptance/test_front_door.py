"""What a new user meets first: without a token, `run` says how to try the mapping on the local
stand-in instead; `apply`, which has no stand-in, does not."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import MAPPINGS, ROOT

MAPPING = MAPPINGS / "shopify-orders-contacts.yaml"
ORDERS = MAPPINGS / "examples" / "shopify" / "sample-orders.ndjson"


def hubmap(*args: str, cwd: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env["PYTHONPATH"] = str(ROOT / "engine")
    return subprocess.run(
        [sys.executable, "-m", "hubmap.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_a_token_run_points_at_the_sandbox(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = hubmap("run", str(MAPPING), "--input", str(ORDERS), cwd=tmp_path)
    assert done.returncode == 2
    assert "HUBSPOT_ACCESS_TOKEN is not set" in done.stderr and "--sandbox" in done.stderr
    assert "Traceback" not in done.stderr
    applied = hubmap("apply", str(MAPPING), cwd=tmp_path)
    assert applied.returncode == 2 and "HUBSPOT_ACCESS_TOKEN is not set" in applied.stderr
    assert "--sandbox" not in applied.stderr


def test_sandbox_show_without_its_database_says_where_a_run_keeps_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = hubmap("sandbox", "show", "ada@example.com", cwd=tmp_path)
    assert done.returncode == 2
    assert "no sandbox database at hubmap-state-sandbox.db" in done.stderr
    assert "--db FILE" in done.stderr and "-sandbox.db" in done.stderr
    assert "Traceback" not in done.stderr
