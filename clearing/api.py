"""The member's view of its money: ``GET /api/v1/account/``."""

from typing import Any, cast

from django.db.models import Q
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework import status as http_status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.selectors import membership_for
from clearing.models import DeliveryTicket
from clearing.selectors import account_summary
from clearing.services import (
    delivery_access_post,
    delivery_confirm,
    delivery_dispute,
    may_read_access,
    tickets_visible_to,
)
from clearing.services.delivery import tickets_flag_not_provided
from exchange.errors import ExchangeError
from exchange.schema import ErrorSerializer

# The API reference (OpenAPI) is written in English, like the API contract;
# error details in responses go through gettext.


def _money(help_text: str) -> serializers.DecimalField:
    # Amounts are decimal strings with two places ("1000000.00"), as the contract says.
    return serializers.DecimalField(max_digits=18, decimal_places=2, coerce_to_string=True, help_text=help_text)


class CreditExpirySerializer(serializers.Serializer):
    amount = _money("Credit of one grant not yet used, EUR.")
    expires_at = serializers.DateTimeField(help_text="When the grant's unused credit returns to the fund.")


class AccountSummarySerializer(serializers.Serializer):
    organisation = serializers.IntegerField(help_text="The id of the member's organisation.")
    cash_available = _money("Cash free for new buy orders, EUR.")
    cash_reserved = _money("Cash held for open orders (a spot buy: limit x quantity x hours + maximum fee; "
                           "a futures order: its maximum fee), EUR.")
    settlement_pending = _money("Cash of executed trades awaiting settlement, EUR.")
    margin = _money("Cash posted as futures margin, EUR.")
    currency = serializers.CharField(help_text='Always "EUR".')
    credits_available = _money("Start-up incentive credits free for purchases and their fees (spent before cash, "
                               "never withdrawable), EUR.")
    credits_expiring = CreditExpirySerializer(
        many=True, help_text="The credits not yet used, per grant, earliest expiry first; what is unused at "
                             "`expires_at` returns to the incentive fund.")


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
        # Imported here: incentives builds on clearing.
        from incentives.selectors import credits_summary

        credits = credits_summary(organisation)
        data = {"organisation": organisation.pk, **summary, "currency": "EUR", "credits_available": credits.available,
                "credits_expiring": [{"amount": view.left, "expires_at": view.grant.expires_at}
                                     for view in credits.grants if view.left > 0]}
        return Response(AccountSummarySerializer(data).data)


# --- Delivery tickets (issue 4; docs/architecture.md "Delivery and settlement") ----------------


class DeliveryTicketSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    trade = serializers.IntegerField(source="trade_id")
    instrument = serializers.CharField(source="trade.instrument.symbol")
    role = serializers.ChoiceField(choices=["buyer", "seller", "operator"],
                                   help_text="The caller's organisation's side of the ticket.")
    seller = serializers.IntegerField(source="seller_id", help_text="The selling organisation's id.")
    buyer = serializers.IntegerField(source="buyer_id", help_text="The buying organisation's id.")
    seller_site_state = serializers.CharField(allow_null=True,
                                              help_text="Federal state of the delivering site; null for resale.")
    gpu_class = serializers.CharField(source="gpu_class.code")
    zone = serializers.CharField(source="zone.code")
    delivery_start = serializers.DateTimeField()
    delivery_end = serializers.DateTimeField()
    confirmation_deadline = serializers.DateTimeField()
    gpus = serializers.IntegerField()
    value = _money("This ticket's share of the trade's value, EUR.")
    fee = _money("This ticket's share of the caller's side's fee, EUR.")
    status = serializers.ChoiceField(
        choices=DeliveryTicket.Status.values,
        help_text="`not_provided`: no access details at delivery start; not paid automatically, the buyer is "
                  "refunded in full when the confirmation window ends unless it confirms or an operator decides.")
    not_provided_at = serializers.DateTimeField(
        allow_null=True, help_text="Set when the ticket was flagged `not_provided` (its delivery start); kept after.")
    on_hold = serializers.BooleanField(help_text="An operator holds a `not_provided` ticket for a decision.")
    access_posted_at = serializers.DateTimeField(allow_null=True)
    access_posted_late = serializers.BooleanField()
    access_endpoint = serializers.CharField(allow_null=True, help_text="Only for the buyer; null otherwise.")
    access_instructions = serializers.CharField(allow_null=True, help_text="Only for the buyer; null otherwise.")
    confirmed_at = serializers.DateTimeField(allow_null=True)
    disputed_at = serializers.DateTimeField(allow_null=True)
    dispute_reason = serializers.CharField()
    refund_amount = serializers.DecimalField(max_digits=18, decimal_places=2, coerce_to_string=True,
                                             allow_null=True)
    settled_at = serializers.DateTimeField(allow_null=True)


