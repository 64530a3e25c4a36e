"""Running it: the intake server (waitress) with the worker as a thread, or the worker alone.

`Service` binds the port, starts the worker thread, and serves until `stop()` — which a SIGTERM
or SIGINT calls in `serve_forever`.  Stopping is graceful, in this order: new webhooks are
answered 503 (senders retry), the listening socket closes, requests in flight finish (their
events are committed before they are answered), then the worker finishes the batch in hand.
Whatever is not finished stays in the queue file, claimed by this process; the next start
puts it back in the queue (see `Queue.recover`), so nothing accepted is lost.

It refuses to start a worker that could only die: no HubSpot token (unless --sandbox; with
--no-worker none is needed) or a state file that cannot be opened.  The worker thread's end is
kept (`worker_failure`) and /healthz answers 503 from then on.  A body over max_body_bytes is
read to its end and thrown away (up to DISCARD_BODY_BYTES more), so the sender receives the 413.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from io import BytesIO
from types import FrameType
from typing import Any

from typing_extensions import Self
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.receiver import FixedStreamReceiver
from waitress.server import create_server
from waitress.utilities import RequestEntityTooLarge

from hubmap import sql
from hubmap.hubspot import HubSpotConfigError, HubSpotSettings
from hubmap.hubspot.config import TOKEN_ENV
from hubmap.serve.app import IntakeApp
from hubmap.serve.config import (
    ServeConfig,
    load_mappings,
    route_works,
    secrets_from,
    token_environ,
    works,
)
from hubmap.serve.queue import Queue
from hubmap.serve.status import WorkerStatusApp
from hubmap.serve.worker import Worker
from hubmap.uses.context import open_state

log = logging.getLogger("hubmap.serve")

LOOP_TICK_SECONDS = 0.2  # how often the server loop looks at the stop flag
DRAIN_SECONDS = 10.0  # how long requests in flight may take to finish on shutdown
WORKER_STOP_SECONDS = 30.0  # how long the batch in hand may take to finish on shutdown
# A body over max_body_bytes is read to its end and thrown away, not stored, so the sender (which
# writes the whole body before it reads the answer) receives the 413 instead of a reset
# connection; up to this many bytes, after which waitress answers 413 and closes.
DISCARD_BODY_BYTES = 64 * 1024 * 1024
# A webhook (headers and a typical order body) read in one call, not in 8 KiB pieces.
RECEIVE_BYTES = 64 * 1024
# waitress warns "Task queue depth is N" each time a request waits for a free thread, which at
# a burst of webhooks (each thread waiting for its group commit) is every other request: one
# such line per this many seconds says the same.
QUEUE_DEPTH_WARNING_SECONDS = 60.0


class Service:
    """Intake server + worker thread in this process (tests and benchmarks run it in a thread)."""

    def __init__(
        self,
        config: ServeConfig,
        environ: dict[str, str],
        *,
        worker: bool = True,
        sandbox: bool = False,
    ):
        mappings = load_mappings(config)  # HubmapError before anything starts
        secrets = secrets_from(config, environ)
        if worker:
            check_worker_can_start(config, environ, sandbox=sandbox)
        for mapping in mappings.values():
            _refuse_grouping(mapping)
        self.config = config
        self.queue = Queue(config.queue_path)
        self.worker = (
            Worker(config, works(config, mappings), self.queue, environ, sandbox=sandbox)
            if worker
            else None
        )
        self._worker_thread: threading.Thread | None = None
        self.worker_failure: str | None = None  # why the worker thread ended, when it did
        self.app = IntakeApp(
            config,
            secrets,
            self.queue,
            route_works(config, mappings),
            on_queued=self.worker.wake if self.worker else None,
            worker_health=self._worker_health if self.worker else None,
        )
        self.server: Any = create_server(
            self.app,
            host=config.host,
            port=config.port,
            threads=config.threads,
            max_request_body_size=config.max_body_bytes + DISCARD_BODY_BYTES,
            ident="hubmap",
            clear_untrusted_proxy_headers=True,
            recv_bytes=RECEIVE_BYTES,
        )
        self.server.channel_class = _channel_refusing_above(config.max_body_bytes)
        _quiet_queue_warnings()
        self.port = int(self.server.effective_port)
        self.url = f"http://{config.host}:{self.port}"
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._loop_thread: threading.Thread | None = None

    def _worker_alive(self) -> bool:
        return self._worker_thread is not None and self._worker_thread.is_alive()

    def _worker_health(self) -> dict[str, Any]:
        assert self.worker is not None
        return {
            "running": self._worker_alive(),
            "stopped_because": self.worker_failure,
            "hubspot": self.worker.hubspot.report(),
            "portals": self.worker.portal_stats(),
        }

    def _start_worker(self) -> None:
        if self.worker is not None:
            self.queue.recover()  # a previous process's claims, at once
            self._worker_thread = threading.Thread(
                target=self._run_worker, name="hubmap-worker", daemon=True
            )
            self._worker_thread.start()

    def _run_worker(self) -> None:
        assert self.worker is not None
        try:
            self.worker.run()
        except Exception as failure:  # reported on /healthz and in the log
            self.worker_failure = str(failure) or repr(failure)
            log.exception("the worker stopped")

    # -- in the background (tests, benchmarks) -------------------------------------------------

    def start(self) -> Self:
        self._start_worker()
        self._loop_thread = threading.Thread(target=self._serve, name="hubmap-serve", daemon=True)
        self._loop_thread.start()
        return self

    def __enter__(self) -> Self:
        return self.start() if self._loop_thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- in the foreground (`hubmap serve`) -----------------------------------------------------

    def serve_forever(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully."""

        def on_signal(number: int, frame: FrameType | None) -> None:
            log.info("%s received: stopping", signal.Signals(number).name)
            self.request_stop()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._start_worker()
            log.info(
                "hubmap serve on %s; routes: %s",
                self.url,
                ", ".join(r.path for r in self.config.routes),
            )
            self._serve()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            self._stop_worker()
            self.queue.close()

    # -- stopping ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.app.draining = True
        self._stopping.set()
        self.server.pull_trigger()

    def stop(self) -> None:
        """Stop serving and the worker (from another thread than the server loop's)."""
        if self._stopped.is_set():
            return
        self.request_stop()
        if self._loop_thread is not None:
            self._loop_thread.join()
        self._stop_worker()
        self.queue.close()
        self._stopped.set()

    def _stop_worker(self) -> None:
        if self.worker is not None and self._worker_thread is not None:
            self.worker.stop()
            self._worker_thread.join(WORKER_STOP_SECONDS)
            if self._worker_thread.is_alive():
                log.warning("the worker is still sending; its events stay in the queue")

    def _serve(self) -> None:
        server = self.server
        loop = server.asyncore.loop
        poll = server.adj.asyncore_use_poll
        try:
            while not self._stopping.is_set():
                loop(timeout=LOOP_TICK_SECONDS, map=server._map, use_poll=poll, count=1)
            # Stop accepting: close the listening socket only (the trigger and the open
            # connections stay, so answers being written still reach their senders).
            server.asyncore.dispatcher.close(server)
            deadline = time.monotonic() + DRAIN_SECONDS
            while time.monotonic() < deadline and self._busy():
                loop(timeout=0.05, map=server._map, use_poll=poll, count=1)
        finally:
            server.task_dispatcher.shutdown(timeout=DRAIN_SECONDS)
            server.asyncore.close_all(server._map)

    def _busy(self) -> bool:
        if self.app.in_flight:
            return True
        channels = list(self.server.active_channels.values())
        return any(channel.requests or channel.total_outbufs_len for channel in channels)


