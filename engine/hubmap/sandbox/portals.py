"""Several stand-in portals behind one address, as HubSpot serves every portal from one API base:
each request goes to the portal whose token it carries (`Authorization: Bearer ...`); an
unknown token reaches the first portal, which answers 401 as HubSpot does.  A portal's admin
routes are under `/_portals/<portal id>/`, for example `/_portals/1001/_sandbox/dump`.

For tests and benchmarks of agencies' setups: one `hubmap serve` writing many portals, each
route with its own token (`hubspot_token_env`)."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from werkzeug.serving import make_server

from hubmap.sandbox.app import SandboxApp
from hubmap.sandbox.config import SandboxConfig
from hubmap.sandbox.server import DEFAULT_HOST, STOP_GRACE_SECONDS, _QuietHandler
from hubmap.sandbox.store import Store

ADMIN_PREFIX = "/_portals/"


class PortalRouter:
    """A WSGI app handing each request to the portal of its token."""

    def __init__(self, apps: list[SandboxApp]):
        self.apps = apps
        self.by_token = {app.config.token: app for app in apps}
        self.by_portal = {str(app.config.portal_id): app for app in apps}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(ADMIN_PREFIX):
            portal, _, rest = path[len(ADMIN_PREFIX) :].partition("/")
            app = self.by_portal.get(portal)
            if app is not None:
                environ = {**environ, "PATH_INFO": "/" + rest}
                return app(environ, start_response)
        _, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        return self.by_token.get(token.strip(), self.apps[0])(environ, start_response)


class RunningPortals:
    """Portals served in a background thread; stop with `.stop()` or a `with` block."""

    def __init__(
        self,
        configs: list[SandboxConfig],
        folder: Path | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
    ):
        if len({c.token for c in configs}) != len(configs) or len(
            {c.portal_id for c in configs}
        ) != len(configs):
            raise ValueError("each portal needs its own token and portal id")
        self._temp = None if folder is not None else tempfile.mkdtemp(prefix="hubmap-portals-")
        base = Path(folder or self._temp)  # type: ignore[arg-type]
        self.apps = [SandboxApp(Store(base / f"portal-{c.portal_id}.db"), c) for c in configs]
        self._server = make_server(
            host, port, PortalRouter(self.apps), threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            daemon=True,
            name="hubmap-portals",
            kwargs={"poll_interval": 0.05},
        )
        self._thread.start()

    def admin_url(self, portal_id: int) -> str:
        """The base of a portal's admin routes (`/_sandbox/dump` ...)."""
        return f"{self.url}{ADMIN_PREFIX}{portal_id}"

    def stats(self) -> dict[int, dict[str, Any]]:
        return {app.config.portal_id: app.stats.snapshot() for app in self.apps}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        for app in self.apps:
            app.wait_idle(STOP_GRACE_SECONDS)
            app.store.close()
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
