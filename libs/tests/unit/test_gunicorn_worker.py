"""The services' gunicorn worker: when it defers its marks and when it writes them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn.workers.sync import SyncWorker

from messaging import after_commit
from messaging.gunicorn_worker import MarkingSyncWorker


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MarkingSyncWorker, list[str]]]:
    """A worker past its fork and its loading (gunicorn's own parts replaced), and the calls
    it made: ``wait <seconds>``, ``request``, ``flush`` (its reads of the confirms that came,
    ``settle_in_flight(wait=...)``, go to ``instance.settled``)."""
    calls: list[str] = []
    settled: list[bool] = []
    ready: list[Any] = []  # what gunicorn's wait returns: sockets ready, or None on a timeout

    def waited(self: Any, timeout: float) -> Any:
        calls.append(f"wait {timeout:g}")
        return ready.pop(0) if ready else None

    monkeypatch.setattr(SyncWorker, "load_wsgi", lambda self: None)
    monkeypatch.setattr(SyncWorker, "wait", waited)
    monkeypatch.setattr(SyncWorker, "handle_request", lambda self, *a: calls.append("request"))
    monkeypatch.setattr(after_commit, "flush_marks", lambda: calls.append("flush"))
    monkeypatch.setattr(after_commit, "settle_in_flight", lambda *, wait=True: settled.append(wait))
    instance = MarkingSyncWorker.__new__(MarkingSyncWorker)
    instance.load_wsgi()
    instance.ready = ready
    instance.settled = settled
    yield instance, calls
    after_commit.defer_marks(False)
    after_commit.pipeline_confirms(False)
    after_commit._link.take_marks()


def test_a_worker_of_a_messaging_site_defers_its_marks(
    worker: tuple[MarkingSyncWorker, list[str]],
) -> None:
    instance, _ = worker
    assert instance.marks is after_commit
    assert after_commit._link.deferring


def test_its_requests_answer_without_waiting_for_their_confirms(
    worker: tuple[MarkingSyncWorker, list[str]],
) -> None:
    assert after_commit._link.pipelining


def test_after_a_request_it_reads_the_confirms_that_came_without_blocking(
    worker: tuple[MarkingSyncWorker, list[str]],
) -> None:
    instance, calls = worker
    instance.handle_request("listener", "req", "client", "addr")
    assert calls == ["request"]
    assert instance.settled == [False]


def test_a_failing_read_of_the_confirms_never_fails_the_worker(
    worker: tuple[MarkingSyncWorker, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, calls = worker

    def broken(*, wait: bool = True) -> None:
        raise RuntimeError("the broker went away")

    monkeypatch.setattr(after_commit, "settle_in_flight", broken)
    after_commit._link.defer(["m1"])
    monkeypatch.setattr(after_commit, "MARK_AGE_LIMIT_SECONDS", 0.0)
    instance.handle_request("listener", "req", "client", "addr")  # logged; the relay covers
    assert calls == ["request", "flush"]  # the overdue marks are still written


def test_with_nothing_waiting_it_waits_as_gunicorn_does(
    worker: tuple[MarkingSyncWorker, list[str]],
) -> None:
    instance, calls = worker
    instance.wait(15.0)
    assert calls == ["wait 15"]


def test_with_marks_waiting_it_waits_briefly_then_writes_them(
    worker: tuple[MarkingSyncWorker, list[str]],
) -> None:
    instance, calls = worker
    after_commit._link.defer(["m1"])
    assert instance.wait(15.0) is None
    assert calls == [f"wait {after_commit.MARK_IDLE_SECONDS:g}", "flush"]


def test_a_request_arriving_first_carries_them_instead(
    worker: tuple[MarkingSyncWorker, list[str]],
) -> None:
    instance, calls = worker
    after_commit._link.defer(["m1"])
    instance.ready.append(["listener"])
    assert instance.wait(15.0) == ["listener"]
    assert calls == [f"wait {after_commit.MARK_IDLE_SECONDS:g}"]


def test_after_a_request_only_overdue_marks_are_written(
    worker: tuple[MarkingSyncWorker, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, calls = worker
    after_commit._link.defer(["m1"])
    instance.handle_request("listener", "req", "client", "addr")
    assert calls == ["request"]
    monkeypatch.setattr(after_commit, "MARK_AGE_LIMIT_SECONDS", 0.0)
    instance.handle_request("listener", "req", "client", "addr")
    assert calls == ["request", "request", "flush"]


def test_a_failing_flush_never_fails_the_worker(
    worker: tuple[MarkingSyncWorker, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, _ = worker

    def broken() -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(after_commit, "flush_marks", broken)
    after_commit._link.defer(["m1"])
    assert instance.wait(15.0) is None  # logged; the relay covers those events
