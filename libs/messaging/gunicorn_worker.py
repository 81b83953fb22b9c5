"""The services' gunicorn worker: gunicorn's sync worker, which settles its events while idle.

A worker process serves one request at a time, in its main thread. The events a request
publishes after its commit are sent to the broker before the response goes, but the response
does not wait for their confirms (``messaging.after_commit.pipeline_confirms``): their rows
are committed, so an event whose confirm never comes is the relay's. The confirms are read
after the response, and the sent marks wait (``messaging.after_commit.defer_marks``) for a
later statement of the same worker to carry them, such as the next order's insert, which saves
a round trip and a transaction per request. This class lets them wait no longer than that is
free:

* after a request, the confirms that came are read without blocking, and marks waiting longer
  than ``MARK_AGE_LIMIT_SECONDS`` (a worker serving only reads for a while) are written at once;
* when no request comes within ``MARK_IDLE_SECONDS``, it waits for the confirms still out and
  marks them in a statement of their own before it waits on;
* a worker that stops does the same.

Confirms or marks that never come (a refusal, a broken connection, a worker killed) only let
the relay publish those events again after its grace, which the consumers' inbox absorbs.
Chosen in ``service_runtime.gunicorn_conf``.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.workers.sync import SyncWorker

logger = logging.getLogger(__name__)


class MarkingSyncWorker(SyncWorker):
    marks: Any = None  # messaging.after_commit, once the service is loaded and uses it

    def load_wsgi(self) -> None:
        super().load_wsgi()
        from django.apps import apps

        # Else a plain sync worker: a site without the messaging app (the benchmark's baseline),
        # or an application that is no Django site at all.
        if apps.ready and apps.is_installed("messaging"):
            from messaging import after_commit

            # The service is loaded (Django is set up): from now on the requests of this
            # thread answer once their events are sent, and leave the confirms and the marks
            # to later.
            after_commit.defer_marks()
            after_commit.pipeline_confirms()
            self.marks = after_commit

    def wait(self, timeout: float) -> Any:
        if self.marks is None or not self.marks.marks_waiting():
            return super().wait(timeout)
        ready = super().wait(min(timeout, self.marks.MARK_IDLE_SECONDS))
        if not ready:
            self._flush()
        return ready

    def handle_request(self, *args: Any) -> None:
        try:
            super().handle_request(*args)
        finally:
            self._settle()

    def _settle(self) -> None:
        """After a request: read the confirms that came, and write the marks that waited
        too long (a worker serving only reads would otherwise leave them to the relay)."""
        if self.marks is None:
            return
        try:
            self.marks.settle_in_flight(wait=False)
        except Exception:
            logger.warning("could not read the confirms of published events", exc_info=True)
        if self.marks.marks_overdue():
            self._flush()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._flush()

    def _flush(self) -> None:
        """Marks are a saving, never a reason for the worker to fail: the relay covers them."""
        if self.marks is None:
            return
        try:
            self.marks.flush_marks()
        except Exception:
            logger.warning("could not mark published events sent; the relay will", exc_info=True)
