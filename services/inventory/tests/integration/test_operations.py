"""What operators and API clients get besides the API: health, metrics, the OpenAPI schema."""

from pathlib import Path

import pytest
from django.core.management import call_command
from prometheus_client import REGISTRY

from stock.handlers import on_order_created
from tests import factories

pytestmark = pytest.mark.django_db


class TestOperationalEndpoints:
    def test_live_and_metrics_need_no_token(self, anonymous_client):
        assert anonymous_client.get("/health/live").status_code == 200
        response = anonymous_client.get("/metrics")
        assert response.status_code == 200
        assert b"messaging_outbox_unsent_messages" in response.content

    def test_swagger_ui_loads_its_files_from_the_service(self, anonymous_client):
        page = anonymous_client.get("/api/docs/").content.decode()
        assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
        assert "cdn" not in page.lower()
        script = anonymous_client.get(
            "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
        )
        assert script.status_code == 200
        script.close()  # a file response: its file stays open until closed


class TestReservationLatency:
    def test_each_decision_is_timed_by_outcome(
        self, make_product, django_capture_on_commit_callbacks
    ):
        hammer = make_product(on_hand=5)

        def count(outcome):
            value = REGISTRY.get_sample_value(
                "inventory_reservation_duration_seconds_count", {"outcome": outcome}
            )
            return value or 0.0

        before = count("reserved"), count("rejected")
        with django_capture_on_commit_callbacks(execute=True):
            on_order_created(factories.order_created([(hammer.pk, 2)]))
            on_order_created(factories.order_created([(hammer.pk, 50)]))
        assert (count("reserved"), count("rejected")) == (before[0] + 1, before[1] + 1)


class TestOpenApiSchema:
    def test_the_schema_is_valid_and_complete(self, tmp_path: Path):
        # --fail-on-warn: a view the generator cannot describe fails here, not in a client.
        call_command(
            "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml")
        )
