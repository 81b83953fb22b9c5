"""py-spy on the system's busiest processes while scenario (a) runs again.

Wall-clock sampling (``--idle``): a worker that waits for PostgreSQL or for a publisher
confirm shows where it waits, which is what bounds an I/O-bound saga. Each process's raw
(collapsed) stacks are kept and summarised as the frames holding the most samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from devstack.system import LocalSystem

# (service, role) of each process to sample; the web server's workers are its children.
TARGETS = (
    ("orders", "web"),
    ("orders", "run_consumer"),
    ("orders", "run_relay"),
    ("inventory", "run_consumer"),
    ("inventory", "run_relay"),
)
LINE_NUMBER = re.compile(r":\d+\)$")
FILE = re.compile(r"\(([^)]*)\)$")
TRUNK = 0.9  # frames on at least this share of the stacks (the main loop) say nothing


def category(frames: list[str]) -> str:
    """What a sample was doing, from its whole stack (outermost first)."""
    stack = ";".join(frames)
    leaf = frames[-1]
    if "close_graceful" in stack:
        return "web: lingering close (gunicorn waits for the client to close)"
    if "SyncWorker.wait" in stack:
        return "idle: waiting for a request"
    if "_relay_until_stopped" in stack and "(threading.py" in leaf:
        return "idle: relay waiting for its next look at the outbox"
    if "basic_publish" in stack:
        return "RabbitMQ: publishing and waiting for the confirm"
    if "PollPoller.poll" in leaf and "_on_message" not in stack:
        return "idle: waiting for a message (or the broker)"
    if "psycopg" in leaf:
        return "PostgreSQL: waiting on queries and commits"
    if "pika" in leaf:
        return "RabbitMQ: other (acks, frames)"
    match = FILE.search(leaf)
    path = match.group(1) if match else ""
    package = path.split("/", 1)[0] if "/" in path else "python (stdlib)"
    return f"CPU: {package}"


def pyspy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def targets(system: LocalSystem) -> dict[str, int]:
    """Label → pid of every process to sample (each gunicorn worker separately)."""
    found: dict[str, int] = {}
    for service, role in TARGETS:
        managed = system.find(service, role)
        if managed.process is None or not managed.running():
            continue
        if role == "web":
            for index, pid in enumerate(sorted(children(managed.process.pid))):
                found[f"{service}.web-worker-{index + 1}"] = pid
        else:
            found[f"{service}.{role}"] = managed.process.pid
    return found


def scheduling(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], seconds: float
) -> dict[str, dict[str, float]]:
    """Per process: % of the wall clock on a CPU, and % runnable but waiting for a CPU.

    A wall-clock profile cannot tell "blocked on a socket" from "ready, but both cores are
    taken": a process woken from ``select`` that waits for a CPU still shows ``select``. The
    kernel's scheduler statistics can.
    """
    shares: dict[str, dict[str, float]] = {}
    for label, (running, waiting) in after.items():
        if label not in before:
            continue
        shares[label] = {
            "on_cpu_percent": round(100 * (running - before[label][0]) / 1e9 / seconds, 1),
            "waiting_for_cpu_percent": round(100 * (waiting - before[label][1]) / 1e9 / seconds, 1),
        }
    return shares


def start(
    system: LocalSystem, seconds: int, out_dir: Path, rate: int = 100
) -> list[tuple[str, Path, subprocess.Popen[bytes]]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    started = []
    for label, pid in targets(system).items():
        output = out_dir / f"{label}.txt"
        command = [
            pyspy(), "record", "--pid", str(pid), "--duration", str(seconds),
            "--rate", str(rate), "--format", "raw", "--output", str(output),
            "--idle", "--nonblocking",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append((label, output, process))
    return started


def finish(
    started: list[tuple[str, Path, subprocess.Popen[bytes]]],
    shares: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    summaries: dict[str, Any] = {}
    for label, output, process in started:
        try:
            _, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if process.returncode != 0 or not output.exists():
            summaries[label] = {"error": stderr.decode(errors="replace")[-500:]}
            continue
        summaries[label] = summarise(output)
        summaries[label]["scheduler"] = (shares or {}).get(label)
    return summaries


def _frame(frame: str) -> str:
    return LINE_NUMBER.sub(")", frame.strip())


def summarise(raw: Path, top: int = 15) -> dict[str, Any]:
    """Where the samples went: categories, the busiest frames below the main loop, leaves."""
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        if frames and count_text.isdigit():
            stacks.append((frames, int(count_text)))
    total = sum(count for _, count in stacks)
    categories: Counter[str] = Counter()
    presence: Counter[str] = Counter()
    active_inclusive: Counter[str] = Counter()
    active_leaf: Counter[str] = Counter()
    for frames, count in stacks:
        kind = category(frames)
        categories[kind] += count
        for frame in set(frames):
            presence[frame] += count
        if not kind.startswith("idle"):
            for frame in set(frames):
                active_inclusive[frame] += count
            active_leaf[frames[-1]] += count
    trunk = {frame for frame, n in presence.items() if total and n >= TRUNK * total}
    active = sum(n for kind, n in categories.items() if not kind.startswith("idle"))

    def table(counter: Counter[str], skip: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        rows = [(frame, n) for frame, n in counter.most_common() if frame not in skip]
        return [
            {"frame": frame, "samples": n, "percent": round(100 * n / total, 1)}
            for frame, n in rows[:top]
        ]

    return {
        "samples": total,
        "busy_percent": round(100 * active / total, 1) if total else None,
        "categories": table(categories),
        "top_inclusive_busy": table(active_inclusive, frozenset(trunk)),
        "top_leaf_busy": table(active_leaf),
        "raw": raw.name,
    }


def markdown(summaries: dict[str, Any], throughput: float | None) -> str:
    lines = [
        "# py-spy: where the time goes during scenario (a)",
        "",
        "Generated by `python -m bench --profile`: wall-clock samples (`--idle`, 100 Hz, "
        "`--nonblocking`) of each process while scenario (a) ran a second time"
        + (f" at {throughput} final orders/s" if throughput is not None else "")
        + ". Each sample is put in one category from its whole stack; *busy* is every "
        "category but idle (waiting on PostgreSQL or RabbitMQ counts as busy: the process "
        "cannot take the next message meanwhile). The busiest frames leave out the main loop "
        "(frames on 90% of the stacks). Raw collapsed stacks are beside this file.",
        "",
    ]
    for label, summary in summaries.items():
        lines += [f"## {label}", ""]
        if "error" in summary:
            lines += [f"py-spy failed: `{summary['error']}`", ""]
            continue
        scheduler = summary.get("scheduler")
        cpu = (
            f" The kernel's view of the same window: on a CPU {scheduler['on_cpu_percent']}% "
            f"of the time, runnable but waiting for a CPU {scheduler['waiting_for_cpu_percent']}%."
            if scheduler
            else ""
        )
        lines += [f"{summary['samples']} samples, busy {summary['busy_percent']}%.{cpu}", ""]
        sections = (
            ("Categories", "categories"),
            ("Busiest frames (inclusive, busy samples)", "top_inclusive_busy"),
            ("Innermost frames (busy samples)", "top_leaf_busy"),
        )
        for title, key in sections:
            what = "category" if key == "categories" else "frame"
            lines += [f"{title}:", "", f"| % of all samples | samples | {what} |", "|--:|--:|---|"]
            for row in summary[key]:
                frame = row["frame"].replace("|", "\\|")
                lines.append(f"| {row['percent']} | {row['samples']} | `{frame}` |")
            lines.append("")
    return "\n".join(lines) + "\n"
