"""Values shown as DRF's serializer fields show them, for views that build their answer
directly (a list's page, a detail read as tuples): the serializers still document the
shape (OpenAPI), and each service's tests hold both to the same bytes."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def timestamp(value: datetime) -> str:
    """What ``serializers.DateTimeField`` shows: ISO 8601 in the time zone of the settings
    (the services' only one, UTC), ``+00:00`` written ``Z``. DRF looks the current time zone
    up on every value, which was most of the cost of showing an order."""
    text = value.astimezone(timezone.get_default_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
