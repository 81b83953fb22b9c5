"""JSON schemas of the envelope and of every event payload, keyed by (type, version).

This module is the contract between services: a producer cannot publish a payload that does
not match, and a consumer dead-letters one that does not.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator


class SchemaViolation(ValueError):
    """A payload does not match the schema of its event type."""


UUID = {"type": "string", "format": "uuid", "pattern": "^[0-9a-fA-F-]{36}$"}
ID = {"type": "integer", "minimum": 1}
MONEY = {"type": "string", "pattern": r"^-?\d{1,10}(\.\d{1,2})?$"}
TEXT = {"type": "string", "maxLength": 2000}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


ENVELOPE = _object(
    {
        "id": UUID,
        "type": {"type": "string", "pattern": r"^[a-z]+(\.[a-z_]+)+$"},
        "version": {"type": "integer", "minimum": 1},
        "occurred_at": {"type": "string", "minLength": 10, "maxLength": 40},
        "source": {"type": "string", "minLength": 1, "maxLength": 64},
        "correlation_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "causation_id": {"type": ["string", "null"], "maxLength": 64},
        "data": {"type": "object"},
    }
)

ORDER_LINE = _object({"product_id": ID, "quantity": {"type": "integer", "minimum": 1}})
ORDER_LINES = {"type": "array", "items": ORDER_LINE, "minItems": 1, "maxItems": 500}
REJECTED_LINE = _object(
    {
        "product_id": ID,
        "requested": {"type": "integer", "minimum": 1},
        "available": {"type": "integer", "minimum": 0},
        "reason": TEXT,
    }
)

EVENTS: dict[tuple[str, int], dict[str, Any]] = {
    ("product.upserted", 1): _object(
        {
            "product_id": ID,
            "sku": {"type": "string", "minLength": 1, "maxLength": 64},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "price": MONEY,
            "active": {"type": "boolean"},
            "category": {"type": ["string", "null"], "maxLength": 100},
        }
    ),
    ("order.created", 1): _object({"order_id": UUID, "user_id": ID, "lines": ORDER_LINES}),
    ("order.confirmed", 1): _object({"order_id": UUID, "user_id": ID, "total": MONEY}),
    ("order.rejected", 1): _object({"order_id": UUID, "user_id": ID, "reason": TEXT}),
    ("order.cancelled", 1): _object({"order_id": UUID, "user_id": ID, "reason": TEXT}),
    ("order.shipped", 1): _object({"order_id": UUID, "user_id": ID}),
    ("stock.reserved", 1): _object({"order_id": UUID, "lines": ORDER_LINES}),
    ("stock.rejected", 1): _object(
        {
            "order_id": UUID,
            "reason": TEXT,
            "lines": {"type": "array", "items": REJECTED_LINE, "maxItems": 500},
        }
    ),
    ("stock.released", 1): _object({"order_id": UUID, "reason": TEXT}),
    ("stock.low", 1): _object(
        {
            "product_id": ID,
            "sku": {"type": "string", "minLength": 1, "maxLength": 64},
            "name": {"type": "string", "maxLength": 200},
            "available": {"type": "integer", "minimum": 0},
            "threshold": {"type": "integer", "minimum": 0},
        }
    ),
    ("user.registered", 1): _object(
        {
            "user_id": ID,
            "username": {"type": "string", "minLength": 1, "maxLength": 150},
            "email": {"type": "string", "maxLength": 254},
        }
    ),
}

# Formats are asserted too ("uuid" must parse as a UUID, not only look like one).
_FORMATS = Draft202012Validator.FORMAT_CHECKER
_ENVELOPE_VALIDATOR = Draft202012Validator(ENVELOPE, format_checker=_FORMATS)
_VALIDATORS = {
    key: Draft202012Validator(schema, format_checker=_FORMATS) for key, schema in EVENTS.items()
}


def is_known(event_type: str, version: int) -> bool:
    return (event_type, version) in _VALIDATORS


def current_version(event_type: str) -> int:
    versions = [version for (name, version) in _VALIDATORS if name == event_type]
    if not versions:
        raise SchemaViolation(f"unknown event type {event_type!r}")
    return max(versions)


def _first_problem(validator: Draft202012Validator, instance: Any) -> str | None:
    error = next(iter(validator.iter_errors(instance)), None)
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return f"{where}: {error.message[:300]}"


def envelope_problem(raw: Any) -> str | None:
    """Why ``raw`` is not a valid envelope, or None."""
    return _first_problem(_ENVELOPE_VALIDATOR, raw)


def validate(event_type: str, version: int, data: Any) -> None:
    validator = _VALIDATORS.get((event_type, version))
    if validator is None:
        raise SchemaViolation(f"unknown event type {event_type!r} version {version}")
    problem = _first_problem(validator, data)
    if problem:
        raise SchemaViolation(f"{event_type} v{version} payload invalid at {problem}")
