"""`hubmap worker --status-port N`: the worker process's own /healthz and /metrics, for the
orchestrator that runs many workers (each intake has its own on its port).

    GET /healthz  200 {"status": "ok" | "degraded", ...} while the worker runs (degraded: HubSpot
                  fails; the events wait in the queue); 503 once it has stopped or the queue
                  cannot be read
    GET /metrics  the queue's jobs by mapping (one per mapping and portal) and status, the oldest
                  event waiting, and per portal this worker's HubSpot calls and 429s
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from hubmap import sql
from hubmap.serve.metrics import hubspot_lines, queue_lines
from hubmap.serve.queue import Queue
from hubmap.serve.worker import Worker

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class WorkerStatusApp:
    def __init__(self, worker: Worker, queue: Queue, running: Callable[[], bool]):
        self.worker, self.queue, self.running = worker, queue, running

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/healthz":
            response = self._health()
        elif request.path == "/metrics":
            lines = queue_lines(self.queue, self.worker.work) + hubspot_lines(
                self.worker.hubspot.report(), self.worker.portal_stats()
            )
            response = Response("\n".join(lines) + "\n", content_type=PROMETHEUS)
        else:
            response = Response("not found: /healthz and /metrics are served here\n", 404)
        return response(environ, start_response)

    def _health(self) -> Response:
        problems: list[str] = []
        backlog = None
        if not self.running():
            problems.append("the worker has stopped")
        try:
            backlog = self.queue.backlog()
        except sql.Error as error:
            problems.append(f"the queue cannot be read: {error}")
        hubspot = self.worker.hubspot.report()
        failing = hubspot["status"] == "failing"
        status = "unhealthy" if problems else "degraded" if failing else "ok"
        body = {
            "status": status,
            "problems": problems,
            "queue": backlog,
            "hubspot": hubspot,
            "mappings": sorted(self.worker.work),
        }
        return Response(json.dumps(body), 503 if problems else 200, content_type="application/json")
