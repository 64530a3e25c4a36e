"""Where rejected and failed records go: the reject file (one JSON line each, with its reason)
and the state (pending until counted, sent or replayed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from hubmap.evaluate import Rejected
from hubmap.state import StateStore


class RejectSink:
    def __init__(
        self, state: StateStore, scope: str, run_id: int, path: str | None, lock: threading.Lock
    ):
        self.state = state
        self.scope = scope
        self.run_id = run_id
        self.lock = lock
        self.path = path
        self.stream: IO[str] | None = open(path, "w", encoding="utf-8") if path else None

    def close(self) -> None:
        if self.stream is not None:
            with self._named():
                self.stream.close()

    @contextmanager
    def _named(self) -> Iterator[None]:
        """A failed write (a full disk) says which file it was: a buffered write fails later, at
        a flush, without the file's name."""
        try:
            yield
        except OSError as error:
            if error.filename:
                raise
            raise OSError(error.errno, error.strerror, self.path) from None

    def rejected(self, items: list[Rejected]) -> None:
        self.add(
            [
                {
                    "where": r.where,
                    "order_id": r.order_id,
                    "property": r.property_name,
                    "reason": r.reason,
                    "code": r.code,
                    "record": r.raw,
                }
                for r in items
            ]
        )

    def add(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.lock:
            if self.stream is not None:
                with self._named():
                    for row in rows:
                        self.stream.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            self.state.add_rejects(self.scope, self.run_id, rows)
