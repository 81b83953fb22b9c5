"""Staff manage warehouses over REST; nobody else sees them, and none is ever deleted."""

import pytest

from stock.models import Warehouse
from stock.warehouses import warehouse_default

pytestmark = pytest.mark.django_db

URL = "/api/warehouses/"


def detail(warehouse):
    return f"{URL}{warehouse.pk}/"


class TestListing:
    def test_staff_list_them_in_allocation_order(self, staff_client, make_warehouse):
        warehouse_default()
        make_warehouse("west", priority=5)
        make_warehouse("east", priority=5)
        make_warehouse("spare", priority=-1, active=False)

        response = staff_client.get(URL)

        assert response.status_code == 200
        body = response.json()
        assert [(w["code"], w["priority"], w["active"]) for w in body["results"]] == [
            ("west", 5, True),  # a tie: the older first
            ("east", 5, True),
            ("default", 0, True),
            ("spare", -1, False),
        ]
        assert body["count"] == 4

    def test_staff_read_one(self, staff_client, make_warehouse):
        east = make_warehouse("east", priority=3)

        response = staff_client.get(detail(east))

        assert response.status_code == 200
        assert {k: response.json()[k] for k in ("id", "code", "name", "priority", "active")} == {
            "id": east.pk,
            "code": "east",
            "name": "East",
            "priority": 3,
            "active": True,
        }

    def test_an_unknown_one_is_404(self, staff_client):
        response = staff_client.get(f"{URL}999999/")

        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


class TestCreating:
    def test_staff_add_one(self, staff_client):
        response = staff_client.post(
            URL, {"code": "north-2", "name": "North", "priority": 7}, format="json"
        )

        assert response.status_code == 201, response.json()
        warehouse = Warehouse.objects.get(code="north-2")
        assert (warehouse.name, warehouse.priority, warehouse.active) == ("North", 7, True)
        assert response.json()["id"] == warehouse.pk

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"name": "No code"}, "code"),
            ({"code": "has space", "name": "x"}, "code"),
            ({"code": "slash/no", "name": "x"}, "code"),
            ({"code": "x" * 33, "name": "x"}, "code"),
            ({"code": "ok"}, "name"),
            ({"code": "ok", "name": "x", "priority": "high"}, "priority"),
            ({"code": "ok", "name": "x", "priority": 2**31}, "priority"),
            ({"code": "ok", "name": "x", "active": "maybe"}, "active"),
        ],
    )
    def test_bad_input_is_400(self, staff_client, payload, field):
        response = staff_client.post(URL, payload, format="json")

        assert response.status_code == 400
        assert response.json()["code"] == "invalid"
        assert field in response.json()["errors"]
        assert not Warehouse.objects.filter(name="x").exists()

    def test_a_taken_code_is_400(self, staff_client, make_warehouse):
        make_warehouse("east")

        response = staff_client.post(URL, {"code": "east", "name": "Other"}, format="json")

        assert response.status_code == 400
        assert response.json()["errors"]["code"] == [
            "a warehouse with the code 'east' already exists."
        ]
        assert Warehouse.objects.get(code="east").name == "East"


class TestChanging:
    def test_staff_rename_reprioritise_and_deactivate(self, staff_client, make_warehouse):
        east = make_warehouse("east")

        response = staff_client.patch(
            detail(east), {"name": "East hub", "priority": 9, "active": False}, format="json"
        )

        assert response.status_code == 200
        east.refresh_from_db()
        assert (east.name, east.priority, east.active) == ("East hub", 9, False)

    def test_the_code_never_changes(self, staff_client, make_warehouse):
        east = make_warehouse("east")

        response = staff_client.patch(detail(east), {"code": "west"}, format="json")

        assert response.status_code == 400
        assert response.json()["errors"]["code"] == [
            "a warehouse's code cannot be changed; create another warehouse instead."
        ]
        assert Warehouse.objects.get(pk=east.pk).code == "east"

    def test_put_with_its_own_code_is_fine(self, staff_client, make_warehouse):
        east = make_warehouse("east")

        response = staff_client.put(
            detail(east), {"code": "east", "name": "East", "priority": 2}, format="json"
        )

        assert response.status_code == 200
        assert Warehouse.objects.get(pk=east.pk).priority == 2

    def test_it_is_never_deleted(self, staff_client, make_warehouse):
        east = make_warehouse("east")

        response = staff_client.delete(detail(east))

        assert response.status_code == 405
        assert response.json()["detail"].startswith("a warehouse is never deleted")
        assert Warehouse.objects.filter(pk=east.pk).exists()


class TestAccess:
    def test_customers_get_403_and_strangers_401(
        self, customer_client, anonymous_client, make_warehouse
    ):
        east = make_warehouse("east")
        payload = {"code": "west", "name": "West"}

        for client, status in ((customer_client, 403), (anonymous_client, 401)):
            assert client.get(URL).status_code == status
            assert client.post(URL, payload, format="json").status_code == status
            assert client.get(detail(east)).status_code == status
            assert client.patch(detail(east), {"priority": 1}, format="json").status_code == status
        assert not Warehouse.objects.filter(code="west").exists()
        assert Warehouse.objects.get(pk=east.pk).priority == 0
