from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.permissions import IsStaff
from service_runtime.openapi import cursor_parameters, errors, page_parameters, paginated
from service_runtime.pagination import CursorPagination, Pagination, paginated_response
from service_runtime.representation import timestamp
from service_runtime.request_context import correlation_id
from stock.models import Reservation, StockLedgerEntry, StockLevel, Warehouse
from stock.selectors import (
    LedgerRow,
    Totals,
    backorder_of_order,
    backorder_waiting_list,
    reservation_list,
    stock_ledger_list,
    stock_ledger_page,
    stock_levels_exist,
    stock_levels_of,
    warehouse_list,
)
from stock.services import stock_adjust, stock_transfer
from stock.warehouses import warehouse_create, warehouse_named, warehouse_update


def warehouse_code(**kwargs: object) -> serializers.SlugField:
    """A warehouse's code: a short slug of letters, digits, '-' and '_'."""
    return serializers.SlugField(max_length=32, **kwargs)  # type: ignore[arg-type]


class LedgerEntryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    product_id = serializers.IntegerField()
    warehouse_id = serializers.IntegerField()
    warehouse = serializers.CharField(source="warehouse.code")
    kind = serializers.CharField()
    delta_on_hand = serializers.IntegerField()
    delta_reserved = serializers.IntegerField()
    reason = serializers.CharField()
    order_id = serializers.UUIDField(allow_null=True)
    actor_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class WarehouseStockOutputSerializer(serializers.Serializer):
    """A product's stock in one warehouse, named by the warehouse's code."""

    warehouse = serializers.CharField(source="warehouse.code")
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()