def run_worker(
    config: ServeConfig,
    environ: dict[str, str],
    *,
    sandbox: bool = False,
    status_port: int | None = None,
) -> None:
    """`hubmap worker`: only the worker, in the foreground, until SIGTERM or SIGINT; with
    `status_port`, its /healthz and /metrics on that port (0: a free one, logged)."""
    mappings = load_mappings(config)
    for mapping in mappings.values():
        _refuse_grouping(mapping)
    check_worker_can_start(config, environ, sandbox=sandbox)
    queue = Queue(config.queue_path)
    worker = Worker(config, works(config, mappings), queue, environ, sandbox=sandbox)

    def on_signal(number: int, frame: FrameType | None) -> None:
        log.info("%s received: finishing the batch in hand", signal.Signals(number).name)
        worker.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    status = None
    running = threading.Event()
    if status_port is not None:
        status = create_server(
            WorkerStatusApp(worker, queue, running.is_set),
            host=config.host,
            port=status_port,
            threads=2,
            ident="hubmap-worker",
        )
        threading.Thread(target=status.run, name="hubmap-worker-status", daemon=True).start()
        log.info(
            "hubmap worker status on http://%s:%s (/healthz, /metrics)",
            config.host,
            int(status.effective_port),
        )
    try:
        queue.recover()
        log.info(
            "hubmap worker on %s (queue %s)", ", ".join(worker.work), sql.shown(config.queue_path)
        )
        running.set()
        worker.run()
    finally:
        running.clear()
        if status is not None:
            status.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
        queue.close()


