"""The REST surface of orders: thin views, the rules live in services and selectors."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from errors import ErrorCode
from identity.authentication import TokenUser
from identity.permissions import IsStaff
from messaging.versions import NotExpressible
from orders import selectors, services, shipments
from orders.models import Order, OrderStatus
from orders.persistence import OrderDetail, ShipmentEntry
from service_runtime import throttling
from service_runtime.openapi import cursor_parameters, errors, paginated
from service_runtime.pagination import CursorPagination
from service_runtime.representation import money, timestamp

MAX_LINES = 500  # what order.created can carry
MAX_QUANTITY = 10_000
MAX_ID = 2**63 - 1  # ids are 64-bit: a larger one would be a database error, not a 400
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The order's status does not allow this."
    default_code = ErrorCode.INVALID_TRANSITION


class IdempotencyKeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used for a different order."
    default_code = ErrorCode.IDEMPOTENCY_KEY_REUSED


class IdempotencyKeyInvalid(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = (
        f"The {IDEMPOTENCY_HEADER} header is required: a new unique value (e.g. a UUID) for "
        f"each new order, at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters; "
        "the same value again when retrying the same order."
    )
    default_code = ErrorCode.IDEMPOTENCY_KEY_REQUIRED


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, nothing else: no "3", no 3.0, no true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class OrderLineOutputSerializer(serializers.Serializer):
    product_id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    quantity = serializers.IntegerField(help_text="Units ordered.")
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2)
    shipped_quantity = serializers.IntegerField(help_text="Units that left in a shipment.")
    cancelled_quantity = serializers.IntegerField(
        help_text="Units that never will: the order was cancelled or rejected before they shipped."
    )
    returned_quantity = serializers.IntegerField(
        help_text="Shipped units that came back in a received return."
    )


class OrderOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    user_id = serializers.IntegerField()
    status = serializers.CharField()
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    refunded_total = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="The refunds of its received returns, summed."
    )
    lines = OrderLineOutputSerializer(many=True)
    rejection_reason = serializers.CharField()
    rejected_lines = serializers.JSONField()
    cancellation_reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField()


class OrderStatusChangeOutputSerializer(serializers.Serializer):
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    reason = serializers.CharField()
    at = serializers.DateTimeField()
    caused_by_message_id = serializers.UUIDField(allow_null=True)
    actor_user_id = serializers.IntegerField(allow_null=True)


class AllocationOutputSerializer(serializers.Serializer):
    product_id = serializers.IntegerField()
    warehouse = serializers.CharField(help_text="The warehouse's code in inventory.")
    quantity = serializers.IntegerField(help_text="Units held there for this order.")
    shipped_quantity = serializers.IntegerField(help_text="Of these, units shipped.")


class ShippedLineOutputSerializer(serializers.Serializer):
    product_id = serializers.IntegerField()
    quantity = serializers.IntegerField()


class ShipmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    warehouse = serializers.CharField(
        allow_null=True, help_text="null: not known (reserved by an older inventory)."
    )
    created_at = serializers.DateTimeField()
    actor_user_id = serializers.IntegerField(allow_null=True)
    lines = ShippedLineOutputSerializer(many=True)


class OrderDetailOutputSerializer(OrderOutputSerializer):
    history = OrderStatusChangeOutputSerializer(many=True, source="status_changes")
    allocations = AllocationOutputSerializer(
        many=True, help_text="Where inventory holds the units; empty when not known."
    )
    shipments = ShipmentOutputSerializer(many=True, help_text="Oldest first.")


def _viewer(request: Request) -> TokenUser:
    user = request.user
    assert isinstance(user, TokenUser)
    return user


# How OrderDetailOutputSerializer's fields show money, for _detail_body.
_MONEY = serializers.DecimalField(max_digits=12, decimal_places=2)


def _money(value: Decimal) -> str:
    """What ``_MONEY`` shows (see ``service_runtime.representation.money``)."""
    return money(value, _MONEY)


def _detail_body(detail: OrderDetail) -> dict[str, Any]:
    """What ``OrderDetailOutputSerializer`` shows of an order (the same keys in the same order,
    the same formats), built directly: the serializer copies its fields and walks them on
    every call, which was a third of a GET's CPU. The serializer documents the shape
    (OpenAPI), and a test holds the two to the same output."""
    return {
        **_order_body(detail),
        "history": [
            {
                "from_status": str(entry.from_status),
                "to_status": str(entry.to_status),
                "reason": entry.reason,
                "at": timestamp(entry.at),
                "caused_by_message_id": (
                    None if entry.caused_by_message_id is None else str(entry.caused_by_message_id)
                ),
                "actor_user_id": entry.actor_user_id,
            }
            for entry in detail.history
        ],
        "allocations": [allocation._asdict() for allocation in detail.allocations],
        "shipments": [_shipment_body(shipment) for shipment in detail.shipments],
    }


def _shipment_body(shipment: ShipmentEntry) -> dict[str, Any]:
    """What ``ShipmentOutputSerializer`` shows of a shipment."""
    return {
        "id": shipment.id,
        "warehouse": shipment.warehouse,
        "created_at": timestamp(shipment.created_at),
        "actor_user_id": shipment.actor_user_id,
        "lines": [line._asdict() for line in shipment.lines],
    }


def _order_body(detail: OrderDetail) -> dict[str, Any]:
    """What ``OrderOutputSerializer`` shows of an order (a list's item): the detail without
    its history."""
    money = _money
    return {
        "id": str(detail.id),
        "user_id": detail.user_id,
        "status": str(detail.status),
        "total": money(detail.total),
        "refunded_total": money(detail.refunded_total),
        "lines": [
            {
                "product_id": line.product_id,
                "sku": line.sku,
                "name": line.name,
                "unit_price": money(line.unit_price),
                "quantity": line.quantity,
                "line_total": money(line.line_total),
                "shipped_quantity": line.shipped_quantity,
                "cancelled_quantity": line.cancelled_quantity,
                "returned_quantity": line.returned_quantity,
            }
            for line in detail.lines
        ],
        "rejection_reason": detail.rejection_reason,
        "rejected_lines": detail.rejected_lines,
        "cancellation_reason": detail.cancellation_reason,
        "created_at": timestamp(detail.created_at),
        "updated_at": timestamp(detail.updated_at),
        "deadline": timestamp(detail.deadline),
    }


def _detail(request: Request, order_id: uuid.UUID) -> Response:
    """The order as the viewer may see it, read in one query; 404 when they may not."""
    detail = selectors.order_detail(viewer=_viewer(request), order_id=order_id)
    if detail is None:
        raise Http404  # someone else's order is indistinguishable from a missing one
    return Response(_detail_body(detail))


def _visible_order(request: Request, order_id: uuid.UUID) -> Order:
    order = selectors.order_get(viewer=_viewer(request), order_id=order_id)
    if order is None:
        raise Http404  # someone else's order is indistinguishable from a missing one
    return order


IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
    OpenApiParameter.HEADER,
    required=True,
    description=(
        "A new unique value (e.g. a UUID) for each new order; the same value again when "
        "retrying the same order, which then answers 200 with the order it placed."
    ),
)
LOCATION_HEADER = OpenApiParameter(
    "Location",
    str,
    OpenApiParameter.HEADER,
    response=[200, 202],
    required=True,
    description="The order's URL.",
)
REPLAYED_HEADER = OpenApiParameter(
    "Idempotent-Replayed",
    {"type": "string", "enum": ["true"]},
    OpenApiParameter.HEADER,
    response=[200],
    required=True,
    description="Present when the Idempotency-Key replayed an earlier placement.",
)


def _idempotency_key(request: Request) -> str:
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise IdempotencyKeyInvalid()
    return key


def plain_lines(data: Any) -> list[services.LineRequest] | None:
    """The lines of a usual order body, which ``OrderListCreateApi.InputSerializer`` would
    accept as they are: an object whose ``lines`` are 1 to ``MAX_LINES`` objects with integer
    ``product_id`` and ``quantity`` in range (other keys ignored). None for anything else.

    Checking the usual body by hand costs a tenth of running the serializer, which copies
    its fields on every call; a body that is not usual goes to the serializer.
    """
    if type(data) is not dict:
        return None
    lines = data.get("lines")
    if type(lines) is not list or not 0 < len(lines) <= MAX_LINES:
        return None
    requests = []
    for line in lines:
        if type(line) is not dict:
            return None
        product_id, quantity = line.get("product_id"), line.get("quantity")
        # ``type(...) is int``: a JSON integer, never a bool (StrictIntegerField's rule).
        if type(product_id) is not int or not 1 <= product_id <= MAX_ID:
            return None
        if type(quantity) is not int or not 1 <= quantity <= MAX_QUANTITY:
            return None
        requests.append(services.LineRequest(product_id=product_id, quantity=quantity))
    return requests


class OrderPagination(CursorPagination):
    """Newest first (indexes ``order_newest``, ``order_user_newest``, ``order_status_newest``,
    ``order_user_status_newest``)."""

    ordering = ("-created_at", "-id")

    def fetch(self, rows: QuerySet[Order], size: int) -> list[OrderDetail]:
        """The page's orders with their lines, in one statement."""
        return selectors.order_page(rows)


class OrderListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        """Only product ids and quantities: price, status and owner are never the client's."""

        class LineSerializer(serializers.Serializer):
            product_id = StrictIntegerField(min_value=1, max_value=MAX_ID)
            quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)

        lines = LineSerializer(many=True, allow_empty=False)

        def validate_lines(self, lines: list[dict[str, int]]) -> list[dict[str, int]]:
            if len(lines) > MAX_LINES:
                raise serializers.ValidationError(f"At most {MAX_LINES} lines per order.")
            return lines

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
        user_id = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)

    @extend_schema(
        operation_id="orders_list",
        parameters=[FilterSerializer, *cursor_parameters(OrderPagination.max_page_size)],
        responses={
            200: paginated(OrderOutputSerializer, "Order", cursor=True),
            **errors(400, 401, 404),
        },
        description="The caller's orders, newest first; staff see everyone's (`user_id` filters).",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = OrderPagination()
        page = paginator.paginate_queryset(
            selectors.order_list(viewer=_viewer(request), **filters.validated_data), request
        )
        # What OrderOutputSerializer shows of each, built directly (see _detail_body).
        return paginator.get_paginated_response([_order_body(detail) for detail in page])

    @extend_schema(
        request=InputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER, LOCATION_HEADER, REPLAYED_HEADER],
        responses={
            202: OpenApiResponse(
                OrderDetailOutputSerializer, "Placed: PENDING until inventory reserves the stock."
            ),
            200: OpenApiResponse(
                OrderDetailOutputSerializer, "The order this Idempotency-Key already placed."
            ),
            **errors(400, 401, 422, 429),
        },
    )
    def post(self, request: Request) -> Response:
        """202 with a new PENDING order; 200 with the earlier order when the key replays.

        Each request counts against the user's THROTTLE_ORDERS_PER_USER first (one cache
        round trip), so a refused one writes nothing."""
        throttling.hit(
            throttling.Limit(
                "orders.place", str(_viewer(request).id), settings.THROTTLE_ORDERS_PER_USER
            )
        )
        key = _idempotency_key(request)
        lines = plain_lines(request.data)
        if lines is None:  # anything unusual: the serializer decides, and words the errors
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            lines = [services.LineRequest(**line) for line in serializer.validated_data["lines"]]
        try:
            placement = services.order_place(
                user_id=_viewer(request).id, idempotency_key=key, lines=lines
            )
        except services.InvalidOrder as exc:
            raise ValidationError(exc.errors) from exc
        except services.IdempotencyKeyReused as exc:
            raise IdempotencyKeyReused(str(exc)) from exc
        order = placement.order
        if placement.created:
            # Shown from the values just written: no read.
            detail = OrderDetail.of(order, placement.lines, placement.history)
            response = Response(_detail_body(detail), status=status.HTTP_202_ACCEPTED)
        else:
            response = _detail(request, order.id)
            response["Idempotent-Replayed"] = "true"
        response["Location"] = reverse("order-detail", kwargs={"order_id": order.id})
        return response


