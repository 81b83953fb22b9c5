from typing import cast

from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import user_get_active
from accounts.services import user_register
from accounts.tokens import token_access_refresh, token_pair_obtain
from identity.authentication import TokenUser


class UserOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    is_staff = serializers.BooleanField()


class PublicApi(APIView):
    """Open to anonymous callers; refused credentials are still a 401 with a Bearer challenge."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class UserRegisterApi(PublicApi):
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(max_length=1024, write_only=True, trim_whitespace=False)

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            user = user_register(
                **serializer.validated_data,
                correlation_id=request.headers.get("X-Request-ID", "")[:64] or None,
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError(serializers.as_serializer_error(exc)) from exc
        return Response(UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenObtainApi(PublicApi):
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=1024, trim_whitespace=False)

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(token_pair_obtain(**serializer.validated_data))


class TokenRefreshApi(PublicApi):
    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField(max_length=4096)

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(token_access_refresh(**serializer.validated_data))


class UserMeApi(APIView):
    def get(self, request: Request) -> Response:
        user = user_get_active(user_id=cast(TokenUser, request.user).id)
        if user is None:  # a still-valid token for an account deleted or deactivated since
            raise AuthenticationFailed("No active account for this token.", code="user_inactive")
        return Response(UserOutputSerializer(user).data)
