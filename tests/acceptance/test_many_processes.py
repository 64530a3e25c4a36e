"""Many processes on one PostgreSQL: two `hubmap serve --no-worker` intakes and three
`hubmap worker`s share the state and the queue, for shops writing into 20 portals of the
stand-in (one route and one HubSpot token each).  A burst of signed webhooks (each customer's
orders spread over both intakes) is posted while processes are killed with SIGKILL at random
and started again; a post that got no answer is sent again, as shops do.  In the end every
acknowledged webhook is counted exactly once in its portal, and nothing is left in the queue."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from hubmap import sql
from hubmap.sandbox import SandboxConfig
from hubmap.sandbox.portals import RunningPortals
from hubmap.serve.auth import signature
from tests.acceptance.test_serve import SHOPIFY_SECRET, shopify_order
from tests.conftest import MAPPINGS, ROOT

pytestmark = pytest.mark.slow

PORTALS, CUSTOMERS, ORDERS_EACH = 20, 1250, 4  # 5,000 webhooks, 62-63 customers per portal
ORDER_VALUE = Decimal("409.94")  # total_price of the real order the bodies are made from
KILLS = 12
START_TIMEOUT = 30.0
SETTLE_TIMEOUT = 240.0
URL_LINE = re.compile(r"hubmap serve on (http://\S+?);")


class Process:
    """A hubmap command in a subprocess, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.args, self.env, self.log = args, env, log
        self.url = ""
        self.start()

    def start(self) -> None:
        seen = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("a") as stream:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hubmap.cli", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=stream,
                stderr=stream,
            )
        if self.args[0] != "serve":
            return
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            found = URL_LINE.findall(self.log.read_text()[seen:])
            if found:
                self.url = found[-1]
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.args[0]} did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_config(folder: Path, database: str) -> Path:
    path = folder / "serve.yaml"
    lines = [
        "listen: {host: 127.0.0.1, port: 0, threads: 8}",
        f"state: {database}",
        f"queue: {database}",
        "worker:",
        "  retry_seconds: 0.2",
        "  max_retry_seconds: 1",
        "  max_attempts: 1000",
        "  poll_seconds: 0.05",
        "  batch_every_seconds: 0.05",
        "  recover_every_seconds: 0.5",
        "routes:",
    ]
    for portal in range(PORTALS):  # one shop per portal, each with the portal's own token
        lines += [
            f"  /shop-{portal}:",
            "    auth: shopify",
            "    secret_env: SHOPIFY_SECRET",
            f"    hubspot_token_env: PORTAL_{portal}_TOKEN",
            f"    mappings: [{MAPPINGS / 'shopify-orders-contacts.yaml'}]",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def portals() -> Iterator[RunningPortals]:
    configs = [
        SandboxConfig(token=f"portal-{n}-token", portal_id=2000 + n, rate_limit_max=1000)
        for n in range(PORTALS)
    ]
    with RunningPortals(configs) as running:
        yield running


def contacts(portals: RunningPortals, portal: int) -> dict[str, dict[str, str]]:
    dumped = requests.get(portals.admin_url(2000 + portal) + "/_sandbox/dump", timeout=10).json()
    return {c["properties"]["email"]: c["properties"] for c in dumped["contacts"]}


def post(intake: Process, portal: int, body: bytes, delivery: str) -> bool:
    """Whether the intake acknowledged the webhook (a 200 after it was stored)."""
    try:
        answer = requests.post(
            f"{intake.url}/shop-{portal}",
            data=body,
            timeout=10,
            headers={
                "X-Shopify-Hmac-Sha256": signature(SHOPIFY_SECRET.encode(), body),
                "X-Shopify-Webhook-Id": delivery,
                "X-Shopify-Topic": "orders/create",
            },
        )
    except requests.RequestException:
        return False
    return answer.status_code == 200


def settled(database: str) -> tuple[int, int]:
    db = sql.connect(database)
    try:
        waiting = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'processing')"
        ).fetchone()[0]
        sent = db.execute("SELECT COUNT(*) FROM jobs WHERE status='sent'").fetchone()[0]
        return int(waiting), int(sent)
    finally:
        db.close()


def test_killed_intakes_and_workers_lose_nothing_and_count_nothing_twice(
    tmp_path: Path, portals: RunningPortals, postgres_url: str
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "engine"),
        "SHOPIFY_SECRET": SHOPIFY_SECRET,
        "HUBSPOT_API_BASE": portals.url,
        "HUBSPOT_FORMS_BASE": portals.url,
        **{f"PORTAL_{n}_TOKEN": f"portal-{n}-token" for n in range(PORTALS)},
    }
    config = str(write_config(tmp_path, postgres_url))
    subprocess.run(
        [sys.executable, "-m", "hubmap.cli", "state", "migrate", "--state", postgres_url],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    intakes = [
        Process(["serve", "--no-worker", "--config", config], env, tmp_path / f"intake-{n}.log")
        for n in range(2)
    ]
    workers = [
        Process(["worker", "--config", config], env, tmp_path / f"worker-{n}.log") for n in range(3)
    ]
    rng = random.Random(20261202)
    # customer c shops at portal c % PORTALS
    orders = [
        (1_000_000 + n, f"buyer{n % CUSTOMERS}@example.com") for n in range(CUSTOMERS * ORDERS_EACH)
    ]
    acknowledged: set[int] = set()
    lock = threading.Lock()

    def send(item: tuple[int, str]) -> None:
        order_id, email = item
        body = shopify_order(order_id, email)
        portal = portal_of(email)
        for attempt in range(40):  # the shop sends again until it gets a 200
            if post(intakes[(order_id + attempt) % 2], portal, body, f"delivery-{order_id}"):
                with lock:
                    acknowledged.add(order_id)
                return
            time.sleep(0.1)

    kills: list[str] = []
    stop_killing = threading.Event()

    def killer() -> None:
        while len(kills) < KILLS and not stop_killing.wait(rng.uniform(0.5, 1.5)):
            victim = rng.choice(intakes + workers)
            victim.kill()
            kills.append(victim.args[0])
            victim.start()  # a supervisor starts it again

    chaos = threading.Thread(target=killer)
    try:
        chaos.start()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(send, orders))
        chaos.join()  # the kills go on while the workers send what was posted
        assert len(acknowledged) == len(orders)  # every webhook was acknowledged in the end
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while settled(postgres_url) != (0, len(orders)):
            assert time.monotonic() < deadline, f"not settled: {settled(postgres_url)}"
            time.sleep(0.5)
    finally:
        stop_killing.set()
        for process in intakes + workers:
            process.stop()
    assert len(kills) == KILLS and {"serve", "worker"} <= set(kills), kills
    per_customer: dict[str, int] = {}
    for _, email in orders:
        per_customer[email] = per_customer.get(email, 0) + 1
    for portal in range(PORTALS):
        found = contacts(portals, portal)
        mine = {e: n for e, n in per_customer.items() if portal_of(e) == portal}
        assert {
            email: (
                found[email]["total_number_of_orders"],
                Decimal(found[email]["total_value_of_orders"]),
            )
            for email in found
        } == {email: (str(count), ORDER_VALUE * count) for email, count in mine.items()}
    assert sum(s["rateLimited"] for s in portals.stats().values()) == 0


def portal_of(email: str) -> int:
    return int(email.removeprefix("buyer").partition("@")[0]) % PORTALS
