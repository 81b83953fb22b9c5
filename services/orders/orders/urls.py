from django.urls import path

from orders.apis import (
    OrderCancelApi,
    OrderDetailApi,
    OrderListCreateApi,
    OrderShipApi,
    OrderShipmentsApi,
)
from orders.return_apis import OrderReturnsApi, ReturnDetailApi, ReturnListApi, ReturnReceiveApi

urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<uuid:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/cancel/", OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<uuid:order_id>/ship/", OrderShipApi.as_view(), name="order-ship"),
    path("orders/<uuid:order_id>/shipments/", OrderShipmentsApi.as_view(), name="order-shipments"),
    path("orders/<uuid:order_id>/returns/", OrderReturnsApi.as_view(), name="order-returns"),
    path("returns/", ReturnListApi.as_view(), name="return-list"),
    path("returns/<int:return_id>/", ReturnDetailApi.as_view(), name="return-detail"),
    path("returns/<int:return_id>/receive/", ReturnReceiveApi.as_view(), name="return-receive"),
]
