from django.urls import path

from orders.apis import (
    OrderCancelApi,
    OrderDetailApi,
    OrderListCreateApi,
    OrderShipApi,
    OrderShipmentsApi,
)

urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<uuid:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/cancel/", OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<uuid:order_id>/ship/", OrderShipApi.as_view(), name="order-ship"),
    path("orders/<uuid:order_id>/shipments/", OrderShipmentsApi.as_view(), name="order-shipments"),
]
