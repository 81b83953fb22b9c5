"""Every service against its own OpenAPI schema, over HTTP, with schemathesis.

The whole system runs once for this module (the end-to-end harness: real processes, private
databases and broker names). For each operation of each service's ``/api/schema/``,
schemathesis generates requests, valid and invalid, and sends each as staff and as a customer;
every answer must be no server error and must match the schema: a documented status code, the
documented content type, headers and body.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, GenerationMode
from schemathesis import checks as schemathesis_checks
from schemathesis.core.result import Ok

from tests.e2e.client import Api
from tests.e2e.harness import STAFF_PASSWORD, STAFF_USERNAME, running_system

CHECKS = [
    schemathesis_checks.not_a_server_error,
    schemathesis_checks.status_code_conformance,
    schemathesis_checks.content_type_conformance,
    schemathesis_checks.response_headers_conformance,
    schemathesis_checks.response_schema_conformance,
]
URI_TOO_LONG = 414
EXAMPLES = settings(
    max_examples=int(os.environ.get("CONTRACT_EXAMPLES", "10")),
    deadline=None,
    database=None,  # nothing written under the repository
    derandomize=os.environ.get("CONTRACT_RANDOM") != "1",  # the same cases each run in CI
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Contract:
    urls: dict[str, str]
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    work_dir: Path = tmp_path_factory.mktemp("contract")
    with running_system(work_dir) as (system, _, _):
        urls = {name: system.url(name) for name in ("inventory", "orders", "user-notification")}
        anonymous = Api(urls["inventory"], urls["orders"], urls["user-notification"])
        staff = anonymous.as_user(STAFF_USERNAME, STAFF_PASSWORD)
        customer = anonymous.register()
        staff.create_product(stock=50)  # something to find, order and reserve
        assert staff.token and customer.token
        try:
            yield Contract(urls, {"staff": staff.token, "customer": customer.token})
        finally:
            print(f"\nprocess logs: {work_dir / 'logs'}")


def call_as_everyone(case: schemathesis.Case, contract: Contract) -> None:
    """As staff and as a customer; once when anyone may call the operation (a token changes
    nothing there, and the token endpoints hash a password per call)."""
    anyone = {} in case.operation.definition.raw.get("security", [{}])
    tokens = [contract.tokens["customer"]] if anyone else list(contract.tokens.values())
    for token in tokens:
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(headers=headers)
        if response.status_code == URI_TOO_LONG:
            continue  # gunicorn's limit on the request line: Django never saw the request
        case.validate_response(response, checks=CHECKS, headers=headers)


def failures_of(operation: APIOperation, mode: GenerationMode, contract: Contract) -> str | None:
    """Hypothesis drives schemathesis' cases for one operation; the failure it settles on."""

    @EXAMPLES
    @given(case=operation.as_strategy(mode))
    def exercise(case: schemathesis.Case) -> None:
        call_as_everyone(case, contract)

    try:
        exercise()
    except (Exception, BaseExceptionGroup) as exc:  # a check failed: report it with the rest
        return f"{operation.label} ({mode.value} data):\n{exc}"
    return None


# schemathesis' own pytest integration for schemas known only at run time (from_fixture) does
# not work with this pytest, so each service is one test that goes through its operations.
@pytest.mark.parametrize("service", ["inventory", "orders", "user-notification"])
def test_every_operation_matches_the_schema(service: str, contract: Contract) -> None:
    schema = schemathesis.openapi.from_url(f"{contract.urls[service]}/api/schema/?format=json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the schema itself is broken
        operations.append(result.ok())
    assert operations
    failures = [
        failure
        for operation in operations
        for mode in GenerationMode
        if (failure := failures_of(operation, mode, contract))
    ]
    assert not failures, "\n\n".join(failures)
