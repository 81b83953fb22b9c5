"""W3C trace context from HTTP, through the outbox and the message headers, to the consumer."""

from __future__ import annotations

import io
import json
import logging
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.trace import NonRecordingSpan, SpanKind, StatusCode
from pika.spec import Basic, BasicProperties

from messaging.config import MessagingConfig
from messaging.consumer import Consumer
from messaging.envelope import Envelope
from messaging.models import OutboxMessage
from messaging.outbox import publish_event
from messaging.publisher import OutgoingMessage, Settled
from messaging.relay import OutboxRelay
from service_runtime import tracing
from service_runtime.logging import JsonFormatter, bound, current_trace_ids
from service_runtime.request_context import RequestContextMiddleware
from tests.factories import body, order_created, stock_reserved

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def _ids(span: Any) -> tuple[str, str]:
    context = span.get_span_context()
    return _hex(context.trace_id, 32), _hex(context.span_id, 16)


def _config(service: str) -> MessagingConfig:
    return MessagingConfig(
        service=service,
        broker_url="amqp://guest:guest@127.0.0.1:1/",
        prefix="unit.",
        handlers_path=None,
        prefetch=5,
        retry_delays_ms=(50, 100, 200),
        heartbeat=30,
        relay_grace_seconds=0.0,  # the relay sends the row at once
    )


@dataclass
class FakeChannel:
    published: list[dict[str, Any]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)

    def basic_publish(self, **kwargs: Any) -> None:
        self.published.append(kwargs)

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.acked.append(delivery_tag)

    # in place of ConfirmingPublisher, for the relay: records, and confirms everything
    def publish(self, message: OutgoingMessage) -> None:
        self.published.append({"properties": message.properties, "body": message.body})

    def wait(self) -> Settled:
        return Settled(confirmed=list(range(len(self.published))))


def test_extract_and_inject_round_trip_the_traceparent(spans: Any) -> None:
    parent = tracing.extract({"Traceparent": TRACEPARENT, "tracestate": "vendor=1", "other": "x"})
    with tracing.tracer().start_as_current_span("child", context=parent) as span:
        headers = tracing.inject()
    assert headers is not None
    assert headers["traceparent"] == f"00-{TRACE_ID}-{_ids(span)[1]}-01"
    assert headers["tracestate"] == "vendor=1"
    assert tracing.inject() is None  # outside any span there is nothing to carry


def test_extract_accepts_bytes_and_ignores_garbage() -> None:
    parent = trace.get_current_span(tracing.extract({"traceparent": TRACEPARENT.encode()}))
    assert _hex(parent.get_span_context().trace_id, 32) == TRACE_ID
    for junk in (None, {}, {"traceparent": "nonsense"}, {"traceparent": 42}):
        assert not trace.get_current_span(tracing.extract(junk)).get_span_context().is_valid


def test_export_is_off_unless_an_otlp_endpoint_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing.EXPORT_ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not tracing.exporting()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing.exporting()


