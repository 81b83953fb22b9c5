from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.permissions import IsStaff
from service_runtime.openapi import cursor_parameters, errors, paginated
from service_runtime.pagination import CursorPagination, paginated_response
from service_runtime.request_context import correlation_id
from stock.models import StockLevel
from stock.selectors import stock_ledger_list, stock_level_get
from stock.services import stock_adjust


class LedgerEntryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    product_id = serializers.IntegerField()
    kind = serializers.CharField()
    delta_on_hand = serializers.IntegerField()
    delta_reserved = serializers.IntegerField()
    reason = serializers.CharField()
    order_id = serializers.UUIDField(allow_null=True)
    actor_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class StockAdjustmentApi(APIView):
    """A staff correction of on_hand: deliveries in, breakage and stocktake differences out."""

    permission_classes = [IsStaff]

    class InputSerializer(serializers.Serializer):
        delta = serializers.IntegerField(min_value=-1_000_000_000, max_value=1_000_000_000)
        reason = serializers.CharField(max_length=500)

    class OutputSerializer(serializers.Serializer):
        entry = LedgerEntryOutputSerializer()
        on_hand = serializers.IntegerField()
        reserved = serializers.IntegerField()
        available = serializers.IntegerField()

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
        level = stock_level_get(product_id=product_id)
        data = {
            "entry": entry,
            "on_hand": level.on_hand,
            "reserved": level.reserved,
            "available": level.available,
        }
        return Response(self.OutputSerializer(data).data, status=status.HTTP_201_CREATED)


class LedgerPagination(CursorPagination):
    """Newest first (index ``ledger_by_product``): the ledger only grows."""

    ordering = ("-id",)


class StockLedgerApi(APIView):
    permission_classes = [IsStaff]
    OutputSerializer = LedgerEntryOutputSerializer

    @extend_schema(
        parameters=cursor_parameters(LedgerPagination.max_page_size),
        responses={
            200: paginated(LedgerEntryOutputSerializer, "LedgerEntry", cursor=True),
            **errors(401, 403, 404),
        },
    )
    def get(self, request: Request, product_id: int) -> Response:
        _product_stock(product_id)
        return paginated_response(
            request=request,
            view=self,
            queryset=stock_ledger_list(product_id=product_id),
            serializer_class=self.OutputSerializer,
            pagination_class=LedgerPagination,
        )


def _product_stock(product_id: int) -> StockLevel:
    """The counters of the product the URL names; the 404 speaks of the product, like the URL."""
    try:
        return stock_level_get(product_id=product_id)
    except StockLevel.DoesNotExist:
        raise Http404("No Product matches the given query.") from None
