"""JSON schemas of the envelope and of every event payload, keyed by (type, version).

This module is the contract between services: a producer cannot publish a payload that does
not match, and a consumer dead-letters one that does not.

Every message is checked twice (when it is published and when it is consumed), so each schema
is compiled once into Python code (``fastjsonschema``): a valid order.created envelope and
payload cost microseconds instead of the hundreds that ``jsonschema`` takes to walk the schema
on every call. ``jsonschema`` (Draft 2020-12, formats asserted) stays the reference: a
document the compiled code refuses is judged again by it, which says which field is wrong,
and is refused only if it agrees (``tests/unit/test_compiled_schemas.py`` checks that both
accept and refuse the same documents).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import fastjsonschema

if TYPE_CHECKING:
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

# A warehouse as inventory names it: its code, which never changes.
WAREHOUSE = {"type": "string", "minLength": 1, "maxLength": 32}
# Units of one product held (stock.reserved v2) in one warehouse.
ALLOCATION = _object(
    {"product_id": ID, "warehouse": WAREHOUSE, "quantity": {"type": "integer", "minimum": 1}}
)
# Units of one product in one shipment (order.shipped v2).
SHIPPED_LINES = {"type": "array", "items": ORDER_LINE, "minItems": 0, "maxItems": 500}
COUNT = {"type": "integer", "minimum": 0}
# One line of a return as staff received it: units back on hand, units written off.
RECEIVED_LINE = _object({"product_id": ID, "restocked": COUNT, "damaged": COUNT})

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
    # The order waits on backorder for ``lines`` (the units still missing per product).
    ("order.backordered", 1): _object({"order_id": UUID, "user_id": ID, "lines": ORDER_LINES}),
    # A customer asked to send shipped units back.
    ("return.requested", 1): _object(
        {"order_id": UUID, "user_id": ID, "return_id": ID, "lines": ORDER_LINES, "reason": TEXT}
    ),
    # Staff received a return into ``warehouse``: per line, units restocked and units damaged
    # (written off); ``refund_amount`` = unit prices paid x units received.
    ("return.received", 1): _object(
        {
            "order_id": UUID,
            "user_id": ID,
            "return_id": ID,
            "warehouse": WAREHOUSE,
            "lines": {"type": "array", "items": RECEIVED_LINE, "minItems": 1, "maxItems": 500},
            "refund_amount": MONEY,
        }
    ),
    # The refund a payment system should pay for a received return (recorded, not paid here).
    ("return.refunded", 1): _object(
        {"order_id": UUID, "user_id": ID, "return_id": ID, "amount": MONEY}
    ),
    # One shipment of the order (messaging.changes). ``lines`` empty: everything that remained;
    # ``complete``: no unit of the order is left to ship after this one.
    ("order.shipped", 2): _object(
        {
            "order_id": UUID,
            "user_id": ID,
            "shipment_id": {"type": ["integer", "null"], "minimum": 1},
            "warehouse": {**WAREHOUSE, "type": ["string", "null"]},
            "lines": SHIPPED_LINES,
            "complete": {"type": "boolean"},
        }
    ),
    ("stock.reserved", 1): _object({"order_id": UUID, "lines": ORDER_LINES}),
    # Where each unit is held (messaging.changes): ``allocations`` empty or absent, not known
    # (reserved by a release that did not say).
    ("stock.reserved", 2): _object(
        {
            "order_id": UUID,
            "lines": ORDER_LINES,
            "allocations": {"type": "array", "items": ALLOCATION, "maxItems": 5000},
        },
        required=["order_id", "lines"],
    ),
    ("stock.rejected", 1): _object(
        {
            "order_id": UUID,
            "reason": TEXT,
            "lines": {"type": "array", "items": REJECTED_LINE, "maxItems": 500},
        }
    ),
    ("stock.released", 1): _object({"order_id": UUID, "reason": TEXT}),
    # The order waits for stock: ``allocations`` is what inventory holds for it now (it keeps
    # it), ``waiting`` the units per product still missing, served in arrival order.
    ("stock.backordered", 1): _object(
        {
            "order_id": UUID,
            "lines": ORDER_LINES,
            "allocations": {"type": "array", "items": ALLOCATION, "maxItems": 5000},
            "waiting": {**ORDER_LINES, "minItems": 1},
        }
    ),
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


# The canonical form, which every id this system writes has: a uuid at once.
_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _is_uuid(value: str) -> bool:
    """The "uuid" format as Draft 2020-12 asserts it: parses, and has its four dashes.

    Checked on every id of every message published and consumed: the canonical form is
    matched first (a fifth of the cost of parsing); anything else is judged as the reference
    does (``uuid.UUID`` takes more than the canonical form)."""
    if _CANONICAL_UUID.fullmatch(value):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return all(value[position] == "-" for position in (8, 13, 18, 23))


def _python_anchors(schema: Any) -> Any:
    """``schema`` with each pattern's closing ``$`` written out as what Python's ``re`` (which
    ``jsonschema`` uses) makes of it: the end, or a newline that ends the string.
    ``fastjsonschema`` would read ``$`` as the very end only and refuse "12.50\\n" as money."""
    if isinstance(schema, list):
        return [_python_anchors(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    copy = {key: _python_anchors(value) for key, value in schema.items()}
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        if "$" in pattern[:-1]:
            raise ValueError(f"pattern {pattern!r}: only a closing $ is supported")
        copy["pattern"] = pattern[:-1] + r"(?=\n?\Z)" if pattern.endswith("$") else pattern
    return copy


class _Validator:
    """One schema compiled once into Python code; the reference validator words why a
    document is refused.

    Both are built on first use: a worker that restarts to drain a backlog starts on its
    messages sooner (compiling every schema and importing ``jsonschema`` took a sixth of its
    start-up), and only a refused document needs the reference.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.anchored = _python_anchors(schema)  # refuses an unsupported pattern at once

    @functools.cached_property
    def check(self) -> Callable[[Any], Any]:
        compiled: Callable[[Any], Any] = fastjsonschema.compile(
            self.anchored, formats={"uuid": _is_uuid}, use_default=False
        )
        return compiled

    @functools.cached_property
    def reference(self) -> Draft202012Validator:
        from jsonschema import Draft202012Validator

        # Formats are asserted too ("uuid" must parse as a UUID, not only look like one).
        return Draft202012Validator(self.schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def problem(self, instance: Any) -> str | None:
        """Why ``instance`` does not match (its first error, where and what), or None."""
        try:
            self.check(instance)
            return None
        except fastjsonschema.JsonSchemaValueException as exc:
            refused = exc
        error = next(iter(self.reference.iter_errors(instance)), None)
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            return f"{where}: {error.message[:300]}"
        # Never seen (the tests compare both on every schema): the compiled code's own words.
        where = "/".join(str(part) for part in refused.path[1:]) or "(root)"
        return f"{where}: {refused.message[:300]}"


_ENVELOPE_VALIDATOR = _Validator(ENVELOPE)
_VALIDATORS = {key: _Validator(schema) for key, schema in EVENTS.items()}


def is_known(event_type: str, version: int) -> bool:
    return (event_type, version) in _VALIDATORS


def current_version(event_type: str) -> int:
    versions = [version for (name, version) in _VALIDATORS if name == event_type]
    if not versions:
        raise SchemaViolation(f"unknown event type {event_type!r}")
    return max(versions)


def envelope_problem(raw: Any) -> str | None:
    """Why ``raw`` is not a valid envelope, or None."""
    return _ENVELOPE_VALIDATOR.problem(raw)


def validate(event_type: str, version: int, data: Any) -> None:
    validator = _VALIDATORS.get((event_type, version))
    if validator is None:
        raise SchemaViolation(f"unknown event type {event_type!r} version {version}")
    problem = validator.problem(data)
    if problem:
        raise SchemaViolation(f"{event_type} v{version} payload invalid at {problem}")
