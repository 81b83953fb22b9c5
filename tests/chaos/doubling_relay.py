"""The service's own outbox relay, except that every event goes out, and is confirmed, twice.

Run in place of ``manage.py run_relay`` (same directory, same environment) by the
"duplicate delivery" scenarios: ``python <repo>/tests/chaos/doubling_relay.py``. A row left to
the relay is published twice, and every row goes out once more after it was marked sent (most
by their writer, right after the commit): each event reaches the broker at least twice. The
copies carry the same message id, as a writer or relay that died between the broker's confirm
and marking the row sent would publish them; the consumers' inboxes must make the second one a
no-op.
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

    from messaging import sending
    from messaging.models import OutboxMessage
    from messaging.publisher import ConfirmingPublisher
    from messaging.relay import OutboxRelay
    from messaging.worker import stop_on_signals

    class DoublingRelay(OutboxRelay):
        replayed_up_to = 0  # the last row sent by its writer that went out again

        def _publish(self, publisher: ConfirmingPublisher, row: OutboxMessage) -> None:
            super()._publish(publisher, row)
            super()._publish(publisher, row)

        def relay_batch(self, publisher: ConfirmingPublisher) -> int:
            published = super().relay_batch(publisher)
            rows = list(
                OutboxMessage.objects.filter(
                    pk__gt=self.replayed_up_to, sent_at__isnull=False
                ).order_by("pk")[: self.batch_size]
            )
            for row in rows:
                sending.send(publisher, row, app_id=self.config.service, user_id=self._user_id)
            if rows:
                publisher.wait()
                self.replayed_up_to = rows[-1].pk
            return published

    relay = DoublingRelay()
    stop_on_signals(relay.stop_event)
    print("doubling outbox relay starting", flush=True)
    relay.run_forever()
    print(f"doubling outbox relay stopped after {relay.published} rows (each sent twice)")


if __name__ == "__main__":
    main()
