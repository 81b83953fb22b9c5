"""The REST surface of returns: a customer asks to send shipped units back, staff receive
them. Thin views; the rules live in :mod:`orders.return_rules` and :mod:`orders.returns`."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.permissions import IsStaff
from orders import returns, selectors
from orders.apis import (
    MAX_ID,
    MAX_LINES,
    MAX_QUANTITY,
    Conflict,
    StrictIntegerField,
    _viewer,
    _visible_order,
)
from orders.models import Return, ReturnStatus
from orders.placement import LineRequest
from orders.return_rules import ReceivedLine, ReturnNotAllowed
from service_runtime.openapi import cursor_parameters, errors, paginated
from service_runtime.pagination import CursorPagination

MAX_REASON_LENGTH = 2000  # what return.requested can carry


class ReturnLineOutputSerializer(serializers.Serializer):
    product_id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField(help_text="Units the customer sends back.")
    restocked = serializers.IntegerField(help_text="Of these, units received back on hand.")
    damaged = serializers.IntegerField(help_text="Of these, units received and written off.")
    unit_price = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="The price paid for each unit."
    )


class ReturnOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    order_id = serializers.UUIDField()
    user_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ReturnStatus.choices)
    reason = serializers.CharField()
    lines = ReturnLineOutputSerializer(many=True)
    warehouse = serializers.CharField(
        allow_null=True, help_text="The warehouse it was received into; null until received."
    )
    refund_amount = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        allow_null=True,
        help_text="Unit prices x units received; null until received.",
    )
    requested_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField(allow_null=True)


def _shown(returned: Return) -> Any:
    """The return with its lines as stored now."""
    return ReturnOutputSerializer(selectors.return_with_lines(returned.pk)).data


def _not_allowed(exc: ReturnNotAllowed) -> Conflict:
    return Conflict(str(exc), code=exc.code)


class OrderReturnsApi(APIView):
    """The order's returns (its owner and staff), and a new one."""

    class InputSerializer(serializers.Serializer):
        class LineSerializer(serializers.Serializer):
            product_id = StrictIntegerField(min_value=1, max_value=MAX_ID)
            quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)

        lines = LineSerializer(many=True, allow_empty=False)
        reason = serializers.CharField(
            max_length=MAX_REASON_LENGTH, allow_blank=True, required=False, default=""
        )

        def validate_lines(self, lines: list[dict[str, int]]) -> list[dict[str, int]]:
            if len(lines) > MAX_LINES:
                raise serializers.ValidationError(f"At most {MAX_LINES} lines per return.")
            return lines

    @extend_schema(
        operation_id="orders_returns_list",
        responses={200: ReturnOutputSerializer(many=True), **errors(401, 404)},
        description="The order's returns, oldest first.",
    )
    def get(self, request: Request, order_id: uuid.UUID) -> Response:
        order = _visible_order(request, order_id)
        return Response(ReturnOutputSerializer(selectors.order_returns(order), many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: ReturnOutputSerializer, **errors(400, 401, 404, 409)},
        description=(
            "Send shipped units back: only units shipped and not in a return already, while "
            "the order's last shipment is within the return window (409 `nothing_shipped`, "
            "`return_window_closed`). REQUESTED until staff receive it."
        ),
    )
    def post(self, request: Request, order_id: uuid.UUID) -> Response:
        order = _visible_order(request, order_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            returned = returns.return_request(
                order_id=order.id,
                lines=[LineRequest(**line) for line in data["lines"]],
                reason=data["reason"],
                actor_user_id=_viewer(request).id,
            )
        except ReturnNotAllowed as exc:
            raise _not_allowed(exc) from exc
        return Response(_shown(returned), status=status.HTTP_201_CREATED)


class ReturnPagination(CursorPagination):
    """Newest first (indexes ``return_newest``, ``return_status_newest``)."""

    ordering = ("-requested_at", "-id")


class ReturnListApi(APIView):
    """Staff: every return, newest first; `?status=REQUESTED`: those still to receive."""

    permission_classes = [IsStaff]

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=ReturnStatus.choices, required=False)

    @extend_schema(
        operation_id="returns_list",
        parameters=[FilterSerializer, *cursor_parameters(ReturnPagination.max_page_size)],
        responses={
            200: paginated(ReturnOutputSerializer, "Return", cursor=True),
            **errors(400, 401, 403, 404),
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = ReturnPagination()
        page = paginator.paginate_queryset(
            selectors.return_list(viewer=_viewer(request), **filters.validated_data), request
        )
        return paginator.get_paginated_response(ReturnOutputSerializer(page, many=True).data)


def _visible_return(request: Request, return_id: int) -> Return:
    returned = None
    if return_id <= MAX_ID:  # a larger id names no return (and is no database error)
        returned = selectors.return_get(viewer=_viewer(request), return_id=return_id)
    if returned is None:
        raise Http404  # another customer's return is indistinguishable from a missing one
    return returned


class ReturnDetailApi(APIView):
    @extend_schema(responses={200: ReturnOutputSerializer, **errors(401, 404)})
    def get(self, request: Request, return_id: int) -> Response:
        return Response(ReturnOutputSerializer(_visible_return(request, return_id)).data)


class ReturnReceiveApi(APIView):
    """Staff: the units came back into a warehouse, each line's restocked and damaged; the
    refund is recorded and announced."""

    permission_classes = [IsStaff]

    class InputSerializer(serializers.Serializer):
        class LineSerializer(serializers.Serializer):
            product_id = StrictIntegerField(min_value=1, max_value=MAX_ID)
            restocked = StrictIntegerField(min_value=0, max_value=MAX_QUANTITY)
            damaged = StrictIntegerField(min_value=0, max_value=MAX_QUANTITY)

        warehouse = serializers.SlugField(
            max_length=32,
            help_text=(
                "The code of the inventory warehouse the units are received into (inventory "
                "restocks into its default warehouse when it does not know the code)."
            ),
        )
        lines = LineSerializer(
            many=True,
            allow_empty=False,
            help_text="Per product of the return; a product left out: nothing of it came back.",
        )

        def validate_lines(self, lines: list[dict[str, int]]) -> list[dict[str, int]]:
            if len(lines) > MAX_LINES:
                raise serializers.ValidationError(f"At most {MAX_LINES} lines per return.")
            return lines

    @extend_schema(
        request=InputSerializer,
        responses={200: ReturnOutputSerializer, **errors(400, 401, 403, 404, 409)},
        description=(
            "REQUESTED → RECEIVED (a second receipt is a 409 `return_already_received`): "
            "restocked + damaged at most the units requested per line, at least one unit in "
            "all; the refund is unit prices x units received. Publishes `return.received` "
            "and `return.refunded`."
        ),
    )
    def post(self, request: Request, return_id: int) -> Response:
        returned = _visible_return(request, return_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            returned = returns.return_receive(
                return_id=returned.pk,
                warehouse=data["warehouse"],
                lines=[ReceivedLine(**line) for line in data["lines"]],
                actor_user_id=_viewer(request).id,
            )
        except ReturnNotAllowed as exc:
            raise _not_allowed(exc) from exc
        return Response(_shown(returned))
