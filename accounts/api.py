"""API of the accounts app: API tokens and who am I."""

import hashlib
from collections.abc import Mapping
from typing import Any, cast

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from accounts import services
from accounts.authentication import ApiTokenAuthentication, token_from_request
from accounts.models import User
from accounts.selectors import kyc_status_of, membership_for
from exchange.errors import ExchangeError
from exchange.schema import ErrorSerializer

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input (code `invalid`)."),
    401: OpenApiResponse(
        ErrorSerializer,
        description="`authentication_failed` (wrong e-mail, password or one-time code, inactive account, "
        "unverified e-mail) or `otp_required` (two-factor authentication is on: send `otp`).",
    ),
    429: OpenApiResponse(ErrorSerializer, description="`throttled`: too many attempts; see Retry-After."),
}


class AuthRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle that reads the rate when asked, not at import time
    (DRF binds ``THROTTLE_RATES`` once; settings overrides in tests and
    reconfigured deployments would otherwise not apply)."""

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) if self.scope else None
        return str(rate) if rate else None


class AuthAccountRateThrottle(SimpleRateThrottle):
    """Login attempts per account, whatever address they come from: the
    per-IP ``auth`` throttle alone lets a botnet try one account's password
    from a thousand addresses. The key is a hash of the e-mail as the login
    looks it up (trimmed, case-insensitive), so the cache holds no address.
    Every attempt counts, as for the per-IP throttle; a rate in
    ``DEFAULT_THROTTLE_RATES["auth_account"]``, read when asked."""

    scope = "auth_account"

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return str(rate) if rate else None

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if request.method != "POST":
            return None
        data = request.data
        email = data.get("email") if isinstance(data, Mapping) else None
        if not isinstance(email, str) or not email.strip():
            return None  # nothing to log in as: the serializer refuses it
        ident = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})
    otp = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="The current code of your authenticator app (or a recovery code); "
        "required when two-factor authentication is on.",
    )


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text='Send as "Authorization: Token <token>". Shown once; only a hash is kept.')


class TokenView(APIView):
    authentication_classes = [ApiTokenAuthentication]
    throttle_classes = [AuthRateThrottle, AuthAccountRateThrottle]  # per IP, and per account
    throttle_scope = "auth"

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [permissions.AllowAny()]
        return [permissions.IsAuthenticated()]

    @extend_schema(
        operation_id="auth_token_create",
        summary="Log in and get an API token",
        request=TokenRequestSerializer,
        responses={201: TokenResponseSerializer, **ERRORS},
        examples=[OpenApiExample("login", value={"email": "trader@example.com", "password": "…", "otp": "123456"},
                                 request_only=True)],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.api_token_create(
            email=serializer.validated_data["email"],
            password=serializer.validated_data["password"],
            otp=serializer.validated_data.get("otp") or None,
        )
        return Response(TokenResponseSerializer({"token": issued.key}).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="auth_token_revoke",
        summary="Revoke the token this request is authenticated with",
        request=None,
        responses={204: None, 401: ERRORS[401], 429: ERRORS[429]},
    )
    def delete(self, request: Request) -> Response:
        token = token_from_request(request)
        if token is None:
            raise ExchangeError("not_authenticated", _("Send the token to revoke in the Authorization header."))
        services.api_token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeSerializer(serializers.Serializer):
    email = serializers.EmailField()
    organisation = serializers.CharField(allow_null=True, help_text="Legal name, or null without a membership.")
    roles = serializers.ListField(child=serializers.ChoiceField(choices=["owner", "trader", "provider", "viewer"]))
    kyc_status = serializers.ChoiceField(
        choices=["draft", "submitted", "needs_info", "approved", "rejected"], allow_null=True
    )
    may_trade = serializers.BooleanField(help_text="What trading_gate answers: orders will be accepted.")


class MeView(APIView):
    @extend_schema(
        operation_id="me",
        summary="Who am I: organisation, roles, KYC status and whether I may trade",
        responses={200: MeSerializer, 401: ERRORS[401]},
    )
    def get(self, request: Request) -> Response:
        user = cast(User, request.user)
        membership = membership_for(user)
        may_trade = True
        try:
            services.trading_gate_check(membership, "trader")
        except ExchangeError:
            may_trade = False
        body = {
            "email": user.email,
            "organisation": membership.organisation.legal_name if membership else None,
            "roles": membership.roles if membership else [],
            "kyc_status": kyc_status_of(membership.organisation) if membership else None,
            "may_trade": may_trade,
        }
        return Response(MeSerializer(body).data)
