from django.urls import include, path

urlpatterns = [
    path("", include("service_runtime.urls")),  # health, metrics, OpenAPI schema and docs
    path("api/users/", include("accounts.urls")),
    path("api/notifications/", include("notifications.urls")),
    path("api/dead-letters/", include("messaging.urls")),  # staff: this service's DLQ
]
