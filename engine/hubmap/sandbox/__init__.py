"""A local HubSpot stand-in: an HTTP server that answers the CRM contacts (including merges and
secondary emails), properties, forms and account-info endpoints as strictly as HubSpot does, so
mappings can be tried without a HubSpot account and tests and benchmarks talk real HTTP to
something real.

Modules: `config` (settings), `server` (start/stop/serve), `app` (WSGI routing and gatekeeping),
`contacts`, `properties`, `forms` (the endpoints), `values` (value checks), `catalog` (built-in
properties), `store` (SQLite portal), `limits` (rate limits), `faults` (fault injection),
`stats` (request counts), `errors` (HubSpot's error bodies).
"""

from hubmap.sandbox.config import ConfigError, SandboxConfig
from hubmap.sandbox.server import RunningSandbox, dump, serve, show_contact, start_sandbox

__all__ = [
    "ConfigError",
    "RunningSandbox",
    "SandboxConfig",
    "dump",
    "serve",
    "show_contact",
    "start_sandbox",
]
