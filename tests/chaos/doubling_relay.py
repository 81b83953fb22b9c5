"""The service's own outbox relay, except that every event is published, and confirmed, twice.

Run in place of ``manage.py run_relay`` (same directory, same environment) by the
"duplicate delivery" scenario: ``python <repo>/tests/chaos/doubling_relay.py``. The two
copies carry the same message id, as a relay that died between the broker's confirm and marking
the row sent would publish them; the consumers' inboxes must make the second one a no-op.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    # Run as a script: not this file's directory but the service's (its ``config`` settings).
    sys.path[0] = os.getcwd()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()

    from messaging.models import OutboxMessage
    from messaging.publisher import ConfirmingPublisher
    from messaging.relay import OutboxRelay
    from messaging.worker import stop_on_signals

    class DoublingRelay(OutboxRelay):
        def _publish(self, publisher: ConfirmingPublisher, row: OutboxMessage) -> None:
            super()._publish(publisher, row)
            super()._publish(publisher, row)

    relay = DoublingRelay()
    stop_on_signals(relay.stop_event)
    print("doubling outbox relay starting", flush=True)
    relay.run_forever()
    print(f"doubling outbox relay stopped after {relay.published} rows (each sent twice)")


if __name__ == "__main__":
    main()
