"""The envelope: what goes out is valid, and decode refuses everything else with a reason."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

import pytest

from messaging import schemas
from messaging.envelope import MAX_BODY_BYTES, Envelope, MalformedMessage, decode
from tests.factories import body, envelope, order_created, raw_envelope


def test_round_trip_keeps_every_field() -> None:
    cause = envelope()
    original = Envelope.new(
        "stock.released",  # an event type with one version
        {"order_id": str(uuid.uuid4()), "reason": "order cancelled"},
        source="inventory",
        correlation_id="corr-1",
        causation_id=cause.id,
    )
    decoded = decode(original.to_json().encode())
    assert decoded == original
    assert decoded.causation_id == cause.id
    assert decoded.version == 1
    uuid.UUID(decoded.id)
    assert datetime.fromisoformat(decoded.occurred_at).tzinfo is not None


def test_new_envelopes_have_distinct_ids_and_current_version() -> None:
    first, second = envelope(), envelope()
    assert first.id != second.id
    assert first.version == schemas.current_version("order.created")
    assert first.causation_id is None


def test_json_is_compact_and_has_exactly_the_envelope_fields() -> None:
    raw = json.loads(envelope().to_json())
    assert set(raw) == set(schemas.ENVELOPE["properties"])
    assert " " not in envelope().to_json().split('"data"')[0]


def test_the_body_is_encoded_once_and_is_the_json_of_the_envelope() -> None:
    built, body = Envelope.encoded(
        "stock.released",
        {"order_id": str(uuid.uuid4()), "reason": "Lagerbestand erschöpft ✓"},
        source="inventory",
        correlation_id="corr-1",
    )
    assert body == built.to_json().encode()
    text = built.to_json()
    assert json.loads(text) == built.as_dict()
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert "erschöpft ✓" in text  # UTF-8 as it is, not escaped
    assert decode(body) == built
    # An envelope copied field by field is a plain envelope (nothing hidden rides along).
    assert Envelope(**built.__dict__) == built


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({**order_created(), "user_id": 0}, "user_id"),
        ({**order_created(), "lines": []}, "lines"),
        ({**order_created(), "lines": [{"product_id": 1, "quantity": 0}]}, "lines/0/quantity"),
        ({**order_created(), "order_id": "not-a-uuid"}, "order_id"),
        ({**order_created(), "order_id": "-" * 36}, "order_id"),
        ({**order_created(), "extra": 1}, "(root)"),
        ({"order_id": str(uuid.uuid4()), "user_id": 7}, "(root)"),
    ],
)
def test_new_refuses_an_invalid_payload(data: dict[str, object], where: str) -> None:
    with pytest.raises(
        schemas.SchemaViolation, match=re.escape(f"order.created v1 payload invalid at {where}:")
    ):
        Envelope.new("order.created", data, source="orders", correlation_id="c")


def test_new_refuses_an_unknown_type() -> None:
    with pytest.raises(
        schemas.SchemaViolation, match=re.escape("unknown event type 'order.teleported'")
    ):
        Envelope.new("order.teleported", {}, source="orders", correlation_id="c")


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"correlation_id": "x" * 65}, "correlation_id"),
        ({"correlation_id": ""}, "correlation_id"),
        ({"source": ""}, "source"),
        ({"causation_id": "y" * 65}, "causation_id"),
    ],
)
def test_new_refuses_an_envelope_a_consumer_would_reject(
    kwargs: dict[str, str], where: str
) -> None:
    args: dict[str, Any] = {"source": "orders", "correlation_id": "c", **kwargs}
    with pytest.raises(schemas.SchemaViolation, match=re.escape(f"envelope invalid at {where}:")):
        Envelope.new("order.created", order_created(), **args)


def test_new_refuses_a_message_over_the_size_limit() -> None:
    lines = [{"product_id": 1, "quantity": 1}] * 500
    small = Envelope.new(
        "order.created", order_created(lines=lines), source="orders", correlation_id="c"
    )
    assert len(small.to_json()) < MAX_BODY_BYTES
    huge_reason = "r" * 2000
    data = {
        "order_id": str(uuid.uuid4()),
        "reason": huge_reason,
        "lines": [{"product_id": 1, "requested": 2, "available": 0, "reason": huge_reason}] * 500,
    }
    with pytest.raises(schemas.SchemaViolation, match="exceeds the 1000000 limit"):
        Envelope.new("stock.rejected", data, source="inventory", correlation_id="c")


@pytest.mark.parametrize(
    ("raw_body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"", "body is not JSON"),
        (b"\xff\xfe\xfa", "body is not JSON"),
        (b"[" * 100_000, "body is not JSON"),
        (b'{"id": NaN}', "body is not JSON"),
        (b'{"id": 1e999}', "body is not JSON"),
        (b'{"id": "\\ud800"}', "body is not JSON"),
        (b"[1, 2]", "invalid envelope: (root): [1, 2] is not of type 'object'"),
        (b'"text"', "invalid envelope: (root): 'text' is not of type 'object'"),
        (b"null", "invalid envelope: (root): None is not of type 'object'"),
    ],
)
def test_decode_rejects_what_is_not_a_json_object(raw_body: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        decode(raw_body)
    assert str(info.value).startswith(reason)


@pytest.mark.parametrize(
    "field",
    ["id", "type", "version", "occurred_at", "source", "correlation_id", "causation_id", "data"],
)
def test_decode_rejects_a_missing_envelope_field(field: str) -> None:
    with pytest.raises(MalformedMessage, match=f"invalid envelope: .*'{field}' is a required"):
        decode(body(raw_envelope(remove=(field,))))


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"id": "123"}, "id"),
        ({"id": "g" * 36}, "id"),
        ({"version": "1"}, "version"),
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"type": "Order Created"}, "type"),
        ({"data": []}, "data"),
        ({"source": ""}, "source"),
        ({"surprise": 1}, "(root)"),
    ],
)
def test_decode_rejects_a_bad_envelope_field(overrides: dict[str, Any], where: str) -> None:
    with pytest.raises(MalformedMessage, match=re.escape(f"invalid envelope: {where}:")):
        decode(body(raw_envelope(**overrides)))


def test_decode_rejects_an_unknown_type_or_version() -> None:
    with pytest.raises(
        MalformedMessage, match=re.escape("unknown event type 'order.teleported' version 1")
    ):
        decode(body(raw_envelope(type="order.teleported")))
    with pytest.raises(
        MalformedMessage, match=re.escape("unknown event type 'order.created' version 99")
    ):
        decode(body(raw_envelope(version=99)))


def test_decode_rejects_a_schema_violation() -> None:
    raw = raw_envelope()
    raw["data"]["lines"][0]["quantity"] = -1
    with pytest.raises(
        MalformedMessage,
        match=re.escape("order.created v1 payload invalid at lines/0/quantity: -1 is less"),
    ):
        decode(body(raw))


def test_decode_rejects_a_body_over_one_megabyte_before_parsing() -> None:
    raw = raw_envelope()
    raw["data"]["padding"] = "x" * MAX_BODY_BYTES
    with pytest.raises(MalformedMessage, match=r"exceeds the 1000000 limit"):
        decode(body(raw))
    # Exactly at the limit is parsed (and then judged on its content).
    with pytest.raises(MalformedMessage, match="body is not JSON"):
        decode(b" " * MAX_BODY_BYTES)


def test_decode_accepts_a_null_causation_id_and_keeps_the_given_id() -> None:
    raw = raw_envelope(causation_id=None, id="6f1c1f7e-4d7a-4a55-9a57-0d1e1b1e5a10")
    decoded = decode(body(raw))
    assert decoded.causation_id is None
    assert decoded.id == "6f1c1f7e-4d7a-4a55-9a57-0d1e1b1e5a10"
