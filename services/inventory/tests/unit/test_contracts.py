"""What inventory sends and listens to matches the shared contract in ``messaging``."""

from decimal import Decimal

from catalogue.models import Category, Product
from catalogue.services import product_event
from messaging import schemas, topology
from stock.handlers import HANDLERS


def test_handles_exactly_what_the_topology_routes_to_inventory():
    assert set(HANDLERS) == set(topology.CONSUMES["inventory"])


class TestProductEvent:
    def test_matches_the_product_upserted_schema(self):
        category = Category(id=2, name="Tools")
        product = Product(id=7, sku="HAM-1", name="Hammer", price=Decimal("12.5"), active=True)
        product.category = category
        data = product_event(product)
        schemas.validate("product.upserted", 1, data)
        assert data["price"] == "12.50"
        assert data["category"] == "Tools"

    def test_a_product_without_category_says_null(self):
        product = Product(id=7, sku="HAM-1", name="Hammer", price=Decimal("3"), active=False)
        data = product_event(product)
        schemas.validate("product.upserted", 1, data)
        assert data["category"] is None


def test_the_consumer_applies_what_it_has_without_gathering_by_default():
    # On the saga's path: a delivery is applied as soon as it arrives.
    from messaging.config import get_config

    assert get_config().gather_seconds == 0
