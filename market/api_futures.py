"""Futures in the public API (contract "Futures and margin"): the daily
settlement prices and forward curve (public, JSON or CSV), and a member's
margin."""

from datetime import date
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import membership_for
from exchange.errors import ExchangeError
from exchange.renderers import CsvErrorsAsJson, CsvRenderer, csv_filename
from exchange.schema import ErrorSerializer
from market.models import GpuClass, Segment, SettlementPrice
from market.services import futures

CSV_COLUMNS = ["symbol", "date", "price", "source"]


class SettlementPriceSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    date = serializers.DateField()
    price = serializers.CharField(help_text="EUR/GPUh")
    source = serializers.ChoiceField(choices=["vwap", "mid", "previous", "override", "final"])  # type: ignore[assignment]  # noqa: E501 (a field named like Field.source)


class MarginCallSerializer(serializers.Serializer):
    amount = serializers.CharField()
    due_at = serializers.DateTimeField()


class MarginSerializer(serializers.Serializer):
    initial_margin = serializers.CharField()
    maintenance_margin = serializers.CharField()
    collateral = serializers.CharField()
    variation_margin_today = serializers.CharField()
    margin_call = MarginCallSerializer(allow_null=True)
    default_fund_contribution = serializers.CharField()


def settlement_prices(*, gpu_class: str | None, day: date | None) -> list[dict[str, Any]]:
    """The DSPs of one day, or without a day the latest of every future that is
    still listed (the forward curve), in delivery order."""
    rows = SettlementPrice.objects.filter(instrument__segment=Segment.FUTURES).select_related("instrument")
    if gpu_class:
        rows = rows.filter(instrument__gpu_class__code=gpu_class)
    if day is not None:
        rows = rows.filter(date=day)
    else:
        rows = rows.filter(instrument__closes_at__gt=timezone.now()).order_by("instrument_id", "-date").distinct(
            "instrument_id")
    kinds = {"M": 0, "Q": 1, "Y": 2}
    ordered = sorted(rows, key=lambda r: (r.instrument.gpu_class_id, kinds.get(r.instrument.period[0], 3),
                                         r.instrument.delivery_start, r.instrument.symbol))
    return [{"symbol": r.instrument.symbol, "date": r.date.isoformat(), "price": str(r.price), "source": r.source}
            for r in ordered]


class SettlementPriceListView(CsvErrorsAsJson, APIView):
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer, CsvRenderer]
    csv_columns = CSV_COLUMNS

    @extend_schema(
        operation_id="futures_settlement_prices", summary="Daily settlement prices (public)",
        description="The DSPs of a business day; without `date`, the latest DSP of every future still listed: the "
        "forward curve, in delivery order (months, quarters, years). `source` is `vwap` (the last 30 minutes' "
        "trades), `mid` (best bid and ask), `previous`, `override` (set by an operator with a reason) or `final` "
        "(a month's final settlement price, its base index). `?format=csv` answers the same columns as CSV.",
        parameters=[OpenApiParameter("gpu_class", OpenApiTypes.STR), OpenApiParameter("date", OpenApiTypes.DATE)],
        responses={(200, "application/json"): SettlementPriceSerializer(many=True),
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The same columns as CSV."),
                   (400, "application/json"): OpenApiResponse(ErrorSerializer,
                                                              description="`invalid`: a bad date or class.")},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        gpu_class = request.query_params.get("gpu_class") or None
        if gpu_class and not GpuClass.objects.filter(code=gpu_class).exists():
            raise ExchangeError("invalid", _("Unknown GPU class."), {"gpu_class": [_("Unknown GPU class.")]})
        day = None
        if request.query_params.get("date"):
            try:
                day = date.fromisoformat(request.query_params["date"])
            except ValueError:
                raise ExchangeError("invalid", _("The date is invalid."),
                                    {"date": [_("Enter a date as YYYY-MM-DD.")]}) from None
        response = Response(settlement_prices(gpu_class=gpu_class, day=day))
        if request.accepted_renderer.format == CsvRenderer.format:
            return csv_filename(response, f"settlement-prices-{gpu_class or 'all'}-{day or 'latest'}.csv")
        return response


class MarginView(APIView):
    @extend_schema(operation_id="margin_retrieve", summary="My organisation's futures margin",
                   responses={200: MarginSerializer,
                              403: OpenApiResponse(ErrorSerializer, description="`not_permitted`.")})
    def get(self, request: Request) -> Response:
        membership = membership_for(request.user)
        if membership is None:
            raise ExchangeError("not_permitted", _("Only members of an organisation have margin."))
        summary = futures.margin_summary(organisation_id=membership.organisation_id)
        call = summary["margin_call"]
        return Response({
            **{key: str(summary[key]) for key in ("initial_margin", "maintenance_margin", "collateral",
                                                  "variation_margin_today", "default_fund_contribution")},
            "margin_call": None if call is None else {"amount": str(call["amount"]),
                                                      "due_at": call["due_at"].isoformat()},
        })
