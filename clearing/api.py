"""The member's view of its money: ``GET /api/v1/account/``."""

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import membership_for
from clearing.selectors import account_summary
from exchange.errors import ExchangeError
from exchange.schema import ErrorSerializer

# The API reference (OpenAPI) is written in English, like the API contract;
# error details in responses go through gettext.


def _money(help_text: str) -> serializers.DecimalField:
    # Amounts are decimal strings with two places ("1000000.00"), as the contract says.
    return serializers.DecimalField(max_digits=18, decimal_places=2, coerce_to_string=True, help_text=help_text)


class AccountSummarySerializer(serializers.Serializer):
    organisation = serializers.IntegerField(help_text="The id of the member's organisation.")
    cash_available = _money("Cash free for new buy orders, EUR.")
    cash_reserved = _money("Cash held for open buy orders (limit x quantity x hours + maximum fee), EUR.")
    settlement_pending = _money("Cash of executed trades awaiting settlement, EUR.")
    margin = _money("Cash posted as futures margin, EUR.")
    currency = serializers.CharField(help_text='Always "EUR".')


class AccountView(APIView):
    @extend_schema(
        operation_id="account_retrieve",
        summary="The cash balances of my organisation",
        responses={
            200: AccountSummarySerializer,
            401: OpenApiResponse(ErrorSerializer, description="`not_authenticated` or `authentication_failed`."),
            403: OpenApiResponse(ErrorSerializer, description="`not_permitted`: the user belongs to no organisation."),
        },
    )
    def get(self, request: Request) -> Response:
        membership = membership_for(request.user)
        if membership is None:
            raise ExchangeError("not_permitted", _("Only members of an organisation have an account."))
        organisation = membership.organisation
        summary = account_summary(organisation=organisation)
        data = {"organisation": organisation.pk, **summary, "currency": "EUR"}
        return Response(AccountSummarySerializer(data).data)
