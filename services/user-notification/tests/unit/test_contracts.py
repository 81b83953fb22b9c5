"""What user-notification listens to matches the shared contract in ``messaging``."""

from messaging.topology import CONSUMES, RETIRED
from notifications import handlers


class TestRegistry:
    def test_every_consumed_event_has_a_handler(self):
        # And every retired one: an earlier release's binding may have queued it.
        consumed = set(CONSUMES["user-notification"])
        assert RETIRED["user-notification"] == ("order.created",)
        assert set(handlers.HANDLERS) == consumed | set(RETIRED["user-notification"])
        assert "order.created" not in consumed


class TestConsumerSettings:
    def test_the_consumer_gathers_a_tenth_of_a_second_by_default(self):
        # Off the saga's path: a trickle of events is applied a batch per transaction.
        from messaging.config import get_config

        assert get_config().gather_seconds == 0.1
