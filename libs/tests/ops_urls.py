"""A URL configuration for the health and metrics tests: the operational paths and one route
with a parameter."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def thing(request: HttpRequest, thing_id: int) -> JsonResponse:
    return JsonResponse({"id": thing_id})


urlpatterns = [
    path("", include("service_runtime.urls")),
    path("things/<int:thing_id>/", thing),
]
