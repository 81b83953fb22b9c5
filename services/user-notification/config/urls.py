from django.urls import include, path

urlpatterns = [
    path("", include("service_runtime.urls")),  # health, metrics, OpenAPI schema and docs
    path("api/users/", include("accounts.urls")),
    path("api/notifications/", include("notifications.urls")),
    path("api/dead-letters/", include("messaging_ops.urls")),  # staff: this service's DLQ
]

# Answers in the API's error shape for paths no pattern matches (and for crashes), not HTML.
handler400 = "service_runtime.errors.bad_request"
handler403 = "service_runtime.errors.permission_denied"
handler404 = "service_runtime.errors.not_found"
handler500 = "service_runtime.errors.server_error"
