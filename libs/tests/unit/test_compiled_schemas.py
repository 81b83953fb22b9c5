"""The compiled validators accept and refuse exactly the documents ``jsonschema`` does.

For the envelope and every registered payload schema, a valid document is built from the schema
itself, then mutated field by field (removed, of every other JSON type, on and past every bound,
patterns and formats broken, an extra property, nested items too). Each document is judged by
the compiled code alone and by ``jsonschema`` (Draft 2020-12, formats asserted), and both
verdicts must be the same.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from messaging import schemas
from messaging.envelope import Envelope, MalformedMessage, decode

SCHEMAS: dict[str, dict[str, Any]] = {
    "envelope": schemas.ENVELOPE,
    **{f"{name} v{version}": schema for (name, version), schema in schemas.EVENTS.items()},
}

# A value that matches each pattern the schemas use (a new pattern needs one here).
PATTERN_SAMPLES = {
    schemas.UUID["pattern"]: "6f1c1f7e-4d7a-4a55-9a57-0d1e1b1e5a10",
    schemas.MONEY["pattern"]: "12.50",
    schemas.ENVELOPE["properties"]["type"]["pattern"]: "order.created",
}

# Every JSON type, and strings close to what the patterns and formats accept.
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    1.5,
    2**63,
    "",
    "x",
    "12.50",
    "-12.5",
    "12.505",
    "12.50\n",
    "12,50",
    "order.created",
    "Order.Created",
    "order",
    "order.created\n",
    str(uuid.uuid4()),
    str(uuid.uuid4()).upper(),
    str(uuid.uuid4()) + "\n",
    uuid.uuid4().hex + "-" * 4,
    "-" * 36,
    "g" * 36,
    "{" + str(uuid.uuid4())[1:-1] + "}",
    [],
    [1],
    {},
    {"a": 1},
]


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    return kind[0] if isinstance(kind, list) else str(kind)


def sample(schema: dict[str, Any]) -> Any:
    """A document that matches ``schema``."""
    kind = _type(schema)
    if kind == "object":
        return {name: sample(sub) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [sample(schema["items"]) for _ in range(max(1, schema.get("minItems", 0)))]
    if kind == "integer":
        return schema.get("minimum", 0) + 1
    if kind == "boolean":
        return True
    if "pattern" in schema:
        return PATTERN_SAMPLES[schema["pattern"]]
    return "s" * max(1, schema.get("minLength", 0))


def values_for(schema: dict[str, Any]) -> Iterator[Any]:
    """Values to put where ``schema`` applies: odd ones, and each bound's both sides."""
    yield from ODD_VALUES
    if "minimum" in schema:
        low = schema["minimum"]
        yield from (low - 1, low, low + 1, float(low), low - 0.5)
    for bound in ("minLength", "maxLength"):
        if bound in schema:
            yield from ("é" * (schema[bound] + delta) for delta in (-1, 0, 1))
    if _type(schema) == "array":
        item = sample(schema["items"])
        yield from ([], [item, "not an item"], [item] * schema.get("maxItems", 1))
        yield [item] * (schema.get("maxItems", 1) + 1)


def documents(schema: dict[str, Any], valid: Any) -> Iterator[Any]:
    """``valid`` itself, and ``valid`` with each part of it changed."""
    yield valid
    kind = _type(schema)
    if kind == "object" and isinstance(valid, dict):
        yield {**valid, "surprise": 1}
        for name in schema.get("required", []):
            yield {key: value for key, value in valid.items() if key != name}
        for name, sub in schema.get("properties", {}).items():
            for value in (*values_for(sub), *documents(sub, sample(sub))):
                yield {**valid, name: value}
    if kind == "array" and isinstance(valid, list) and valid:
        for changed in documents(schema["items"], valid[0]):
            yield [changed, *copy.deepcopy(valid[1:])]


