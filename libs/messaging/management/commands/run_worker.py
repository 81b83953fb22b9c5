from typing import Any

from django.core.management.base import BaseCommand, CommandError

from messaging.worker import configured_jobs, serve


class Command(BaseCommand):
    help = (
        "Run this service's worker until SIGTERM: its consumer, its outbox relay and its "
        "periodic jobs (settings.WORKER_JOBS), each in a thread of its own."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("jobs", nargs="*", metavar="JOB", help="only these jobs, by name")

    def handle(self, *args: Any, **options: Any) -> None:
        available = configured_jobs()
        names = options["jobs"] or list(available)
        unknown = sorted(set(names) - set(available))
        if unknown:
            raise CommandError(
                f"no job {', '.join(unknown)}; this service has {', '.join(available)}"
            )
        if not serve([available[name]() for name in names]):
            raise CommandError("a job failed; the worker stopped")