class TestWithoutAnExporter:
    """Nothing exports: spans are not recorded, and still carry the ids that the logs, the
    outbox rows and the messages pass on."""

    @pytest.fixture(autouse=True)
    def _not_recording(self, spans: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(tracing._sampler, "recording", False)
        assert not tracing.recording()

    def test_a_span_keeps_its_ids_and_the_callers_trace_without_being_recorded(
        self, spans: Any
    ) -> None:
        with tracing.server_span("POST", "/api/orders/", {"traceparent": TRACEPARENT}) as span:
            assert not span.is_recording()
            assert span.get_span_context().is_valid
            trace_id, span_id = _ids(span)
            assert (trace_id, current_trace_ids()) == (TRACE_ID, (TRACE_ID, span_id))
            assert span_id != PARENT_SPAN_ID
            headers = tracing.inject()
        # The flag off: this service recorded nothing of the trace.
        assert headers == {"traceparent": f"00-{TRACE_ID}-{span_id}-00"}
        assert spans.get_finished_spans() == ()

    def test_a_message_from_such_a_span_is_consumed_in_the_same_trace(self, spans: Any) -> None:
        with tracing.tracer().start_as_current_span("a root") as root:
            headers = tracing.inject()
        assert headers is not None
        with _open("consume", headers) as span:  # a delivery of inventory's queue
            assert not span.is_recording()
            assert _ids(span)[0] == _ids(root)[0]
            assert _ids(span)[1] != _ids(root)[1]
        assert spans.get_finished_spans() == ()


# Trace headers as they may come, the sane and the odd: for each, the spans made without the SDK
# must be the SDK's.
ODD_TRACEPARENTS = [
    f"00-{TRACE_ID}-{PARENT_SPAN_ID}-00",
    f"00-{TRACE_ID}-{PARENT_SPAN_ID}-03",  # sampled, random trace id
    f"00-{TRACE_ID}-{PARENT_SPAN_ID}-ff",
    f"  {TRACEPARENT}\t",  # blanks around are allowed
    f"{TRACEPARENT}\n",
    f"01-{TRACE_ID}-{PARENT_SPAN_ID}-01-and-more",  # a later version may say more
    f"{TRACEPARENT}-and-more",  # version 00 may not
    f"ff-{TRACE_ID}-{PARENT_SPAN_ID}-01",  # an invalid version
    TRACEPARENT.upper(),
    f"00-{'0' * 32}-{PARENT_SPAN_ID}-01",  # all-zero ids are invalid
    f"00-{TRACE_ID}-{'0' * 16}-01",
    f"00-{TRACE_ID[:-1]}-{PARENT_SPAN_ID}-01",
    f"00-{TRACE_ID}-{PARENT_SPAN_ID}-1",
    f"00-{TRACE_ID}-{PARENT_SPAN_ID}-0g",
    f"00_{TRACE_ID}_{PARENT_SPAN_ID}_01",
    f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01" + " " * 600,  # longer than the propagator reads
    "nonsense",
]
HEADERS: list[Mapping[str, Any] | None] = [
    None,
    {},
    {"x-attempt": 1},
    {"traceparent": TRACEPARENT},
    {"Traceparent": TRACEPARENT.encode(), "x-attempt": 1},
    {"traceparent": ""},
    {"traceparent": 42},
    {"traceparent": TRACEPARENT, "TRACEPARENT": f"00-{'a' * 32}-{'b' * 16}-01"},  # the last
    {"traceparent": TRACEPARENT, "tracestate": "vendor=1,other=two"},
    {"traceparent": TRACEPARENT, "TraceState": b"vendor=1"},
    {"traceparent": TRACEPARENT, "tracestate": "vendor=1,not a member"},
    {"traceparent": TRACEPARENT, "tracestate": ",".join(f"k{n}=v" for n in range(40))},
    {"traceparent": TRACEPARENT, "tracestate": "k=v," * 3000},  # too long: dropped
    {"traceparent": "nonsense", "tracestate": "vendor=1"},
    *({"traceparent": odd, "tracestate": "vendor=1"} for odd in ODD_TRACEPARENTS),
]


def _open(kind: str, headers: Mapping[str, Any] | None) -> AbstractContextManager[Any]:
    if kind == "consume":
        return tracing.consume_span(
            queue="inventory",
            exchange="orders.events",
            routing_key="order.created",
            message_id="m",
            correlation_id="c",
            headers=headers,
        )
    if kind == "publish":
        return tracing.publish_span(
            exchange="orders.events",
            routing_key="order.created",
            message_id="m",
            correlation_id="c",
            stored_headers=headers,
        )
    return tracing.server_span("POST", "/api/orders/", headers or {})


KINDS = {"consume": SpanKind.CONSUMER, "publish": SpanKind.PRODUCER, "server": SpanKind.SERVER}


@pytest.fixture
def same_random() -> Iterator[None]:
    """Leaves ``random`` as it was (the tests seed it, to draw the same ids twice)."""
    state = random.getstate()
    yield
    random.setstate(state)


class TestUnrecordedSpansWithoutTheSdk:
    """Nothing records: the message and request spans are made without the SDK's
    ``start_as_current_span`` and the propagator, and must be what they would have made."""

    @pytest.fixture(autouse=True)
    def _not_recording(self, spans: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        monkeypatch.setattr(tracing._sampler, "recording", False)
        yield
        assert spans.get_finished_spans() == ()

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("headers", HEADERS, ids=lambda headers: repr(headers)[:80])
    def test_the_span_is_the_one_the_sdk_makes(
        self,
        kind: str,
        headers: Mapping[str, Any] | None,
        same_random: None,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        random.seed(7)  # the same ids drawn by both
        with _open(kind, headers) as given:
            span = trace.get_current_span()
            injected = tracing.inject()
            extracted = trace.get_current_span(tracing.extract(headers)).get_span_context()
        warnings = [record.getMessage() for record in caplog.records]
        caplog.clear()

        random.seed(7)
        parent = tracing._propagator.extract(tracing.trace_headers(headers))
        with tracing.tracer().start_as_current_span(
            "sdk", context=parent, kind=KINDS[kind]
        ) as expected:
            carrier: dict[str, str] = {}
            tracing._propagator.inject(carrier)
        sdk_extracted = trace.get_current_span(
            tracing._propagator.extract(tracing.trace_headers(headers))
        ).get_span_context()

        assert isinstance(span, NonRecordingSpan)
        assert span.get_span_context() == expected.get_span_context()
        assert injected == carrier
        assert given == (carrier if kind == "publish" else span)
        assert extracted == sdk_extracted
        assert warnings == [record.getMessage() for record in caplog.records]  # and no more

    def test_a_span_continues_the_traceparent_with_a_new_span_id_and_the_flag_off(self) -> None:
        headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-03", "x-attempt": 1}
        with _open("consume", headers) as span:
            trace_id, span_id = _ids(span)
            assert trace_id == TRACE_ID
            assert span_id not in (PARENT_SPAN_ID, "0" * 16)
            assert not span.is_recording()
            # sampled off, random-trace-id as the parent said
            assert tracing.inject() == {"traceparent": f"00-{TRACE_ID}-{span_id}-02"}
        with _open("consume", headers) as other:
            assert _ids(other)[0] == TRACE_ID and _ids(other)[1] != span_id

    @pytest.mark.parametrize(
        "traceparent",
        [f"00-{TRACE_ID}-{'0' * 16}-01", f"00-{TRACE_ID.upper()}-{PARENT_SPAN_ID}-01", "00-x"],
    )
    def test_a_malformed_traceparent_starts_a_new_trace(self, traceparent: str) -> None:
        with _open("consume", {"traceparent": traceparent, "tracestate": "vendor=1"}) as span:
            trace_id, span_id = _ids(span)
            assert span.get_span_context().is_valid and trace_id != TRACE_ID
            # a new random trace id: the random-trace-id flag, the sampled one off, no state
            assert tracing.inject() == {"traceparent": f"00-{trace_id}-{span_id}-02"}

    @pytest.mark.parametrize("kind", KINDS)
    def test_the_tracestate_is_kept(self, kind: str) -> None:
        headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=1,other=two"}
        with _open(kind, headers) as given:
            span = trace.get_current_span()
            assert dict(span.get_span_context().trace_state) == {"vendor": "1", "other": "two"}
            expected = {
                "traceparent": f"00-{TRACE_ID}-{_ids(span)[1]}-00",
                "tracestate": "vendor=1,other=two",
            }
            assert tracing.inject() == expected
            if kind == "publish":
                assert given == expected

    @pytest.mark.parametrize("kind", KINDS)
    def test_the_context_is_restored_after_the_block_and_after_an_exception(
        self, kind: str
    ) -> None:
        token = context_api.attach(context_api.set_value("other", "kept"))
        try:
            with tracing.tracer().start_as_current_span("outer") as outer:
                before = context_api.get_current()
                with _open(kind, {"traceparent": TRACEPARENT}):
                    inner = trace.get_current_span()
                    assert inner is not outer and _ids(inner)[0] == TRACE_ID
                    assert context_api.get_value("other") == "kept"
                assert context_api.get_current() is before
                assert trace.get_current_span() is outer

                failure = LookupError("the handler failed")
                with pytest.raises(LookupError) as raised, _open(kind, {}):
                    failing = trace.get_current_span()
                    assert failing is not outer and failing.get_span_context().is_valid
                    raise failure
                assert raised.value is failure
                assert context_api.get_current() is before
                assert trace.get_current_span() is outer
            assert not outer.is_recording()  # nor anything in it, or the fixture says so
        finally:
            context_api.detach(token)
        assert tracing.inject() is None

    def test_log_lines_in_such_a_span_carry_its_ids(self) -> None:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter(service="inventory"))
        logger = logging.getLogger("tests.tracing.unrecorded")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            for _ in range(2):  # a second span: new ids on the lines
                with _open("consume", {"traceparent": TRACEPARENT}) as span:
                    logger.warning("handling")
                line = json.loads(stream.getvalue().splitlines()[-1])
                assert (line["trace_id"], line["span_id"]) == _ids(span)
            logger.warning("after")
            assert "trace_id" not in json.loads(stream.getvalue().splitlines()[-1])
        finally:
            logger.removeHandler(handler)

    def test_a_request_through_the_middleware_continues_the_callers_trace(self) -> None:
        seen: dict[str, Any] = {}

        def view(request: HttpRequest) -> HttpResponse:
            seen["span"] = trace.get_current_span()
            seen["log_context"] = request.log_context  # type: ignore[attr-defined]
            return HttpResponse(status=202)

        request = RequestFactory().post(
            "/api/orders/", headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
        )
        response = RequestContextMiddleware(view)(request)
        span = seen["span"]
        assert isinstance(span, NonRecordingSpan) and _ids(span)[0] == TRACE_ID
        assert response["traceresponse"] == f"00-{TRACE_ID}-{_ids(span)[1]}-00"
        assert (seen["log_context"]["trace_id"], seen["log_context"]["span_id"]) == _ids(span)
        assert not trace.get_current_span().get_span_context().is_valid

    def test_neither_the_sdks_span_machinery_nor_the_propagator_runs(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the SDK's way was taken")

        monkeypatch.setattr(SdkTracer, "start_span", refuse)
        monkeypatch.setattr(SdkTracer, "start_as_current_span", refuse)
        monkeypatch.setattr(tracing._sampler, "should_sample", refuse)
        monkeypatch.setattr(tracing._propagator, "extract", refuse)
        monkeypatch.setattr(tracing._propagator, "inject", refuse)
        headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
        for kind in KINDS:
            with _open(kind, headers):
                assert tracing.inject() is not None
        assert trace.get_current_span(tracing.extract(headers)).get_span_context().is_valid


def test_with_an_exporter_the_sdk_makes_and_records_the_spans(spans: Any) -> None:
    assert tracing.recording()  # what the session's in-memory exporter did
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-00", "tracestate": "vendor=1"}
    for kind in KINDS:
        with _open(kind, headers):
            span = trace.get_current_span()
            assert span.is_recording() and not isinstance(span, NonRecordingSpan)
            assert tracing.inject() == {
                "traceparent": f"00-{TRACE_ID}-{_ids(span)[1]}-01",  # recorded: sampled
                "tracestate": "vendor=1",
            }
        with pytest.raises(LookupError), _open(kind, headers):
            raise LookupError("the handler failed")
    finished = spans.get_finished_spans()
    assert [span.kind for span in finished] == [kind for kind in KINDS.values() for _ in "ok"]
    assert {span.parent.span_id for span in finished if span.parent} == {int(PARENT_SPAN_ID, 16)}
    assert finished[0].attributes["messaging.destination.subscription.name"] == "inventory"
    for failed in finished[1::2]:  # the SDK records the exception on a span that records
        assert failed.status.status_code == StatusCode.ERROR
        assert [event.name for event in failed.events] == ["exception"]


@pytest.mark.parametrize(("endpoint", "recorded"), [("", False), ("http://127.0.0.1:9", True)])
def test_a_process_records_spans_only_when_it_exports_them(endpoint: str, recorded: bool) -> None:
    """A fresh process, as each service starts: the exporter's variable decides. A service that
    exports records a span even under a ``traceparent`` whose sampled flag is off."""
    script = (
        "from service_runtime import tracing\n"
        "tracing.configure('probe')\n"
        f"parent = tracing.extract({{'traceparent': '00-{TRACE_ID}-{PARENT_SPAN_ID}-00'}})\n"
        "with tracing.tracer().start_as_current_span('s', context=parent) as span:\n"
        "    print(tracing.recording(), span.is_recording(), flush=True)\n"
        "import os; os._exit(0)  # before the exporter tries to send the span\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k not in tracing.EXPORT_ENDPOINT_VARIABLES},
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(recorded), str(recorded)]


class TestHttp:
    def _call(self, **headers: str) -> tuple[HttpResponse, dict[str, Any]]:
        seen: dict[str, Any] = {}

        def view(request: HttpRequest) -> HttpResponse:
            seen["context"] = dict(bound())
            seen["span"] = trace.get_current_span()
            seen["log_context"] = request.log_context  # type: ignore[attr-defined]
            return HttpResponse(status=202)

        request = RequestFactory().post("/api/orders/", headers=headers)
        response = RequestContextMiddleware(view)(request)
        assert isinstance(response, HttpResponse)
        return response, seen

    def test_a_sane_request_id_is_the_correlation_id_and_is_echoed(self, spans: Any) -> None:
        response, seen = self._call(**{"X-Request-ID": "req-42"})
        assert response["X-Request-ID"] == "req-42"
        assert seen["context"] == {"correlation_id": "req-42", "request_id": "req-42"}
        assert bound() == {}  # nothing leaks past the request

    @pytest.mark.parametrize("given", ["", "has spaces", "x" * 65, "<script>"])
    def test_a_missing_or_odd_request_id_is_replaced_by_a_uuid(
        self, given: str, spans: Any
    ) -> None:
        response, seen = self._call(**{"X-Request-ID": given})
        assert str(uuid.UUID(response["X-Request-ID"])) == response["X-Request-ID"]
        assert seen["context"]["correlation_id"] == response["X-Request-ID"]

    def test_the_server_span_continues_the_callers_trace(self, spans: Any) -> None:
        response, seen = self._call(traceparent=TRACEPARENT)
        [span] = spans.get_finished_spans()
        assert span.kind == SpanKind.SERVER
        assert _ids(span) == _ids(seen["span"])
        assert _ids(span)[0] == TRACE_ID
        assert span.parent is not None and _hex(span.parent.span_id, 16) == PARENT_SPAN_ID
        assert span.attributes["http.request.method"] == "POST"
        assert span.attributes["http.response.status_code"] == 202
        assert response["traceresponse"] == f"00-{TRACE_ID}-{_ids(span)[1]}-01"
        assert (seen["log_context"]["trace_id"], seen["log_context"]["span_id"]) == _ids(span)

    def test_without_a_traceparent_a_new_trace_starts(self, spans: Any) -> None:
        response, _ = self._call()
        [span] = spans.get_finished_spans()
        assert span.parent is None
        assert response["traceresponse"].split("-")[1] == _ids(span)[0]


@pytest.mark.django_db(transaction=True)  # the workers close connections between messages
class TestThroughTheBroker:
    @pytest.fixture(autouse=True)
    def _orders(self, settings: Any) -> None:
        settings.MESSAGING_SERVICE = "orders"

    def _publish_in_a_request_span(self) -> tuple[Envelope, Any]:
        parent = tracing.extract({"traceparent": TRACEPARENT})
        with (
            tracing.tracer().start_as_current_span("POST /api/orders/", context=parent) as span,
            transaction.atomic(),
        ):
            data = order_created()
            envelope = publish_event("order.created", data, correlation_id=data["order_id"])
        return envelope, span

    def test_the_outbox_row_stores_the_writing_spans_context(self, spans: Any) -> None:
        envelope, span = self._publish_in_a_request_span()
        row = OutboxMessage.objects.get(message_id=envelope.id)
        assert row.headers == {"traceparent": f"00-{TRACE_ID}-{_ids(span)[1]}-01"}

    def test_an_event_written_outside_any_span_has_no_headers(self) -> None:
        with transaction.atomic():
            data = order_created()
            envelope = publish_event("order.created", data, correlation_id=data["order_id"])
        assert OutboxMessage.objects.get(message_id=envelope.id).headers is None

    def test_the_relay_publishes_in_a_child_span_and_puts_it_in_the_headers(
        self, spans: Any
    ) -> None:
        envelope, request_span = self._publish_in_a_request_span()
        channel = FakeChannel()
        assert OutboxRelay(_config("orders")).relay_batch(channel) == 1  # type: ignore[arg-type]

        [message] = channel.published
        publish = next(s for s in spans.get_finished_spans() if s.kind == SpanKind.PRODUCER)
        assert publish.name == "publish order.created"
        assert _ids(publish)[0] == TRACE_ID
        assert publish.parent is not None
        assert publish.parent.span_id == request_span.get_span_context().span_id
        assert publish.attributes["messaging.message.id"] == envelope.id
        properties = message["properties"]
        assert properties.headers == {"traceparent": f"00-{TRACE_ID}-{_ids(publish)[1]}-01"}
        assert properties.message_id == envelope.id

    def test_the_consumer_continues_the_trace_and_its_events_carry_it_on(
        self, settings: Any, spans: Any
    ) -> None:
        settings.MESSAGING_SERVICE = "inventory"  # the handler publishes as inventory
        seen: dict[str, Any] = {}

        def reserve(envelope: Envelope) -> None:
            seen["context"] = dict(bound())
            seen["span"] = trace.get_current_span()
            publish_event(
                "stock.reserved",
                stock_reserved(envelope.data["order_id"]),
                correlation_id=envelope.correlation_id,
                causation=envelope,
            )

        consumer = Consumer({"order.created": reserve}, config=_config("inventory"))
        data = order_created()
        incoming = Envelope.new(
            "order.created", data, source="orders", correlation_id=data["order_id"]
        )
        channel = FakeChannel()
        consumer._on_message(
            channel,
            Basic.Deliver(delivery_tag=7, exchange="unit.orders", routing_key="order.created"),
            BasicProperties(
                message_id=incoming.id,
                correlation_id=incoming.correlation_id,
                headers={"traceparent": TRACEPARENT, "x-attempt": 1},
            ),
            incoming.to_json().encode(),
        )
        consumer.process_pending()
        assert channel.acked == [7]

        [consume] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]
        assert consume.name == "consume order.created"
        assert _ids(consume)[0] == TRACE_ID
        assert consume.parent is not None and _hex(consume.parent.span_id, 16) == PARENT_SPAN_ID
        assert _ids(seen["span"]) == _ids(consume)  # the handler ran inside the consume span
        assert seen["context"]["correlation_id"] == data["order_id"]
        assert seen["context"]["message_id"] == incoming.id
        assert bound() == {}

        onward = OutboxMessage.objects.get(routing_key="stock.reserved")
        assert onward.headers == {"traceparent": f"00-{TRACE_ID}-{_ids(consume)[1]}-01"}

    def test_a_malformed_message_is_dead_lettered_inside_its_span(self, spans: Any) -> None:
        consumer = Consumer({}, config=_config("inventory"))
        channel = FakeChannel()
        consumer._on_message(
            channel,
            Basic.Deliver(delivery_tag=1, exchange="unit.orders", routing_key="order.created"),
            BasicProperties(headers={"traceparent": TRACEPARENT}),
            body({"not": "an envelope"}),
        )
        consumer.process_pending()
        [dead] = channel.published
        assert dead["properties"].headers["traceparent"] == TRACEPARENT  # kept for a replay
        [consume] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]
        assert _ids(consume)[0] == TRACE_ID
