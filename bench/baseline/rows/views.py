"""The ceiling of "one request, one write": validate a JSON body, insert it, answer 201."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rows.models import Row


class RowCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        lines = serializers.ListField(child=serializers.DictField(), allow_empty=False)

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = Row.objects.create(payload=serializer.validated_data)
        return Response({"id": row.pk}, status=status.HTTP_201_CREATED)
