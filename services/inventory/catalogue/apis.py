from __future__ import annotations

from typing import Any

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalogue.models import Category, Product
from catalogue.selectors import category_list, product_get, product_list
from catalogue.services import (
    category_create,
    category_delete,
    category_update,
    product_create,
    product_deactivate,
    product_update,
)
from identity.permissions import IsStaffOrReadOnly
from service_runtime.openapi import cursor_parameters, errors, page_parameters, paginated
from service_runtime.pagination import CursorPagination, Pagination, paginated_response
from service_runtime.request_context import correlation_id
from stock.apis import WarehouseStockOutputSerializer
from stock.selectors import Totals


class CategoryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()


class CategoryInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class CategoryListApi(APIView):
    permission_classes = [IsStaffOrReadOnly]
    OutputSerializer = CategoryOutputSerializer
    InputSerializer = CategoryInputSerializer

    @extend_schema(
        operation_id="categories_list",
        parameters=page_parameters(Pagination.max_page_size),
        responses={200: paginated(CategoryOutputSerializer, "Category"), **errors(404)},
    )
    def get(self, request: Request) -> Response:
        return paginated_response(
            request=request,
            view=self,
            queryset=category_list(),
            serializer_class=self.OutputSerializer,
        )

    @extend_schema(
        request=CategoryInputSerializer,
        responses={201: CategoryOutputSerializer, **errors(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        category = category_create(**serializer.validated_data)
        return Response(self.OutputSerializer(category).data, status=status.HTTP_201_CREATED)


class CategoryDetailApi(APIView):
    permission_classes = [IsStaffOrReadOnly]
    OutputSerializer = CategoryOutputSerializer
    InputSerializer = CategoryInputSerializer

    @extend_schema(responses={200: CategoryOutputSerializer, **errors(404)})
    def get(self, request: Request, category_id: int) -> Response:
        category = get_object_or_404(Category, pk=category_id)
        return Response(self.OutputSerializer(category).data)

    @extend_schema(
        request=CategoryInputSerializer,
        responses={200: CategoryOutputSerializer, **errors(400, 401, 403, 404)},
    )
    def put(self, request: Request, category_id: int) -> Response:
        return self._update(request, category_id, partial=False)

    @extend_schema(
        request=CategoryInputSerializer,
        responses={200: CategoryOutputSerializer, **errors(400, 401, 403, 404)},
    )
    def patch(self, request: Request, category_id: int) -> Response:
        return self._update(request, category_id, partial=True)

    @extend_schema(
        responses={204: None, **errors(400, 401, 403, 404)},
        description="Only a category without products; 400 otherwise.",
    )
    def delete(self, request: Request, category_id: int) -> Response:
        category_delete(category=get_object_or_404(Category, pk=category_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, category_id: int, *, partial: bool) -> Response:
        category = get_object_or_404(Category, pk=category_id)
        serializer = self.InputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        category = category_update(
            category=category,
            data=serializer.validated_data,
            correlation_id=correlation_id(request),
        )
        return Response(self.OutputSerializer(category).data)


class ProductOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2)
    category = serializers.IntegerField(source="category_id", allow_null=True)
    category_name = serializers.CharField(source="category.name", default=None, allow_null=True)
    active = serializers.BooleanField()
    low_stock_threshold = serializers.IntegerField()
    allow_backorder = serializers.BooleanField(
        help_text="An order short of it waits for deliveries instead of being rejected."
    )
    backordered = serializers.IntegerField(
        help_text="Units its waiting (backordered) orders still miss."
    )
    on_hand = serializers.SerializerMethodField(help_text="Over every warehouse.")
    reserved = serializers.SerializerMethodField(help_text="Over every warehouse.")
    available = serializers.SerializerMethodField(help_text="on_hand - reserved.")
    warehouses = WarehouseStockOutputSerializer(
        source="stock_levels.all", many=True, help_text="The stock in each warehouse."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: Product) -> dict[str, Any]:
        # The product's stock over its warehouses, summed once from the rows ``product_list``
        # prefetched; a list's items are represented one after the other by this instance.
        self._totals = Totals.of(list(instance.stock_levels.all()))
        return dict(super().to_representation(instance))

    @extend_schema_field(OpenApiTypes.INT)
    def get_on_hand(self, product: Product) -> int:
        return self._totals.on_hand

    @extend_schema_field(OpenApiTypes.INT)
    def get_reserved(self, product: Product) -> int:
        return self._totals.reserved

    @extend_schema_field(OpenApiTypes.INT)
    def get_available(self, product: Product) -> int:
        return self._totals.available


class ProductInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0)
    category = serializers.PrimaryKeyRelatedField(
        queryset=Category.objects.all(), required=False, allow_null=True, default=None
    )
    active = serializers.BooleanField(required=False, default=True)
    # The column's range: a larger number would be a database error (a 500), not a 400.
    low_stock_threshold = serializers.IntegerField(
        min_value=0, max_value=2_147_483_647, required=False, default=0
    )
    allow_backorder = serializers.BooleanField(required=False, default=False)


class ProductPagination(CursorPagination):
    """By id (the primary key, or ``product_active_by_id``, ``product_category_by_id``)."""

    ordering = ("id",)


class ProductListApi(APIView):
    """Anyone may browse the catalogue and its availability; only staff may add to it."""

    permission_classes = [IsStaffOrReadOnly]
    OutputSerializer = ProductOutputSerializer
    InputSerializer = ProductInputSerializer

    class FilterSerializer(serializers.Serializer):
        category = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
        active = serializers.BooleanField(required=False)
        sku = serializers.CharField(required=False)

    @extend_schema(
        operation_id="products_list",
        parameters=[FilterSerializer, *cursor_parameters(ProductPagination.max_page_size)],
        responses={
            200: paginated(ProductOutputSerializer, "Product", cursor=True),
            **errors(400, 404),
        },
    )
    def get(self, request: Request) -> Response:
        # A plain dict: from a QueryDict, DRF would read an absent boolean as False.
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return paginated_response(
            request=request,
            view=self,
            queryset=product_list(filters=filters.validated_data),
            serializer_class=self.OutputSerializer,
            pagination_class=ProductPagination,
        )

    @extend_schema(
        request=ProductInputSerializer,
        responses={201: ProductOutputSerializer, **errors(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = product_create(
            **serializer.validated_data, correlation_id=correlation_id(request)
        )
        return Response(
            self.OutputSerializer(_annotated(product.pk)).data, status=status.HTTP_201_CREATED
        )


class ProductDetailApi(APIView):
    permission_classes = [IsStaffOrReadOnly]
    OutputSerializer = ProductOutputSerializer
    InputSerializer = ProductInputSerializer

    @extend_schema(responses={200: ProductOutputSerializer, **errors(404)})
    def get(self, request: Request, product_id: int) -> Response:
        return Response(self.OutputSerializer(_annotated(product_id)).data)

    @extend_schema(
        request=ProductInputSerializer,
        responses={200: ProductOutputSerializer, **errors(400, 401, 403, 404)},
    )
    def put(self, request: Request, product_id: int) -> Response:
        return self._update(request, product_id, partial=False)

    @extend_schema(
        request=ProductInputSerializer,
        responses={200: ProductOutputSerializer, **errors(400, 401, 403, 404)},
    )
    def patch(self, request: Request, product_id: int) -> Response:
        return self._update(request, product_id, partial=True)

    @extend_schema(
        responses={204: None, **errors(401, 403, 404)},
        description="Deactivates the product (kept for the orders that name it).",
    )
    def delete(self, request: Request, product_id: int) -> Response:
        product = get_object_or_404(Product, pk=product_id)
        product_deactivate(product=product, correlation_id=correlation_id(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, product_id: int, *, partial: bool) -> Response:
        product = get_object_or_404(Product, pk=product_id)
        serializer = self.InputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        product_update(
            product=product, data=serializer.validated_data, correlation_id=correlation_id(request)
        )
        return Response(self.OutputSerializer(_annotated(product_id)).data)


def _annotated(product_id: int) -> Any:
    product = product_get(product_id=product_id)
    if product is None:
        raise Http404("No such product.")
    return product
