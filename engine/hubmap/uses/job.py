"""What one run of a mapping works with, shared by its contacts and forms parts."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from hubmap.evaluate import CompiledMapping
from hubmap.state import StateStore
from hubmap.uses.rejects import RejectSink
from hubmap.uses.summary import Progress, Summary


@dataclass(frozen=True)
class Job:
    compiled: CompiledMapping
    client: Any  # a HubSpotClient, or a ReadOnlyClient for a dry run
    state: StateStore
    scope: str
    run_id: int
    summary: Summary
    rejects: RejectSink
    progress: Progress
    lock: threading.Lock  # one SQLite connection, shared by the run's worker threads


class JobPart:
    """A part of a run (its contacts sync, its forms sync): what it works with, from the Job."""

    def __init__(self, job: Job):
        self.compiled = job.compiled
        self.mapping = job.compiled.mapping
        self.client = job.client
        self.state = job.state
        self.scope = job.scope
        self.run_id = job.run_id
        self.summary = job.summary
        self.rejects = job.rejects
        self.progress = job.progress
        self.lock = job.lock
        self.versioned = self.mapping.records.version is not None
