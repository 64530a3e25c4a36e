"""`hubmap serve` against what a tester threw at it, over real HTTP with the HubSpot stand-in: a
poison event among good ones fails alone (the good ones are delivered once); a body nested
10,000 deep is a 400 with its reason; a 6 MB body is a 413 the client receives; no HubSpot token
refuses to start; /healthz says "degraded" while HubSpot fails (with the backlog) and ok when it
is back, and never ok while the worker is dead; a topic header that contradicts the signed body
is refused, and a replay under another topic counts nothing twice.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

import hubmap.serve.worker as worker_module
from hubmap.cli import main
from hubmap.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from hubmap.serve import Service, load_config, status_report
from hubmap.serve.auth import signature
from tests.acceptance.test_serve import (
    HUBSPOT_TOKEN,
    MAPPINGS,
    SHOPIFY_MAPPING,
    SHOPIFY_SECRET,
    contacts,
    hubspot_env,
    jobs,
    post_shopify,
    serving,
    shopify_order,
    wait_for,
    write_config,
)


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(config=SandboxConfig(token=HUBSPOT_TOKEN)) as running:
        yield running


def signed_post(
    service: Service,
    body: bytes,
    delivery: str,
    topic: str | None = "orders/create",
    path: str = "/shopify",
    session: Any = requests,
) -> requests.Response:
    headers = {
        "X-Shopify-Hmac-Sha256": signature(SHOPIFY_SECRET.encode(), body),
        "X-Shopify-Webhook-Id": delivery,
        "Content-Type": "application/json",
    }
    if topic is not None:
        headers["X-Shopify-Topic"] = topic
    return session.post(service.url + path, data=body, headers=headers, timeout=30)


def health(service: Service) -> tuple[int, dict[str, Any]]:
    answer = requests.get(service.url + "/healthz", timeout=10)
    return answer.status_code, answer.json()


def dead_reasons(service: Service) -> dict[str, str]:
    report = status_report(service.config.queue_path)
    assert report is not None
    return {d["delivery_id"]: d["reason"] for d in report["dead_letters"]}


@contextmanager
def queued_then_served(
    folder: Path,
    sandbox: RunningSandbox,
    bodies: dict[str, bytes],
    kept: dict[str, bytes] | None = None,
    **settings: Any,
) -> Iterator[Service]:
    """`bodies` received by a receive-only server first (and `kept` put in its queue as an
    older hubmap's intake stored them), so the worker then takes them all in one batch."""
    config = load_config(str(write_config(folder, **settings)))
    with Service(config, hubspot_env(sandbox), worker=False) as intake:
        for delivery, body in bodies.items():
            assert signed_post(intake, body, delivery).status_code == 200
        for delivery, body in (kept or {}).items():
            intake.queue.enqueue("/shopify", delivery, "orders/create", body, [SHOPIFY_MAPPING])
    service = Service(config, hubspot_env(sandbox)).start()
    try:
        yield service
    finally:
        service.stop()


def good_orders(count: int) -> dict[str, bytes]:
    return {f"good-{n}": shopify_order(3000 + n, f"good{n}@example.com") for n in range(count)}


def assert_delivered_once(sandbox: RunningSandbox, deliveries: dict[str, bytes]) -> None:
    found = contacts(sandbox)
    emails = {json.loads(body)["order"]["email"] for body in deliveries.values()}
    assert set(found) == emails
    assert {email: found[email]["total_number_of_orders"] for email in emails} == dict.fromkeys(
        emails, "1"
    )
    assert {found[email]["total_value_of_orders"] for email in emails} == {"409.94"}


# ---------------------------------------------------------------- one event, not the batch


def test_a_body_the_queue_kept_from_an_older_intake_and_a_rejected_record_fail_alone(
    tmp_path, sandbox
):
    goods = good_orders(4)
    rejected = shopify_order(3100, "euro@example.com").replace(
        b'"currency": "USD"', b'"currency": "EUR"'
    )
    # JSON nested 150 deep: an older intake (json.loads) stored it; parse_json refuses it
    deep = b'{"order": ' + b"[" * 150 + b"]" * 150 + b"}"
    kept = {"from-an-older-intake": deep}
    with queued_then_served(tmp_path, sandbox, {**goods, "euro": rejected}, kept) as service:
        wait_for(lambda: jobs(service) == {"sent": 4, "dead": 2})
        reasons = dead_reasons(service)
        status, body = health(service)
    assert "nests deeper than 100 levels" in reasons["from-an-older-intake"]
    assert "rejected by the mapping" in reasons["euro"] and "not in USD" in reasons["euro"]
    assert (status, body["status"], body["queue"]["dead"]) == (200, "ok", 2)
    assert_delivered_once(sandbox, goods)


def test_an_event_the_run_fails_on_is_found_and_the_others_are_delivered_once(
    tmp_path, sandbox, monkeypatch
):
    """A bug that strikes one order (here: any run holding it raises) makes its batch fail as a
    whole; the worker splits the batch until the event fails alone, delivers the others, and
    retries the poison one alone until it is a dead letter with the error."""
    real_sync = worker_module.sync_documents
    runs: list[int] = []

    def sync_with_a_bug(
        mapping: Any, client: Any, state: Any, documents: Any, **options: Any
    ) -> Any:
        documents = list(documents)
        runs.append(len(documents))
        if any(d.data["order"]["email"] == "poison@example.com" for d in documents):
            raise KeyError("line_items")
        return real_sync(mapping, client, state, documents, **options)

    monkeypatch.setattr(worker_module, "sync_documents", sync_with_a_bug)
    goods = good_orders(7)
    bodies = (
        dict(list(goods.items())[:3])
        | {"poison": shopify_order(3200, "poison@example.com")}
        | dict(list(goods.items())[3:])
    )
    with queued_then_served(tmp_path, sandbox, bodies, max_attempts=3) as service:
        wait_for(lambda: jobs(service) == {"sent": 7, "dead": 1})
        reasons = dead_reasons(service)
        status, body = health(service)
    assert reasons == {
        "poison": "3 attempt(s) failed; last: unexpected error: KeyError('line_items')"
    }
    assert runs[0] == 8  # one batch, then halves down to the poison event alone ...
    assert runs[-2:] == [1, 1]  # ... whose retries run alone: no batch is split again
    assert (status, body["status"], body["worker"]) == (200, "ok", "running")
    assert_delivered_once(sandbox, goods)


# ------------------------------------------------------------------------------ bodies


def test_any_unusable_body_gets_400_with_its_reason(tmp_path, sandbox):
    bodies = {
        "deep": b"[" * 10_000 + b"]" * 10_000,
        "deep-unclosed": b'{"a": ' + b"[" * 10_000,
        "surrogate": b'{"order": {"email": "a\\ud800@example.com"}}',
        "latin-1": '{"order": {"note": "café"}}'.encode("latin-1"),
        "long-number": b'{"order": {"id": ' + b"7" * 5000 + b"}}",
        "not-json": b"{'order': 1}",
        "a-number": b"42",
    }
    with serving(tmp_path, sandbox) as service:
        answers = {name: signed_post(service, body, name) for name, body in bodies.items()}
        assert service.queue.counts() == {}
        assert health(service)[1]["status"] == "ok"
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(bodies, 400)
    reasons = {name: a.json()["error"] for name, a in answers.items()}
    assert "nests deeper than 100 levels" in reasons["deep"]
    assert "nests deeper than 100 levels" in reasons["deep-unclosed"]
    assert "surrogate" in reasons["surrogate"]
    assert "not UTF-8" in reasons["latin-1"]
    assert "digits" in reasons["long-number"]
    assert reasons["not-json"].startswith("the body:1:2: not valid JSON")
    assert reasons["a-number"] == "the body is not a JSON object or list"
    assert not any("Traceback" in a.text for a in answers.values())


def _send_all_then_read(service: Service, body: bytes) -> tuple[int, bytes]:
    """A sender that writes the whole request before it reads the answer (as most do): if the
    server closed while the body was still coming, this gets a reset, not the answer."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(
            b"POST /shopify HTTP/1.1\r\nHost: hubmap\r\nContent-Type: "
            b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, answer.read()


def test_a_6_mb_body_gets_a_413_the_client_receives_and_the_connection_goes_on(tmp_path, sandbox):
    huge = b'{"order": {"note": "' + b"x" * 6_000_000 + b'"}}'
    with serving(tmp_path, sandbox) as service, requests.Session() as session:
        refused = signed_post(service, huge, "huge", session=session)
        after = signed_post(
            service, shopify_order(3300, "after@example.com"), "after", session=session
        )  # the same connection: still in step
        raw = _send_all_then_read(service, huge)
        wait_for(lambda: jobs(service).get("sent") == 1)
        metrics = requests.get(service.url + "/metrics", timeout=10).text
    assert (refused.status_code, refused.json()) == (
        413,
        {"error": "the body is larger than 65536 bytes"},
    )
    assert refused.headers.get("Connection") != "close"  # the body was read to its end
    assert (after.status_code, after.json()["status"]) == (200, "queued")
    assert raw == (413, b'{"error": "the body is larger than 65536 bytes"}')
    assert 'hubmap_webhooks_rejected_total{reason="too_large",route="/shopify"} 2' in metrics
    assert set(contacts(sandbox)) == {"after@example.com"}


# ------------------------------------------------------------------------------ starting


def test_serve_and_worker_refuse_to_start_without_a_hubspot_token(tmp_path, sandbox):
    config = write_config(tmp_path)
    env = {**hubspot_env(sandbox), "HUBSPOT_ACCESS_TOKEN": None}
    for command in ("serve", "worker"):
        result = CliRunner().invoke(main, [command, "--config", str(config)], env=env)
        assert result.exit_code == 2, result.output
        assert "HUBSPOT_ACCESS_TOKEN is not set" in result.output
        assert "--sandbox" in result.output and "Traceback" not in result.output
    without_token = {k: v for k, v in hubspot_env(sandbox).items() if k != "HUBSPOT_ACCESS_TOKEN"}
    # receiving only needs no token (the worker runs where the token is)
    with Service(load_config(str(config)), without_token, worker=False) as service:
        assert health(service)[1]["worker"] == "separate"


# ------------------------------------------------------------------------------- health


def test_healthz_is_degraded_with_the_backlog_while_hubspot_fails_then_ok(tmp_path, sandbox):
    with serving(tmp_path, sandbox, max_attempts=1000) as service:
        post_shopify(service, shopify_order(3400, "before@example.com"), "before")
        wait_for(lambda: jobs(service).get("sent") == 1)
        status, body = health(service)
        assert (status, body["status"], body["hubspot"]["status"]) == (200, "ok", "ok")
        sandbox.configure(error_rate=1.0)
        for n in range(3):
            assert (
                post_shopify(
                    service, shopify_order(3410 + n, f"down{n}@example.com"), f"down-{n}"
                ).status_code
                == 200
            )
        post_shopify(
            service,
            shopify_order(3420, "euro@example.com").replace(
                b'"currency": "USD"', b'"currency": "EUR"'
            ),
            "euro",
        )  # dead at once
        wait_for(
            lambda: (
                health(service)[1]["status"] == "degraded"
                and health(service)[1]["queue"]["dead"] == 1
            )
        )
        status, body = health(service)
        assert status == 200  # still taking webhooks: a load balancer keeps sending them here
        backlog = body["queue"]
        assert backlog["queued"] + backlog["processing"] == 3 and backlog["dead"] == 1
        assert backlog["oldest_queued_seconds"] > 0
        assert body["hubspot"]["status"] == "failing"
        assert "HTTP 50" in body["hubspot"]["last_error"]
        assert body["hubspot"]["last_error_at"] is not None
        assert "HubSpot is failing" in body["problems"][0]
        metrics = requests.get(service.url + "/metrics", timeout=10).text
        assert "hubmap_hubspot_failing 1" in metrics
        assert "hubmap_queue_oldest_seconds 0\n" not in metrics
        sandbox.configure(error_rate=0.0)
        wait_for(lambda: jobs(service).get("sent") == 4)
        wait_for(lambda: health(service)[1]["status"] == "ok")
        status, body = health(service)
        metrics = requests.get(service.url + "/metrics", timeout=10).text
    assert (status, body["queue"]["queued"], body["queue"]["oldest_queued_seconds"]) == (
        200,
        0,
        None,
    )
    assert "hubmap_hubspot_failing 0" in metrics and "hubmap_queue_oldest_seconds 0\n" in metrics
    assert body["hubspot"]["status"] == "ok" and body["problems"] == []


def test_healthz_sees_hubspot_back_with_nothing_to_send(tmp_path, sandbox):
    sandbox.configure(error_rate=1.0)
    with serving(tmp_path, sandbox) as service:
        wait_for(lambda: health(service)[1]["status"] == "degraded")  # the probe at start
        sandbox.configure(error_rate=0.0)
        wait_for(lambda: health(service)[1]["status"] == "ok")  # probed again, nothing queued
        assert service.queue.counts() == {}


def test_healthz_is_never_ok_while_the_worker_is_dead(tmp_path, sandbox, monkeypatch):
    with serving(tmp_path, sandbox) as service:
        assert health(service)[0] == 200
        service.worker.stop()  # type: ignore[union-attr]  # the thread ends
        wait_for(lambda: not service._worker_alive())
        status, body = health(service)
        assert (status, body["status"], body["worker"]) == (503, "unhealthy", "stopped")
        assert "the worker has stopped" in body["problems"][0]

    def crash(*args: Any) -> None:
        raise RuntimeError("the state disk is gone")

    monkeypatch.setattr(worker_module.Worker, "_loop", crash)
    (tmp_path / "again").mkdir()
    with serving(tmp_path / "again", sandbox) as service:
        wait_for(lambda: not service._worker_alive())
        status, body = health(service)
    assert (status, body["status"]) == (503, "unhealthy")
    assert "the worker has stopped: the state disk is gone" in body["problems"][0]


# -------------------------------------------------------------------------------- topics


def _refund_body(order_id: int) -> bytes:
    return json.dumps(
        {"id": 990_001, "order_id": order_id, "refund_line_items": [], "transactions": []}
    ).encode()


def test_a_topic_contrary_to_the_body_is_refused_and_a_replay_counts_once(tmp_path, sandbox):
    order = json.dumps(json.loads(shopify_order(3500, "topic@example.com"))["order"]).encode()
    path = write_config(tmp_path)
    with path.open("a") as extra:  # a route that takes only some topics
        extra.write(
            "  /shopify-created:\n    auth: shopify\n    secret_env: SHOPIFY_SECRET\n"
            f"    mappings: [{MAPPINGS / 'shopify-orders-contacts.yaml'}]\n"
            "    topics: [orders/create]\n"
        )
    with Service(load_config(str(path)), hubspot_env(sandbox)) as service:
        as_order = signed_post(service, _refund_body(3500), "r1", topic="orders/create")
        as_refund = signed_post(service, order, "o1", topic="refunds/create")
        no_topic = signed_post(service, order, "o2", topic=None, path="/shopify-created")
        ignored = signed_post(service, order, "o3", topic="orders/updated", path="/shopify-created")
        assert service.queue.counts() == {}
        # the same signed order under another (agreeing) topic and delivery id: counted once
        assert signed_post(service, order, "o4").json()["status"] == "queued"
        assert (
            signed_post(service, order, "o5", topic="orders/updated").json()["status"] == "queued"
        )
        wait_for(lambda: jobs(service).get("sent") == 2)
        metrics = requests.get(service.url + "/metrics", timeout=10).text
    assert (as_order.status_code, as_refund.status_code, no_topic.status_code) == (400, 400, 400)
    assert "is an order topic, but the body is a refund" in as_order.json()["error"]
    assert "is a refund topic, but the body is an order" in as_refund.json()["error"]
    assert "X-Shopify-Topic header is missing" in no_topic.json()["error"]
    assert ignored.json() == {"status": "ignored", "topic": "orders/updated"}
    assert 'hubmap_webhooks_rejected_total{reason="topic",route="/shopify"} 2' in metrics
    assert contacts(sandbox)["topic@example.com"]["total_number_of_orders"] == "1"
