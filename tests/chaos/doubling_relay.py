"""The service's own worker, except that its outbox relay publishes, and confirms, every event
twice.

Run in place of ``manage.py run_worker`` (same directory, same environment) by the
"duplicate delivery" scenario: ``python <repo>/tests/chaos/doubling_relay.py``. The two
copies carry the same message id, as a relay that died between the broker's confirm and marking
the row sent would publish them; the consumers' inboxes must make the second one a no-op.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    # Run as a script: not this file's directory but the service's (its ``config`` settings).
    sys.path[0] = os.getcwd()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()

    from messaging.models import OutboxMessage
    from messaging.publisher import ConfirmingPublisher
    from messaging.relay import OutboxRelay
    from messaging.worker import configured_jobs, serve

    class DoublingRelay(OutboxRelay):
        def _publish(self, publisher: ConfirmingPublisher, row: OutboxMessage) -> None:
            super()._publish(publisher, row)
            super()._publish(publisher, row)

        start_line = "doubling outbox relay starting"
        stop_line = "doubling outbox relay stopped after {published} rows (each sent twice)"

    jobs = [DoublingRelay if cls is OutboxRelay else cls for cls in configured_jobs().values()]
    return 0 if serve([job() for job in jobs]) else 1


if __name__ == "__main__":
    sys.exit(main())
