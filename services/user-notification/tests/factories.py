"""For the user-notification tests: events as the services publish them."""

from accounts.models import User
from messaging.envelope import Envelope


def user_registered(user: User) -> Envelope:
    """The ``user.registered`` of ``user``, with a new message id each time."""
    data = {"user_id": user.pk, "username": user.username, "email": user.email}
    return Envelope.new("user.registered", data, source="user-notification", correlation_id="test")
