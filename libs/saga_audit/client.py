"""Reading both sides of the saga through the services' staff APIs, page after page."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from saga_audit.compare import ACTIVE_RESERVATION, EXPECTED_RESERVATION, Record

PAGE_SIZE = 200
IDS_PER_REQUEST = 100  # the reservations list's limit of order ids
TIMEOUT_SECONDS = 10.0


class AuditUnavailable(Exception):
    """A service did not answer as expected: nothing can be concluded."""


@dataclass
class StaffApi:
    """The staff APIs of the orders and inventory services (a gateway's URL serves both)."""

    orders_url: str
    inventory_url: str
    token: str
    # Called after every answer: the worker's job stays healthy through a long audit.
    answered: Callable[[], None] = field(default=lambda: None)

    @classmethod
    def login(
        cls, *, orders_url: str, inventory_url: str, users_url: str, username: str, password: str
    ) -> StaffApi:
        response = _call(
            requests.post,
            f"{users_url.rstrip('/')}/api/users/token/",
            json={"username": username, "password": password},
        )
        return cls(orders_url.rstrip("/"), inventory_url.rstrip("/"), response.json()["access"])

    def get(self, url: str, params: Any = None) -> requests.Response | None:
        """The answer; None for a 404."""
        try:
            response = requests.get(
                url,
                params=params,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            raise AuditUnavailable(f"{url}: {exc}") from exc
        self.answered()
        if response.status_code == 404:
            return None
        _check(response)
        return response

    def pages(self, url: str, params: Any) -> Iterator[Record]:
        """Every item of a cursor-paginated list, following its ``next`` links."""
        next_url: str | None = url
        while next_url:
            response = self.get(next_url, params if next_url == url else None)
            if response is None:
                raise AuditUnavailable(f"{url} answered 404")
            body = response.json()
            yield from body["results"]
            next_url = body.get("next")

    def orders(self, *, shipped_since: datetime | None) -> dict[str, Record]:
        """The orders with a reservation to compare: every CONFIRMED, BACKORDERED and
        PARTIALLY_SHIPPED one, and the SHIPPED ones placed since ``shipped_since`` (all when
        None; the list is newest first, so reading stops at the first older one)."""
        found: dict[str, Record] = {}
        for status in EXPECTED_RESERVATION:
            params = {"status": status, "page_size": PAGE_SIZE}
            for order in self.pages(f"{self.orders_url}/api/orders/", params):
                older = shipped_since is not None and _moment(order["created_at"]) < shipped_since
                if status == "SHIPPED" and older:
                    break
                found[str(order["id"])] = order
        return found

    def order(self, order_id: str) -> Record | None:
        response = self.get(f"{self.orders_url}/api/orders/{order_id}/")
        return None if response is None else dict(response.json())

    def active_reservations(self) -> dict[str, Record]:
        params = {"status": sorted(ACTIVE_RESERVATION), "page_size": PAGE_SIZE}
        url = f"{self.inventory_url}/api/reservations/"
        return {str(r["order_id"]): r for r in self.pages(url, params)}

    def reservations_of(self, order_ids: Iterable[str]) -> dict[str, Record]:
        ids = list(order_ids)
        found: dict[str, Record] = {}
        url = f"{self.inventory_url}/api/reservations/"
        for start in range(0, len(ids), IDS_PER_REQUEST):
            params = {"order_id": ids[start : start + IDS_PER_REQUEST], "page_size": PAGE_SIZE}
            found.update({str(r["order_id"]): r for r in self.pages(url, params)})
        return found


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _call(method: Any, url: str, **kwargs: Any) -> requests.Response:
    try:
        response = method(url, timeout=TIMEOUT_SECONDS, **kwargs)
    except requests.RequestException as exc:
        raise AuditUnavailable(f"{url}: {exc}") from exc
    _check(response)
    return response


def _check(response: requests.Response) -> None:
    if response.status_code != 200:
        raise AuditUnavailable(
            f"{response.request.method} {response.url} answered {response.status_code}: "
            f"{response.text[:300]}"
        )
