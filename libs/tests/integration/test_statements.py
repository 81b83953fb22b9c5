"""service_runtime.statements.execute on the real PostgreSQL: the statement as written
(psycopg's RawCursor), in the caller's transaction, with Django's error wrapping."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import psycopg._queries
import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging import outbox, sending
from messaging.consumer import record_many_in_inbox
from messaging.envelope import Envelope
from messaging.models import InboxMessage, OutboxMessage
from service_runtime import statements
from tests.factories import order_created

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = InboxMessage._meta.db_table
ROWS = 100  # 400 parameters: far beyond what psycopg keeps its parsing of


def _insert(count: int) -> tuple[str, list[Any]]:
    values = ", ".join(["(%s, %s, %s, now())"] * count)
    params: list[Any] = []
    for _ in range(count):
        params += ["tests", uuid.uuid4(), "order.created"]
    sql = (
        f"INSERT INTO {TABLE} (consumer, message_id, message_type, processed_at) "  # noqa: S608
        f"VALUES {values} RETURNING message_id"
    )
    return sql, params


@contextmanager
def statements_sent() -> Iterator[list[str]]:
    """The texts of the statements the default connection runs meanwhile."""
    sent: list[str] = []

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield sent


@contextmanager
def parsed_by_psycopg() -> Iterator[mock.MagicMock]:
    """Counts psycopg's parsing of statements it keeps no parsed copy of."""
    real = psycopg._queries._query2pg_nocache
    with mock.patch.object(psycopg._queries, "_query2pg_nocache", wraps=real) as parsed:
        yield parsed


def test_a_statement_of_hundreds_of_parameters_is_sent_numbered_and_returns_its_rows() -> None:
    sql, params = _insert(ROWS)
    with statements_sent() as sent, parsed_by_psycopg() as parsed:
        rows = statements.execute(sql, params)
    assert sent == [statements.numbered(sql)]
    assert parsed.call_count == 0  # psycopg did not parse the text
    assert [row[0] for row in rows] == params[1::3]
    assert InboxMessage.objects.filter(consumer="tests").count() == ROWS


def test_a_statement_without_a_result_returns_no_rows() -> None:
    sql, params = _insert(2)
    sql = sql.removesuffix(" RETURNING message_id")
    assert statements.execute(sql, params) == []
    assert InboxMessage.objects.count() == 2


def test_it_runs_in_the_callers_transaction() -> None:
    sql, params = _insert(ROWS)
    with pytest.raises(RuntimeError), transaction.atomic():
        statements.execute(sql, params)
        assert InboxMessage.objects.count() == ROWS
        raise RuntimeError("roll back")
    assert InboxMessage.objects.count() == 0


def test_errors_are_djangos() -> None:
    sql, params = _insert(1)
    statements.execute(sql, params)
    with pytest.raises(IntegrityError):  # the same (consumer, message_id) again
        statements.execute(sql, params)


def test_while_django_logs_queries_the_statement_goes_as_written_with_its_placeholders() -> None:
    sql, params = _insert(3)
    with CaptureQueriesContext(connection) as logged, statements_sent() as sent:
        rows = statements.execute(sql, params)
    assert sent == [sql]
    assert len(logged.captured_queries) == 1
    assert params[1].hex in logged.captured_queries[0]["sql"]  # rendered with its values
    assert len(rows) == 3


def test_with_client_side_binding_the_statement_goes_as_written() -> None:
    sql, params = _insert(3)
    client_side = {"uses_server_side_binding": False}
    with mock.patch.dict(connection.features.__dict__, client_side), statements_sent() as sent:
        rows = statements.execute(sql, params)
    assert sent == [sql]
    assert len(rows) == 3


BATCH = 60  # a drain's batch: every statement below is past psycopg's 50 parameters


def test_a_batchs_writes_are_not_parsed_again_on_every_call(settings: Any) -> None:
    """The outbox insert, the inbox insert and the sent marks of a full batch go through
    :func:`statements.execute`: psycopg would parse each anew on every call otherwise."""
    settings.MESSAGING_SERVICE = "orders"
    rows = [
        OutboxMessage(
            message_id=uuid.uuid4(),
            exchange="orders.events",
            routing_key="order.created",
            body="{}",
            correlation_id="c",
            created_at=timezone.now(),
        )
        for _ in range(BATCH)
    ]
    envelopes = [
        Envelope.new("order.created", order_created(), source="orders", correlation_id="c")
        for _ in range(BATCH)
    ]
    with parsed_by_psycopg() as parsed, transaction.atomic():
        outbox.insert(rows)
        fresh = record_many_in_inbox("tests", envelopes)
        sending.record(sending.Outcome(confirmed=rows))
    assert parsed.call_count == 0
    assert fresh == {envelope.id for envelope in envelopes}
    assert OutboxMessage.objects.filter(sent_at__isnull=False).count() == BATCH