def test_every_pattern_has_a_sample() -> None:
    def patterns(schema: Any) -> Iterator[str]:
        if isinstance(schema, dict):
            if isinstance(schema.get("pattern"), str):
                yield schema["pattern"]
            for value in schema.values():
                yield from patterns(value)

    assert set(patterns(list(SCHEMAS.values()))) <= set(PATTERN_SAMPLES)


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_compiled_and_reference_agree_on_every_document(name: str) -> None:
    schema = SCHEMAS[name]
    compiled = schemas._Validator(schema)
    reference = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    accepted = refused = 0
    for document in documents(schema, sample(schema)):
        expected = reference.is_valid(document)
        try:
            compiled.check(document)
            verdict = True
        except schemas.fastjsonschema.JsonSchemaValueException:
            verdict = False
        assert verdict == expected, f"{name}: {json.dumps(document)[:300]}"
        accepted, refused = accepted + expected, refused + (not expected)
    # The documents cover both sides: the valid sample and its near misses, and many errors.
    assert accepted >= 2
    assert refused >= 10


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({**sample(schemas.EVENTS[("order.created", 1)]), "user_id": "7"}, "user_id"),
        (
            {**sample(schemas.EVENTS[("order.created", 1)]), "lines": [{"product_id": 1}]},
            "lines/0",
        ),
        (
            {
                **sample(schemas.EVENTS[("order.created", 1)]),
                "lines": [{"product_id": 1, "quantity": 1.5}],
            },
            "lines/0/quantity",
        ),
        ({**sample(schemas.EVENTS[("order.created", 1)]), "order_id": "-" * 36}, "order_id"),
    ],
)
def test_a_refusal_names_the_field(document: dict[str, Any], where: str) -> None:
    problem = schemas._VALIDATORS[("order.created", 1)].problem(document)
    assert problem is not None
    assert problem.startswith(f"{where}: ")


def test_a_closing_dollar_allows_a_final_newline_as_in_python() -> None:
    # jsonschema searches with Python's re, where "$" also matches before a final newline:
    # the compiled code must not be stricter than the contract.
    data = {"order_id": str(uuid.uuid4()), "user_id": 7, "total": "12.50\n"}
    schemas.validate("order.confirmed", 1, data)
    with pytest.raises(schemas.SchemaViolation, match=r"total: '12.50\\n\\n' does not match"):
        schemas.validate("order.confirmed", 1, {**data, "total": "12.50\n\n"})


def test_decode_dead_letters_what_the_compiled_envelope_refuses() -> None:
    good = Envelope.new(
        "order.shipped",
        {
            "order_id": str(uuid.uuid4()),
            "user_id": 3,
            **{"shipment_id": None, "warehouse": None, "lines": [], "complete": True},
        },
        source="orders",
        correlation_id="c",
    )
    raw = json.loads(good.to_json())
    assert decode(json.dumps(raw).encode()) == good
    with pytest.raises(MalformedMessage, match=r"invalid envelope: version: 0 is less than"):
        decode(json.dumps({**raw, "version": 0}).encode())
    with pytest.raises(MalformedMessage, match=r"payload invalid at user_id: 0 is less than"):
        decode(json.dumps({**raw, "data": {**raw["data"], "user_id": 0}}).encode())


def test_a_pattern_with_a_dollar_inside_is_refused_at_compile_time() -> None:
    with pytest.raises(ValueError, match="only a closing"):
        schemas._Validator({"type": "string", "pattern": "^a$|^b$"})


@pytest.mark.parametrize(
    "value",
    [
        "5b8f0c3e-5a43-4a55-9e43-7ad8d8f3e0a1",
        "5B8F0C3E-5A43-4A55-9E43-7AD8D8F3E0A1",
        "00000000-0000-0000-0000-000000000000",
        "0000000_-0000-0000-0000-000000000000",  # uuid.UUID reads it (int() takes the _)
        "{5b8f0c3e-5a43-4a55-9e43-7ad8d8f3e0a}",
        "urn:uuid:5b8f0c3e-5a43-4a55-9e43-7ad8d8f3e0a1",
        "5b8f0c3e5a434a559e437ad8d8f3e0a1",
        "5b8f0c3e-5a43-4a55-9e43-7ad8d8f3e0a1\n",
        "5b8f0c3e-5a43-4a55-9e43-7ad8d8f3e0ag",
        "5b8f0c3e-5a434-a55-9e43-7ad8d8f3e0a1",
        "",
    ],
)
def test_the_uuid_format_is_the_references(value: str) -> None:
    expected = Draft202012Validator.FORMAT_CHECKER.conforms(value, "uuid")
    assert schemas._is_uuid(value) == expected
