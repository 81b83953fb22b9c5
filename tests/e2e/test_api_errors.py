"""Every refusal of every service, sent straight to its gunicorn (no gateway in front), is
the API's JSON error ``{"detail", "code"}``: never Django's HTML pages."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.e2e.conftest import E2E

ONE_MIB = 1024 * 1024
# (service, a path that takes a JSON body by POST, who may post there)
ENDPOINTS = [
    ("inventory", "/api/products/", "staff"),
    ("orders", "/api/orders/", "customer"),
    ("user-notification", "/api/users/register/", "anonymous"),
]


def _headers(e2e: E2E, who: str, content_type: str) -> dict[str, str]:
    token = {"staff": e2e.staff.token, "customer": e2e.anonymous.register().token}.get(who)
    headers = {"Content-Type": content_type, "Idempotency-Key": str(uuid.uuid4())}
    return {**headers, "Authorization": f"Bearer {token}"} if token else headers


def _assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]


@pytest.mark.parametrize(("service", "path", "who"), ENDPOINTS)
def test_each_service_answers_every_refusal_in_the_error_format(
    e2e: E2E, service: str, path: str, who: str
) -> None:
    url = e2e.system.url(service) + path
    json_headers = _headers(e2e, who, "application/json")

    body = b"[" + b"1," * (3 * ONE_MIB) + b"1]"  # 6 MiB of valid JSON
    oversized = requests.post(url, data=body, headers=json_headers, timeout=30)
    _assert_error(oversized, 413, "too_large")

    malformed = requests.post(url, data=b'{"lines": [', headers=json_headers, timeout=10)
    _assert_error(malformed, 400, "parse_error")

    text_headers = _headers(e2e, who, "text/plain")
    wrong_type = requests.post(url, data=b"hello", headers=text_headers, timeout=10)
    _assert_error(wrong_type, 415, "unsupported_media_type")

    unknown = requests.get(e2e.system.url(service) + "/api/no-such-thing/", timeout=10)
    _assert_error(unknown, 404, "not_found")

    not_allowed = requests.delete(url, headers=json_headers, timeout=10)
    _assert_error(not_allowed, 405, "method_not_allowed")

    # Refused by Django before any view: a Host that is not allowed.
    bad_host = requests.get(url, headers={"Host": "attacker.example"}, timeout=10)
    _assert_error(bad_host, 400, "bad_request")
