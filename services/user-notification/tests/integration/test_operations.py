"""What operators and API clients get besides the API: health, metrics, the OpenAPI schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_live_and_metrics_need_no_token() -> None:
    client = APIClient()
    assert client.get("/health/live").status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"http_requests_total" in response.content


def test_the_schema_is_valid_and_complete(tmp_path: Path) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


def test_the_token_endpoints_need_no_token() -> None:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["paths"]["/api/users/token/"]["post"]["security"] == [{}]
    assert {"bearerAuth": []} in schema["paths"]["/api/users/me/"]["get"]["security"]
