"""`hubmap serve` over real HTTP on localhost: signed Shopify and WooCommerce webhooks (the real
payloads of ../shared/data) in, contacts in the local HubSpot stand-in out; refused requests store
nothing; a delivery sent twice, or one order delivered under two delivery ids, counts once;
HubSpot down for a while loses nothing; what keeps failing becomes a dead letter that can be
sent again.  (The server killed mid-way is in test_serve_restart.py.)
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from hubmap.cli import main
from hubmap.problems import HubmapError
from hubmap.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from hubmap.serve import Service, load_config, status_report
from hubmap.serve.auth import signature
from tests.conftest import MAPPINGS, shared_data

HUBSPOT_TOKEN = "hubspot-test-token"
SHOPIFY_SECRET = "shopify-app-secret"
WOO_SECRET = "woo-webhook-secret"
BACKEND_TOKEN = "backend-shared-token"
SECRETS = {
    "SHOPIFY_SECRET": SHOPIFY_SECRET,
    "WOO_SECRET": WOO_SECRET,
    "BACKEND_TOKEN": BACKEND_TOKEN,
}
SHOPIFY_MAPPING = "shopify-orders-contacts"
WOO_MAPPING = "woocommerce-orders-contacts"
FAST_WORKER = {
    "retry_seconds": 0.1,
    "max_retry_seconds": 0.3,
    "hubspot_attempts": 1,
    "poll_seconds": 0.05,
    "batch_every_seconds": 0.05,
}


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(config=SandboxConfig(token=HUBSPOT_TOKEN)) as running:
        yield running


def hubspot_env(sandbox: RunningSandbox) -> dict[str, str]:
    return {
        "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN,
        "HUBSPOT_API_BASE": sandbox.url,
        "HUBSPOT_FORMS_BASE": sandbox.url,
        "HUBSPOT_PORTAL_ID": "1234567",
        **SECRETS,
    }


def write_config(
    folder: Path, max_body_bytes: int = 65_536, database: str | None = None, **worker: Any
) -> Path:
    """The test configuration; the state and the queue in `database` (a PostgreSQL URL) when
    given, else as files in `folder`."""
    settings = {**FAST_WORKER, **worker}
    lines = [
        "listen: {host: 127.0.0.1, port: 0, threads: 4}",
        f"state: {database or folder / 'state.db'}",
        f"queue: {database or folder / 'queue.db'}",
        f"max_body_bytes: {max_body_bytes}",
        "worker:",
    ]
    lines += [f"  {key}: {value}" for key, value in settings.items()]
    lines += [
        "routes:",
        "  /shopify:",
        "    auth: shopify",
        "    secret_env: SHOPIFY_SECRET",
        f"    mappings: [{MAPPINGS / 'shopify-orders-contacts.yaml'}]",
        "  /woo:",
        "    auth: woocommerce",
        "    secret_env: WOO_SECRET",
        f"    mappings: [{MAPPINGS / 'woocommerce-orders-contacts.yaml'}]",
        "  /backend:",
        "    auth: bearer",
        "    secret_env: BACKEND_TOKEN",
        f"    mappings: [{MAPPINGS / 'shopify-orders-contacts.yaml'}]",
    ]
    path = folder / "serve.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def serving(folder: Path, sandbox: RunningSandbox, **settings: Any) -> Iterator[Service]:
    service = Service(
        load_config(str(write_config(folder, **settings))), hubspot_env(sandbox)
    ).start()
    try:
        yield service
    finally:
        service.stop()


def post_shopify(
    service: Service, body: bytes, delivery: str, *, secret: str = SHOPIFY_SECRET, sign: bool = True
) -> requests.Response:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": delivery,
    }
    if sign:
        headers["X-Shopify-Hmac-Sha256"] = signature(secret.encode(), body)
    return requests.post(service.url + "/shopify", data=body, headers=headers, timeout=10)


def post_woo(service: Service, body: bytes, delivery: str) -> requests.Response:
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Delivery-ID": delivery,
        "X-WC-Webhook-Signature": signature(WOO_SECRET.encode(), body),
    }
    return requests.post(service.url + "/woo", data=body, headers=headers, timeout=10)


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def jobs(service: Service, mapping: str = SHOPIFY_MAPPING) -> dict[str, int]:
    return {status: n for (m, status), n in service.queue.counts().items() if m == mapping}


def contacts(sandbox: RunningSandbox) -> dict[str, dict[str, str]]:
    dumped = requests.get(sandbox.url + "/_sandbox/dump", timeout=10).json()
    return {c["properties"]["email"]: c["properties"] for c in dumped["contacts"]}


def shopify_order(order_id: int, email: str) -> bytes:
    """The real Shopify order payload under another id and customer email."""
    order = json.loads(shared_data("shopify", "order.json").read_bytes())
    changed = copy.deepcopy(order)
    changed["order"].update(id=order_id, email=email)
    return json.dumps(changed).encode()


# ------------------------------------------------------------------------------ accepted


def test_signed_shopify_and_woocommerce_webhooks_are_sent_to_hubspot(tmp_path, sandbox):
    shopify = shared_data("shopify", "order.json").read_bytes()
    woo = shared_data("woocommerce", "order.json").read_bytes()
    with serving(tmp_path, sandbox) as service:
        answer = post_shopify(service, shopify, "shopify-delivery-1")
        assert (answer.status_code, answer.json()["status"]) == (200, "queued")
        answer = post_woo(service, woo, "woo-delivery-1")
        assert (answer.status_code, answer.json()["status"]) == (200, "queued")
        wait_for(
            lambda: jobs(service).get("sent") == 1 and jobs(service, WOO_MAPPING).get("sent") == 1
        )
    found = contacts(sandbox)
    bob = found["bob.norman@hostmail.com"]
    assert (
        bob["total_value_of_orders"],
        bob["total_number_of_orders"],
        bob["last_order_date"],
        bob["skus_bought"],
    ) == ("409.94", "1", "2008-01-10", "IPOD2008GREEN;IPOD2008RED;IPOD2008BLACK")
    woo_customer = found["scrambled@scrambled.com"]
    assert (
        woo_customer["total_value_of_orders"],
        woo_customer["total_number_of_orders"],
        woo_customer["first_order_date"],
    ) == ("31.20", "1", "2018-04-03")


def test_a_bearer_route_takes_a_custom_backends_orders(tmp_path, sandbox):
    with serving(tmp_path, sandbox) as service:
        body = shopify_order(77, "backend@example.com")
        refused = requests.post(
            service.url + "/backend",
            data=body,
            timeout=10,
            headers={"Authorization": "Bearer not-the-token"},
        )
        assert refused.status_code == 401
        answer = requests.post(
            service.url + "/backend",
            data=body,
            timeout=10,
            headers={"Authorization": f"Bearer {BACKEND_TOKEN}"},
        )
        assert answer.json()["status"] == "queued"
        wait_for(lambda: jobs(service).get("sent") == 1)
    assert contacts(sandbox)["backend@example.com"]["total_number_of_orders"] == "1"


# ------------------------------------------------------------------------------- refused


def test_bad_signatures_bodies_and_sizes_are_refused_and_nothing_is_stored(tmp_path, sandbox):
    body = shared_data("shopify", "order.json").read_bytes()
    with serving(tmp_path, sandbox, max_body_bytes=16_384) as service:
        assert post_shopify(service, body, "d1", sign=False).status_code == 401
        assert post_shopify(service, body, "d2", secret="another-secret").status_code == 401
        tampered = body.replace(b"409.94", b"0.01")
        headers = {
            "X-Shopify-Hmac-Sha256": signature(SHOPIFY_SECRET.encode(), body),
            "X-Shopify-Webhook-Id": "d3",
        }
        assert (
            requests.post(
                service.url + "/shopify", data=tampered, headers=headers, timeout=10
            ).status_code
            == 401
        )
        woo_signed_as_shopify = {"X-WC-Webhook-Signature": signature(SHOPIFY_SECRET.encode(), body)}
        assert (
            requests.post(
                service.url + "/woo", data=body, headers=woo_signed_as_shopify, timeout=10
            ).status_code
            == 401
        )
        assert post_shopify(service, b"<html>not json</html>", "d4").status_code == 400
        assert post_shopify(service, b'"just a string"', "d5").status_code == 400
        assert post_shopify(service, b"[" + b" " * 20_000 + b"]", "d6").status_code == 413
        ping = requests.post(
            service.url + "/woo",
            data=b"webhook_id=42",
            timeout=10,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert (ping.status_code, ping.json()) == (200, {"status": "ok"})
        assert requests.get(service.url + "/shopify", timeout=10).status_code == 405
        assert requests.post(service.url + "/nowhere", data=body, timeout=10).status_code == 404
        assert service.queue.counts() == {}
        metrics = requests.get(service.url + "/metrics", timeout=10).text
    assert 'hubmap_webhooks_rejected_total{reason="signature",route="/shopify"} 3' in metrics
    assert 'hubmap_webhooks_rejected_total{reason="signature",route="/woo"} 1' in metrics
    assert 'hubmap_webhooks_rejected_total{reason="not_json",route="/shopify"} 2' in metrics
    assert 'hubmap_webhooks_rejected_total{reason="too_large",route="/shopify"} 1' in metrics
    assert 'hubmap_webhooks_ignored_total{route="/woo",why="ping"} 1' in metrics
    assert "hubmap_webhooks_queued_total 0" in metrics
    assert contacts(sandbox) == {}


# ---------------------------------------------------------------------------- counted once


def test_a_delivery_sent_twice_and_an_order_under_two_deliveries_count_once(tmp_path, sandbox):
    body = shared_data("shopify", "order.json").read_bytes()
    wrapped = shared_data("woocommerce", "order.json").read_bytes()  # order 963 in {"data": }
    plain = shared_data("woocommerce", "order-without-data.json").read_bytes()  # order 963
    with serving(tmp_path, sandbox) as service:
        first = post_shopify(service, body, "same-delivery")
        replayed = post_shopify(service, body, "same-delivery")
        assert first.json()["status"] == "queued"
        assert replayed.json() == {"status": "duplicate", "event": first.json()["event"]}
        # WooCommerce gives each attempt a new delivery id: the ledger recognises the order.
        assert post_woo(service, wrapped, "woo-attempt-1").json()["status"] == "queued"
        wait_for(lambda: jobs(service, WOO_MAPPING).get("sent") == 1)
        assert post_woo(service, plain, "woo-attempt-2").json()["status"] == "queued"
        wait_for(
            lambda: jobs(service).get("sent") == 1 and jobs(service, WOO_MAPPING).get("sent") == 2
        )
        metrics = requests.get(service.url + "/metrics", timeout=10).text
    found = contacts(sandbox)
    assert found["bob.norman@hostmail.com"]["total_number_of_orders"] == "1"
    assert found["scrambled@scrambled.com"]["total_number_of_orders"] == "1"
    assert found["scrambled@scrambled.com"]["total_value_of_orders"] == "31.20"
    assert 'hubmap_webhooks_duplicates_total{route="/shopify"} 1' in metrics


# ---------------------------------------------------------------------- HubSpot unavailable


def test_hubspot_down_for_a_while_then_back_loses_nothing(tmp_path, sandbox):
    emails = [f"buyer{n}@example.com" for n in range(12)]
    with serving(tmp_path, sandbox, max_attempts=1000) as service:
        post_shopify(service, shopify_order(999, "first@example.com"), "up-0")
        wait_for(lambda: jobs(service).get("sent") == 1)  # properties exist; HubSpot goes down
        sandbox.configure(error_rate=1.0)
        for n, email in enumerate(emails):
            assert (
                post_shopify(service, shopify_order(1000 + n, email), f"down-{n}").status_code
                == 200
            )
        wait_for(lambda: _attempts(service) >= 3 * len(emails))  # several failed rounds
        assert jobs(service).get("sent") == 1
        sandbox.configure(error_rate=0.0)
        wait_for(lambda: jobs(service).get("sent") == 1 + len(emails))
    found = contacts(sandbox)
    assert {
        email: (found[email]["total_number_of_orders"], found[email]["total_value_of_orders"])
        for email in emails
    } == {email: ("1", "409.94") for email in emails}


def _attempts(service: Service) -> int:
    with service.queue._lock:
        return int(service.queue.db.execute("SELECT SUM(attempts) FROM jobs").fetchone()[0] or 0)


def test_failing_events_become_dead_letters_with_a_reason_and_requeue_sends_them(tmp_path, sandbox):
    sandbox.configure(error_rate=1.0)
    with serving(tmp_path, sandbox, max_attempts=2) as service:
        post_shopify(service, shopify_order(5, "late@example.com"), "dead-1")
        post_shopify(
            service,
            shopify_order(6, "late@example.com").replace(
                b'"currency": "USD"', b'"currency": "EUR"'
            ),
            "dead-2",
        )
        wait_for(lambda: jobs(service).get("dead") == 2)
        report = status_report(service.config.queue_path)
        assert report is not None
        reasons = {d["delivery_id"]: (d["attempts"], d["reason"]) for d in report["dead_letters"]}
        assert reasons["dead-1"][0] == 2 and "HTTP 50" in reasons["dead-1"][1]
        assert (
            "rejected by the mapping" in reasons["dead-2"][1]
            and "not in USD" in reasons["dead-2"][1]
        )
        sandbox.configure(error_rate=0.0)
        status = CliRunner().invoke(main, ["queue", "status", "--queue", service.config.queue_path])
        assert status.exit_code == 1 and "2 dead" in status.output
        requeued = CliRunner().invoke(
            main, ["queue", "requeue", "--queue", service.config.queue_path]
        )
        assert requeued.exit_code == 0 and "2 dead letter(s)" in requeued.output
        service.worker.wake()  # type: ignore[union-attr]
        wait_for(lambda: jobs(service).get("sent") == 1 and jobs(service).get("dead") == 1)
    assert contacts(sandbox)["late@example.com"]["total_number_of_orders"] == "1"


# ----------------------------------------------------------------------- health, config


def test_health_and_metrics_report_the_queue(tmp_path, sandbox):
    with serving(tmp_path, sandbox) as service:
        health = requests.get(service.url + "/healthz", timeout=10)
        assert (health.status_code, health.json()["worker"]) == (200, "running")
        post_shopify(service, shared_data("shopify", "order.json").read_bytes(), "m1")
        wait_for(lambda: jobs(service).get("sent") == 1)
        metrics = requests.get(service.url + "/metrics", timeout=10)
    assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert f'hubmap_queue_jobs{{mapping="{SHOPIFY_MAPPING}",status="sent"}} 1' in metrics.text
    assert f'hubmap_queue_jobs{{mapping="{WOO_MAPPING}",status="queued"}} 0' in metrics.text
    assert 'hubmap_webhooks_received_total{route="/shopify"} 1' in metrics.text


def test_configuration_problems_are_reported_with_their_place(tmp_path, sandbox):
    path = tmp_path / "serve.yaml"
    path.write_text(
        "listen: {port: 99999}\nworkers: {}\nroutes:\n  /shop:\n    auth: shopfy\n"
        "    secret_env: 'not a name'\n    mappings: [missing.yaml]\n"
    )
    with pytest.raises(HubmapError) as caught:
        load_config(str(path))
    found = {(p.code, p.location.line, p.location.column) for p in caught.value.problems}
    assert found == {
        ("HM803", 1, 16),
        ("HM802", 2, 1),
        ("HM803", 5, 11),
        ("HM803", 6, 17),
        ("HM803", 7, 16),
    }
    assert "did you mean 'worker'?" in {p.hint for p in caught.value.problems}
    config = load_config(str(write_config(tmp_path)))
    env = {k: v for k, v in hubspot_env(sandbox).items() if k != "WOO_SECRET"}
    with pytest.raises(HubmapError, match="WOO_SECRET"):
        Service(config, env)


def test_concurrent_deliveries_of_one_webhook_are_stored_once(tmp_path, sandbox):
    from concurrent.futures import ThreadPoolExecutor

    body = shopify_order(4242, "race@example.com")
    with serving(tmp_path, sandbox) as service, ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda _: post_shopify(service, body, "raced").json()["status"], range(32))
        )
        wait_for(lambda: jobs(service).get("sent") == 1)
    assert sorted(set(answers)) == ["duplicate", "queued"] and answers.count("queued") == 1
    assert contacts(sandbox)["race@example.com"]["total_number_of_orders"] == "1"


def test_a_separate_worker_sends_what_a_receive_only_server_queued(tmp_path, sandbox):
    import threading

    from hubmap.serve.config import load_mappings, works
    from hubmap.serve.queue import Queue
    from hubmap.serve.worker import Worker

    config = load_config(str(write_config(tmp_path)))
    with Service(config, hubspot_env(sandbox), worker=False) as service:
        assert requests.get(service.url + "/healthz", timeout=10).json()["worker"] == "separate"
        post_shopify(service, shopify_order(31, "split@example.com"), "split-1")
        time.sleep(0.3)
        assert jobs(service) == {"queued": 1}
        queue = Queue(config.queue_path)  # its own connection, as `hubmap worker` has
        worker = Worker(config, works(config, load_mappings(config)), queue, hubspot_env(sandbox))
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            wait_for(lambda: jobs(service).get("sent") == 1)
        finally:
            worker.stop()
            thread.join()
            queue.close()
    assert contacts(sandbox)["split@example.com"]["total_number_of_orders"] == "1"


def test_the_commands_refuse_a_bad_configuration_with_its_place(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text(
        "routes:\n  /shop:\n    auth: shopfy\n    secret_env: SHOP\n    mappings: [missing.yaml]\n"
    )
    for command in ("serve", "worker"):
        result = CliRunner().invoke(main, [command, "--config", str(path)])
        assert result.exit_code == 2
        assert f"{path}:3:11:" in result.output and f"{path}:5:16:" in result.output
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2 and "--config" in result.output