class OrderDetailApi(APIView):
    @extend_schema(responses={200: OrderDetailOutputSerializer, **errors(401, 404)})
    def get(self, request: Request, order_id: uuid.UUID) -> Response:
        return _detail(request, order_id)


class OrderCancelApi(APIView):
    """The owner or staff: PENDING, BACKORDERED or CONFIRMED → CANCELLED, PARTIALLY_SHIPPED →
    SHIPPED (the rest cancelled); anything else is a 409."""

    @extend_schema(
        request=None, responses={200: OrderDetailOutputSerializer, **errors(401, 404, 409)}
    )
    def post(self, request: Request, order_id: uuid.UUID) -> Response:
        viewer = _viewer(request)
        order = _visible_order(request, order_id)
        reason = "cancelled by staff" if viewer.is_staff else "cancelled by the customer"
        try:
            order = services.order_cancel(order_id=order.id, reason=reason, actor_user_id=viewer.id)
        except services.TransitionNotAllowed as exc:
            raise Conflict(str(exc), code=ErrorCode.ORDER_NOT_CANCELLABLE) from exc
        return _detail(request, order.id)


class EventVersionTooOld(Conflict):
    default_detail = (
        "Every service must run the new release and MESSAGING_EVENT_VERSIONS be set before "
        "an order ships in parts."
    )
    default_code = ErrorCode.EVENT_VERSION_TOO_OLD