def _refuse_grouping(mapping: Any) -> None:
    from hubmap.problems import HubmapError, Location, Problem

    if mapping.records.group_by is not None:
        raise HubmapError(
            Problem(
                "HM806",
                f"mapping '{mapping.name}' joins rows with records.group_by; a webhook "
                "carries whole orders",
                Location(mapping.file),
                hint="serve a mapping that reads one order per record",
            )
        )


def check_worker_can_start(config: ServeConfig, environ: dict[str, str], *, sandbox: bool) -> None:
    """Refuse before anything listens what would make the worker stop at once: no HubSpot token
    (HubSpotConfigError) or a state file that cannot be opened (ConfigurationError).  Otherwise
    the intake would answer 200 to webhooks that nothing sends."""
    if not sandbox:
        try:
            for token_env in sorted({route.token_env for route in config.routes}):
                if token_env != TOKEN_ENV and not environ.get(token_env):
                    raise HubSpotConfigError(
                        f"{token_env} is not set (the HubSpot token of the "
                        "routes whose hubspot_token_env names it)"
                    )
                HubSpotSettings.from_env(token_environ(environ, token_env))
        except HubSpotConfigError as error:
            raise HubSpotConfigError(
                f"{error}; or start with --sandbox (a local HubSpot stand-in), or with "
                "--no-worker to only receive and queue (then run `hubmap worker` where the "
                "token is)"
            ) from None
    open_state(config.state_path).close()


class _OncePer(logging.Filter):
    """Lets a record through at most once per `seconds` (the ones between are dropped)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


def _quiet_queue_warnings() -> None:
    queue_log = logging.getLogger("waitress.queue")
    if not any(isinstance(f, _OncePer) for f in queue_log.filters):
        queue_log.addFilter(_OncePer(QUEUE_DEPTH_WARNING_SECONDS))


class _DiscardedBody:
    """The buffer of a body that is refused: counts nothing, keeps nothing."""

    def append(self, data: bytes) -> None:
        pass

    def __len__(self) -> int:
        return 0

    def getfile(self) -> BytesIO:
        return BytesIO()

    def close(self) -> None:
        pass


def _channel_refusing_above(limit: int) -> type[HTTPChannel]:
    """A waitress channel whose requests read a body over `limit` bytes to its end without
    keeping it (the application then answers 413), and stop a chunked one at `limit`."""

    class Parser(HTTPRequestParser):  # type: ignore[misc]
        def parse_header(self, header_plus: bytes) -> None:
            super().parse_header(header_plus)
            if not self.chunked and self.content_length > limit:
                self.body_rcv = FixedStreamReceiver(self.content_length, _DiscardedBody())

        def received(self, data: bytes) -> int:
            consumed = int(super().received(data))
            if self.chunked and not self.completed and self.body_bytes_received > limit:
                self.error = RequestEntityTooLarge(f"the body is larger than {limit} bytes")
                self.completed = True
            return consumed

    class Channel(HTTPChannel):  # type: ignore[misc]
        parser_class = Parser

    return Channel
