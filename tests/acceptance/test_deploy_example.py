"""The deployment example (examples/deploy/compose.yaml) started as its services say, without
Docker: its `migrate`, `intake` and `worker` commands and environments, run here against a
PostgreSQL of the test's and two stand-in portals; a webhook to each client's route ends in that
client's portal, and the intake's /healthz answers."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from hubmap.sandbox import SandboxConfig
from hubmap.sandbox.portals import RunningPortals
from hubmap.serve.auth import signature
from tests.acceptance.test_serve import shopify_order
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

COMPOSE = ROOT / "examples" / "deploy" / "compose.yaml"
CLIENTS = {"A": 4001, "B": 4002}  # client -> its portal id in the stand-in
URL_LINE = re.compile(r"hubmap serve on (http://\S+?);")
STATUS_LINE = re.compile(r"hubmap worker status on (http://\S+) ")


def service(name: str, env: dict[str, str], database: str) -> tuple[list[str], dict[str, str]]:
    """The service's command (run as `python -m hubmap.cli`) and its environment, with the
    compose variables filled in from `env` and the database host replaced by the test's."""
    spec = yaml.safe_load(COMPOSE.read_text())["services"][name]
    command = shlex.split(spec["command"])
    assert command[0] == "hubmap"
    environment = {
        key: re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], str(value))
        for key, value in spec["environment"].items()
    }
    for key in ("HUBMAP_STATE", "HUBMAP_QUEUE"):
        assert environment[key].startswith("postgresql://")
        environment[key] = database
    if "--status-port" in command:  # a free port here
        command[command.index("--status-port") + 1] = "0"
    return [sys.executable, "-m", "hubmap.cli", *command[1:]], {**os.environ, **environment}


def test_the_compose_example_runs_as_written(tmp_path: Path, postgres_url: str) -> None:
    configs = [SandboxConfig(token=f"client-{c}-token", portal_id=p) for c, p in CLIENTS.items()]
    with RunningPortals(configs) as portals:
        env = {
            "PYTHONPATH": str(ROOT / "engine"),
            "HUBSPOT_API_BASE": portals.url,
            "HUBSPOT_FORMS_BASE": portals.url,
            **{f"CLIENT_{c}_HUBSPOT_TOKEN": f"client-{c}-token" for c in CLIENTS},
            **{f"CLIENT_{c}_SHOPIFY_SECRET": f"client-{c}-secret" for c in CLIENTS},
        }
        command, environment = service("migrate", env, postgres_url)
        done = subprocess.run(
            command,
            env={**environment, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        started = []
        log = tmp_path / "services.log"
        try:
            with log.open("w") as stream:
                command, environment = service("intake", env, postgres_url)
                started.append(
                    subprocess.Popen(
                        [*command, "--host", "127.0.0.1", "--port", "0"],
                        env={**environment, **env},
                        cwd=ROOT,
                        stdout=stream,
                        stderr=stream,
                    )
                )
                command, environment = service("worker", env, postgres_url)
                started.append(
                    subprocess.Popen(
                        command, env={**environment, **env}, cwd=ROOT, stdout=stream, stderr=stream
                    )
                )
            deadline = time.monotonic() + 30
            while not URL_LINE.search(log.read_text()):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            url = URL_LINE.search(log.read_text()).group(1)  # type: ignore[union-attr]
            for number, client in enumerate(CLIENTS):
                body = shopify_order(7000 + number, f"client-{client.lower()}@example.com")
                answer = requests.post(
                    f"{url}/webhooks/client-{client.lower()}/shopify",
                    data=body,
                    timeout=10,
                    headers={
                        "X-Shopify-Hmac-Sha256": signature(
                            f"client-{client}-secret".encode(), body
                        ),
                        "X-Shopify-Webhook-Id": f"deploy-{number}",
                        "X-Shopify-Topic": "orders/create",
                    },
                )
                assert answer.status_code == 200, answer.text
            assert requests.get(f"{url}/healthz", timeout=10).status_code == 200

            def emails(portal: int) -> set[str]:
                dumped = requests.get(
                    portals.admin_url(portal) + "/_sandbox/dump", timeout=10
                ).json()
                return {c["properties"]["email"] for c in dumped["contacts"]}

            deadline = time.monotonic() + 60
            while [emails(p) for p in CLIENTS.values()] != [
                {"client-a@example.com"},
                {"client-b@example.com"},
            ]:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            # the worker's own status port: healthy, and its calls per portal
            found = STATUS_LINE.search(log.read_text())
            assert found is not None, log.read_text()
            status = found.group(1).replace("0.0.0.0", "127.0.0.1")  # it listens on all
            health = requests.get(status + "/healthz", timeout=10)
            assert health.status_code == 200 and health.json()["status"] == "ok", health.text
            metrics = requests.get(status + "/metrics", timeout=10).text
            for client in CLIENTS:
                calls = re.search(
                    rf'hubmap_hubspot_calls{{portal="CLIENT_{client}_HUBSPOT_TOKEN"}}'
                    r" (\d+)",
                    metrics,
                )
                assert calls is not None and int(calls.group(1)) > 0, metrics
                assert (
                    f'hubmap_hubspot_rate_limited{{portal="CLIENT_{client}_HUBSPOT_TOKEN"}} 0'
                    in metrics
                )
            assert (
                'hubmap_queue_jobs{mapping="shopify-orders-contacts@CLIENT_A_HUBSPOT_TOKEN",'
                'status="sent"} 1' in metrics
            )
        finally:
            for process in started:
                process.terminate()
                process.wait(30)