class OrderShipApi(APIView):
    """Staff only: everything the order has left ships, CONFIRMED or PARTIALLY_SHIPPED →
    SHIPPED; anything else is a 409."""

    permission_classes = [IsStaff]

    @extend_schema(
        request=None, responses={200: OrderDetailOutputSerializer, **errors(401, 403, 404, 409)}
    )
    def post(self, request: Request, order_id: uuid.UUID) -> Response:
        order = _visible_order(request, order_id)
        try:
            shipments.order_ship(order_id=order.id, actor_user_id=_viewer(request).id)
        except services.TransitionNotAllowed as exc:
            raise Conflict(str(exc), code=ErrorCode.ORDER_NOT_SHIPPABLE) from exc
        except NotExpressible as exc:
            raise EventVersionTooOld(str(exc)) from exc
        return _detail(request, order.id)


class OrderShipmentsApi(APIView):
    """The order's shipments (its owner and staff); staff ship part of it."""

    class InputSerializer(serializers.Serializer):
        class LineSerializer(serializers.Serializer):
            product_id = StrictIntegerField(min_value=1, max_value=MAX_ID)
            quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)

        warehouse = serializers.CharField(
            max_length=32, help_text="The code of the warehouse the units leave."
        )
        lines = LineSerializer(
            many=True,
            allow_empty=False,
            required=False,
            help_text=(
                "Units by product. Omitted: every unit allocated in the warehouse and not "
                "shipped yet."
            ),
        )

        def validate_lines(self, lines: list[dict[str, int]]) -> list[dict[str, int]]:
            if len(lines) > MAX_LINES:
                raise serializers.ValidationError(f"At most {MAX_LINES} lines per shipment.")
            return lines

    def get_permissions(self) -> list[Any]:
        return [IsStaff()] if self.request.method == "POST" else list(super().get_permissions())

    @extend_schema(
        operation_id="orders_shipments_list",
        responses={200: ShipmentOutputSerializer(many=True), **errors(401, 404)},
        description="The order's shipments, oldest first.",
    )
    def get(self, request: Request, order_id: uuid.UUID) -> Response:
        order = _visible_order(request, order_id)
        return Response([_shipment_body(s) for s in selectors.order_shipments(order)])

    @extend_schema(
        request=InputSerializer,
        responses={201: ShipmentOutputSerializer, **errors(400, 401, 403, 404, 409)},
        description=(
            "Ship units allocated in one warehouse and not shipped yet: the order is "
            "PARTIALLY_SHIPPED until every unit has shipped, then SHIPPED."
        ),
    )
    def post(self, request: Request, order_id: uuid.UUID) -> Response:
        order = _visible_order(request, order_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lines = data.get("lines")
        try:
            shipment = shipments.order_ship_from(
                order_id=order.id,
                warehouse=data["warehouse"],
                lines=None if lines is None else [services.LineRequest(**x) for x in lines],
                actor_user_id=_viewer(request).id,
            )
        except services.TransitionNotAllowed as exc:
            raise Conflict(str(exc), code=ErrorCode.ORDER_NOT_SHIPPABLE) from exc
        except shipments.AllocationUnknown as exc:
            raise Conflict(str(exc), code=ErrorCode.ALLOCATION_UNKNOWN) from exc
        except NotExpressible as exc:
            raise EventVersionTooOld(str(exc)) from exc
        [body] = [_shipment_body(s) for s in selectors.order_shipments(order, shipment.pk)]
        return Response(body, status=status.HTTP_201_CREATED)
