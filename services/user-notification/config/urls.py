from django.urls import include, path

urlpatterns = [
    path("api/users/", include("accounts.urls")),
    path("api/notifications/", include("notifications.urls")),
]
