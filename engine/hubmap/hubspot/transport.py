"""Transports: the only code in hubmap that talks to the network.

A transport has one method, ``send(method, url, *, json, params, headers, timeout) -> Response``.
It returns whatever HTTP answer it got (any status) and raises `HubSpotTimeout` or
`HubSpotConnectionError` when there is no complete answer (both retried by the client), or a plain
`HubSpotTransportError` for a request that cannot be sent at all (not retried). It knows nothing of HubSpot: retries,
rate limits and error bodies are the client's business.

`RequestsTransport` runs over one ``requests.Session`` with a connection pool sized for the
threads that share it. `MockTransport` calls a function instead, for tests without sockets.
"""

from __future__ import annotations

import json as _json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from hubmap.hubspot.config import DEFAULT_POOL_SIZE
from hubmap.hubspot.errors import HubSpotConnectionError, HubSpotTimeout, HubSpotTransportError

Timeout = float | tuple[float, float]

USER_AGENT = "hubmap (+https://github.com/hubmap)"


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, headers (case-insensitive), raw body, seconds it took."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.headers, CaseInsensitiveDict):
            object.__setattr__(self, "headers", CaseInsensitiveDict(dict(self.headers)))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The parsed JSON body, or None when the body is empty or not JSON (e.g. a proxy's HTML)."""
        if not self.body:
            return None
        try:
            return _json.loads(self.body)
        except ValueError:
            return None

    @classmethod
    def of_json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
        """A JSON response (for mock transports and test servers)."""
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, all_headers, _json.dumps(data).encode())


@runtime_checkable
class Transport(Protocol):
    def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout,
    ) -> Response: ...

    def close(self) -> None: ...


class RequestsTransport:
    """`Transport` over a ``requests.Session`` whose pool holds ``pool_size`` connections per host.

    The session is shared by all threads of a run (requests' connection pools are thread-safe);
    requests' own retries are off, the client's retry policy decides.
    """

    def __init__(
        self, *, pool_size: int = DEFAULT_POOL_SIZE, session: requests.Session | None = None
    ):
        self._session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT

    def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout,
    ) -> Response:
        started = time.monotonic()
        try:
            answer = self._session.request(
                method,
                url,
                json=json,
                params=params,
                headers=dict(headers or {}),
                timeout=timeout,
                allow_redirects=False,
            )
            body = answer.content  # read it all here so a drop mid-body is a transport error
        except requests.Timeout as exc:
            raise HubSpotTimeout(
                f"no answer within the timeout ({type(exc).__name__})",
                method=method,
                path=_path(url),
            ) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise HubSpotConnectionError(
                f"connection failed ({type(exc).__name__})", method=method, path=_path(url)
            ) from None
        except requests.RequestException as exc:  # bad URL, undecodable body ...: not retried
            raise HubSpotTransportError(
                f"request failed ({type(exc).__name__})", method=method, path=_path(url)
            ) from None
        return Response(
            answer.status_code,
            CaseInsensitiveDict(answer.headers),
            body,
            time.monotonic() - started,
        )

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return "RequestsTransport()"


Handler = Callable[..., Response]


class MockTransport:
    """`Transport` that hands each request to ``handler(method, url, json=, params=, headers=)``.

    The handler returns a `Response` (or raises `HubSpotTimeout` / `HubSpotConnectionError`).
    Every request is kept in ``requests`` for assertions.
    """

    def __init__(self, handler: Handler):
        self._handler = handler
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout,
    ) -> Response:
        record = {
            "method": method,
            "url": url,
            "path": _path(url),
            "json": json,
            "params": dict(params or {}),
            "headers": dict(headers or {}),
        }
        with self._lock:
            self.requests.append(record)
        return self._handler(method, url, json=json, params=params, headers=headers)

    def close(self) -> None:
        pass


def _path(url: str) -> str:
    """The path of a URL without scheme, host or query (what logs and errors may show)."""
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    path = rest[slash:] if slash >= 0 else "/"
    return path.split("?", 1)[0]
