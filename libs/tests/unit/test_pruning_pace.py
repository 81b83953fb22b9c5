"""The prune job catches up on a backlog at a fifth of its speed: it rests after a full batch
(scripted batches, no database)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from messaging import pruning
from messaging.pruning import REST_FACTOR, PruneJob

BATCH_SECONDS = 0.02


class _ScriptedBatches:
    """Each batch takes ``BATCH_SECONDS`` and deletes what the script says."""

    def __init__(self, deleted: list[int]) -> None:
        self.deleted = deleted

    def __call__(self, table: str, older_than: datetime, batch: int) -> int:
        time.sleep(BATCH_SECONDS / 2)  # two tables per unit of work
        return self.deleted.pop(0) if table == "outbox" and self.deleted else 0


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch) -> PruneJob:
    monkeypatch.setattr(pruning, "record_pruned", lambda table, done: None)
    job = PruneJob(interval=60, batch=10)
    monkeypatch.setattr(job._database, "before_work", lambda: None)
    return job


def test_after_a_full_batch_it_rests_a_multiple_of_the_batchs_time(
    job: PruneJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruning, "prune_batch", _ScriptedBatches([10]))
    started = time.monotonic()
    assert job.work()  # a full batch: more to do
    took = time.monotonic() - started
    assert took >= BATCH_SECONDS * (1 + REST_FACTOR)
    assert took < BATCH_SECONDS * (1 + REST_FACTOR) + 1.0


def test_a_batch_that_was_not_full_ends_the_catching_up_without_a_rest(
    job: PruneJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruning, "prune_batch", _ScriptedBatches([3]))
    started = time.monotonic()
    assert not job.work()
    assert time.monotonic() - started < BATCH_SECONDS * (1 + REST_FACTOR) * 0.8
    assert job.deleted == 3


def test_a_stop_cuts_the_rest_short(job: PruneJob, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pruning, "prune_batch", _ScriptedBatches([10]))
    monkeypatch.setattr(pruning, "REST_FACTOR", 500.0)  # a ten-second rest
    monkeypatch.setattr(pruning, "MAX_REST_SECONDS", 60.0)
    job.stop_event.set()
    started = time.monotonic()
    assert job.work()
    assert time.monotonic() - started < 1.0


def test_the_rest_is_capped_so_the_heartbeat_stays_fresh(
    job: PruneJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruning, "prune_batch", _ScriptedBatches([10]))
    monkeypatch.setattr(pruning, "REST_FACTOR", 500.0)  # uncapped: a ten-second rest
    monkeypatch.setattr(pruning, "MAX_REST_SECONDS", 0.1)
    started = time.monotonic()
    assert job.work()
    assert time.monotonic() - started < 1.0
