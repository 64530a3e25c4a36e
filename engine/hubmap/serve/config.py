"""The `hubmap serve` configuration: read a small YAML file (or command-line flags) into a checked,
frozen `ServeConfig`, or fail with every problem at file:line:col.

The file (see examples/serve.yaml; relative paths are relative to the file's folder)::

    listen: {host: 127.0.0.1, port: 8080, threads: 8}
    state: hubmap-state.db          # the state store shared with `hubmap run` (ledger, contacts)
    queue: hubmap-queue.db          # the webhook queue (accepted events, jobs, dead letters)
                                    # (either may be a PostgreSQL URL: postgresql://user@host/db)
    max_body_bytes: 1048576         # larger requests are answered 413
    worker:                         # all optional
      batch_size: 100               # events handed to one run of a mapping
      max_attempts: 20              # failed attempts before an event becomes a dead letter
      retry_seconds: 10             # wait after the first failure; doubles each time ...
      max_retry_seconds: 900        # ... up to this
      hubspot_attempts: 3           # tries of one HubSpot call inside an attempt
      keep_days: 7                  # sent and skipped events are deleted after this
      batch_every_seconds: 0.5      # a mapping's batches start at most this often (unless full)
      recover_every_seconds: 30     # how often the jobs of stopped workers are put back
    routes:
      /webhooks/shopify/orders:     # the URL path a shop POSTs to
        auth: shopify               # shopify | woocommerce | bearer
        secret_env: SHOPIFY_WEBHOOK_SECRET   # environment variable holding the secret (token)
        mappings: [../mappings/shopify-orders-contacts.yaml]
        topics: [orders/create, orders/paid]  # optional: other topics are answered 200, ignored

Secrets never sit in the file: `secret_env` names the environment variable, which must be set
(and not empty) when the server starts.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubmap import sql
from hubmap.hubspot.config import TOKEN_ENV
from hubmap.mapping import load_mapping
from hubmap.mapping.loader import LoadedDocument, load_file
from hubmap.mapping.model import Mapping
from hubmap.problems import HubmapError, Location, Problem

AUTH_KINDS = ("shopify", "woocommerce", "bearer")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_THREADS = 8
DEFAULT_STATE = "hubmap-state.db"
DEFAULT_QUEUE = "hubmap-queue.db"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # Shopify's order payloads are well under this
MAX_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_ROUTE = "/webhooks"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROUTE_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
RESERVED_PATHS = ("/healthz", "/metrics")


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """How the worker takes events from the queue and how hard it tries."""

    batch_size: int = 100
    max_attempts: int = 20  # about three and a half hours with the default waits
    retry_seconds: float = 10.0
    max_retry_seconds: float = 900.0
    hubspot_attempts: int = 3
    keep_days: float = 7.0
    poll_seconds: float = 0.5  # how often an idle worker looks at the queue
    # A mapping's batches start at most this often (unless the last one was full), so webhooks
    # arriving one by one share HubSpot calls (two per batch) instead of spending the portal's
    # rate limit one call pair per event.
    batch_every_seconds: float = 0.5
    # How often the jobs of workers that are gone are looked for (and put back in the queue).
    recover_every_seconds: float = 30.0

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after failed attempt number `attempts` (1-based)."""
        return float(min(self.max_retry_seconds, self.retry_seconds * 2 ** max(attempts - 1, 0)))


@dataclass(frozen=True)
class Route:
    path: str
    auth: str
    secret_env: str
    mapping_files: tuple[str, ...]
    topics: tuple[str, ...] = ()  # empty: every topic
    # the environment variable holding the HubSpot token of this route's portal: routes with
    # different tokens write to different portals (an agency's shops, each into its client's)
    token_env: str = TOKEN_ENV

    def accepts_topic(self, topic: str | None) -> bool:
        return not self.topics or topic is None or topic in self.topics


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    routes: tuple[Route, ...]
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    threads: int = DEFAULT_THREADS
    state_path: str = DEFAULT_STATE
    queue_path: str = DEFAULT_QUEUE
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    source: str = "<flags>"

    def route(self, path: str) -> Route | None:
        for route in self.routes:
            if route.path == path:
                return route
        return None

    def mapping_files(self) -> list[str]:
        """Every mapping file named by a route, once, in the order of the file."""
        seen: dict[str, None] = {}
        for route in self.routes:
            for path in route.mapping_files:
                seen.setdefault(path, None)
        return list(seen)


