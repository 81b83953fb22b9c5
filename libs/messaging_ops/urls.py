"""Every service mounts these at ``api/dead-letters/``: its own dead-letter queue, staff only."""

from django.urls import path

from messaging_ops.api import DeadLetterViewSet

urlpatterns = [
    path("", DeadLetterViewSet.as_view({"get": "list"}), name="dead-letter-list"),
    path(
        "<str:message_id>/replay/",
        DeadLetterViewSet.as_view({"post": "replay"}),
        name="dead-letter-replay",
    ),
    path(
        "<str:message_id>/purge/",
        DeadLetterViewSet.as_view({"post": "purge"}),
        name="dead-letter-purge",
    ),
]
