from django.urls import path

from catalogue.apis import CategoryDetailApi, CategoryListApi, ProductDetailApi, ProductListApi

urlpatterns = [
    path("categories/", CategoryListApi.as_view(), name="category-list"),
    path("categories/<int:category_id>/", CategoryDetailApi.as_view(), name="category-detail"),
    path("products/", ProductListApi.as_view(), name="product-list"),
    path("products/<int:product_id>/", ProductDetailApi.as_view(), name="product-detail"),
]
