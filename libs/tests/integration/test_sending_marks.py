"""Marking outbox rows sent does not wait for the WAL flush, in a transaction of its own or in
the relay's, and nothing else loses its durability (real PostgreSQL)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection, transaction

from messaging import sending
from messaging.models import OutboxMessage
from messaging.sending import Outcome
from tests.integration.conftest import write_orders

pytestmark = [pytest.mark.django_db(transaction=True)]

MARKS = 100


@pytest.fixture(autouse=True)
def orders_writer(settings: Any) -> None:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PUBLISH_AFTER_COMMIT = False  # rows written, left unsent


def _setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


def _wal_syncs() -> int:
    """The cluster's WAL flushes so far, this session's included."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(1.1)  # a session reports its figures at most once a second
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT wal_sync FROM pg_stat_wal")
        return int(cursor.fetchone()[0])


def _rows(count: int) -> list[OutboxMessage]:
    write_orders(count)
    return list(OutboxMessage.objects.filter(sent_at__isnull=True).order_by("id"))


def test_the_mark_turns_off_the_wal_wait_for_its_own_transaction_only() -> None:
    rows = _rows(2)
    with transaction.atomic():
        sending.record(Outcome(confirmed=rows[:1]))
        assert _setting() == "off"  # for the rest of the transaction that marked
    assert _setting() == "on"
    sending.record(Outcome(confirmed=rows[1:]))  # a transaction of its own
    assert _setting() == "on"
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0


def test_marks_in_their_own_transactions_do_not_flush_the_wal_where_plain_commits_do() -> None:
    rows = _rows(2 * MARKS)
    table = OutboxMessage._meta.db_table
    before = _wal_syncs()
    for row in rows[:MARKS]:  # the same change, committed the ordinary way: a flush each
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET attempts = 1 WHERE id = %s", [row.pk])  # noqa: S608
    plain = _wal_syncs() - before
    before = _wal_syncs()
    for row in rows[MARKS:]:
        sending.record(Outcome(confirmed=[row]))
    marked = _wal_syncs() - before
    assert plain >= MARKS * 0.8, plain
    assert marked <= MARKS * 0.2, marked  # the WAL writer's own flushes, a few a second
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == MARKS
