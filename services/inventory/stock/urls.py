from django.urls import path

from stock.apis import (
    BackorderDetailApi,
    ProductBackorderListApi,
    ReservationListApi,
    StockAdjustmentApi,
    StockLedgerApi,
    StockTransferApi,
    WarehouseDetailApi,
    WarehouseListApi,
)

urlpatterns = [
    path(
        "products/<int:product_id>/stock-adjustments/",
        StockAdjustmentApi.as_view(),
        name="stock-adjustment",
    ),
    path("products/<int:product_id>/ledger/", StockLedgerApi.as_view(), name="stock-ledger"),
    path(
        "products/<int:product_id>/backorders/",
        ProductBackorderListApi.as_view(),
        name="product-backorders",
    ),
    path("backorders/<uuid:order_id>/", BackorderDetailApi.as_view(), name="backorder-detail"),
    path("reservations/", ReservationListApi.as_view(), name="reservation-list"),
    path("stock-transfers/", StockTransferApi.as_view(), name="stock-transfer"),
    path("warehouses/", WarehouseListApi.as_view(), name="warehouse-list"),
    path("warehouses/<int:warehouse_id>/", WarehouseDetailApi.as_view(), name="warehouse-detail"),
]
