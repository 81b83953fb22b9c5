import pytest

from catalogue.models import Category
from tests.factories import published

pytestmark = pytest.mark.django_db


class TestCategories:
    def test_staff_creates_and_anyone_lists(self, staff_client, anonymous_client):
        created = staff_client.post("/api/categories/", {"name": "Tools"}, format="json")

        assert created.status_code == 201
        listed = anonymous_client.get("/api/categories/").json()["results"]
        assert [c["name"] for c in listed] == ["Tools"]

    def test_a_customer_may_not_create(self, customer_client):
        response = customer_client.post("/api/categories/", {"name": "Tools"}, format="json")

        assert response.status_code == 403

    def test_a_duplicate_name_is_400(self, staff_client):
        staff_client.post("/api/categories/", {"name": "Tools"}, format="json")

        response = staff_client.post("/api/categories/", {"name": "Tools"}, format="json")

        assert response.status_code == 400

    def test_renaming_announces_its_products_again(self, staff_client, make_product):
        tools = Category.objects.create(name="Tools")
        hammer = make_product(category=tools)

        response = staff_client.patch(
            f"/api/categories/{tools.pk}/", {"name": "Hand tools"}, format="json"
        )

        assert response.status_code == 200
        event = published("product.upserted")[-1]
        assert (event.data["product_id"], event.data["category"]) == (hammer.pk, "Hand tools")

    def test_a_category_with_products_cannot_be_deleted(self, staff_client, make_product):
        tools = Category.objects.create(name="Tools")
        make_product(category=tools)

        response = staff_client.delete(f"/api/categories/{tools.pk}/")

        assert response.status_code == 400
        assert "still has 1 products" in response.json()["detail"]

    def test_an_empty_category_is_deleted(self, staff_client):
        tools = Category.objects.create(name="Tools")

        assert staff_client.delete(f"/api/categories/{tools.pk}/").status_code == 204
        assert not Category.objects.exists()