def _ticket_data(ticket: DeliveryTicket, request: Request, org_id: int | None) -> dict[str, Any]:
    readable = may_read_access(user=request.user, ticket=ticket)
    role = "buyer" if org_id == ticket.buyer_id else "seller" if org_id == ticket.seller_id else "operator"
    return {
        **{name: getattr(ticket, name) for name in (
            "id", "trade_id", "trade", "seller_id", "buyer_id", "gpu_class", "zone", "delivery_start",
            "delivery_end", "confirmation_deadline", "gpus", "value", "status", "not_provided_at", "access_posted_at",
            "access_posted_late", "confirmed_at", "disputed_at", "dispute_reason", "refund_amount",
            "settled_at")},
        "role": role,
        "on_hold": ticket.held_at is not None and ticket.settled_at is None,
        "seller_site_state": ticket.seller_site.state if ticket.seller_site else None,
        "fee": ticket.seller_fee if role == "seller" else ticket.buyer_fee,
        "access_endpoint": ticket.access_endpoint if readable else None,
        "access_instructions": ticket.access_instructions if readable else None,
    }


def _user(request: Request) -> User:
    # IsAuthenticated (the API default) guarantees a signed-in user here.
    return cast(User, request.user)


def _org_id(request: Request) -> int | None:
    membership = membership_for(request.user)
    return membership.organisation_id if membership else None


def _visible_ticket(request: Request, pk: int) -> DeliveryTicket:
    tickets_flag_not_provided(ticket_ids=[pk])  # the beat job may lag a minute behind
    ticket = tickets_visible_to(user=request.user).filter(pk=pk).first()
    if ticket is None:
        raise ExchangeError("not_found", _("No such delivery ticket."))
    return ticket


_ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="`not_authenticated` or `authentication_failed`."),
    404: OpenApiResponse(ErrorSerializer, description="`not_found`: no ticket of the caller's organisation."),
}
_ACTION_ERRORS = {
    **_ERRORS,
    400: OpenApiResponse(ErrorSerializer, description="`invalid`, with the fields named."),
    403: OpenApiResponse(ErrorSerializer, description="`not_permitted`: the wrong side or role."),
    409: OpenApiResponse(ErrorSerializer, description="`conflict`: already confirmed, disputed or past the window; "
                                                      "a confirmation before delivery start."),
}


class DeliveryListView(APIView):
    @extend_schema(operation_id="deliveries_list", summary="Delivery tickets my organisation is party to",
                   responses={200: DeliveryTicketSerializer(many=True), **_ERRORS})
    def get(self, request: Request) -> Response:
        org_id = _org_id(request)
        tickets_flag_not_provided(organisation_id=org_id)
        tickets = tickets_visible_to(user=request.user)
        if org_id is not None:  # an operator who is also a member sees their own here
            tickets = tickets.filter(pk__in=tickets.filter(
                Q(buyer_id=org_id) | Q(seller_id=org_id)).values("pk"))
        data = [_ticket_data(ticket, request, org_id) for ticket in tickets.order_by("-delivery_start", "-pk")]
        return Response(DeliveryTicketSerializer(data, many=True).data)


class DeliveryDetailView(APIView):
    @extend_schema(operation_id="deliveries_retrieve", summary="One delivery ticket",
                   responses={200: DeliveryTicketSerializer, **_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(DeliveryTicketSerializer(_ticket_data(_visible_ticket(request, pk), request,
                                                              _org_id(request))).data)


class AccessRequestSerializer(serializers.Serializer):
    endpoint = serializers.CharField(max_length=500, help_text="Where the buyer reaches the GPUs.")
    instructions = serializers.CharField(max_length=5000, allow_blank=True, required=False, default="")


class DisputeRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=5000, help_text="What went wrong.")


class DeliveryAccessView(APIView):
    @extend_schema(operation_id="deliveries_access", summary="Post the access details (seller)",
                   request=AccessRequestSerializer, responses={200: DeliveryTicketSerializer, **_ACTION_ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        ticket = _visible_ticket(request, pk)
        body = AccessRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ticket = delivery_access_post(user=_user(request), ticket=ticket, endpoint=body.validated_data["endpoint"],
                                      instructions=body.validated_data["instructions"])
        return Response(DeliveryTicketSerializer(_ticket_data(_visible_ticket(request, pk), request,
                                                              _org_id(request))).data)


class DeliveryConfirmView(APIView):
    @extend_schema(operation_id="deliveries_confirm", summary="Confirm the delivery (buyer)", request=None,
                   responses={200: DeliveryTicketSerializer, **_ACTION_ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        delivery_confirm(user=_user(request), ticket=_visible_ticket(request, pk))
        return Response(DeliveryTicketSerializer(_ticket_data(_visible_ticket(request, pk), request,
                                                              _org_id(request))).data)


class DeliveryDisputeView(APIView):
    @extend_schema(operation_id="deliveries_dispute", summary="Dispute the delivery (buyer)",
                   request=DisputeRequestSerializer, responses={200: DeliveryTicketSerializer, **_ACTION_ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        ticket = _visible_ticket(request, pk)
        body = DisputeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        delivery_dispute(user=_user(request), ticket=ticket, reason=body.validated_data["reason"])
        return Response(DeliveryTicketSerializer(_ticket_data(_visible_ticket(request, pk), request,
                                                              _org_id(request))).data,
                        status=http_status.HTTP_200_OK)
