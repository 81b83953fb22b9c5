"""The envelope every message travels in, and its strict decoding."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import orjson

from messaging import schemas, versions

MAX_BODY_BYTES = 1_000_000


class MalformedMessage(Exception):
    """A message that can never be processed: it goes to the dead-letter queue at once."""


@dataclass(frozen=True)
class Envelope:
    type: str
    data: dict[str, Any]
    source: str
    correlation_id: str
    causation_id: str | None = None
    version: int = 1
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @classmethod
    def new(
        cls,
        event_type: str,
        data: dict[str, Any],
        *,
        source: str,
        correlation_id: str,
        causation_id: str | None = None,
        version: int | None = None,
    ) -> Envelope:
        """Build an envelope for an outgoing event: ``data`` in ``version`` (the newest when
        None; ``messaging.versions.for_publishing`` writes a payload in an older one).

        Raises :class:`schemas.SchemaViolation` unless the payload matches its schema and the
        whole envelope is one that :func:`decode` accepts (field limits, size), so an event a
        consumer would dead-letter is never published.
        """
        return cls.encoded(
            event_type,
            data,
            source=source,
            correlation_id=correlation_id,
            causation_id=causation_id,
            version=version,
        )[0]

    @classmethod
    def encoded(
        cls,
        event_type: str,
        data: dict[str, Any],
        *,
        source: str,
        correlation_id: str,
        causation_id: str | None = None,
        version: int | None = None,
    ) -> tuple[Envelope, bytes]:
        """:meth:`new`'s envelope and its message body, encoded once: the bytes its size was
        checked on are the ones to send."""
        if version is None:
            version = schemas.current_version(event_type)
        schemas.validate(event_type, version, data)
        envelope = cls(
            type=event_type,
            data=data,
            source=source,
            correlation_id=str(correlation_id),
            causation_id=str(causation_id) if causation_id else None,
            version=version,
        )
        problem = schemas.envelope_problem(envelope.as_dict())
        if problem:
            raise schemas.SchemaViolation(f"{event_type} envelope invalid at {problem}")
        body = _encode(envelope.as_dict())
        if len(body) > MAX_BODY_BYTES:
            raise schemas.SchemaViolation(
                f"{event_type} message of {len(body)} bytes exceeds the {MAX_BODY_BYTES} limit"
            )
        return envelope, body

    def as_dict(self) -> dict[str, Any]:
        """The envelope's fields, sharing ``data`` (``dataclasses.asdict`` would copy it deeply,
        which cost more than the JSON encoding on every event published)."""
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    def to_json(self) -> str:
        """The message body: compact JSON, keys sorted, UTF-8 text as it is."""
        return _encode(self.as_dict()).decode()


_FIELD_NAMES = tuple(f.name for f in fields(Envelope))


def _encode(document: dict[str, Any]) -> bytes:
    """Compact JSON with sorted keys. ``orjson``: the standard library's encoder took several
    times as long, on every event published (``reports/bench-changes.md``)."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def decode(body: bytes) -> Envelope:
    """Parse and validate a message body, or raise :class:`MalformedMessage` saying why.

    Every version of an event type that has a schema is accepted; the payload is checked
    against its own version's schema, then brought up to the newest version this code reads
    (``messaging.versions.to_newest``): the envelope returned carries that version and shape,
    whatever the release of the service that published it."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedMessage(f"body of {len(body)} bytes exceeds the {MAX_BODY_BYTES} limit")
    try:
        raw = orjson.loads(body)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, or nested too deep
        raise MalformedMessage(f"body is not JSON: {exc}") from exc
    problem = schemas.envelope_problem(raw)
    if problem:
        raise MalformedMessage(f"invalid envelope: {problem}")
    if not schemas.is_known(raw["type"], raw["version"]):
        raise MalformedMessage(f"unknown event type {raw['type']!r} version {raw['version']}")
    try:
        schemas.validate(raw["type"], raw["version"], raw["data"])
    except schemas.SchemaViolation as exc:
        raise MalformedMessage(str(exc)) from exc
    version, data = versions.to_newest(raw["type"], raw["version"], raw["data"])
    return Envelope(
        type=raw["type"],
        data=data,
        source=raw["source"],
        correlation_id=raw["correlation_id"],
        causation_id=raw.get("causation_id"),
        version=version,
        id=raw["id"],
        occurred_at=raw["occurred_at"],
    )
