from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.authentication import TokenUser
from notifications.models import Notification
from notifications.selectors import (
    NotificationRow,
    notification_get,
    notification_list,
    notification_page,
    notification_unread_count,
)
from notifications.services import notification_mark_all_read, notification_mark_read
from service_runtime.openapi import cursor_parameters, errors, paginated
from service_runtime.pagination import CursorPagination
from service_runtime.representation import timestamp


def _caller_id(request: Request) -> int:
    return cast(TokenUser, request.user).id


class NotificationOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ("id", "kind", "title", "body", "order_id", "product_id", "created_at", "read_at")
        read_only_fields = fields


class NotificationPagination(CursorPagination):
    """Newest first (indexes ``notification_user_newest`` and ``notification_unread``)."""

    ordering = ("-created_at", "-id")
    page_size = 20
    max_page_size = 100

    def fetch(self, rows: QuerySet[Notification], size: int) -> list[NotificationRow]:
        return notification_page(rows)


def _notification_body(row: NotificationRow) -> dict[str, Any]:
    """What ``NotificationOutputSerializer`` shows of a notification (the same keys in the
    same order, the same formats), built directly: the serializer copies its fields and
    walks them for every row. The serializer documents the shape (OpenAPI), and a test holds
    the two to the same bytes."""
    return {
        "id": row.id,
        "kind": row.kind,
        "title": row.title,
        "body": row.body,
        "order_id": None if row.order_id is None else str(row.order_id),
        "product_id": row.product_id,
        "created_at": timestamp(row.created_at),
        "read_at": None if row.read_at is None else timestamp(row.read_at),
    }


class NotificationListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        unread = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        operation_id="notifications_list",
        parameters=[FilterSerializer, *cursor_parameters(NotificationPagination.max_page_size)],
        responses={
            200: paginated(
                NotificationOutputSerializer,
                "Notification",
                cursor=True,
                unread_count=serializers.IntegerField(help_text="All the caller's unread."),
            ),
            **errors(400, 401, 404),
        },
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        user_id = _caller_id(request)
        paginator = NotificationPagination()
        page = paginator.paginate_queryset(
            notification_list(user_id=user_id, unread=filters.validated_data["unread"]), request
        )
        response = paginator.get_paginated_response([_notification_body(row) for row in page])
        response.data["unread_count"] = notification_unread_count(user_id=user_id)
        return response


class NotificationReadApi(APIView):
    @extend_schema(request=None, responses={200: NotificationOutputSerializer, **errors(401, 404)})
    def post(self, request: Request, notification_id: int) -> Response:
        notification = notification_get(
            user_id=_caller_id(request), notification_id=notification_id
        )
        if notification is None:
            raise NotFound("No such notification.")
        notification = notification_mark_read(notification=notification)
        return Response(NotificationOutputSerializer(notification).data)


class MarkedOutputSerializer(serializers.Serializer):
    marked = serializers.IntegerField(help_text="How many were unread.")


class NotificationReadAllApi(APIView):
    @extend_schema(request=None, responses={200: MarkedOutputSerializer, **errors(401)})
    def post(self, request: Request) -> Response:
        return Response({"marked": notification_mark_all_read(user_id=_caller_id(request))})
