from django.urls import include, path

urlpatterns = [
    path("", include("service_runtime.urls")),  # health, metrics, OpenAPI schema and docs
    path("api/", include("catalogue.urls")),
    path("api/", include("stock.urls")),
    path("api/dead-letters/", include("messaging.urls")),  # staff: this service's DLQ
]
