"""Live intake (`hubmap serve`): signed shop webhooks in, queued durably, mapped to HubSpot.

Modules, one job each: `config` (the YAML file or flags, checked), `auth` (signatures, tokens,
delivery ids), `body` (a body read once, cheaply, as `hubmap.inputs.parse_json` reads it),
`queue` (the SQLite queue: events, jobs, leases, dead letters; the group commit), `app` (the WSGI
intake: checks, store, answer; /healthz, /metrics), `worker` (batches through
`hubmap.uses.run.sync_documents`, retries, dead letters), `service` (waitress + worker thread,
graceful stop; the worker alone).
"""

from hubmap.serve.config import ServeConfig, config_from_flags, load_config
from hubmap.serve.queue import Queue, status_report, status_text
from hubmap.serve.service import Service, run_worker

__all__ = [
    "Queue",
    "ServeConfig",
    "Service",
    "config_from_flags",
    "load_config",
    "run_worker",
    "status_report",
    "status_text",
]
