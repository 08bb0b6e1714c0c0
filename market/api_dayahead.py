"""The members' part of the day-ahead API (contract "Day-ahead auction"):
enter, list, read and withdraw bids. The public parts (status, results,
curves, indicative prices) are in ``market.api_dayahead_public``."""

from datetime import date
from typing import Any, cast

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Organisation, User
from accounts.selectors import membership_for
from exchange.errors import ExchangeError
from exchange.schema import ErrorSerializer
from market import calendar
from market.models import BidKind, DayAheadBid, DayAheadStep
from market.services import dayahead

BID_KINDS = ["curve", "block"]  # named in the schema: ENUM_NAME_OVERRIDES "BidKindEnum"

_AUTH = {
    401: OpenApiResponse(ErrorSerializer, description="`not_authenticated` or `authentication_failed`."),
    429: OpenApiResponse(ErrorSerializer, description="`throttled`: too many requests; see Retry-After."),
}
_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="`not_found`: no such bid of your organisation.")


class BidRequestSerializer(serializers.Serializer):
    """A curve (`kind` curve: `hour` and `steps`) or a block (`kind` block:
    `first_hour`, `last_hour`, `price`, `quantity`, optional
    `min_acceptance_ratio` and `exclusive_group`). Checked by the service,
    which answers every error at its field."""

    gpu_class = serializers.CharField(max_length=16)
    zone = serializers.CharField(max_length=5)
    side = serializers.ChoiceField(choices=["buy", "sell"])
    kind = serializers.ChoiceField(choices=BID_KINDS)
    hour = serializers.CharField(max_length=3, required=False,
                                 help_text='Curve: the hour label, "00".."23"; "02A"/"02B" on the 25-hour day.')
    steps = serializers.ListField(
        child=serializers.ListField(min_length=2, max_length=2), required=False, min_length=1,
        max_length=dayahead.MAX_STEPS,
        help_text='Curve: up to 64 steps [["price", quantity], ...]; each step is its own quantity at its own limit.')
    first_hour = serializers.CharField(max_length=3, required=False)
    last_hour = serializers.CharField(max_length=3, required=False)
    price = serializers.CharField(max_length=20, required=False,
                                  help_text="Block: the limit on the average clearing price over its hours.")
    quantity = serializers.IntegerField(required=False, help_text="Block: GPUs in every hour of the block.")
    min_acceptance_ratio = serializers.CharField(max_length=10, required=False,
                                                 help_text="Block: MAR in (0, 1], default 1 (all or none).")
    exclusive_group = serializers.CharField(max_length=40, required=False, allow_blank=True,
                                            help_text="Block: at most one block of a group is accepted.")


class BidSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    delivery_date = serializers.DateField()
    gpu_class = serializers.CharField()
    zone = serializers.CharField()
    side = serializers.ChoiceField(choices=["buy", "sell"])
    kind = serializers.ChoiceField(choices=BID_KINDS)
    hour = serializers.CharField(allow_null=True)
    steps = serializers.ListField(child=serializers.ListField(), allow_null=True)
    first_hour = serializers.CharField(allow_null=True)
    last_hour = serializers.CharField(allow_null=True)
    price = serializers.CharField(allow_null=True)
    quantity = serializers.IntegerField(allow_null=True)
    min_acceptance_ratio = serializers.CharField(allow_null=True)
    exclusive_group = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["active", "replaced", "cancelled", "cleared"])
    reserved_amount = serializers.CharField(help_text="EUR reserved while the bid is active.")
    created_at = serializers.DateTimeField()
    accepted_quantity = serializers.DictField(child=serializers.IntegerField(), allow_null=True,
                                              help_text="After clearing: GPUs accepted per hour label (0 where none).")
    paradoxically_rejected = serializers.BooleanField()


def bid_payload(bid: DayAheadBid, *, steps: list[DayAheadStep] | None = None,
                accepted: dict[str, int] | None = None) -> dict[str, Any]:
    curve = bid.kind == BidKind.CURVE
    auction = bid.auction
    return {
        "id": bid.pk,
        "delivery_date": auction.delivery_date.isoformat(),
        "gpu_class": auction.gpu_class.code,
        "zone": auction.zone.code,
        "side": bid.side,
        "kind": bid.kind,
        "hour": bid.hour if curve else None,
        "steps": [[str(s.price), s.quantity] for s in steps or []] if curve else None,
        "first_hour": None if curve else bid.first_hour,
        "last_hour": None if curve else bid.last_hour,
        "price": None if curve or bid.price is None else str(bid.price),
        "quantity": None if curve else bid.quantity,
        "min_acceptance_ratio": None if curve or bid.min_acceptance_ratio is None
        else str(bid.min_acceptance_ratio.normalize()),
        "exclusive_group": None if curve else bid.exclusive_group,
        "status": bid.status,
        "reserved_amount": str(bid.reserved_amount),
        "created_at": bid.created_at.astimezone(calendar.BERLIN).isoformat(),
        "accepted_quantity": accepted if bid.status == "cleared" else None,
        "paradoxically_rejected": bid.paradoxically_rejected,
    }


