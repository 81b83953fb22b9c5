from collections.abc import Mapping
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.validators import UnicodeUsernameValidator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.selectors import user_get_active
from accounts.services import user_register, user_update
from accounts.tokens import token_access_refresh, token_pair_obtain
from errors import ErrorCode
from identity.authentication import TokenUser
from service_runtime import throttling
from service_runtime.openapi import errors
from service_runtime.request_context import correlation_id


class UserOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    is_staff = serializers.BooleanField()


class MeOutputSerializer(UserOutputSerializer):
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    email_notifications = serializers.BooleanField()


class TokenPairOutputSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="Send as `Authorization: Bearer <access>`.")
    refresh = serializers.CharField(help_text="For POST /api/users/token/refresh/.")


class AccessTokenOutputSerializer(serializers.Serializer):
    access = serializers.CharField()


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

    @extend_schema(
        request=InputSerializer, responses={201: UserOutputSerializer, **errors(400, 429)}
    )
    def post(self, request: Request) -> Response:
        """Every attempt counts against the caller's address, valid or not: a flood of sign-ups
        is refused before it costs a password hash each."""
        throttling.hit(
            throttling.Limit(
                "register.address",
                throttling.client_address(request),
                settings.THROTTLE_REGISTRATIONS_PER_ADDRESS,
            )
        )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_register(**serializer.validated_data, correlation_id=correlation_id(request))
        return Response(UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenObtainApi(PublicApi):
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=1024, trim_whitespace=False)

    @extend_schema(
        request=InputSerializer,
        responses={200: TokenPairOutputSerializer, **errors(400, 401, 429)},
    )
    def post(self, request: Request) -> Response:
        """Only failed attempts count, per username and per address: once either has spent
        its limit, even the right password is refused until the window ends, so guessing
        gains nothing; a successful sign-in spends nothing."""
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limits = (
            throttling.Limit(
                "token.username",
                serializer.validated_data["username"].casefold(),
                settings.THROTTLE_LOGIN_FAILURES_PER_USERNAME,
            ),
            throttling.Limit(
                "token.address",
                throttling.client_address(request),
                settings.THROTTLE_LOGIN_FAILURES_PER_ADDRESS,
            ),
        )
        throttling.check(*limits)
        try:
            pair = token_pair_obtain(**serializer.validated_data)
        except AuthenticationFailed:
            throttling.count(*limits)
            raise
        return Response(pair)


class TokenRefreshApi(PublicApi):
    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField(max_length=4096)

    @extend_schema(
        request=InputSerializer,
        responses={200: AccessTokenOutputSerializer, **errors(400, 401)},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(token_access_refresh(**serializer.validated_data))


class UserMeApi(APIView):
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(max_length=254, required=False)
        first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
        last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
        email_notifications = serializers.BooleanField(required=False)

        def to_internal_value(self, data: Any) -> Any:
            # A field that cannot be changed here is refused, not silently ignored.
            if isinstance(data, Mapping):
                unknown = sorted(set(data) - set(self.fields))
                if unknown:
                    raise serializers.ValidationError(
                        {name: ["This field cannot be changed."] for name in unknown}
                    )
            return super().to_internal_value(data)

    @extend_schema(responses={200: MeOutputSerializer, **errors(401)})
    def get(self, request: Request) -> Response:
        return Response(MeOutputSerializer(self._caller(request)).data)

    @extend_schema(request=InputSerializer, responses={200: MeOutputSerializer, **errors(400, 401)})
    def patch(self, request: Request) -> Response:
        user = self._caller(request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_update(user=user, **serializer.validated_data)
        return Response(MeOutputSerializer(user).data)

    @staticmethod
    def _caller(request: Request) -> User:
        user = user_get_active(user_id=cast(TokenUser, request.user).id)
        if user is None:  # a still-valid token for an account deleted or deactivated since
            raise AuthenticationFailed(
                "No active account for this token.", code=ErrorCode.USER_INACTIVE
            )
        return user
