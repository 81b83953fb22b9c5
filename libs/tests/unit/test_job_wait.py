"""A job's wait for work, with a stand-in for its broker connection."""

from __future__ import annotations

import time
from typing import Any

from messaging.worker import Job


class Connection:
    """Counts the waits on it; each brings a delivery when told to."""

    def __init__(self, job: Consuming, *, brings: bool) -> None:
        self.job, self.brings, self.waits = job, brings, 0

    def process_data_events(self, time_limit: float = 0) -> None:
        self.waits += 1
        if self.brings:
            self.job.pending.append("delivery")
        else:
            time.sleep(time_limit)


class Consuming(Job):
    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Any] = []

    def delivered(self) -> bool:
        return bool(self.pending)


def test_deliveries_already_taken_are_not_held_for_the_next_one() -> None:
    job = Consuming()
    job.broker = Connection(job, brings=False)
    job.pending.append("taken while the last batch published")
    started = time.monotonic()
    job._wait(2.0)
    assert time.monotonic() - started < 0.1
    assert job.broker.waits == 0


def test_without_deliveries_it_waits_for_one() -> None:
    job = Consuming()
    job.broker = Connection(job, brings=True)
    job._wait(2.0)
    assert job.broker.waits == 1
    assert job.delivered()


def test_with_nothing_arriving_it_waits_its_time() -> None:
    job = Consuming()
    job.broker = Connection(job, brings=False)
    started = time.monotonic()
    job._wait(0.2)
    assert 0.15 < time.monotonic() - started < 1.0
    assert job.broker.waits >= 1
