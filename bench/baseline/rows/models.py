from __future__ import annotations

from datetime import datetime

from django.db import models


class Row(models.Model):
    """One request's worth of data: what the baseline endpoint inserts."""

    payload: models.JSONField[object, object] = models.JSONField()
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"row {self.pk}"
