"""What user-notification listens to matches the shared contract in ``messaging``."""

from messaging.topology import CONSUMES
from notifications import handlers


class TestRegistry:
    def test_every_consumed_event_has_a_handler(self):
        assert set(handlers.HANDLERS) == set(CONSUMES["user-notification"])