class StockAdjustmentApi(APIView):
    """A staff correction of on_hand in one warehouse (the default one unless named):
    deliveries in, breakage and stocktake differences out."""

    permission_classes = [IsStaff]

    class InputSerializer(serializers.Serializer):
        delta = serializers.IntegerField(min_value=-1_000_000_000, max_value=1_000_000_000)
        reason = serializers.CharField(max_length=500)
        warehouse = warehouse_code(
            required=False, help_text="Its code; the default warehouse if left out."
        )

    class OutputSerializer(serializers.Serializer):
        entry = LedgerEntryOutputSerializer()
        on_hand = serializers.IntegerField(help_text="The product's, over every warehouse.")
        reserved = serializers.IntegerField()
        available = serializers.IntegerField()
        warehouse = WarehouseStockOutputSerializer(help_text="The adjusted warehouse's stock.")

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer, **errors(400, 401, 403, 404)},
    )
    def post(self, request: Request, product_id: int) -> Response:
        _product_stock(product_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        entry = stock_adjust(
            product_id=product_id,
            **serializer.validated_data,
            actor_id=getattr(request.user, "id", None),
            correlation_id=correlation_id(request),
        )
        levels = _product_stock(product_id)
        totals = Totals.of(levels)
        [adjusted] = [level for level in levels if level.warehouse_id == entry.warehouse_id]
        data = {
            "entry": entry,
            "on_hand": totals.on_hand,
            "reserved": totals.reserved,
            "available": totals.available,
            "warehouse": adjusted,
        }
        return Response(self.OutputSerializer(data).data, status=status.HTTP_201_CREATED)


class StockTransferApi(APIView):
    """Staff move units of a product between warehouses: at once, and never more than is
    available (on hand, not reserved) at the source."""

    permission_classes = [IsStaff]

    class InputSerializer(serializers.Serializer):
        product = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
        from_warehouse = warehouse_code(help_text="The source's code.")
        to_warehouse = warehouse_code(help_text="The destination's code; it may be inactive.")
        quantity = serializers.IntegerField(min_value=1, max_value=1_000_000_000)
        reason = serializers.CharField(max_length=500)

    class OutputSerializer(serializers.Serializer):
        product_id = serializers.IntegerField()
        quantity = serializers.IntegerField()
        entries = LedgerEntryOutputSerializer(many=True, help_text="Out of, then into.")
        from_warehouse = WarehouseStockOutputSerializer(source="from_level")
        to_warehouse = WarehouseStockOutputSerializer(source="to_level")

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer, **errors(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        product_id = data["product"]
        entries = stock_transfer(
            product_id=product_id,
            source=data["from_warehouse"],
            destination=data["to_warehouse"],
            quantity=data["quantity"],
            reason=data["reason"],
            actor_id=getattr(request.user, "id", None),
            correlation_id=correlation_id(request),
        )
        levels = {level.warehouse_id: level for level in stock_levels_of(product_id=product_id)}
        result = {
            "product_id": product_id,
            "quantity": data["quantity"],
            "entries": entries,
            "from_level": levels[entries[0].warehouse_id],
            "to_level": levels[entries[1].warehouse_id],
        }
        return Response(self.OutputSerializer(result).data, status=status.HTTP_201_CREATED)


class LedgerPagination(CursorPagination):
    """Newest first (index ``ledger_by_product``, or ``ledger_by_warehouse`` when filtered):
    the ledger only grows."""

    ordering = ("-id",)

    def fetch(self, rows: QuerySet[StockLedgerEntry], size: int) -> list[LedgerRow]:
        """The page's entries as tuples, with their warehouse's code, in one statement."""
        return stock_ledger_page(rows)


def _ledger_entry_body(entry: LedgerRow) -> dict[str, Any]:
    """What ``LedgerEntryOutputSerializer`` shows of an entry (the same keys in the same
    order, the same formats), built directly; a test holds the two to the same bytes."""
    return {
        **entry._asdict(),
        "kind": str(entry.kind),
        "order_id": None if entry.order_id is None else str(entry.order_id),
        "created_at": timestamp(entry.created_at),
    }


class StockLedgerApi(APIView):
    permission_classes = [IsStaff]
    OutputSerializer = LedgerEntryOutputSerializer

    class FilterSerializer(serializers.Serializer):
        warehouse = warehouse_code(
            required=False, help_text="Only this warehouse's entries (its code)."
        )

    @extend_schema(
        parameters=[FilterSerializer, *cursor_parameters(LedgerPagination.max_page_size)],
        responses={
            200: paginated(LedgerEntryOutputSerializer, "LedgerEntry", cursor=True),
            **errors(400, 401, 403, 404),
        },
    )
    def get(self, request: Request, product_id: int) -> Response:
        _product_named(product_id)
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        code = filters.validated_data.get("warehouse")
        warehouse_id = None if code is None else warehouse_named(code, field="warehouse").pk
        paginator = LedgerPagination()
        page = paginator.paginate_queryset(
            stock_ledger_list(product_id=product_id, warehouse_id=warehouse_id), request
        )
        # What LedgerEntryOutputSerializer shows of each, built directly (_ledger_entry_body).
        return paginator.get_paginated_response([_ledger_entry_body(entry) for entry in page])


class WarehouseOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    active = serializers.BooleanField()
    priority = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WarehouseInputSerializer(serializers.Serializer):
    code = warehouse_code(help_text="Letters, digits, '-' and '_'; unique, and never changed.")
    name = serializers.CharField(max_length=100)
    priority = serializers.IntegerField(
        min_value=-2_147_483_648,
        max_value=2_147_483_647,
        required=False,
        default=0,
        help_text="Orders are allocated from the highest first (ties: the oldest warehouse).",
    )
    active = serializers.BooleanField(
        required=False, default=True, help_text="Inactive: keeps its stock, gets no new orders."
    )


class WarehouseListApi(APIView):
    """Staff list warehouses in allocation order and add them."""

    permission_classes = [IsStaff]
    OutputSerializer = WarehouseOutputSerializer
    InputSerializer = WarehouseInputSerializer

    @extend_schema(
        operation_id="warehouses_list",
        parameters=page_parameters(Pagination.max_page_size),
        responses={200: paginated(WarehouseOutputSerializer, "Warehouse"), **errors(401, 403, 404)},
    )
    def get(self, request: Request) -> Response:
        return paginated_response(
            request=request,
            view=self,
            queryset=warehouse_list(),
            serializer_class=self.OutputSerializer,
        )

    @extend_schema(
        request=WarehouseInputSerializer,
        responses={201: WarehouseOutputSerializer, **errors(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        warehouse = warehouse_create(**serializer.validated_data)
        return Response(self.OutputSerializer(warehouse).data, status=status.HTTP_201_CREATED)


class WarehouseDetailApi(APIView):
    """One warehouse: read, renamed, reprioritised, (de)activated; never deleted."""

    permission_classes = [IsStaff]
    OutputSerializer = WarehouseOutputSerializer
    InputSerializer = WarehouseInputSerializer

    @extend_schema(responses={200: WarehouseOutputSerializer, **errors(401, 403, 404)})
    def get(self, request: Request, warehouse_id: int) -> Response:
        warehouse = get_object_or_404(Warehouse, pk=warehouse_id)
        return Response(self.OutputSerializer(warehouse).data)

    @extend_schema(
        request=WarehouseInputSerializer,
        responses={200: WarehouseOutputSerializer, **errors(400, 401, 403, 404)},
        description="The code cannot change: a different one is a 400.",
    )
    def put(self, request: Request, warehouse_id: int) -> Response:
        return self._update(request, warehouse_id, partial=False)

    @extend_schema(
        request=WarehouseInputSerializer,
        responses={200: WarehouseOutputSerializer, **errors(400, 401, 403, 404)},
        description="The code cannot change: a different one is a 400.",
    )
    def patch(self, request: Request, warehouse_id: int) -> Response:
        return self._update(request, warehouse_id, partial=True)

    @extend_schema(exclude=True)
    def delete(self, request: Request, warehouse_id: int) -> Response:
        detail = "a warehouse is never deleted: its stock and history name it; deactivate it."
        raise MethodNotAllowed("DELETE", detail=detail)

    def _update(self, request: Request, warehouse_id: int, *, partial: bool) -> Response:
        warehouse = get_object_or_404(Warehouse, pk=warehouse_id)
        serializer = self.InputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        warehouse = warehouse_update(warehouse=warehouse, data=serializer.validated_data)
        return Response(self.OutputSerializer(warehouse).data)


class BackorderPlaceOutputSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    place = serializers.IntegerField(help_text="1-based, in serving order.")
    quantity = serializers.IntegerField(help_text="Units of this product it still misses.")
    waiting_since = serializers.DateTimeField()
    overdue = serializers.BooleanField(help_text="Waited long enough to be served first.")


class ProductBackorderListApi(APIView):
    """Staff see a product's waiting list in the order deliveries serve it: the overdue
    orders first, then the others, each in arrival order."""

    permission_classes = [IsStaff]
    OutputSerializer = BackorderPlaceOutputSerializer

    @extend_schema(
        operation_id="product_backorders_list",
        responses={200: BackorderPlaceOutputSerializer(many=True), **errors(401, 403, 404)},
    )
    def get(self, request: Request, product_id: int) -> Response:
        _product_stock(product_id)
        places = backorder_waiting_list(product_id=product_id)
        return Response(self.OutputSerializer(places, many=True).data)


class BackorderDetailApi(APIView):
    """An order's places in the waiting lists: its owner's or staff's; a 404 for anyone else,
    as for an order inventory has not seen."""

    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        class LineSerializer(serializers.Serializer):
            product_id = serializers.IntegerField()
            missing = serializers.IntegerField(help_text="Units of it the order still misses.")
            place = serializers.IntegerField(help_text="In the product's waiting list, 1-based.")

        order_id = serializers.UUIDField()
        status = serializers.CharField(help_text="Its reservation's; lines only if BACKORDERED.")
        lines = LineSerializer(many=True)

    @extend_schema(
        operation_id="backorder_retrieve", responses={200: OutputSerializer, **errors(401, 404)}
    )
    def get(self, request: Request, order_id: str) -> Response:
        found = backorder_of_order(order_id=order_id)
        user = request.user
        if found is None or not (
            getattr(user, "is_staff", False) or found.user_id == getattr(user, "id", None)
        ):
            raise Http404("No backorder matches the given query.")
        return Response(self.OutputSerializer(found).data)


def _product_named(product_id: int) -> None:
    """404 unless the product the URL names exists (it has stock rows), worded as
    :func:`_product_stock`'s, without reading the rows."""
    if not stock_levels_exist(product_id=product_id):
        raise Http404("No Product matches the given query.")


def _product_stock(product_id: int) -> list[StockLevel]:
    """The counters of the product the URL names; the 404 speaks of the product, like the URL."""
    levels = stock_levels_of(product_id=product_id)
    if not levels:
        raise Http404("No Product matches the given query.")
    return levels


MAX_ORDER_IDS = 100  # per request of the reservations list


class ReservationPagination(CursorPagination):
    """Newest first (index ``reservation_status_newest``, or the order's unique index)."""

    ordering = ("-id",)


class ReservationOutputSerializer(serializers.Serializer):
    class LineSerializer(serializers.Serializer):
        product_id = serializers.IntegerField()
        quantity = serializers.IntegerField()

    class AllocationSerializer(serializers.Serializer):
        product_id = serializers.IntegerField()
        warehouse_id = serializers.IntegerField()
        quantity = serializers.IntegerField(help_text="Units held there for the order.")
        shipped = serializers.IntegerField(default=0, help_text="Of these, units that left.")

    order_id = serializers.UUIDField()
    status = serializers.CharField()
    lines = LineSerializer(many=True, help_text="What the order asked for.")
    allocations = AllocationSerializer(many=True, help_text="Where its units are held.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ReservationListApi(APIView):
    """What inventory did for each order, for staff: the inventory side of the saga that the
    cross-service audit (``python -m saga_audit``) compares with the orders."""

    permission_classes = [IsStaff]
    OutputSerializer = ReservationOutputSerializer

    class FilterSerializer(serializers.Serializer):
        status = serializers.ListField(
            child=serializers.ChoiceField(choices=Reservation.Status.choices),
            required=False,
            max_length=len(Reservation.Status.choices),
        )
        order_id = serializers.ListField(
            child=serializers.UUIDField(), required=False, max_length=MAX_ORDER_IDS
        )

    @extend_schema(
        operation_id="reservations_list",
        parameters=[FilterSerializer, *cursor_parameters(ReservationPagination.max_page_size)],
        responses={
            200: paginated(ReservationOutputSerializer, "Reservation", cursor=True),
            **errors(400, 401, 403, 404),
        },
        description="`status` and `order_id` may repeat (at most 100 order ids); a cursor that "
        "is not one of this list's is a 404.",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(
            data={
                key: request.query_params.getlist(key)
                for key in ("status", "order_id")
                if key in request.query_params
            }
        )
        filters.is_valid(raise_exception=True)
        paginator = ReservationPagination()
        page = paginator.paginate_queryset(
            reservation_list(
                statuses=filters.validated_data.get("status"),
                order_ids=filters.validated_data.get("order_id"),
            ),
            request,
        )
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)
