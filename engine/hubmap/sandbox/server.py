"""Starting and stopping the sandbox: in a background thread for tests and benchmarks
(`start_sandbox`), in the foreground for `hubmap sandbox` (`serve`), and reading what landed in a
sandbox database file without a server (`show_contact`, `dump`).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from hubmap.sandbox.app import SandboxApp, contact_view, dump_store
from hubmap.sandbox.config import DEFAULT_TOKEN, SandboxConfig
from hubmap.sandbox.contacts import Contacts
from hubmap.sandbox.store import Store

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DB_FILE_NAME = "sandbox.sqlite3"
#: How long `stop()` waits for requests in flight before closing the database.
STOP_GRACE_SECONDS = 5.0


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request (tests and benchmarks)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class RunningSandbox:
    """A sandbox serving in a background thread; stop it with `.stop()` or a `with` block."""

    def __init__(self, server: BaseWSGIServer, app: SandboxApp, temp_dir: str | None) -> None:
        self._server = server
        self.app = app
        self.store = app.store
        self._temp_dir = temp_dir
        host = str(server.server_address[0])
        host = f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{server.server_port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            name="hubmap-sandbox",
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    @property
    def config(self) -> SandboxConfig:
        return self.app.config

    def configure(self, **changes: Any) -> SandboxConfig:
        """Change settings at runtime (same as `POST /_sandbox/config`)."""
        return self.app.update_config(changes)

    def reset(self) -> None:
        self.app.reset()

    def stats(self) -> dict[str, Any]:
        return self.app.stats.snapshot()

    def set_additional_emails(self, contact_id: int | str, emails: list[str]) -> dict[str, Any]:
        """Give a contact secondary addresses (`hs_additional_emails`, replacing the list) as
        HubSpot's UI would; the API refuses the read-only property. Same checks as
        `POST /_sandbox/contacts/{id}/additional_emails`; raises `ApiError` on a problem."""
        with self.store.transaction():
            return self.app.contacts.set_additional_emails(int(contact_id), emails)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self.app.wait_idle(STOP_GRACE_SECONDS)  # let requests still in flight finish
        self.store.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox(
    db_path: str | Path | None = None,
    host: str = DEFAULT_HOST,
    port: int = 0,
    config: SandboxConfig | None = None,
) -> RunningSandbox:
    """Serve a sandbox in a background thread; port 0 picks a free port (see `.url`).

    Without `db_path` the data lives in a temporary directory removed by `.stop()`;
    without `config` the defaults of `SandboxConfig()` apply.
    """
    config = config or SandboxConfig()
    temp_dir = None
    if db_path is None:
        temp_dir = tempfile.mkdtemp(prefix="hubmap-sandbox-")
        db_path = Path(temp_dir) / DB_FILE_NAME
    store = Store(db_path)
    app = SandboxApp(store, config)
    try:
        server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    except BaseException:
        store.close()
        raise
    return RunningSandbox(server, app, temp_dir)


def serve(
    db_path: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: SandboxConfig | None = None,
) -> None:
    """Serve in the foreground, logging requests, until interrupted (Ctrl-C)."""
    config = config or SandboxConfig()
    store = Store(db_path)
    app = SandboxApp(store, config)
    server = make_server(host, port, app, threaded=True)
    # A token other than the default may be someone's real one: never print it.
    token = repr(config.token) if config.token == DEFAULT_TOKEN else "(as configured)"
    print(
        f"hubmap sandbox on http://{host}:{server.server_port} "
        f"(portal {config.portal_id}, token {token}, data in {db_path})",
        file=sys.stderr,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()


def _open_existing(db_path: str | Path) -> Store:
    if not Path(db_path).exists():
        raise FileNotFoundError(
            f"no sandbox database at {db_path}: a run with --sandbox keeps it beside its state "
            "file (--state S gives S's name with -sandbox.db, as its summary says); give it "
            "with --db FILE"
        )
    return Store(db_path)


def show_contact(db_path: str | Path, email: str) -> dict[str, Any] | None:
    """A contact of a sandbox database by email (case-insensitive), or None."""
    store = _open_existing(db_path)
    try:
        return contact_view(store, Contacts(store), email)
    finally:
        store.close()


def dump(db_path: str | Path) -> dict[str, Any]:
    """Everything in a sandbox database: contacts, custom properties, groups, forms, submissions."""
    store = _open_existing(db_path)
    try:
        return dump_store(store, Contacts(store))
    finally:
        store.close()
