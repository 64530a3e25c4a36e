"""The rate limiter's bookkeeping, on a fake clock (the threaded behaviour is in test_hubspot_http)."""

from __future__ import annotations

import threading

import pytest

from hubmap.hubspot import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(max_requests=3, interval=1.0, **kw):
    clock = FakeClock()
    return RateLimiter(
        max_requests=max_requests, interval=interval, safety_margin=0.0, clock=clock, **kw
    ), clock


def test_slots_are_held_from_send_until_one_window_after_the_answer():
    limiter, clock = make()
    for _ in range(3):
        assert limiter.acquire() == pytest.approx(0, abs=0.05)
    assert limiter.delay() is None  # all three in flight: wait for an answer
    clock.now += 0.2
    limiter.release()
    # The answered slot frees one window after its answer, not after its send.
    assert limiter.delay() == pytest.approx(1.0)
    clock.now += 0.6
    limiter.release()
    limiter.release()
    assert limiter.delay() == pytest.approx(0.4)
    clock.now += 0.4
    assert limiter.delay() == 0.0


def test_learns_window_from_headers():
    limiter, _ = make(max_requests=100, interval=10.0)
    limiter.acquire()
    limiter.release(
        {
            "X-HubSpot-RateLimit-Max": "2",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "500",
            "X-HubSpot-RateLimit-Remaining": "1",
            "X-HubSpot-RateLimit-Daily-Remaining": "249000",
        }
    )
    assert limiter.max_requests == 2
    assert limiter.interval == pytest.approx(0.5)
    assert limiter.daily_remaining == 249000
    limiter.acquire()
    assert limiter.delay() == pytest.approx(0.5)  # 2 held of 2: the first frees in 0.5 s
    limiter.release({})  # headers can be missing: nothing changes
    assert limiter.max_requests == 2
    assert limiter.delay() == pytest.approx(0.5)


def test_remaining_lower_than_our_count_holds_phantom_slots():
    # Another integration on the same token used 6 of 10: we may send only 4 more this window.
    limiter, _ = make(max_requests=10, interval=1.0)
    limiter.acquire()
    limiter.release({"X-HubSpot-RateLimit-Max": "10", "X-HubSpot-RateLimit-Remaining": "3"})
    assert limiter.phantom_slots == 6
    for _ in range(3):
        assert limiter.delay() == 0.0
        limiter.acquire()
    assert limiter.delay() == pytest.approx(1.0)  # full until the held slots expire
    # Remaining consistent with our own count adds nothing.
    limiter.release({"X-HubSpot-RateLimit-Max": "10", "X-HubSpot-RateLimit-Remaining": "0"})
    assert limiter.phantom_slots == 6


def test_penalize_closes_the_limiter_until_the_oldest_slot_frees():
    limiter, clock = make(max_requests=5, interval=1.0)
    limiter.acquire()
    limiter.release()
    clock.now += 0.7
    wait = limiter.penalize()
    assert wait == pytest.approx(0.3)  # not a blind full window
    assert limiter.delay() == pytest.approx(0.3)
    clock.now += 0.3
    assert limiter.delay() == 0.0


def test_penalize_honours_retry_after_and_defaults_to_one_window():
    limiter, _ = make(max_requests=5, interval=2.0)
    assert limiter.penalize() == pytest.approx(2.0)  # nothing held: one full window
    assert limiter.penalize(5.0) == pytest.approx(5.0)


def test_acquire_blocks_other_threads_until_release():
    limiter = RateLimiter(max_requests=1, interval=0.05, safety_margin=0.0)
    limiter.acquire()
    got = threading.Event()

    def worker():
        limiter.acquire()
        got.set()

    thread = threading.Thread(target=worker)
    thread.start()
    assert not got.wait(0.1)  # in flight: no slot however long we wait
    limiter.release()
    assert got.wait(2.0)  # freed one window after the release
    thread.join()
    assert limiter.waited_seconds >= 0.1


def test_rejects_nonsense():
    with pytest.raises(ValueError):
        RateLimiter(max_requests=0)
