"""The intake WSGI application: check a webhook, store it durably, answer; plus /healthz, /metrics.

A POST to a configured route goes through, in this order (the first that fails answers):

    draining (shutting down)          503 + Retry-After: the sender retries later
    body larger than max_body_bytes   413 (the body is read to its end and thrown away, so the
                                      sender receives the answer; see service.py)
    WooCommerce's creation ping       200, nothing stored (an unsigned 'webhook_id=<id>' form)
    signature / token wrong, missing  401, nothing stored
    body not usable JSON              400 with the reason (as `hubmap.inputs.parse_json` gives it:
                                      not UTF-8, not JSON, nested too deep, ...), or not an
                                      object or list
    topic header missing or contrary  400: the topic is not signed; a Shopify route with topics
                                      needs one, and it must agree with the body (an orders/
                                      topic on a refund body is refused; see auth.topic_conflict)
    topic not in the route's topics   200, nothing stored ('ignored')
    delivery id already stored        200 ('duplicate'), nothing stored again
    stored (committed to the queue)   200 ('queued'), and the worker is woken
    the queue cannot be written       503: the sender keeps the webhook and retries

Nothing is acknowledged before it is committed; an unexpected error answers 500 without a
traceback (the sender retries).  Counters live in this process (Prometheus
counters restart at zero); the job gauges are read from the queue file at each scrape.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from hubmap import sql
from hubmap.inputs import InputError, parse_json
from hubmap.serve import auth
from hubmap.serve.config import Route, ServeConfig
from hubmap.serve.metrics import hubspot_lines, label_text, queue_lines
from hubmap.serve.queue import Queue

log = logging.getLogger("hubmap.serve")

RETRY_AFTER_SECONDS = 5
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Why a request was refused (the `reason` label of hubmap_webhooks_rejected_total).
TOO_LARGE, SIGNATURE, NOT_JSON, TOPIC, UNAVAILABLE = (
    "too_large",
    "signature",
    "not_json",
    "topic",
    "unavailable",
)


class Counters:
    """Thread-safe counters by (name, labels)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def add(self, name: str, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] += 1

    def snapshot(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
        with self._lock:
            return dict(self._values)

    def total(self, name: str, **labels: str) -> int:
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.snapshot().items() if n == name and wanted <= set(ls))


_METRICS_HELP = {
    "hubmap_webhooks_received_total": "Webhook requests received on a route.",
    "hubmap_webhooks_rejected_total": "Webhook requests refused, by reason (signature, "
    "too_large, not_json, topic, unavailable).",
    "hubmap_webhooks_queued_total": "Webhooks stored in the queue (committed before the answer).",
    "hubmap_webhooks_duplicates_total": "Deliveries already stored (a sender's retry), counted "
    "once.",
    "hubmap_webhooks_ignored_total": "Webhooks answered 200 and not stored: WooCommerce pings "
    "and topics the route does not take.",
}


