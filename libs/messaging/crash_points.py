"""A test-only switch: ``kill -9`` this process at a named point of publishing after commit.

``MESSAGING_CRASH_POINT`` is read once, when the process starts:

* ``after-commit-before-publish``: the transaction committed, its events are not published;
* ``after-publish-before-mark``: the broker confirmed them, their rows are not marked sent;
* ``backorder-mid-serve``: inside a pass serving a waiting list (``stock.backorders``), after
  the first order it served was written, before the transaction commits.

The first time the process reaches that point it logs one line and sends itself ``SIGKILL``.
The fault-injection suite (``tests/chaos``) uses it to prove that the relay sends what the
writer left and that the consumers' inbox absorbs what went out twice. Never set it anywhere
else.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

ENV = "MESSAGING_CRASH_POINT"
AFTER_COMMIT = "after-commit-before-publish"
AFTER_PUBLISH = "after-publish-before-mark"
POINTS = (AFTER_COMMIT, AFTER_PUBLISH)  # of publishing after commit
BACKORDER_MID_SERVE = "backorder-mid-serve"
ALL_POINTS = (*POINTS, BACKORDER_MID_SERVE)

logger = logging.getLogger("messaging.crash_points")

_armed = os.environ.get(ENV, "")
if _armed and _armed not in ALL_POINTS:
    raise ValueError(f"{ENV}={_armed!r}: expected one of {', '.join(ALL_POINTS)}")


def reach(point: str) -> None:
    """Die here, at once and without any clean-up, if this is the armed point."""
    if point != _armed:
        return
    logger.critical("crash point %s reached: killing this process (%s)", point, ENV)
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
