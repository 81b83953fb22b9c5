from django.urls import path

from accounts import apis

urlpatterns = [
    path("register/", apis.UserRegisterApi.as_view(), name="user-register"),
    path("token/", apis.TokenObtainApi.as_view(), name="token-obtain"),
    path("token/refresh/", apis.TokenRefreshApi.as_view(), name="token-refresh"),
    path("me/", apis.UserMeApi.as_view(), name="user-me"),
]
