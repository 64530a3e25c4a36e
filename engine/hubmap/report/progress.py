"""Progress for long runs: a bar on a terminal (rich), plain lines otherwise."""

from __future__ import annotations

import sys
import time

from hubmap.uses.summary import Progress

PLAIN_EVERY_SECONDS = 5.0


class _RichProgress(Progress):
    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        # the time left shows where a phase's total is known (an NDJSON or CSV input's lines)
        self.bar = Bar(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = None
        self.started = False

    def phase(self, name: str, total: int | None) -> None:
        if not self.started:
            self.bar.start()
            self.started = True
        self.task = self.bar.add_task(name, total=total)

    def advance(self, amount: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, amount)

    def done(self) -> None:
        if self.task is not None:
            total = self.bar.tasks[-1].completed
            self.bar.update(self.task, total=total, completed=total)
        self.task = None

    def __del__(self) -> None:
        if self.started:
            self.bar.stop()


class _PlainProgress(Progress):
    """One line every few seconds and at the end of each phase (for logs and CI)."""

    def __init__(self) -> None:
        self.name = ""
        self.count = 0
        self.total: int | None = None
        self.last = self.started = 0.0

    def phase(self, name: str, total: int | None) -> None:
        self.name, self.total, self.count, self.last = name, total, 0, time.monotonic()
        self.started = self.last

    def advance(self, amount: int = 1) -> None:
        self.count += amount
        if time.monotonic() - self.last >= PLAIN_EVERY_SECONDS:
            self.last = time.monotonic()
            self._line()

    def done(self) -> None:
        self._line()

    def _line(self) -> None:
        # the total is the input's lines; refunds inside orders are records too, so the count
        # can pass it: then the total says nothing more
        of = f"/{self.total}" if self.total is not None and self.count <= self.total else ""
        print(f"{self.name}: {self.count}{of}{self._left()}", file=sys.stderr, flush=True)

    def _left(self) -> str:
        """About how long the phase still takes, at its pace so far (with a known total)."""
        if not self.total or not self.count or self.count >= self.total:
            return ""
        seconds = (time.monotonic() - self.started) * (self.total - self.count) / self.count
        return f" (about {time_text(seconds)} left)"


def time_text(seconds: float) -> str:
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def terminal_progress() -> Progress:
    return _RichProgress() if sys.stderr.isatty() else _PlainProgress()
