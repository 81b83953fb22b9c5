from django.urls import path

from stock.apis import StockAdjustmentApi, StockLedgerApi

urlpatterns = [
    path(
        "products/<int:product_id>/stock-adjustments/",
        StockAdjustmentApi.as_view(),
        name="stock-adjustment",
    ),
    path("products/<int:product_id>/ledger/", StockLedgerApi.as_view(), name="stock-ledger"),
]
