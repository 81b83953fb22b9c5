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
from service_runtime import query_plans, statements
from service_runtime import settings as service_settings
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


def _outbox_row() -> OutboxMessage:
    """An unsaved outbox row of ``order.created``, as :func:`outbox.insert` takes them."""
    return OutboxMessage(
        message_id=uuid.uuid4(),
        exchange="orders.events",
        routing_key="order.created",
        body="{}",
        correlation_id="c",
        created_at=timezone.now(),
    )


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
    rows = [_outbox_row() for _ in range(BATCH)]
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


@pytest.fixture(autouse=True)
def one_plan_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's age must not start a new generation of plans in the middle of a test."""
    monkeypatch.setattr(statements, "plan_generation", lambda: 3)


_SUM = f"SELECT %(a)s::integer + %(b)s::integer, %(a)s::integer FROM {TABLE} WHERE consumer = %(c)s"  # noqa: S608


def test_named_parameters_are_numbered_by_name() -> None:
    statements.execute(*_insert(1))
    rows = statements.execute(_SUM, {"a": 2, "b": 3, "c": "tests"})
    assert rows == [(5, 2)]
    rows = statements.execute(_SUM, {"c": "tests", "b": 30, "a": 20}, prepared=True)
    assert rows == [(50, 20)]


def test_a_prepared_statement_runs_on_one_generic_plan() -> None:
    statements.execute(*_insert(1))
    for a in range(1, 4):
        assert statements.execute(_SUM, {"a": a, "b": 1, "c": "tests"}, prepared=True) == [
            (a + 1, a)
        ]
    [(text, generic, custom)] = [p for p in query_plans.prepared() if "consumer = $3" in p[0]]
    assert text.startswith(statements.numbered_by_name(_SUM)[0])
    assert (generic, custom) == (3, 0)  # planned once, for no values in particular


def test_statements_not_asked_to_be_prepared_are_not_even_after_many_runs() -> None:
    sql, params = _insert(1)
    statements.execute(sql, params)
    for _ in range(20):
        statements.execute(_SUM, {"a": 1, "b": 1, "c": "tests"})
        assert InboxMessage.objects.filter(consumer="tests").count() == 1
    assert query_plans.prepared() == []
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("force_generic_plan",)  # for the prepared ones only


def test_a_prepared_statement_is_planned_again_as_the_process_ages() -> None:
    statements.execute(*_insert(1))
    params = {"a": 1, "b": 1, "c": "tests"}
    for generation in (4, 4, 5):
        with mock.patch.object(statements, "plan_generation", return_value=generation):
            statements.execute(_SUM, params, prepared=True)
    prepared = sorted(p for p in query_plans.prepared() if "consumer = $3" in p[0])
    assert [(text.rsplit("\n", 1)[1], generic) for text, generic, _ in prepared] == [
        ("-- plans 4", 2),
        ("-- plans 5", 1),
    ]


def test_with_preparing_turned_off_nothing_is_prepared() -> None:
    statements.execute(*_insert(1))
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    threshold, raw.prepare_threshold = raw.prepare_threshold, None
    try:
        rows = statements.execute(_SUM, {"a": 1, "b": 1, "c": "tests"}, prepared=True)
    finally:
        raw.prepare_threshold = threshold
    assert rows == [(2, 1)]
    assert query_plans.prepared() == []


def test_preparing_is_on_by_default_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgres://u@db:5432/orders?options=-c%20statement_timeout%3D5000"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("DATABASE_PREPARED_STATEMENTS", raising=False)
    options = service_settings.database("orders")["OPTIONS"]
    assert options["prepare_threshold"] == service_settings.PREPARE_ONLY_WHEN_ASKED
    assert options["options"] == "-c statement_timeout=5000 -c plan_cache_mode=force_generic_plan"
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "0")
    options = service_settings.database("orders")["OPTIONS"]
    assert "prepare_threshold" not in options
    assert "plan_cache_mode" not in options.get("options", "")


def test_a_batchs_inbox_rows_go_as_one_prepared_statement_whatever_its_size() -> None:
    """Planned on every call, the inbox insert cost PostgreSQL about twice its work: its rows go
    as one JSON parameter, so that one text, prepared once, serves every batch."""
    for size in (1, BATCH, 3):
        envelopes = [
            Envelope.new("order.created", order_created(), source="orders", correlation_id="c")
            for _ in range(size)
        ]
        with transaction.atomic():
            assert record_many_in_inbox("tests", envelopes) == {e.id for e in envelopes}
            assert record_many_in_inbox("tests", envelopes[:1]) == set()  # applied before
    inbox = [p for p in query_plans.prepared() if f"INSERT INTO {TABLE}" in p[0]]
    assert [(generic, custom) for _, generic, custom in inbox] == [(6, 0)]
    assert InboxMessage.objects.filter(consumer="tests").count() == 1 + BATCH + 3


def test_one_events_outbox_row_goes_prepared_and_several_do_not() -> None:
    """A transaction of one message or one request writes one outbox row: that text is
    prepared, so PostgreSQL plans it once per connection instead of on every event. A batch's
    several rows are not (each count would keep a prepared statement of its own)."""
    outbox_table = OutboxMessage._meta.db_table
    for count in (1, 1, 1, 3, 3):
        with transaction.atomic():
            outbox.insert([_outbox_row() for _ in range(count)])
    written = [p for p in query_plans.prepared() if f'INSERT INTO "{outbox_table}"' in p[0]]
    assert [(generic, custom) for _, generic, custom in written] == [(3, 0)]
    assert OutboxMessage.objects.count() == 9


def test_a_connection_keeps_at_most_sixteen_prepared_statements_dropping_the_oldest() -> None:
    """Each generation prepares its statements anew: the older ones are deallocated, so a
    long-lived process does not pile up plans on the server."""
    statements.execute(*_insert(1))
    params = {"a": 1, "b": 1, "c": "tests"}
    for generation in range(1, 21):
        with mock.patch.object(statements, "plan_generation", return_value=generation):
            assert statements.execute(_SUM, params, prepared=True) == [(2, 1)]
    statements.execute("SELECT 1", [])  # psycopg deallocates what it rotated out before this
    kept = sorted(int(text.rsplit(" ", 1)[1]) for text, _, _ in query_plans.prepared())
    assert kept == list(range(5, 21))
