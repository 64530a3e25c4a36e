"""What /metrics says of the queue and of HubSpot, for the intake and for `hubmap worker`'s own
status port: jobs by mapping (one per mapping and portal) and status, the oldest event waiting,
and per portal the HubSpot calls this process made and how many were answered 429."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hubmap.serve.queue import STATUSES, Queue


def label_text(pairs: tuple[tuple[str, str], ...]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in pairs) + "}" if pairs else ""


def queue_lines(queue: Queue, names: Iterable[str]) -> list[str]:
    """Jobs by mapping and status, and the age of the oldest event not yet sent."""
    lines = [
        (
            "# HELP hubmap_queue_jobs Webhook jobs (one per event and mapping) by status: "
            "queued, processing, sent, skipped, dead."
        ),
        "# TYPE hubmap_queue_jobs gauge",
    ]
    counts = queue.counts()
    for mapping in sorted(set(names) | {m for m, _ in counts}):
        for status in STATUSES:
            pairs = (("mapping", mapping), ("status", status))
            lines.append(f"hubmap_queue_jobs{label_text(pairs)} {counts.get((mapping, status), 0)}")
    backlog = queue.backlog()
    lines += [
        (
            "# HELP hubmap_queue_oldest_seconds Age of the oldest event not yet sent "
            "(queued or being sent); 0 when none waits."
        ),
        "# TYPE hubmap_queue_oldest_seconds gauge",
        f"hubmap_queue_oldest_seconds {backlog['oldest_queued_seconds'] or 0}",
    ]
    return lines


def hubspot_lines(health: dict[str, Any], portals: dict[str, Any]) -> list[str]:
    """Whether HubSpot fails, and per portal (by its token's variable) the calls this process
    made and the 429s among them (`portals`: variable -> the client's ClientStats)."""
    lines = [
        (
            "# HELP hubmap_hubspot_failing 1 while the last batch or probe of HubSpot failed "
            "(webhooks are still queued), else 0."
        ),
        "# TYPE hubmap_hubspot_failing gauge",
        f"hubmap_hubspot_failing {int(health['status'] == 'failing')}",
        "# HELP hubmap_hubspot_calls HubSpot calls made by this process, per portal.",
        "# TYPE hubmap_hubspot_calls counter",
    ]
    lines += [
        f"hubmap_hubspot_calls{label_text((('portal', p),))} {s.calls}"
        for p, s in sorted(portals.items())
    ]
    lines += [
        "# HELP hubmap_hubspot_rate_limited HubSpot calls answered 429, per portal.",
        "# TYPE hubmap_hubspot_rate_limited counter",
    ]
    lines += [
        f"hubmap_hubspot_rate_limited{label_text((('portal', p),))} {s.rate_limited}"
        for p, s in sorted(portals.items())
    ]
    return lines
