"""`hubmap serve`, `hubmap worker` and `hubmap queue`: build the intake service (or the worker
alone) from a configuration, refusing a mapping, a queue, a state file or a missing HubSpot token
(unless --sandbox or --no-worker) before anything listens; show the queue, and put dead letters back into it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from hubmap.problems import HubmapError
from hubmap.uses.outcome import (
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    ConfigurationError,
    Outcome,
)


def configure(
    config_path: str | None,
    mapping_paths: tuple[str, ...],
    auth: str | None,
    secret_env: str | None,
    route_path: str,
    **overrides: Any,
) -> Outcome:
    """The serve configuration from a file, or one route from flags."""
    from hubmap.serve import config_from_flags, load_config

    try:
        if config_path:
            config = load_config(config_path)
        elif mapping_paths and auth and secret_env:
            config = config_from_flags(
                mappings=list(mapping_paths), auth=auth, secret_env=secret_env, path=route_path
            )
        else:
            return Outcome(
                None,
                EXIT_USAGE,
                message="give --config FILE, or --mapping, --auth and --secret-env",
            )
    except HubmapError as error:
        return Outcome(None, EXIT_USAGE, list(error.problems), error=error)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return Outcome(dataclasses.replace(config, **changes))


def service(config: Any, environ: dict[str, str], *, worker: bool, sandbox: bool) -> Outcome:
    """The intake server with its worker thread, ready to `serve_forever`."""
    from hubmap.hubspot import HubSpotConfigError
    from hubmap.serve import Service
    from hubmap.serve.queue import QueueError

    try:
        return Outcome(Service(config, environ, worker=worker, sandbox=sandbox))
    except HubmapError as error:
        return Outcome(None, EXIT_USAGE, list(error.problems), error=error)
    except (QueueError, HubSpotConfigError, ConfigurationError, OSError) as error:
        return Outcome(None, EXIT_USAGE, message=str(error), error=error)


def worker(
    config: Any, environ: dict[str, str], *, sandbox: bool, status_port: int | None = None
) -> Outcome:
    """Run the worker alone until it is stopped."""
    from hubmap.hubspot import HubSpotConfigError
    from hubmap.serve import run_worker
    from hubmap.serve.queue import QueueError

    try:
        run_worker(config, environ, sandbox=sandbox, status_port=status_port)
    except HubmapError as error:
        return Outcome(None, EXIT_USAGE, list(error.problems), error=error)
    except (QueueError, HubSpotConfigError, ConfigurationError) as error:
        return Outcome(None, EXIT_USAGE, message=str(error), error=error)
    return Outcome(None)


def queue_status(path: str) -> Outcome:
    """Jobs by mapping and status, and the dead letters (exit 1 when there are any)."""
    from hubmap.serve import status_report

    report = status_report(path)
    if report is None:
        return Outcome(
            None, EXIT_USAGE, message=f"no queue file at '{path}' (nothing has been received yet)"
        )
    dead = sum(counts["dead"] for counts in report["mappings"].values())
    return Outcome(report, EXIT_PROBLEMS if dead else EXIT_OK)


def requeue(path: str, events: list[int] | None, mapping: str | None) -> Outcome:
    """Dead letters (all, or those `events`, of one `mapping` or all) queued again."""
    from hubmap.serve import Queue

    if not Path(path).exists():
        return Outcome(None, EXIT_USAGE, message=f"no queue file at '{path}'")
    queue = Queue(path)
    try:
        return Outcome(queue.requeue(events, mapping))
    finally:
        queue.close()
