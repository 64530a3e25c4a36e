"""Bounds on evaluating one record: time, and the size of every value an expression builds.

Mapping files are written by anyone, and a few characters of JMESPath or Jinja can loop for hours
or double a value until memory runs out.  Every evaluation therefore runs under a budget; a record
that goes past it is rejected with a reason naming the bound, and the run goes on.

- Time: `run()` (around one record's evaluation; an expression evaluated outside one opens
  its own) gives it `RECORD_SECONDS` of processor time.  One watchdog thread per process looks
  at the evaluating threads every `POLL_SECONDS` and, when one is over, raises `TimeUp` in it
  (`PyThreadState_SetAsyncExc`).  Each budget fires at most once, under the same lock with which
  the evaluating thread leaves it, so `TimeUp` can never arrive after the evaluation has ended.
  The expression wrappers turn it into `OverBudget`, an `ExpressionError`, so the record is
  rejected with the property's name like any other expression error.
- Memory, by construction: no text is longer than `MAX_TEXT_LENGTH`, no list or object has more
  than `MAX_LIST_LENGTH` items, no whole number more than `MAX_INT_BITS` bits (checked before
  the value is built, where it is built: `check_length`, `spend`); all values built for one
  record take at most `MAX_BUILT_BYTES` (`spend` counts them); and an operation that reads a value
  through in C (compare, sort, print, hash) first checks that the value, its repeated parts
  counted each time, is at most `MAX_VALUE_SIZE` items and characters (`check_through`), since
  `[@, @]` ten times over is small in memory but a thousand times larger when printed.

All bounds are far beyond what real orders need: a Shopify order with 250 line items evaluates
in milliseconds and builds well under a megabyte.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from typing import Any

from hubmap.expressions.errors import ExpressionError

RECORD_SECONDS = 2.0
"""Processor time one record's evaluation may take (real orders take a few milliseconds)."""

POLL_SECONDS = 0.1
"""How often the watchdog looks at the evaluating threads (a record may run this much over)."""

MAX_TEXT_LENGTH = 1_000_000
"""The longest text an expression may build (HubSpot stores at most 65,536 characters)."""

MAX_LIST_LENGTH = 1_000_000
"""The most items a list or object built by an expression may have."""

MAX_INT_BITS = 4_096
"""The largest whole number a template may compute (about 1,200 digits)."""

MAX_VALUE_SIZE = 10_000_000
"""The most items and characters, repeated parts counted each time they appear, of a value that
is compared, sorted, printed or hashed, or of the repeated parts of an expression's result."""

MAX_BUILT_BYTES = 64 * 1024 * 1024
"""Memory all values built while evaluating one record may take together (64 MiB)."""


class OverBudget(ExpressionError):
    """A record's evaluation went past one of the bounds above; the message names it."""


class TimeUp(BaseException):
    """Raised in the evaluating thread by the watchdog.  Not an `Exception`, so that no
    `except Exception` on the way can swallow it; the expression wrappers turn it into
    `OverBudget` (`time_error`)."""


def time_error(expression: str = "") -> OverBudget:
    """The error for an evaluation that took too long, naming `expression` when known."""
    where = f" in `{_short(expression)}`" if expression else ""
    return OverBudget(
        f"the evaluation took longer than {RECORD_SECONDS:g} s (the limit for one record){where}; "
        "simplify the expression"
    )


def reason(error: BaseException) -> str:
    """The message of a bound passed (`OverBudget`, or `TimeUp` outside any expression)."""
    return error.message if isinstance(error, OverBudget) else time_error().message


