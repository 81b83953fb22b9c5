"""Running a long-lived worker (consumer, relay, scheduler) until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from types import FrameType


def stop_on_signals(stop_event: threading.Event) -> None:
    """Set ``stop_event`` on SIGTERM/SIGINT so the worker finishes its current message and exits."""

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
