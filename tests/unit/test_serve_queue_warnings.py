"""waitress's "Task queue depth" warning, written for every request that waits for a thread, is
let through once per minute by `hubmap serve` (a burst of webhooks would otherwise log every
other request); other waitress warnings are untouched."""

from __future__ import annotations

import logging

import pytest

from hubmap.serve import service as service_module


def test_the_queue_depth_warning_is_let_through_once_per_interval(monkeypatch, caplog):
    clock = [1000.0]
    monkeypatch.setattr(service_module.time, "monotonic", lambda: clock[0])
    queue_log = logging.getLogger("waitress.queue")
    saved = list(queue_log.filters)
    queue_log.filters[:] = [f for f in saved if not isinstance(f, service_module._OncePer)]
    try:
        service_module._quiet_queue_warnings()
        service_module._quiet_queue_warnings()  # a second service in the process adds nothing
        assert sum(isinstance(f, service_module._OncePer) for f in queue_log.filters) == 1
        with caplog.at_level(logging.WARNING):
            for depth in range(5):
                queue_log.warning("Task queue depth is %d", depth)
            clock[0] += service_module.QUEUE_DEPTH_WARNING_SECONDS
            queue_log.warning("Task queue depth is %d", 9)
            logging.getLogger("waitress").warning("something else")
        messages = [r.getMessage() for r in caplog.records]
        assert messages == ["Task queue depth is 0", "Task queue depth is 9", "something else"]
    finally:
        queue_log.filters[:] = saved


@pytest.mark.parametrize("seconds", [0.0, 60.0])
def test_the_filter_drops_only_what_comes_within_its_interval(seconds):
    once = service_module._OncePer(seconds)
    record = logging.LogRecord("waitress.queue", logging.WARNING, __file__, 1, "x", None, None)
    passed = [once.filter(record) for _ in range(3)]
    assert passed == ([True, True, True] if seconds == 0.0 else [True, False, False])