class IntakeApp:
    """WSGI callable; `draining` makes it refuse new webhooks with 503 while shutting down."""

    def __init__(
        self,
        config: ServeConfig,
        secrets: dict[str, bytes],
        queue: Queue,
        mapping_names: dict[str, list[str]],
        on_queued: Callable[[], None] | None = None,
        worker_health: Callable[[], dict[str, Any]] | None = None,
    ):
        self.config = config
        self.secrets = secrets
        self.queue = queue
        self.mapping_names = mapping_names  # route path -> names of its mappings
        self.on_queued = on_queued or (lambda: None)
        # {"running", "stopped_because", "hubspot"} of the worker thread; None: the worker runs
        # in another process (`hubmap serve --no-worker`)
        self.worker_health = worker_health or (lambda: None)
        self.counters = Counters()
        self.draining = False
        self.in_flight = 0
        self._flight_lock = threading.Lock()
        rules = [
            Rule("/healthz", endpoint="health", methods=["GET", "HEAD"]),
            Rule("/metrics", endpoint="metrics", methods=["GET", "HEAD"]),
        ]
        rules += [
            Rule(route.path, endpoint=route.path, methods=["POST"]) for route in config.routes
        ]
        self.url_map = Map(rules, strict_slashes=False)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        with self._flight_lock:
            self.in_flight += 1
        try:
            request = Request(environ)
            try:
                response = self._dispatch(request)
            except Exception:  # a bug: logged here, and no traceback for the sender
                log.exception("answering %s %s failed", request.method, request.path)
                response = _json(
                    {
                        "error": "internal error; send again later (a delivery "
                        "already stored is not stored twice)"
                    },
                    500,
                )
            return response(environ, start_response)
        finally:
            with self._flight_lock:
                self.in_flight -= 1

    def _dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, _ = adapter.match()
        except (NotFound, MethodNotAllowed) as error:
            allowed = getattr(error, "valid_methods", None)
            return _json(
                {"error": error.name},
                error.code or 404,
                headers={"Allow": ", ".join(allowed)} if allowed else None,
            )
        except HTTPException as error:  # pragma: no cover - routing redirects are off
            return _json({"error": error.name}, error.code or 400)
        if endpoint == "health":
            return self._health()
        if endpoint == "metrics":
            return Response(self.metrics_text(), content_type=PROMETHEUS_CONTENT_TYPE)
        route = self.config.route(endpoint)
        assert route is not None
        return self._webhook(route, request)

    # -- webhooks ------------------------------------------------------------------------

    def _webhook(self, route: Route, request: Request) -> Response:
        counters = self.counters
        counters.add("hubmap_webhooks_received_total", route=route.path)
        limit = self.config.max_body_bytes
        if self.draining:
            counters.add("hubmap_webhooks_rejected_total", route=route.path, reason=UNAVAILABLE)
            return _json(
                {"error": "shutting down; send again later"},
                503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if request.content_length is not None and request.content_length > limit:
            counters.add("hubmap_webhooks_rejected_total", route=route.path, reason=TOO_LARGE)
            return _json({"error": f"the body is larger than {limit} bytes"}, 413)
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            counters.add("hubmap_webhooks_rejected_total", route=route.path, reason=TOO_LARGE)
            return _json({"error": f"the body is larger than {limit} bytes"}, 413)
        headers = {name.lower(): value for name, value in request.headers.items()}
        if auth.is_woocommerce_ping(route.auth, headers, body):
            counters.add("hubmap_webhooks_ignored_total", route=route.path, why="ping")
            return _json({"status": "ok"}, 200)
        if not auth.authentic(route.auth, self.secrets[route.path], headers, body):
            counters.add("hubmap_webhooks_rejected_total", route=route.path, reason=SIGNATURE)
            return _json({"error": "missing or wrong signature"}, 401)
        parsed = parse_json(body, "the body")  # never raises: any body gets its reason
        if isinstance(parsed, InputError) or not isinstance(parsed.data, (dict, list)):
            reason = (
                f"{parsed.where}: {parsed.reason}"
                if isinstance(parsed, InputError)
                else "the body is not a JSON object or list"
            )
            counters.add("hubmap_webhooks_rejected_total", route=route.path, reason=NOT_JSON)
            return _json({"error": reason}, 400)
        topic = auth.topic(route.auth, headers)
        conflict = auth.topic_conflict(route.auth, topic, parsed.data, bool(route.topics))
        if conflict is not None:
            counters.add("hubmap_webhooks_rejected_total", route=route.path, reason=TOPIC)
            return _json({"error": conflict}, 400)
        if not route.accepts_topic(topic):
            counters.add("hubmap_webhooks_ignored_total", route=route.path, why="topic")
            return _json({"status": "ignored", "topic": topic}, 200)
        delivery = auth.delivery_id(route.auth, headers, body)
        try:
            event_id, new = self.queue.enqueue(
                route.path, delivery, topic, body, self.mapping_names[route.path]
            )
        except sql.Error as error:
            log.error("cannot store a webhook on %s: %s", route.path, error)
            counters.add("hubmap_webhooks_rejected_total", route=route.path, reason=UNAVAILABLE)
            return _json(
                {"error": "cannot store the webhook now; send again later"},
                503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if not new:
            counters.add("hubmap_webhooks_duplicates_total", route=route.path)
            return _json({"status": "duplicate", "event": event_id}, 200)
        counters.add("hubmap_webhooks_queued_total", route=route.path)
        self.on_queued()
        return _json({"status": "queued", "event": event_id}, 200)

    # -- health and metrics --------------------------------------------------------------

    def _health(self) -> Response:
        """ok (200); degraded (200): HubSpot fails, webhooks are still taken and queued, so a
        load balancer must keep sending them here; unhealthy (503): shutting down, the queue
        cannot be read, or the worker has stopped (nothing would ever be sent: restart)."""
        problems: list[str] = []
        warnings: list[str] = []
        if self.draining:
            problems.append("shutting down")
        worker = self.worker_health()
        if worker is not None and not worker["running"]:
            why = worker.get("stopped_because")
            problems.append(
                "the worker has stopped"
                + (f": {why}" if why else "")
                + "; nothing is sent until hubmap serve is restarted"
            )
        backlog: dict[str, Any] | None = None
        try:
            backlog = self.queue.backlog()
        except sql.Error as error:
            problems.append(f"the queue cannot be read: {error}")
        hubspot = (
            worker["hubspot"]
            if worker is not None
            else {"status": "unknown", "note": "the worker runs in another process (hubmap worker)"}
        )
        if hubspot["status"] == "failing":
            warnings.append(
                f"HubSpot is failing (since {hubspot['last_error_at']}): "
                f"{hubspot['last_error']}; webhooks are queued and sent when it "
                "answers again"
            )
        status = "unhealthy" if problems else "degraded" if warnings else "ok"
        body = {
            "status": status,
            "problems": problems + warnings,
            "worker": "separate"
            if worker is None
            else "running"
            if worker["running"]
            else "stopped",
            "queue": backlog,
            "hubspot": hubspot,
        }
        return _json(body, 503 if problems else 200)

    def metrics_text(self) -> str:
        lines: list[str] = []
        snapshot = self.counters.snapshot()
        for name, help_text in _METRICS_HELP.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            samples = sorted(
                (labels, value) for (n, labels), value in snapshot.items() if n == name
            )
            if not samples:
                lines.append(f"{name} 0")
            lines += [f"{name}{label_text(labels)} {value}" for labels, value in samples]
        lines += queue_lines(
            self.queue, (m for names in self.mapping_names.values() for m in names)
        )
        worker = self.worker_health()
        if worker is not None:
            lines += hubspot_lines(worker["hubspot"], worker.get("portals", {}))
        return "\n".join(lines) + "\n"


def _json(body: dict[str, Any], status: int, headers: Any = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )
