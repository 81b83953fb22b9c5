from django.urls import include, path

urlpatterns = [
    path("", include("service_runtime.urls")),  # health, metrics, OpenAPI schema and docs
    path("api/", include("orders.urls")),
    path("api/dead-letters/", include("messaging.urls")),  # staff: this service's DLQ
]