# -- reading the file ---------------------------------------------------------------------------

_TOP = {"listen", "state", "queue", "max_body_bytes", "worker", "routes"}
_LISTEN = {"host", "port", "threads"}
_ROUTE = {"auth", "secret_env", "mappings", "topics", "hubspot_token_env"}
_WORKER_NUMBERS: dict[str, tuple[type, float, float]] = {
    "batch_size": (int, 1, 1000),
    "max_attempts": (int, 1, 1000),
    "retry_seconds": (float, 0.01, 86_400),
    "max_retry_seconds": (float, 0.01, 7 * 86_400),
    "hubspot_attempts": (int, 1, 10),
    "keep_days": (float, 0.001, 3650),
    "poll_seconds": (float, 0.01, 60),
    "batch_every_seconds": (float, 0.0, 60),
    "recover_every_seconds": (float, 0.1, 3600),
}


class _Checker:
    """Walks the loaded file, collecting problems with the location of the offending key."""

    def __init__(self, doc: LoadedDocument):
        self.doc = doc
        self.problems: list[Problem] = []
        self.base = Path(doc.file).resolve().parent

    def add(
        self,
        code: str,
        message: str,
        path: tuple[str | int, ...],
        hint: str = "",
        key: bool = False,
    ) -> None:
        location = self.doc.key_location(path) if key else self.doc.location(path)
        self.problems.append(Problem(code, message, location, hint=hint))

    def section(self, value: Any, path: tuple[str | int, ...], known: set[str]) -> dict[str, Any]:
        name = ".".join(str(p) for p in path) or "the file"
        if not isinstance(value, dict):
            self.add("HM803", f"{name} must be a set of 'key: value' lines", path)
            return {}
        for key in value:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                self.add(
                    "HM802",
                    f"unknown key '{key}' in {name}",
                    (*path, key),
                    hint=f"did you mean '{close[0]}'?"
                    if close
                    else f"allowed: {', '.join(sorted(known))}",
                    key=True,
                )
        return value

    def number(
        self, value: Any, path: tuple[str | int, ...], kind: type, low: float, high: float
    ) -> Any:
        name = ".".join(str(p) for p in path)
        ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not low <= value <= high:
            what = "a whole number" if kind is int else "a number"
            self.add(
                "HM803", f"{name} must be {what} from {low:g} to {high:g} (got {value!r})", path
            )
            return None
        return kind(value)

    def text(self, value: Any, path: tuple[str | int, ...]) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.add(
                "HM803",
                f"{'.'.join(str(p) for p in path)} must be a non-empty text (got {value!r})",
                path,
            )
            return None
        return value

    def file_path(self, value: Any, path: tuple[str | int, ...]) -> str | None:
        text = self.text(value, path)
        return None if text is None else os.path.normpath(self.base / text)

    def database(self, value: Any, path: tuple[str | int, ...]) -> str | None:
        """A SQLite file (beside the configuration when relative) or a PostgreSQL URL."""
        text = self.text(value, path)
        if text is not None and sql.is_url(text):
            return text
        return self.file_path(value, path)


def load_config(path: str) -> ServeConfig:
    """The checked configuration in `path`, or HubmapError listing every problem."""
    doc = load_file(path)
    if not doc.ok or doc.data is None:
        raise HubmapError([p for p in doc.problems if p.is_error])
    check = _Checker(doc)
    data = check.section(doc.data, (), _TOP)
    settings: dict[str, Any] = {"source": path}

    listen = check.section(data.get("listen", {}), ("listen",), _LISTEN)
    if "host" in listen:
        settings["host"] = check.text(listen["host"], ("listen", "host"))
    if "port" in listen:
        settings["port"] = check.number(listen["port"], ("listen", "port"), int, 0, 65535)
    if "threads" in listen:
        settings["threads"] = check.number(listen["threads"], ("listen", "threads"), int, 1, 64)
    settings["state_path"] = check.database(data.get("state", DEFAULT_STATE), ("state",))
    settings["queue_path"] = check.database(data.get("queue", DEFAULT_QUEUE), ("queue",))
    if "max_body_bytes" in data:
        settings["max_body_bytes"] = check.number(
            data["max_body_bytes"], ("max_body_bytes",), int, 1024, MAX_MAX_BODY_BYTES
        )
    worker = check.section(data.get("worker", {}), ("worker",), set(_WORKER_NUMBERS))
    worker_settings = {
        key: check.number(value, ("worker", key), *_WORKER_NUMBERS[key])
        for key, value in worker.items()
        if key in _WORKER_NUMBERS
    }
    settings["worker"] = WorkerConfig(**{k: v for k, v in worker_settings.items() if v is not None})
    settings["routes"] = tuple(_routes(check, data))
    if check.problems:
        raise HubmapError(check.problems)
    return ServeConfig(**{k: v for k, v in settings.items() if v is not None})