def _short(text: str, length: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


# ------------------------------------------------------------------------------- the budget


class Budget:
    """One evaluation's budget: its thread, what it has built, whether its time is up."""

    __slots__ = ("built", "depth", "fired", "seen_at", "thread")

    def __init__(self, thread: int):
        self.thread = thread
        self.built = 0  # bytes of values built so far
        self.depth = 0  # run() calls of this thread inside each other
        self.fired = False  # the watchdog raised TimeUp (it does so once)
        self.seen_at: float | None = None  # processor time when the watchdog first saw it


_ACTIVE: dict[int, Budget] = {}  # thread id -> its budget, while it evaluates
ACTIVE = _ACTIVE  # read-only for the hot paths: `ACTIVE.get(get_ident())` is `current()`
get_ident = threading.get_ident
_LOCK = threading.Lock()  # held to fire, and to leave a budget
_WATCHDOG: list[threading.Thread] = []


def current() -> Budget | None:
    """The budget of the evaluation running in this thread, if any."""
    return _ACTIVE.get(threading.get_ident())


def run(function: Any, *arguments: Any) -> Any:
    """`function(*arguments)` under this thread's budget, a new one if it has none (one record's
    evaluation).  Raises `TimeUp` when the time ran out outside any expression, after leaving.

    A function rather than a `with` block: `__exit__` could be interrupted at its first
    instruction, before it can protect itself; here leaving is retried in a frame already
    running, and the retry cannot be interrupted (a budget fires once)."""
    budget, level = _enter()
    try:
        return function(*arguments)
    finally:
        try:
            _leave(budget, level)
        except TimeUp:
            _leave(budget, level)
            raise


def _enter() -> tuple[Budget, int]:
    if not _WATCHDOG:
        _start_watchdog()
    thread = get_ident()
    budget = _ACTIVE.get(thread)
    if budget is None:  # no lock needed to come in: the watchdog reads a copy of the table
        budget = _ACTIVE[thread] = Budget(thread)
    budget.depth += 1
    return budget, budget.depth


def _leave(budget: Budget, level: int) -> None:
    """Leave `level` of `budget` (`run` calls inside each other share one budget); leaving it
    again is harmless."""
    with _LOCK:
        if budget.depth < level:  # left already: this is the retry
            return
        budget.depth = level - 1
        if budget.depth:
            return
        if _ACTIVE.get(budget.thread) is budget:
            del _ACTIVE[budget.thread]
        if budget.fired:  # fired, and perhaps not delivered yet: never outside the evaluation
            _set_async_exc(budget.thread, None)


def alone(function: Any, argument: Any, expression: str) -> Any:
    """`function(argument)` under a budget of its own (an expression evaluated outside a
    record's evaluation: records.path, a catalog's key ...); its time up is an OverBudget."""
    try:
        return run(function, argument)
    except TimeUp:
        raise time_error(expression) from None


# --------------------------------------------------------------------------- the watchdog


def _set_async_exc(thread: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(exception) if exception else None
    )


def _processor_time(thread: int) -> float:
    """The thread's own processor time (wall time where the system cannot say)."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread))
    except (AttributeError, OSError):
        return time.monotonic()


def _watch() -> None:
    while True:
        time.sleep(POLL_SECONDS)
        with _LOCK:  # a thread leaves its budget under this lock: it is still evaluating here
            for thread, budget in list(_ACTIVE.items()):
                if budget.fired:
                    continue
                now = _processor_time(thread)
                if budget.seen_at is None:
                    budget.seen_at = now
                elif now - budget.seen_at >= RECORD_SECONDS:
                    budget.fired = True
                    _set_async_exc(thread, TimeUp)


def _start_watchdog() -> None:
    with _LOCK:
        if not _WATCHDOG:
            watchdog = threading.Thread(target=_watch, name="hubmap-budget", daemon=True)
            watchdog.start()
            _WATCHDOG.append(watchdog)


def _after_fork() -> None:  # a child process has no watchdog thread, and no evaluations yet
    global _LOCK
    _LOCK = threading.Lock()
    _WATCHDOG.clear()
    _ACTIVE.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


# ------------------------------------------------------------------------------ the sizes


def check_length(
    length: int, what: str, unit: str = "characters", limit: int = MAX_TEXT_LENGTH
) -> None:
    """Refuse to build `what` when it would be `length` long (before building it)."""
    if length > limit:
        raise OverBudget(f"{what} would build a value of {length:,} {unit}; the limit is {limit:,}")


_getsizeof = sys.getsizeof
_SMALL = min(MAX_TEXT_LENGTH, MAX_LIST_LENGTH)  # bytes: below this no length can be too long


def spend(value: Any, what: str) -> Any:
    """`value`, just built by `what`: check its length, count its memory against the record."""
    size = _getsizeof(value)
    if size > _SMALL:
        if isinstance(value, str):
            check_length(len(value), what)
        elif isinstance(value, list | tuple | dict):
            check_length(len(value), what, "items", MAX_LIST_LENGTH)
    budget = _ACTIVE.get(get_ident())
    if budget is not None:
        budget.built += size
        if budget.built > MAX_BUILT_BYTES:
            raise OverBudget(
                f"{what}: the values built for this record take more than "
                f"{MAX_BUILT_BYTES // (1024 * 1024)} MiB (the limit for one record); simplify "
                "the expression"
            )
    return value


def spend_bytes(size: int, what: str) -> None:
    """Count `size` bytes of work memory (hash keys, for example) against the record."""
    budget = current()
    if budget is not None:
        budget.built += size
        if budget.built > MAX_BUILT_BYTES:
            spend(None, what)  # the same message


def check_bits(bits: int, what: str) -> None:
    """Refuse a whole number of more than MAX_INT_BITS bits (before or after computing it)."""
    if bits > MAX_INT_BITS:
        raise OverBudget(
            f"{what} would give a number of more than {MAX_INT_BITS:,} bits "
            f"(about {MAX_INT_BITS * 3 // 10:,} digits)"
        )


class _Past(Exception):
    pass


_CONTAINERS = (list, tuple, dict)


def through_size(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """The items and characters of `value`, repeated parts counted each time (as printing it or
    comparing it item by item reads them); `limit + 1` when it is larger.  Each distinct part is
    visited once, so a value of ten doublings costs ten steps, not a thousand."""
    if not isinstance(value, _CONTAINERS):
        return len(value) if isinstance(value, str) else 1
    try:
        return _through(value, {}, limit)
    except _Past:
        return limit + 1


def _through(value: Any, known: dict[int, int], limit: int) -> int:
    key = id(value)
    size = known.get(key)
    if size is not None:
        return size
    size = 1
    items = value
    if isinstance(value, dict):
        size += sum(len(k) + 1 if isinstance(k, str) else 1 for k in value)
        items = value.values()
    for item in items:  # texts and numbers inline: most items are
        if isinstance(item, str):
            size += len(item) + 1
        elif isinstance(item, _CONTAINERS):
            size += _through(item, known, limit)
        else:
            size += 1
        if size > limit:
            raise _Past
    known[key] = size  # `value` holds its parts alive while they are walked: ids are safe
    return size


def check_through(value: Any, what: str, limit: int = MAX_VALUE_SIZE) -> None:
    """Refuse to read `value` through (compare, sort, print, hash it) when it is too large."""
    try:
        size = through_size(value, limit)
    except RecursionError:
        raise OverBudget(f"{what}: the value is nested too deeply") from None
    if size > limit:
        raise OverBudget(
            f"{what} would read a value of more than {limit:,} items and characters (its "
            "repeated parts counted each time); simplify the expression"
        )


def check_repeats(value: Any, what: str, limit: int = MAX_VALUE_SIZE) -> None:
    """Refuse a result whose repeated parts (the same list or object placed more than once, as
    `[@, @]` does) add up to more than `limit`: printing or comparing it would read them all.
    A large value without repeats (a big document) is fine."""
    if not isinstance(value, _CONTAINERS) or through_size(value, limit) <= limit:
        return  # (small, so its repeats are small: the usual case, and quick to know)
    walk = _Repeats(limit)
    try:
        walk.size(value)
    except RecursionError:
        raise OverBudget(f"{what}: the value is nested too deeply") from None
    except _Past:
        raise OverBudget(
            f"{what} gives a value that repeats parts of itself more than {limit:,} items and "
            "characters' worth; simplify the expression"
        ) from None


class _Repeats:
    __slots__ = ("known", "limit", "repeated")

    def __init__(self, limit: int):
        self.known: dict[int, int] = {}
        self.limit = limit
        self.repeated = 0

    def size(self, value: Any) -> int:
        if isinstance(value, str) and len(value) < 2:  # one character: often the same object
            return len(value) + 1
        if not isinstance(value, str | list | tuple | dict):
            return 1
        size = self.known.get(id(value))
        if size is not None:
            self.repeated += size
            if self.repeated > self.limit:
                raise _Past
            return size
        if isinstance(value, str):
            self.known[id(value)] = size = len(value) + 1
            return size
        size = 1
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            size += self.size(item)
        if isinstance(value, dict):  # keys are shared by the JSON reader: not repeats
            size += sum(len(key) + 1 if isinstance(key, str) else 1 for key in value)
        self.known[id(value)] = size
        return size
