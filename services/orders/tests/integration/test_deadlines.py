"""PENDING orders past their deadline are cancelled and their stock released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

from orders import deadlines, services
from orders.models import Order, OrderStatus
from tests.factories import outbox

pytestmark = pytest.mark.django_db
SERVICE_DIR = Path(__file__).resolve().parents[2]


def place(key: str) -> Order:
    lines = [services.LineRequest(product_id=1, quantity=1)]
    return services.order_place(user_id=7, idempotency_key=key, lines=lines).order


def overdue(order: Order) -> Order:
    Order.objects.filter(pk=order.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    return order


class TestExpirePending:
    def test_cancels_overdue_pending_orders_and_releases_their_stock(self, products: dict) -> None:
        late = overdue(place("late"))
        on_time = place("on-time")

        assert services.orders_expire_pending() == 1

        stored = Order.objects.get(pk=late.pk)
        assert stored.status == OrderStatus.CANCELLED
        assert stored.cancellation_reason == "deadline exceeded"
        assert Order.objects.get(pk=on_time.pk).status == OrderStatus.PENDING
        [event] = outbox("order.cancelled")
        assert event.data == {"order_id": str(late.id), "user_id": 7, "reason": "deadline exceeded"}
        last_change = stored.status_changes.order_by("-at").first()
        assert last_change is not None
        assert last_change.reason == "deadline exceeded"

    def test_leaves_orders_that_already_moved_on(self, products: dict) -> None:
        confirmed = overdue(place("confirmed"))
        Order.objects.filter(pk=confirmed.pk).update(status=OrderStatus.CONFIRMED)

        assert services.orders_expire_pending() == 0
        assert Order.objects.get(pk=confirmed.pk).status == OrderStatus.CONFIRMED

    def test_uses_the_clock_it_is_given(self, products: dict) -> None:
        order = place("k")

        assert services.orders_expire_pending(now=order.deadline - timedelta(seconds=1)) == 0
        assert services.orders_expire_pending(now=order.deadline + timedelta(seconds=1)) == 1

    def test_works_through_every_batch(self, products: dict) -> None:
        for i in range(5):
            overdue(place(f"k{i}"))

        assert services.orders_expire_pending(batch_size=2) == 5
        assert not Order.objects.filter(status=OrderStatus.PENDING).exists()

    def test_the_deadline_comes_from_settings(self, products: dict, settings: Any) -> None:
        settings.ORDER_PENDING_DEADLINE_SECONDS = 60

        order = place("k")

        assert order.deadline - order.created_at == pytest.approx(
            timedelta(seconds=60), abs=timedelta(seconds=1)
        )

    def test_a_reservation_after_expiry_is_released(self, products: dict) -> None:
        from orders.handlers import on_stock_reserved
        from tests.factories import stock_event

        order = overdue(place("k"))
        services.orders_expire_pending()

        on_stock_reserved(
            stock_event("stock.reserved", order.id, lines=[{"product_id": 1, "quantity": 1}])
        )

        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
        assert len(outbox("order.cancelled")) == 2


class TestCommands:
    def test_expire_pending_orders_runs_once(self, products: dict) -> None:
        overdue(place("k"))
        out = StringIO()

        call_command("expire_pending_orders", stdout=out)

        assert "cancelled 1 PENDING orders" in out.getvalue()

    @pytest.mark.django_db(transaction=True)
    def test_the_worker_survives_a_database_outage(
        self, products: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        overdue(place("k"))
        worker = deadlines.OrderDeadlineWorker(interval=0.01)
        calls: list[str] = []
        real = deadlines.orders_expire_pending

        def flaky() -> int:
            calls.append("call")
            if len(calls) == 1:
                raise OperationalError("server closed the connection unexpectedly")
            expired = real()
            worker.stop_event.set()
            return expired

        def run() -> None:
            try:
                worker.run_forever()
            finally:
                connection.close()

        monkeypatch.setattr(deadlines, "orders_expire_pending", flaky)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=10)

        assert not thread.is_alive()
        assert calls == ["call", "call"]
        assert worker.expired == 1
        assert Order.objects.get().status == OrderStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
class TestDeadlineProcess:
    def test_runs_as_a_process_and_stops_cleanly_on_sigterm(self, products: dict) -> None:
        order = overdue(place("k"))
        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "DATABASE_URL": (
                f"postgres://{db['USER']}:{db['PASSWORD'] or ''}"
                f"@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            ),
        }
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_order_deadlines", "--interval", "0.2"],
            cwd=SERVICE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED:
                    break
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
        assert process.returncode == 0, output
        assert "stopped after cancelling 1 orders" in output