def _routes(check: _Checker, data: dict[str, Any]) -> list[Route]:
    if "routes" not in data:
        check.add(
            "HM804",
            "the file names no routes",
            (),
            hint="add 'routes:' with at least one URL path, its auth and its mappings",
        )
        return []
    routes_data = data["routes"]
    if not isinstance(routes_data, dict) or not routes_data:
        check.add(
            "HM803",
            "routes must map URL paths (such as /webhooks/shopify) to their settings",
            ("routes",),
        )
        return []
    routes = []
    for route_path, value in routes_data.items():
        where: tuple[str | int, ...] = ("routes", route_path)
        if (
            not isinstance(route_path, str)
            or not _ROUTE_PATH.match(route_path)
            or route_path in RESERVED_PATHS
        ):
            check.add(
                "HM803",
                f"'{route_path}' is not a usable route path",
                where,
                hint="a path starts with '/', uses letters, digits, '-', '_', '.', '/', "
                f"and is not {' or '.join(RESERVED_PATHS)}",
                key=True,
            )
            continue
        settings = check.section(value, where, _ROUTE)
        if not settings:
            continue
        auth = settings.get("auth")
        if auth not in AUTH_KINDS:
            check.add(
                "HM803" if "auth" in settings else "HM804",
                f"{route_path}: auth must be one of {', '.join(AUTH_KINDS)} (got {auth!r})",
                (*where, "auth") if "auth" in settings else where,
                hint="shopify checks X-Shopify-Hmac-Sha256, woocommerce checks "
                "X-WC-Webhook-Signature, bearer checks 'Authorization: Bearer <token>'",
            )
        secret_env = settings.get("secret_env")
        if not isinstance(secret_env, str) or not _ENV_NAME.match(secret_env):
            check.add(
                "HM803" if "secret_env" in settings else "HM804",
                f"{route_path}: secret_env must name an environment variable (got {secret_env!r})",
                (*where, "secret_env") if "secret_env" in settings else where,
                hint="the secret itself never goes in this file; "
                "write e.g. secret_env: SHOPIFY_WEBHOOK_SECRET and export it",
            )
        mappings = settings.get("mappings")
        files: list[str] = []
        if not isinstance(mappings, list) or not mappings:
            check.add(
                "HM803" if "mappings" in settings else "HM804",
                f"{route_path}: mappings must list at least one mapping file",
                (*where, "mappings") if "mappings" in settings else where,
            )
        else:
            for index, item in enumerate(mappings):
                resolved = check.file_path(item, (*where, "mappings", index))
                if resolved is not None and not Path(resolved).is_file():
                    check.add(
                        "HM803",
                        f"{route_path}: no mapping file '{item}' (looked at {resolved})",
                        (*where, "mappings", index),
                        hint="paths are relative to this configuration file's folder",
                    )
                elif resolved is not None:
                    files.append(resolved)
        topics = settings.get("topics", [])
        if not isinstance(topics, list) or not all(isinstance(t, str) and t for t in topics):
            check.add(
                "HM803",
                f"{route_path}: topics must be a list of topic names such as orders/create",
                (*where, "topics"),
            )
            topics = []
        token_env = settings.get("hubspot_token_env", TOKEN_ENV)
        if not isinstance(token_env, str) or not _ENV_NAME.match(token_env):
            check.add(
                "HM803",
                f"{route_path}: hubspot_token_env must name an environment "
                f"variable (got {token_env!r})",
                (*where, "hubspot_token_env"),
                hint="the token itself never goes in this file; write e.g. "
                "hubspot_token_env: CLIENT_A_HUBSPOT_TOKEN and export it",
            )
            token_env = None
        if auth in AUTH_KINDS and isinstance(secret_env, str) and files and token_env:
            routes.append(
                Route(route_path, auth, secret_env, tuple(files), tuple(topics), token_env)
            )
    return routes


