"""Values shown as DRF's serializer fields show them, for views that build their answer
directly (a list's page, a detail read as tuples): the serializers still document the
shape (OpenAPI), and each service's tests hold both to the same bytes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.utils import timezone
from rest_framework import serializers


def timestamp(value: datetime) -> str:
    """What ``serializers.DateTimeField`` shows: ISO 8601 in the time zone of the settings
    (the services' only one, UTC), ``+00:00`` written ``Z``. DRF looks the current time zone
    up on every value, which was most of the cost of showing an order."""
    text = value.astimezone(timezone.get_default_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def money(value: Decimal, field: serializers.DecimalField) -> str:
    """What ``field`` (a ``serializers.DecimalField`` of two places) shows: an amount as
    stored (two places, as the columns hold it) is its own text, which costs a sixth of the
    field's rounding; any other goes through the field."""
    text = f"{value:f}"
    return text if text[-3:-2] == "." else str(field.to_representation(value))
