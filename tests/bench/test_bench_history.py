"""``python -m bench.history`` on the current commit, at the smallest size: the worktree is made
and removed, the commit's own system runs, and every figure of the row is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.config import REPO_ROOT


def _worktrees(under: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "worktree", "list", "--porcelain"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # Only this run's worktrees (under its own temporary directory): other worktrees of the
    # repository, another benchmark's included, may come and go meanwhile.
    return [
        line
        for line in listed.splitlines()
        if line.startswith("worktree ") and line.removeprefix("worktree ").startswith(str(under))
    ]


def test_measures_a_commit_in_its_own_worktree_and_removes_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "bench.history",
            "--rounds=1", "--seconds=3", "--sequential=3", "--clients=4", "--drain=40",
            "HEAD",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # its worktree goes under tmp_path
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads(result.stdout.splitlines()[0])
    head = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert row["commit"].startswith(head)
    [measured] = row["rounds"]
    assert measured["final_orders_per_second"] > 0
    assert set(measured["commits_per_order"]) == {"inventory", "orders", "user-notification"}
    assert 0 < row["sequential_post_ms_p50"] < row["sequential_final_ms_p50"]
    drained = row["drain"]  # 40 orders queued while inventory's worker was stopped
    assert drained["orders"] == 40
    assert 0 < drained["per_second"] <= drained["per_second_from_first_final"]
    assert drained["cpu_ms_per_order"]["inventory worker"] > 0
    assert f"| {row['commit'][:90]} |" in result.stdout  # the Markdown table
    assert _worktrees(tmp_path.resolve()) == []  # its worktree is gone
    assert not list(tmp_path.glob("bench-history-*"))  # and so is the folder it was made in
