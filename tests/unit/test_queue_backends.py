"""The webhook queue on SQLite and PostgreSQL: the same answers; on PostgreSQL, workers in several
processes claim disjoint jobs, and the jobs of a worker killed mid-batch go back to the queue at
once (its advisory lock is gone with its connection), not after the lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hubmap.serve.queue import PROCESSING, QUEUED, SENT, Outcome, Queue

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "queue.db")
    return str(request.getfixturevalue("postgres_url"))


def test_a_retried_delivery_is_stored_once_and_jobs_settle(target: str) -> None:
    queue = Queue(target)
    try:
        first = queue.enqueue("/shopify", "d-1", "orders/create", b'{"id": 1}', ["m1", "m2"])
        again = queue.enqueue("/shopify", "d-1", "orders/create", b'{"id": 1}', ["m1", "m2"])
        assert first[1] and again == (first[0], False)
        (claimed,) = queue.claim("m1", 10, "me")
        assert (claimed.body, claimed.attempts) == (b'{"id": 1}', 0)
        queue.finish("m1", [Outcome(claimed.event_id, SENT)])
        assert queue.counts() == {("m1", SENT): 1, ("m2", QUEUED): 1}
        assert queue.backlog()["queued"] == 1
    finally:
        queue.close()


def test_a_stopping_worker_hands_its_claims_back(target: str) -> None:
    queue = Queue(target)
    try:
        for n in range(3):
            queue.enqueue("/shopify", f"d-{n}", None, b"{}", ["m"])
        assert len(queue.claim("m", 2, "stopping")) == 2
        assert queue.hand_back("someone else") == 0
        assert queue.hand_back("stopping") == 2
        assert queue.counts() == {("m", QUEUED): 3}
    finally:
        queue.close()


def test_claims_from_several_connections_at_once_never_share_a_job(target: str) -> None:
    intake = Queue(target)
    for n in range(300):
        intake.enqueue("/shopify", f"d-{n}", None, b"{}", ["m"])
    workers = [Queue(target) for _ in range(4)]
    taken: list[list[int]] = [[] for _ in workers]

    def work(index: int) -> None:
        while batch := workers[index].claim("m", 7, f"worker-{index}"):
            taken[index] += [c.event_id for c in batch]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [e for mine in taken for e in mine]
    assert len(every) == len(set(every)) == 300  # each job claimed once, none left
    for queue in [intake, *workers]:
        queue.close()


CLAIM_AND_HANG = """
import sys, time
from hubmap.serve.queue import Queue, process_owner
queue = Queue(sys.argv[1])
print(len(queue.claim("m", 5, process_owner())), flush=True)
time.sleep(600)
"""


def test_the_jobs_of_a_killed_worker_are_queued_again_at_once(postgres_url: str) -> None:
    queue = Queue(postgres_url)
    try:
        for n in range(5):
            queue.enqueue("/shopify", f"d-{n}", None, b"{}", ["m"])
        env = {**os.environ, "PYTHONPATH": str(ROOT / "engine")}
        with subprocess.Popen(
            [sys.executable, "-c", CLAIM_AND_HANG, postgres_url],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        ) as worker:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "5"
            assert queue.recover() == 0  # alive: its jobs stay its own
            assert queue.counts() == {("m", PROCESSING): 5}
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        deadline = time.monotonic() + 10
        while queue.recover() == 0:  # the server notices the closed connection at once
            assert time.monotonic() < deadline, "the killed worker's jobs were not recovered"
            time.sleep(0.1)
        assert queue.counts() == {("m", QUEUED): 5}
    finally:
        queue.close()
