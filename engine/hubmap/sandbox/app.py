"""The sandbox's WSGI application: routing, then HubSpot's gatekeeping, then the handlers.

Every HubSpot request goes through the same steps, in this order:
latency -> injected 502/503 (before anything else) -> Bearer auth (401) -> rate limit (429) ->
JSON body -> handler inside one store transaction -> rate-limit headers -> maybe drop the
connection after a committed write. Numbered (`/crm/v3/...`) and date-based
(`/crm/objects/2026-03/...`) paths map to the same handlers. `/_sandbox/...` admin routes skip
all of it.

`GET /account-info/v3/details` (and `/account-info/2026-03/details`) answers the account behind
the token: the configured `portal_id`, so two sandboxes with different `SandboxConfig.portal_id`
stand in for two portals. Admin routes (not HubSpot's): `GET /_sandbox/dump`,
`POST /_sandbox/reset`, `GET|POST /_sandbox/config`, `GET /_sandbox/stats`,
`GET /_sandbox/contacts/{email}`, and `POST /_sandbox/contacts/{id}/additional_emails`
`{"emails": ["b@x.com", ...]}`, which replaces a contact's read-only `hs_additional_emails`
(secondary addresses; `[]` clears them) and answers the contact (see `contacts`).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.wrappers import Request, Response

from hubmap.sandbox import errors
from hubmap.sandbox.config import ConfigError, SandboxConfig
from hubmap.sandbox.contacts import Contacts
from hubmap.sandbox.errors import ApiError
from hubmap.sandbox.faults import GATEWAY_MESSAGES, FaultInjector
from hubmap.sandbox.forms import Forms
from hubmap.sandbox.limits import RateLimiter, Verdict
from hubmap.sandbox.properties import Properties
from hubmap.sandbox.stats import Stats
from hubmap.sandbox.store import Store

#: Date-based API versions served (HUBSPOT-API.md §1).
DATE_VERSIONS = ("2026-03",)
JSON_TYPE = "application/json;charset=utf-8"
#: Key in the WSGI environ under which werkzeug's server exposes the client socket.
SOCKET_KEY = "werkzeug.socket"

CRM = "crm"  # Bearer token, the token's budget
PUBLIC_FORM = "public_form"  # no auth, the portal's public-forms budget
ADMIN = "admin"  # not HubSpot's; no auth, no limits, not counted


class DateVersionConverter(BaseConverter):
    regex = "|".join(version.replace("-", r"\-") for version in DATE_VERSIONS)


@dataclass(frozen=True)
class Route:
    access: str
    writes: bool  # a successful call changes data (drop-after-write applies)
    body: bool  # the call takes a JSON body


ROUTES: dict[str, Route] = {
    "contacts.list": Route(CRM, False, False),
    "contacts.create": Route(CRM, True, True),
    "contacts.read": Route(CRM, False, False),
    "contacts.update": Route(CRM, True, True),
    "contacts.archive": Route(CRM, True, False),
    "contacts.batch_read": Route(CRM, False, True),
    "contacts.batch_create": Route(CRM, True, True),
    "contacts.batch_update": Route(CRM, True, True),
    "contacts.batch_upsert": Route(CRM, True, True),
    "contacts.merge": Route(CRM, True, True),
    "account.details": Route(CRM, False, False),
    "properties.list": Route(CRM, False, False),
    "properties.create": Route(CRM, True, True),
    "properties.get": Route(CRM, False, False),
    "properties.update": Route(CRM, True, True),
    "properties.archive": Route(CRM, True, False),
    "properties.batch_create": Route(CRM, True, True),
    "properties.batch_read": Route(CRM, False, True),
    "properties.batch_archive": Route(CRM, True, True),
    "groups.list": Route(CRM, False, False),
    "groups.create": Route(CRM, True, True),
    "groups.get": Route(CRM, False, False),
    "groups.update": Route(CRM, True, True),
    "groups.archive": Route(CRM, True, False),
    "forms.list": Route(CRM, False, False),
    "forms.create": Route(CRM, True, True),
    "forms.get": Route(CRM, False, False),
    "forms.submit": Route(PUBLIC_FORM, True, True),
    "forms.secure_submit": Route(CRM, True, True),
    "admin.dump": Route(ADMIN, False, False),
    "admin.reset": Route(ADMIN, False, False),
    "admin.config": Route(ADMIN, False, False),
    "admin.stats": Route(ADMIN, False, False),
    "admin.contact": Route(ADMIN, False, False),
    "admin.additional_emails": Route(ADMIN, False, True),
}

#: What `GET /account-info/v3/details` answers besides the portal id (a US portal on na1).
ACCOUNT_TIME_ZONE = "US/Eastern"
ACCOUNT_DETAILS = {
    "accountType": "STANDARD",
    "timeZone": ACCOUNT_TIME_ZONE,
    "companyCurrency": "USD",
    "uiDomain": "app.hubspot.com",
    "dataHostingLocation": "na1",
}


def _rules() -> list[Rule]:
    rules = []
    obj = "<any(contacts, '0-1'):object_type>"
    for prefix in ("/crm/v3/objects/contacts", "/crm/objects/<date_version:version>/contacts"):
        rules += [
            Rule(prefix, endpoint="contacts.list", methods=["GET"]),
            Rule(prefix, endpoint="contacts.create", methods=["POST"]),
            Rule(f"{prefix}/batch/read", endpoint="contacts.batch_read", methods=["POST"]),
            Rule(f"{prefix}/batch/create", endpoint="contacts.batch_create", methods=["POST"]),
            Rule(f"{prefix}/batch/update", endpoint="contacts.batch_update", methods=["POST"]),
            Rule(f"{prefix}/batch/upsert", endpoint="contacts.batch_upsert", methods=["POST"]),
            Rule(f"{prefix}/merge", endpoint="contacts.merge", methods=["POST"]),
            Rule(f"{prefix}/<key>", endpoint="contacts.read", methods=["GET"]),
            Rule(f"{prefix}/<key>", endpoint="contacts.update", methods=["PATCH"]),
            Rule(f"{prefix}/<key>", endpoint="contacts.archive", methods=["DELETE"]),
        ]
    for prefix in (f"/crm/v3/properties/{obj}", f"/crm/properties/<date_version:version>/{obj}"):
        rules += [
            Rule(prefix, endpoint="properties.list", methods=["GET"]),
            Rule(prefix, endpoint="properties.create", methods=["POST"]),
            Rule(f"{prefix}/batch/create", endpoint="properties.batch_create", methods=["POST"]),
            Rule(f"{prefix}/batch/read", endpoint="properties.batch_read", methods=["POST"]),
            Rule(f"{prefix}/batch/archive", endpoint="properties.batch_archive", methods=["POST"]),
            Rule(f"{prefix}/groups", endpoint="groups.list", methods=["GET"]),
            Rule(f"{prefix}/groups", endpoint="groups.create", methods=["POST"]),
            Rule(f"{prefix}/groups/<name>", endpoint="groups.get", methods=["GET"]),
            Rule(f"{prefix}/groups/<name>", endpoint="groups.update", methods=["PATCH"]),
            Rule(f"{prefix}/groups/<name>", endpoint="groups.archive", methods=["DELETE"]),
            Rule(f"{prefix}/<name>", endpoint="properties.get", methods=["GET"]),
            Rule(f"{prefix}/<name>", endpoint="properties.update", methods=["PATCH"]),
            Rule(f"{prefix}/<name>", endpoint="properties.archive", methods=["DELETE"]),
        ]
    submit = "/submissions/v3/integration"
    rules += [
        Rule("/account-info/v3/details", endpoint="account.details", methods=["GET"]),
        Rule(
            "/account-info/<date_version:version>/details",
            endpoint="account.details",
            methods=["GET"],
        ),
        Rule("/marketing/v3/forms", endpoint="forms.list", methods=["GET"]),
        Rule("/marketing/v3/forms", endpoint="forms.create", methods=["POST"]),
        Rule("/marketing/v3/forms/<form_id>", endpoint="forms.get", methods=["GET"]),
        Rule(f"{submit}/submit/<portal_id>/<form_id>", endpoint="forms.submit", methods=["POST"]),
        Rule(
            f"{submit}/secure/submit/<portal_id>/<form_id>",
            endpoint="forms.secure_submit",
            methods=["POST"],
        ),
        Rule("/_sandbox/dump", endpoint="admin.dump", methods=["GET"]),
        Rule("/_sandbox/reset", endpoint="admin.reset", methods=["POST"]),
        Rule("/_sandbox/config", endpoint="admin.config", methods=["GET", "POST"]),
        Rule("/_sandbox/stats", endpoint="admin.stats", methods=["GET"]),
        Rule("/_sandbox/contacts/<email>", endpoint="admin.contact", methods=["GET"]),
        Rule(
            "/_sandbox/contacts/<contact_id>/additional_emails",
            endpoint="admin.additional_emails",
            methods=["POST"],
        ),
    ]
    return rules


class _Drop(Exception):
    """The write is committed; close the connection without answering."""


def dump_store(store: Store, contacts: Contacts) -> dict[str, Any]:
    """Everything that landed in the portal, for people and tests to look at."""
    with store.transaction():
        return {
            "contacts": [
                {
                    **contacts.serialize(store.get_contact(i), everything_set=True),  # type: ignore[arg-type]
                    "hutks": store.hutks(i),
                }
                for i in store.contact_ids()
            ],
            "properties": [d for d in store.list_properties() if not d.get("hubspotDefined")],
            "groups": store.list_groups(),
            "forms": store.list_forms(),
            "submissions": store.submissions(),
        }


def contact_view(store: Store, contacts: Contacts, email: str) -> dict[str, Any] | None:
    """One contact by email with all its values, hutks and form submissions."""
    with store.transaction():
        contact_id = store.find_contact_by_email(email)
        record = store.get_contact(contact_id) if contact_id is not None else None
        if record is None:
            return None
        return {
            **contacts.serialize(record, everything_set=True),
            "hutks": store.hutks(record.id),
            "submissions": store.submissions(record.id),
        }


class SandboxApp:
    """The WSGI callable; holds the store, the live config, limits, faults and stats."""

    def __init__(self, store: Store, config: SandboxConfig) -> None:
        self.store = store
        self._config = config
        self._config_lock = threading.Lock()
        self.limiter = RateLimiter()
        self.faults = FaultInjector(config.seed)
        self.stats = Stats()
        self.contacts = Contacts(store)
        self.properties = Properties(store)
        self.forms = Forms(store)
        self.url_map = Map(
            _rules(),
            converters={"date_version": DateVersionConverter},
            strict_slashes=False,
            merge_slashes=False,
        )
        self._handlers = self._handler_table()
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def config(self) -> SandboxConfig:
        return self._config

    def update_config(self, changes: dict[str, Any]) -> SandboxConfig:
        with self._config_lock:
            self._config = self._config.with_changes(changes)
            if "seed" in changes:
                self.faults.reseed(self._config.seed)
            return self._config

    def reset(self) -> None:
        self.store.reset()
        self.stats.reset()
        self.limiter.reset()

    # -- WSGI --------------------------------------------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled; False if that did not happen in time."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        with self._idle:
            self._in_flight += 1
        try:
            response = self.handle(request)
        except _Drop:
            sock = environ.get(SOCKET_KEY)
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
            # werkzeug's server treats a ConnectionError as a dropped connection: nothing is sent.
            raise ConnectionAbortedError("sandbox dropped the connection after the write") from None
        finally:
            request.close()
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except MethodNotAllowed:
            return self._record(
                request,
                "unknown",
                _error_response(
                    errors.crm_error(
                        405, "VALIDATION_ERROR", f"Method {request.method} not allowed"
                    )
                ),
            )
        except NotFound:
            return self._record(
                request,
                "unknown",
                _error_response(errors.not_found(f"Unable to find {request.path}")),
            )
        route = ROUTES[str(endpoint)]
        if route.access == ADMIN:
            return self._admin(str(endpoint), request, args)
        config = self.config
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000)
        status = self.faults.gateway_error(config.error_rate)
        if status is not None:
            message, category = GATEWAY_MESSAGES[status]
            response = _error_response(errors.crm_error(status, category, message))
            return self._record(request, str(endpoint), response, gateway_error=True)
        verdict = None
        try:
            verdict = self._gatekeep(route, request, args, config)
            body = _json_body(request) if route.body else None
            with self.store.transaction():
                status, payload = self._handlers[str(endpoint)](request, args, body, config)
            response = _json_response(status, payload)
        except ApiError as error:
            response = _error_response(error)
        if verdict is not None:
            response.headers.update(verdict.headers())
        if (
            route.writes
            and response.status_code < 300
            and self.faults.drop_after_write(config.drop_after_write_rate)
        ):
            self._record(request, str(endpoint), response, dropped=True)
            raise _Drop
        return self._record(request, str(endpoint), response)

    def _gatekeep(
        self, route: Route, request: Request, args: Mapping[str, Any], config: SandboxConfig
    ) -> Verdict | None:
        """Auth and rate limits; raises the 401/429, returns the verdict for the headers."""
        group = f"hubmap-sandbox:portal-{config.portal_id}"
        if route.access == PUBLIC_FORM:
            verdict = self.limiter.take(
                f"forms:{args.get('portal_id')}",
                config.forms_rate_limit_max,
                config.rate_limit_interval_ms,
                config.daily_limit,
            )
            if not verdict.allowed:
                raise errors.rate_limited(verdict.policy or "", group)
            return None  # the public endpoint sends no rate-limit headers
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != config.token:
            raise errors.unauthorized()
        verdict = self.limiter.take(
            f"token:{config.token}",
            config.rate_limit_max,
            config.rate_limit_interval_ms,
            config.daily_limit,
        )
        if not verdict.allowed:
            error = errors.rate_limited(verdict.policy or "", group)
            raise _RateLimited(error.status, error.body, verdict)
        return verdict

    def _record(
        self,
        request: Request,
        endpoint: str,
        response: Response,
        *,
        dropped: bool = False,
        gateway_error: bool = False,
    ) -> Response:
        self.stats.record(
            request.method,
            request.path,
            endpoint,
            response.status_code,
            dropped=dropped,
            gateway_error=gateway_error,
        )
        return response

    # -- handlers ----------------------------------------------------------------------------

    def _handler_table(
        self,
    ) -> dict[str, Callable[[Request, Mapping[str, Any], Any, SandboxConfig], tuple[int, Any]]]:
        c, p, f = self.contacts, self.properties, self.forms
        return {
            "contacts.list": lambda r, a, b, cfg: self._list_contacts(r),
            "contacts.create": lambda r, a, b, cfg: c.create(b, cfg),
            "contacts.read": lambda r, a, b, cfg: c.read(a["key"], _query(r)),
            "contacts.update": lambda r, a, b, cfg: c.update(a["key"], _query(r), b, cfg),
            "contacts.archive": lambda r, a, b, cfg: c.archive(a["key"]),
            "contacts.batch_read": lambda r, a, b, cfg: c.batch_read(b, cfg),
            "contacts.batch_create": lambda r, a, b, cfg: c.batch_create(b, cfg),
            "contacts.batch_update": lambda r, a, b, cfg: c.batch_update(b, cfg),
            "contacts.batch_upsert": lambda r, a, b, cfg: c.batch_upsert(b, cfg),
            "contacts.merge": lambda r, a, b, cfg: c.merge(b, cfg),
            "account.details": lambda r, a, b, cfg: (200, account_details(cfg)),
            "properties.list": lambda r, a, b, cfg: p.list_all(),
            "properties.create": lambda r, a, b, cfg: p.create(b),
            "properties.get": lambda r, a, b, cfg: p.get(a["name"]),
            "properties.update": lambda r, a, b, cfg: p.update(a["name"], b),
            "properties.archive": lambda r, a, b, cfg: p.archive(a["name"]),
            "properties.batch_create": lambda r, a, b, cfg: p.batch_create(b, cfg),
            "properties.batch_read": lambda r, a, b, cfg: p.batch_read(b, cfg),
            "properties.batch_archive": lambda r, a, b, cfg: p.batch_archive(b, cfg),
            "groups.list": lambda r, a, b, cfg: p.list_groups(),
            "groups.create": lambda r, a, b, cfg: p.create_group(b),
            "groups.get": lambda r, a, b, cfg: p.get_group(a["name"]),
            "groups.update": lambda r, a, b, cfg: p.update_group(a["name"], b),
            "groups.archive": lambda r, a, b, cfg: p.archive_group(a["name"]),
            "forms.list": lambda r, a, b, cfg: f.list_all(),
            "forms.create": lambda r, a, b, cfg: f.create(b),
            "forms.get": lambda r, a, b, cfg: f.get(a["form_id"]),
            "forms.submit": lambda r, a, b, cfg: f.submit(
                a["portal_id"], a["form_id"], b, authenticated=False, config=cfg
            ),
            "forms.secure_submit": lambda r, a, b, cfg: f.submit(
                a["portal_id"], a["form_id"], b, authenticated=True, config=cfg
            ),
        }

    def _list_contacts(self, request: Request) -> tuple[int, dict[str, Any]]:
        """`GET .../contacts?limit=&after=&properties=`: pages in id order."""
        try:
            limit = int(request.args.get("limit", "10"))
            after = int(request.args.get("after", "0"))
        except ValueError:
            raise errors.validation_error("limit and after must be integers") from None
        if not 1 <= limit <= 100:
            raise errors.validation_error("limit must be between 1 and 100")
        requested = [n for n in _query(request).get("properties", "").split(",") if n] or None
        ids = [i for i in self.store.contact_ids() if i > after]
        page = ids[:limit]
        body: dict[str, Any] = {
            "results": [
                self.contacts.serialize(self.store.get_contact(i), requested)  # type: ignore[arg-type]
                for i in page
            ]
        }
        if len(ids) > limit:
            body["paging"] = {"next": {"after": str(page[-1])}}
        return 200, body

    def _admin(self, endpoint: str, request: Request, args: Mapping[str, Any]) -> Response:
        if endpoint == "admin.dump":
            return _json_response(200, dump_store(self.store, self.contacts))
        if endpoint == "admin.stats":
            return _json_response(200, self.stats.snapshot())
        if endpoint == "admin.contact":
            view = contact_view(self.store, self.contacts, args["email"])
            if view is None:
                return _error_response(errors.not_found(f"No contact with email {args['email']}"))
            return _json_response(200, view)
        if endpoint == "admin.additional_emails":
            try:
                body = _json_body(request)
                if not isinstance(body, dict) or "emails" not in body:
                    raise errors.bad_json('the body must be {"emails": [...]}')
                key = args["contact_id"]
                if not (key.isascii() and key.isdigit()):
                    raise errors.not_found(f"No contact with id {key}")
                with self.store.transaction():
                    record = self.contacts.set_additional_emails(int(key), body["emails"])
                return _json_response(200, record)
            except ApiError as error:
                return _error_response(error)
        if endpoint == "admin.reset":
            self.reset()
            return _json_response(200, {"status": "reset"})
        if request.method == "GET":
            return _json_response(200, self.config.as_dict())
        try:
            changes = _json_body(request)
            if not isinstance(changes, dict):
                raise errors.bad_json("the body must be an object of settings")
            return _json_response(200, self.update_config(changes).as_dict())
        except ConfigError as error:
            return _error_response(errors.validation_error(str(error)))
        except ApiError as error:
            return _error_response(error)


def account_details(config: SandboxConfig) -> dict[str, Any]:
    """`GET /account-info/v3/details`: the configured portal, US/Eastern, USD, na1."""
    offset_ms = _utc_offset_ms(ACCOUNT_TIME_ZONE)
    sign = "-" if offset_ms < 0 else "+"
    minutes = abs(offset_ms) // 60_000
    return {
        "portalId": config.portal_id,
        **ACCOUNT_DETAILS,
        "additionalCurrencies": [],
        "utcOffset": f"{sign}{minutes // 60:02d}:{minutes % 60:02d}",
        "utcOffsetMilliseconds": offset_ms,
    }


def _utc_offset_ms(zone: str) -> int:
    """The zone's current UTC offset; US/Eastern standard time if the tz database is missing."""
    try:
        offset = datetime.now(ZoneInfo(zone)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        offset = None
    return int(offset.total_seconds() * 1000) if offset is not None else -18_000_000


class _RateLimited(ApiError):
    """A 429 that still carries the rate-limit headers."""

    def __init__(self, status: int, body: dict[str, Any], verdict: Verdict) -> None:
        super().__init__(status, body)
        self.verdict = verdict


def _query(request: Request) -> dict[str, str]:
    """Query parameters; a repeated `properties` (as HubSpot's SDKs send it) is comma-joined."""
    query = request.args.to_dict()
    if "properties" in request.args:
        query["properties"] = ",".join(request.args.getlist("properties"))
    return query


def _json_body(request: Request) -> Any:
    data = request.get_data(cache=True)
    if request.mimetype != "application/json":
        raise errors.crm_error(
            415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"
        )
    if not data.strip():
        raise errors.bad_json("the request body is empty")
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise errors.bad_json("the body is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise errors.validation_error(
            f"Invalid input JSON on line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None


def _json_response(status: int, payload: Any) -> Response:
    if status == 204 or payload is None:
        return Response(status=status)
    return Response(json.dumps(payload), status=status, content_type=JSON_TYPE)


def _error_response(error: ApiError) -> Response:
    body = errors.finish_body(error.body)
    response = Response(json.dumps(body), status=error.status, content_type=JSON_TYPE)
    response.headers["X-HubSpot-Correlation-Id"] = body["correlationId"]
    verdict = getattr(error, "verdict", None)
    if isinstance(verdict, Verdict):
        response.headers.update(verdict.headers())
    return response
