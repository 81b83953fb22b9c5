from django.urls import include, path

urlpatterns = [
    path("api/", include("catalogue.urls")),
    path("api/", include("stock.urls")),
]
