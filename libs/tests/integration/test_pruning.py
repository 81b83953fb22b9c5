"""Bounded outbox and inbox: the prune job deletes what is past the retention and nothing else,
in batches, through indexes; the relay's claim stays an index scan on a million sent rows."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from messaging import pruning, relay
from messaging.metrics import ROWS_PRUNED, TablesCollector
from messaging.models import InboxMessage, OutboxMessage
from messaging.pruning import PruneJob

pytestmark = pytest.mark.django_db

OUTBOX = OutboxMessage._meta.db_table
INBOX = InboxMessage._meta.db_table


def _outbox_row(*, created_at: Any, sent_at: Any) -> OutboxMessage:
    row = OutboxMessage.objects.create(
        message_id=uuid.uuid4(),
        exchange="orders",
        routing_key="order.created",
        body="{}",
        correlation_id="c",
    )
    OutboxMessage.objects.filter(pk=row.pk).update(created_at=created_at, sent_at=sent_at)
    return row


def _inbox_row(*, processed_at: Any) -> InboxMessage:
    row = InboxMessage.objects.create(
        consumer="inventory", message_id=uuid.uuid4(), message_type="order.created"
    )
    InboxMessage.objects.filter(pk=row.pk).update(processed_at=processed_at)
    return row


def _pruned(table: str) -> float:
    return ROWS_PRUNED.labels(table)._value.get()


@pytest.mark.django_db(transaction=True)  # the job manages its connection as in a worker
def test_the_job_deletes_sent_outbox_rows_and_inbox_rows_past_the_retention(
    settings: Any,
) -> None:
    settings.MESSAGING_RETENTION_DAYS = 7
    now = timezone.now()
    old, young = now - timedelta(days=8), now - timedelta(days=6)
    old_sent = [_outbox_row(created_at=old, sent_at=old).pk for _ in range(5)]
    unsent_old = _outbox_row(created_at=old, sent_at=None).pk  # never sent: the relay's, kept
    young_sent = _outbox_row(created_at=young, sent_at=young).pk
    old_inbox = [_inbox_row(processed_at=old).pk for _ in range(3)]
    young_inbox = _inbox_row(processed_at=young).pk
    before = {table: _pruned(table) for table in ("outbox", "inbox")}

    job = PruneJob(interval=60, batch=2)
    units = 1
    while job.work():  # full batches: more at once
        units += 1

    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {unsent_old, young_sent}
    assert set(InboxMessage.objects.values_list("pk", flat=True)) == {young_inbox}
    assert job.deleted == len(old_sent) + len(old_inbox)
    assert units == 3  # batches of two: 5 outbox rows take three units
    assert _pruned("outbox") - before["outbox"] == len(old_sent)
    assert _pruned("inbox") - before["inbox"] == len(old_inbox)


def test_replays_stop_a_margin_before_the_retention(settings: Any) -> None:
    settings.MESSAGING_RETENTION_DAYS = 7
    assert pruning.replay_max_age() == timedelta(days=6)
    settings.MESSAGING_RETENTION_DAYS = 1
    assert pruning.replay_max_age() == timedelta(hours=12)


def _samples() -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels["table"]): sample.value
        for family in TablesCollector().collect()
        for sample in family.samples
    }


def test_the_tables_sizes_and_the_age_of_their_oldest_rows() -> None:
    now = timezone.now()
    for days in (3, 1):
        _outbox_row(created_at=now - timedelta(days=days), sent_at=now)
    for _ in range(4):
        _inbox_row(processed_at=now - timedelta(hours=2))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OUTBOX}, {INBOX}")  # the estimate, exact on a small table
    samples = _samples()
    assert samples[("messaging_table_rows", "outbox")] == 2
    assert samples[("messaging_table_rows", "inbox")] == 4
    assert samples[("messaging_table_oldest_row_age_seconds", "outbox")] == pytest.approx(
        3 * 86400, abs=60
    )
    assert samples[("messaging_table_oldest_row_age_seconds", "inbox")] == pytest.approx(
        2 * 3600, abs=60
    )


def _plan(sql: str, params: list[Any]) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _timed(sql: str, params: list[Any]) -> float:
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(sql, params)
        return time.perf_counter() - started


def test_a_million_sent_rows_leave_the_claim_and_the_pruning_on_their_indexes() -> None:
    """Filled in one statement each; the transaction is rolled back after the test."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OUTBOX} (message_id, exchange, routing_key, body, correlation_id, "  # noqa: S608
            "created_at, sent_at, attempts, last_error) "
            "SELECT gen_random_uuid(), 'orders', 'order.created', '{}', 'c', "
            "now() - interval '10 days' + n * interval '0.5 ms', "
            "now() - interval '10 days' + n * interval '0.5 ms', 1, '' "
            "FROM generate_series(1, 1000000) AS n"
        )
        cursor.execute(
            f"INSERT INTO {OUTBOX} (message_id, exchange, routing_key, body, correlation_id, "  # noqa: S608
            "created_at, attempts, last_error) "
            "SELECT gen_random_uuid(), 'orders', 'order.created', '{}', 'c', "
            "now() - interval '1 minute', 0, '' FROM generate_series(1, 20)"
        )
        cursor.execute(
            f"INSERT INTO {INBOX} (consumer, message_id, message_type, processed_at) "  # noqa: S608
            "SELECT 'inventory', gen_random_uuid(), 'order.created', "
            "now() - interval '10 days' + n * interval '2 ms' "
            "FROM generate_series(1, 250000) AS n"
        )
        cursor.execute(f"ANALYZE {OUTBOX}, {INBOX}")

    cutoff = timezone.now()
    claim = relay._claim_sql()
    claim_plan = _plan(claim, [relay._created_at(cutoff), 200])
    assert "outbox_unsent" in claim_plan, claim_plan
    assert "Seq Scan" not in claim_plan, claim_plan
    claimed = _timed(claim, [relay._created_at(cutoff), 200])
    assert claimed < 0.1, f"the claim took {claimed:.3f}s on a million sent rows"

    older_than = timezone.now() - timedelta(days=7)
    for table, index in (("outbox", "outbox_sent"), ("inbox", "inbox_processed")):
        model = OutboxMessage if table == "outbox" else InboxMessage
        column = "sent_at" if table == "outbox" else "processed_at"
        moment = model._meta.get_field(column).get_db_prep_value(older_than, connection)  # type: ignore[union-attr]
        prune_plan = _plan(pruning._prune_sql(table), [moment, 1000])
        assert index in prune_plan, prune_plan
        assert f"Seq Scan on {model._meta.db_table}" not in prune_plan, prune_plan
        took = _timed(pruning._prune_sql(table), [moment, 1000])
        assert took < 0.5, f"a batch of the {table} took {took:.3f}s"

    samples = _samples()
    assert samples[("messaging_table_rows", "outbox")] == pytest.approx(1_000_020, rel=0.05)
    assert samples[("messaging_table_oldest_row_age_seconds", "outbox")] > 9 * 86400