def _organisation(request: Request) -> Organisation:
    membership = membership_for(request.user)
    if membership is None:
        raise ExchangeError("not_permitted", _("Only members of an organisation have bids."))
    return membership.organisation


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ExchangeError("invalid", _("The date is invalid."),
                            {"date": [_("Enter a date as YYYY-MM-DD.")]}) from None


def _payloads(bids: list[DayAheadBid]) -> list[dict[str, Any]]:
    steps: dict[int, list[DayAheadStep]] = {}
    for step in DayAheadStep.objects.filter(bid__in=bids).order_by("bid_id", "position"):
        steps.setdefault(step.bid_id, []).append(step)
    accepted = dayahead.bid_accepted_quantities([b for b in bids if b.status == "cleared"])
    return [bid_payload(b, steps=steps.get(b.pk, []), accepted=_all_hours(b, accepted.get(b.pk, {})))
            for b in bids]


def _all_hours(bid: DayAheadBid, accepted: dict[str, int]) -> dict[str, int]:
    """Every hour the bid covers, 0 where nothing was accepted (the contract)."""
    if bid.kind == BidKind.CURVE:
        return {bid.hour: accepted.get(bid.hour, 0)}
    labels = [h.label for h in calendar.day_hours(bid.auction.delivery_date)]
    first = labels.index(bid.first_hour)
    return {label: accepted.get(label, 0) for label in labels[first:first + bid.hours]}


def _own(organisation: Organisation, delivery_date: date) -> Any:
    return (DayAheadBid.objects.filter(organisation=organisation, auction__delivery_date=delivery_date)
            .select_related("auction__gpu_class", "auction__zone"))


class BidListView(APIView):
    @extend_schema(operation_id="dayahead_bids_list", summary="My organisation's bids for a delivery day",
                   description="Every bid of the day (active, replaced, cancelled, cleared), in entry order. "
                   "Extension of the contract.",
                   responses={200: BidSerializer(many=True), **_AUTH})
    def get(self, request: Request, date: str) -> Response:
        bids = list(_own(_organisation(request), _day(date)).order_by("auction_id", "sequence"))
        return Response(_payloads(bids))

    @extend_schema(
        operation_id="dayahead_bids_create", summary="Enter a bid",
        description="A curve for one hour (a new curve for the same hour replaces the active one) or a block. "
        "A buy reserves its worst case: Σ price × quantity (+ the most the fee can take); a block price × "
        "quantity × hours. A sell counts against the organisation's free capacity in every hour it covers. "
        "409 `auction_closed` outside the book (opens 00:00 fourteen days ahead, closes 12:00 on the day "
        "before delivery), `insufficient_funds`, `insufficient_capacity`.",
        request=BidRequestSerializer,
        responses={201: BidSerializer, 400: OpenApiResponse(ErrorSerializer, description="`invalid`, `tick_size`, "
                   "`price_out_of_bounds`, at the field."),
                   403: OpenApiResponse(ErrorSerializer, description="`not_permitted`, `kyc_not_approved`, "
                                        "`trading_stopped`."),
                   409: OpenApiResponse(ErrorSerializer, description="`auction_closed`, `insufficient_funds`, "
                                        "`insufficient_capacity`."), **_AUTH},
    )
    def post(self, request: Request, date: str) -> Response:
        day = _day(date)
        serializer = BidRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        bid = dayahead.dayahead_bid_submit(user=cast(User, request.user), delivery_date=day, **data)
        bid = DayAheadBid.objects.select_related("auction__gpu_class", "auction__zone").get(pk=bid.pk)
        return Response(_payloads([bid])[0], status=201)


class BidDetailView(APIView):
    @extend_schema(operation_id="dayahead_bids_retrieve", summary="One of my organisation's bids",
                   description="After clearing it includes `accepted_quantity` per hour (0 where none).",
                   responses={200: BidSerializer, 404: _NOT_FOUND, **_AUTH})
    def get(self, request: Request, date: str, bid_id: int) -> Response:
        bid = _own(_organisation(request), _day(date)).filter(pk=bid_id).first()
        if bid is None:
            raise ExchangeError("not_found", _("No such bid."))
        return Response(_payloads([bid])[0])

    @extend_schema(operation_id="dayahead_bids_cancel", summary="Withdraw a bid before gate closure",
                   description="Answers the withdrawn bid; its reservation is released. 409 `auction_closed` after "
                   "gate closure, `order_not_open` for a bid no longer active.",
                   responses={200: BidSerializer, 404: _NOT_FOUND,
                              409: OpenApiResponse(ErrorSerializer, description="`auction_closed`, "
                                                   "`order_not_open`."), **_AUTH})
    def delete(self, request: Request, date: str, bid_id: int) -> Response:
        bid = _own(_organisation(request), _day(date)).filter(pk=bid_id).first()
        if bid is None:
            raise ExchangeError("not_found", _("No such bid."))
        dayahead.dayahead_bid_cancel(user=cast(User, request.user), bid_id=bid.pk)
        bid = DayAheadBid.objects.select_related("auction__gpu_class", "auction__zone").get(pk=bid.pk)
        return Response(_payloads([bid])[0])
