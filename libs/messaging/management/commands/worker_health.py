"""``manage.py worker_health [COMMAND ...] [--max-age 30]``: are this service's workers ready?

Exit 0 when every heartbeat asked about is at most ``--max-age`` seconds old, else 1, with one
line per worker. With ``WORKER_HEARTBEAT_FILE`` set (a container runs one worker) that file is
read; otherwise the heartbeats of the worker processes named (``run_worker``, and
``run_worker-2``... when several run side by side), or, with none named, every heartbeat this
service's workers left under ``VAR_DIR``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from messaging.worker import HEARTBEAT_ENV, heartbeat_age, heartbeat_dir, heartbeat_path


class Command(BaseCommand):
    help = "Exit 0 when this service's workers beat within --max-age seconds, else 1."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("commands", nargs="*", help="worker processes, e.g. run_worker")
        parser.add_argument("--max-age", type=float, default=30.0)

    def handle(self, *args: Any, **options: Any) -> None:
        beats = self._heartbeats(options["commands"])
        if not beats:
            self.stderr.write(f"no worker heartbeat found in {heartbeat_dir()}")
            sys.exit(1)
        healthy = True
        for name, path in beats.items():
            age = heartbeat_age(path)
            if age is None:
                healthy = False
                self.stderr.write(f"{name}: not ready (no heartbeat at {path})")
            elif age > options["max_age"]:
                healthy = False
                self.stderr.write(
                    f"{name}: not ready (last beat {age:.0f}s ago, over {options['max_age']:g}s)"
                )
            else:
                self.stdout.write(f"{name}: ready (last beat {age:.1f}s ago)")
        if not healthy:
            sys.exit(1)

    def _heartbeats(self, commands: list[str]) -> dict[str, Path]:
        if os.environ.get(HEARTBEAT_ENV):
            return {"worker": heartbeat_path("")}
        if commands:
            return {command: heartbeat_path(command) for command in commands}
        prefix = f"{settings.MESSAGING_SERVICE}."
        return {
            path.name.removeprefix(prefix): path
            for path in sorted(heartbeat_dir().glob(f"{prefix}*"))
        }
