"""A worker off the saga's path runs at a lower CPU priority, every one of its threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from messaging.worker import lower_priority

LIBS = Path(__file__).resolve().parents[2]

# In a child process: a nice value cannot be taken back without a privilege. A thread started
# before and one started after the call, each reporting its own nice value (Linux keeps one per
# thread) once both run, then the main thread's.
_SCRIPT = """
import os, sys, threading
from messaging.worker import lower_priority

seen = {}

def report(name, ready, done):
    ready.set(); done.wait()
    seen[name] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

os.nice(int(sys.argv[1]))
ready, done = threading.Event(), threading.Event()
before = threading.Thread(target=report, args=("before", ready, done))
before.start(); ready.wait()
lower_priority(int(sys.argv[2]))
after_ready = threading.Event()
after = threading.Thread(target=report, args=("after", after_ready, done))
after.start(); after_ready.wait()
done.set(); before.join(); after.join()
seen["main"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
for name, value in seen.items():
    print(name, value)
"""


def _nice_values(start: int, asked: int) -> dict[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(start), str(asked)],
        env={**os.environ, "PYTHONPATH": str(LIBS)},
        capture_output=True,
        text=True,
        check=True,
    )
    pairs = (line.split() for line in result.stdout.splitlines())
    return {name: int(value) for name, value in pairs}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread nice values: Linux")
def test_every_thread_runs_at_the_niceness_asked_for_those_started_before_too() -> None:
    assert _nice_values(0, 10) == {"before": 10, "after": 10, "main": 10}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread nice values: Linux")
def test_a_process_started_at_a_lower_priority_keeps_it() -> None:
    assert _nice_values(15, 10) == {"before": 15, "after": 15, "main": 15}


def test_zero_changes_nothing() -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    lower_priority(0)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before


@pytest.mark.parametrize("niceness", [-1, -20, 20, 39])
def test_a_value_outside_0_to_19_is_refused_before_anything_changes(niceness: int) -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    with pytest.raises(ImproperlyConfigured, match="WORKER_NICE must be between 0 and 19"):
        lower_priority(niceness)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