def config_from_flags(
    *, mappings: list[str], auth: str, secret_env: str, path: str = DEFAULT_ROUTE, **settings: Any
) -> ServeConfig:
    """One route from command-line flags (paths as given, relative to the working folder)."""
    problems = []
    where = Location("<command line>")
    if auth not in AUTH_KINDS:
        problems.append(Problem("HM803", f"--auth must be one of {', '.join(AUTH_KINDS)}", where))
    if not _ENV_NAME.match(secret_env or ""):
        problems.append(Problem("HM803", "--secret-env must name an environment variable", where))
    if not _ROUTE_PATH.match(path) or path in RESERVED_PATHS:
        problems.append(Problem("HM803", f"--path '{path}' is not a usable route path", where))
    for mapping in mappings:
        if not Path(mapping).is_file():
            problems.append(Problem("HM803", f"no mapping file '{mapping}'", where))
    if problems:
        raise HubmapError(problems)
    route = Route(path, auth, secret_env, tuple(str(Path(m).resolve()) for m in mappings))
    return ServeConfig(routes=(route,), **{k: v for k, v in settings.items() if v is not None})


# -- what the configuration needs from the world ----------------------------------------------


def load_mappings(config: ServeConfig) -> dict[str, Mapping]:
    """Every mapping the routes name, by file; HubmapError with all their problems, and with
    two files that share a mapping name (the queue and the state keep work apart by name)."""
    problems: list[Problem] = []
    loaded: dict[str, Mapping] = {}
    names: dict[str, str] = {}
    for path in config.mapping_files():
        try:
            mapping = load_mapping(path)
        except HubmapError as error:
            problems.extend(error.problems)
            continue
        if mapping.name in names:
            problems.append(
                Problem(
                    "HM807",
                    f"mappings '{names[mapping.name]}' and '{path}' have the same name "
                    f"'{mapping.name}'",
                    Location(path),
                    hint="give each mapping its own name: the queue and the state keep them apart "
                    "by name",
                )
            )
            continue
        names[mapping.name] = path
        loaded[path] = mapping
    if problems:
        raise HubmapError(problems)
    return loaded


def work_name(mapping: str, token_env: str) -> str:
    """What the queue calls one mapping's work for one portal: the mapping's name, with the
    token's variable when it is not the default one."""
    return mapping if token_env == TOKEN_ENV else f"{mapping}@{token_env}"


def works(config: ServeConfig, mappings: dict[str, Mapping]) -> dict[str, tuple[Mapping, str]]:
    """Every (mapping, token variable) the routes name, by work name."""
    return {
        work_name(mappings[f].name, route.token_env): (mappings[f], route.token_env)
        for route in config.routes
        for f in route.mapping_files
    }


def token_environ(environ: dict[str, str], token_env: str) -> dict[str, str]:
    """The environment a portal's client is made from: its route's token as the token."""
    if token_env == TOKEN_ENV:
        return environ
    return {**environ, TOKEN_ENV: environ.get(token_env, "")}


def route_works(config: ServeConfig, mappings: dict[str, Mapping]) -> dict[str, list[str]]:
    """Each route's work names (the jobs an event it accepts gets)."""
    return {
        route.path: [work_name(mappings[f].name, route.token_env) for f in route.mapping_files]
        for route in config.routes
    }


def secrets_from(config: ServeConfig, environ: dict[str, str]) -> dict[str, bytes]:
    """Each route's secret from the environment; HubmapError naming every variable not set."""
    problems = []
    found: dict[str, bytes] = {}
    for route in config.routes:
        value = environ.get(route.secret_env, "")
        if not value:
            problems.append(
                Problem(
                    "HM805",
                    f"environment variable {route.secret_env} (the secret of route "
                    f"{route.path}) is not set",
                    Location(config.source),
                    hint=f"export {route.secret_env}=... (the shop's webhook secret or the shared "
                    "token) before starting",
                )
            )
        else:
            found[route.path] = value.encode("utf-8")
    if problems:
        raise HubmapError(problems)
    return found
