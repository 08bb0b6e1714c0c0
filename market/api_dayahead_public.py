"""The public side of the day-ahead API (issue 9, items 3 and 5; market rules
§2.1 and §5; api-contract.md, "Day-ahead auction"): the state of a delivery
day, the results of a cleared auction (JSON and CSV), the aggregated curves
of one of its hours (an extension) and the indicative results of an open
auction.

No login and no member identity: every view reads through
``market.selectors.dayahead_public``, which reads no bid, and the
serializers below are the whole of what goes out. The anonymous throttle
applies as to every public endpoint (``REST_FRAMEWORK``'s defaults). The
dashboard pages (``market.views.dashboard``) draw their charts from the same
payloads.
"""

from datetime import UTC
from datetime import date as Date
from typing import Any

from django.utils import formats, timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.errors import ExchangeError
from exchange.formats import moment
from exchange.renderers import CsvErrorsAsJson, CsvRenderer, csv_filename
from exchange.schema import ErrorSerializer
from market import calendar
from market.models import AuctionStatus, DayAheadAuction, DayAheadHour, DayAheadIndicative, DeliveryZone, GpuClass
from market.selectors import dayahead_public as selectors
from market.serializers import BookLevelsField, _price, _time

# --- response shapes ---------------------------------------------------------------------------

_HOUR_HELP = ('Delivery hour label, local time: "00" to "23"; "02A" and "02B" on the October change day '
              '(the first and the second 02:00); no "02" on the March change day.')
_STATUS_HELP = ("`open`: the book takes bids (from 00:00 fourteen days ahead until gate closure, 12:00 "
                "Europe/Berlin the day before delivery); `closed`: before the book opens, or past gate closure "
                "while an auction of the day is not cleared; `cleared`: every auction of the day is cleared "
                "(or nobody bid).")


DAY_STATUSES = ["open", "closed", "cleared"]


class DayAheadStatusField(serializers.ChoiceField):
    """The status of a day or an auction; named DayAheadStatusEnum in the
    schema (SPECTACULAR_SETTINGS' ENUM_NAME_OVERRIDES: "status" names many
    choice sets)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=DAY_STATUSES, **kwargs)


class DayAheadAuctionStateSerializer(serializers.Serializer):
    gpu_class = serializers.CharField()
    zone = serializers.CharField()
    status = DayAheadStatusField(help_text="This class and zone's auction, as `status` of the day.")
    cleared_at = _time(allow_null=True, help_text="When it was cleared; null before.")


class DayAheadDaySerializer(serializers.Serializer):
    delivery_date = serializers.DateField()
    gate_closure = _time(help_text="12:00 Europe/Berlin on the day before delivery.")
    status = DayAheadStatusField(help_text=_STATUS_HELP)
    book_opens_at = _time(help_text="Extension: when the book opens (00:00 Europe/Berlin, 14 days ahead).")
    auctions = DayAheadAuctionStateSerializer(
        many=True, help_text="Extension: the auctions of the day, one per GPU class and zone that has bids "
        "(an auction exists from its first bid on).")


class DayAheadHourResultSerializer(serializers.Serializer):
    hour = serializers.CharField(help_text=_HOUR_HELP)
    price = _price("Clearing price, EUR/GPUh; null in an hour without any bid.", allow_null=True)
    volume = serializers.IntegerField(help_text="GPUs traded in the hour.")
    buy_volume = serializers.IntegerField(help_text="GPUs bid to buy in the hour, at any price.")
    sell_volume = serializers.IntegerField(help_text="GPUs offered in the hour, at any price.")
    delivery_start = _time(help_text="Extension: the hour's start, Europe/Berlin with its offset (02A is "
                           "+02:00, 02B +01:00).")


class DayAheadResultsSerializer(serializers.Serializer):
    delivery_date = serializers.DateField()
    gpu_class = serializers.CharField()
    zone = serializers.CharField()
    cleared_at = _time(help_text="Extension: when the auction was cleared.")
    hours = DayAheadHourResultSerializer(many=True, help_text="Every hour of the day in delivery order: 23, 24 or 25.")


class DayAheadCurvesSerializer(serializers.Serializer):
    delivery_date = serializers.DateField()
    gpu_class = serializers.CharField()
    zone = serializers.CharField()
    hour = serializers.CharField(help_text=_HOUR_HELP)
    delivery_start = _time(help_text="The hour's start, Europe/Berlin with its offset.")
    price = _price("The clearing point's price, EUR/GPUh; null in an hour without any bid.", allow_null=True)
    volume = serializers.IntegerField(help_text="The clearing point's quantity: GPUs traded.")
    buy_volume = serializers.IntegerField(help_text="GPUs bid to buy, at any price (the buy curve's end).")
    sell_volume = serializers.IntegerField(help_text="GPUs offered, at any price (the sell curve's end).")
    price_low = _price("The lowest price that supports the allocation; the clearing price is the midpoint of "
                       "low and high, rounded to the tick. Null without bids.", allow_null=True)
    price_high = _price("The highest price that supports the allocation.", allow_null=True)
    buy_curve = BookLevelsField(help_text='Aggregated buy curve, [["price", cumulative GPUs], ...] by falling '
                                "price: the GPUs bid at that price or higher. No member identity.")
    sell_curve = BookLevelsField(help_text='Aggregated sell curve, [["price", cumulative GPUs], ...] by rising '
                                 "price: the GPUs offered at that price or lower.")


class DayAheadIndicativeHourSerializer(serializers.Serializer):
    hour = serializers.CharField(help_text=_HOUR_HELP)
    price = _price("Indicative price, EUR/GPUh; null in an hour without any bid.", allow_null=True)
    volume = serializers.IntegerField(help_text="Indicative volume, GPUs.")


class DayAheadIndicativeSerializer(serializers.Serializer):
    delivery_date = serializers.DateField(help_text="Extension.")
    gpu_class = serializers.CharField(help_text="Extension.")
    zone = serializers.CharField(help_text="Extension.")
    gate_closure = _time(help_text="Extension: the final results follow it.")
    computed_at = _time(help_text="When the current book was last cleared (every 5 minutes).")
    hours = DayAheadIndicativeHourSerializer(many=True)


# --- payloads (the API's answers and the dashboard's chart data) ------------------------------


def _auction_fields(auction: DayAheadAuction) -> dict[str, Any]:
    return {"delivery_date": auction.delivery_date, "gpu_class": auction.gpu_class.code, "zone": auction.zone.code}


def day_state_payload(state: selectors.DayState) -> dict[str, Any]:
    return dict(DayAheadDaySerializer(state).data)


def results_payload(auction: DayAheadAuction, hours: list[DayAheadHour]) -> dict[str, Any]:
    return dict(DayAheadResultsSerializer({**_auction_fields(auction), "cleared_at": auction.cleared_at,
                                   "hours": hours}).data)


def curves_payload(auction: DayAheadAuction, hour: DayAheadHour) -> dict[str, Any]:
    fields = ("hour", "delivery_start", "price", "volume", "buy_volume", "sell_volume", "price_low", "price_high",
              "buy_curve", "sell_curve")
    return dict(DayAheadCurvesSerializer({**_auction_fields(auction),
                                  **{name: getattr(hour, name) for name in fields}}).data)


def indicative_payload(auction: DayAheadAuction, indicative: DayAheadIndicative) -> dict[str, Any]:
    return dict(DayAheadIndicativeSerializer({**_auction_fields(auction), "gate_closure": auction.gate_closure,
                                      "computed_at": indicative.computed_at, "hours": indicative.hours}).data)


RESULTS_CSV_COLUMNS = ["delivery_date", "gpu_class", "zone", "hour", "delivery_start", "delivery_start_utc",
                       "price", "volume", "buy_volume", "sell_volume"]


def results_csv_rows(payload: dict[str, Any], auction: DayAheadAuction, hours: list[DayAheadHour]) -> list[dict]:
    """One row per hour: the JSON's fields, the day's in every row, and the
    start in UTC beside the local one (for spreadsheets that ignore offsets)."""
    day = {name: payload[name] for name in ("delivery_date", "gpu_class", "zone")}
    return [{**day, **row, "delivery_start_utc": hour.delivery_start.astimezone(UTC).isoformat()
             .replace("+00:00", "Z")} for row, hour in zip(payload["hours"], hours, strict=True)]


# --- request checks ---------------------------------------------------------------------------


def _invalid(field: str, message: str) -> ExchangeError:
    return ExchangeError("invalid", _("The request is invalid."), {field: [message]})


def parse_delivery_day(text: str) -> Date:
    try:
        return calendar.parse_day(text)
    except calendar.CalendarError:
        raise _invalid("date", _("Enter a delivery day as YYYY-MM-DD, e.g. 2026-10-25.")) from None


def _class_and_zone(request: Request) -> tuple[str, str]:
    errors: dict[str, list[str]] = {}
    gpu_class = request.query_params.get("gpu_class", "")
    zone = request.query_params.get("zone", "")
    if not gpu_class:
        errors["gpu_class"] = [_("Name a GPU class, e.g. H100.")]
    elif not GpuClass.objects.filter(code=gpu_class).exists():
        errors["gpu_class"] = [_("There is no GPU class %(code)s.") % {"code": gpu_class}]
    if not zone:
        errors["zone"] = [_("Name a delivery zone, e.g. DE.")]
    elif not DeliveryZone.objects.filter(code=zone).exists():
        errors["zone"] = [_("There is no delivery zone %(code)s.") % {"code": zone}]
    if errors:
        raise ExchangeError("invalid", _("The request is invalid."), errors)
    return gpu_class, zone


def _at(instant: Any) -> str:
    return moment(instant)


def _cleared_auction(day: Date, gpu_class: str, zone: str) -> DayAheadAuction:
    """The cleared auction, or ``not_found`` saying why there is none (yet)."""
    auction = selectors.dayahead_auction(day=day, gpu_class=gpu_class, zone=zone)
    if auction is not None and auction.status == AuctionStatus.CLEARED:
        return auction
    gate = calendar.dayahead_gate_closure(day)
    names = {"gpu_class": gpu_class, "zone": zone, "day": formats.date_format(day, "SHORT_DATE_FORMAT")}
    if timezone.now() < gate:
        detail = _("The auction for %(day)s is not cleared yet: gate closure is at %(gate)s.") % {
            **names, "gate": _at(gate)}
    elif auction is None:
        detail = _("Nobody bid for %(gpu_class)s in %(zone)s on %(day)s: there are no results.") % names
    else:
        detail = _("The auction for %(day)s is not cleared yet; the results are published as soon as it is.") % names
    raise ExchangeError("not_found", detail)


# --- views ------------------------------------------------------------------------------------

_DATE = OpenApiParameter("date", OpenApiTypes.DATE, OpenApiParameter.PATH,
                         description="The delivery day, YYYY-MM-DD (Europe/Berlin).")
_CLASS_AND_ZONE = [
    OpenApiParameter("gpu_class", OpenApiTypes.STR, required=True, description="GPU class code, e.g. H100."),
    OpenApiParameter("zone", OpenApiTypes.STR, required=True, description="Delivery zone, e.g. DE or DE-BY."),
]
_INVALID = OpenApiResponse(ErrorSerializer, description="`invalid`: a malformed day, or a GPU class or zone "
                           "missing or unknown (the fields say which).")
_THROTTLED = OpenApiResponse(ErrorSerializer, description="`throttled`: too many requests; see Retry-After.")


class DayAheadDayView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="dayahead_retrieve",
        summary="The day-ahead auction of a delivery day",
        description="Its gate closure and status; valid for any day of the calendar, whether or not anyone "
        "has bid. " + _STATUS_HELP,
        parameters=[_DATE],
        responses={200: DayAheadDaySerializer, 400: _INVALID, 429: _THROTTLED},
        auth=[],
    )
    def get(self, request: Request, date: str) -> Response:
        day = parse_delivery_day(date)
        return Response(day_state_payload(selectors.dayahead_day_state(day=day, now=timezone.now())))


class DayAheadResultsView(CsvErrorsAsJson, APIView):
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer, CsvRenderer]
    csv_columns = RESULTS_CSV_COLUMNS

    @extend_schema(
        operation_id="dayahead_results",
        summary="Results of a cleared day-ahead auction",
        description="The clearing price and volume of every hour of the day (23, 24 or 25), with the GPUs bid "
        "to buy and offered; public as soon as the auction is cleared, and 404 `not_found` until then (the "
        "detail says why). `?format=csv` answers the same as CSV (comma-separated, UTF-8, one row per hour, "
        f"columns {', '.join(RESULTS_CSV_COLUMNS)}; an empty price for an hour without bids); errors stay JSON.",
        parameters=[_DATE, *_CLASS_AND_ZONE],
        responses={(200, "application/json"): DayAheadResultsSerializer,
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The same as CSV."),
                   # Errors stay JSON whatever the format.
                   (400, "application/json"): _INVALID,
                   (404, "application/json"): OpenApiResponse(ErrorSerializer, description="`not_found`: not "
                                                              "cleared (yet), or nobody bid for the class and zone."),
                   (429, "application/json"): _THROTTLED},
        auth=[],
    )
    def get(self, request: Request, date: str) -> Response:
        day = parse_delivery_day(date)
        gpu_class, zone = _class_and_zone(request)
        auction = _cleared_auction(day, gpu_class, zone)
        hours = selectors.dayahead_hours(auction=auction)
        payload = results_payload(auction, hours)
        if request.accepted_renderer.format == CsvRenderer.format:
            return csv_filename(Response(results_csv_rows(payload, auction, hours)),
                                f"dayahead-{day.isoformat()}-{gpu_class}-{zone}.csv")
        return Response(payload)


class DayAheadCurvesView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="dayahead_curves",
        summary="Aggregated curves of one hour of a cleared auction (extension)",
        description="The anonymous buy and sell curves of one hour with the clearing point (`volume`, "
        "`price`) and the interval of prices that supports it. No member identity: only cumulative GPUs per "
        "price. 404 `not_found` until the auction is cleared.",
        parameters=[_DATE, *_CLASS_AND_ZONE,
                    OpenApiParameter("hour", OpenApiTypes.STR, required=True, description=_HOUR_HELP)],
        responses={200: DayAheadCurvesSerializer, 400: _INVALID, 404: OpenApiResponse(ErrorSerializer, description=
                   "`not_found`: not cleared (yet), or nobody bid for the class and zone."), 429: _THROTTLED},
        auth=[],
    )
    def get(self, request: Request, date: str) -> Response:
        day = parse_delivery_day(date)
        gpu_class, zone = _class_and_zone(request)
        label = request.query_params.get("hour", "")
        try:
            calendar.delivery_hour(day, label)
        except calendar.CalendarError:
            labels = [h.label for h in calendar.day_hours(day)]
            raise _invalid("hour", _("Name an hour of the day: %(first)s to %(last)s.") % {
                "first": labels[0], "last": labels[-1]}) from None
        auction = _cleared_auction(day, gpu_class, zone)
        hour = selectors.dayahead_hour(auction=auction, label=label)
        if hour is None:  # a cleared auction publishes every hour; nothing to show otherwise
            raise ExchangeError("not_found", _("Not found."))
        return Response(curves_payload(auction, hour))


class DayAheadIndicativeView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="dayahead_indicative",
        summary="Indicative results of an open day-ahead auction",
        description="From one hour after the book opens until gate closure the current book is cleared every "
        "5 minutes; this is the latest such clearing, price and volume per hour, no member data. Not binding. "
        "404 `not_found` before the first one and once the auction is cleared (then read the results).",
        parameters=[_DATE, *_CLASS_AND_ZONE],
        responses={200: DayAheadIndicativeSerializer, 400: _INVALID,
                   404: OpenApiResponse(ErrorSerializer, description="`not_found`: none computed yet, or "
                                        "the auction is cleared."), 429: _THROTTLED},
        auth=[],
    )
    def get(self, request: Request, date: str) -> Response:
        day = parse_delivery_day(date)
        gpu_class, zone = _class_and_zone(request)
        auction = selectors.dayahead_auction(day=day, gpu_class=gpu_class, zone=zone)
        if auction is not None and auction.status == AuctionStatus.CLEARED:
            raise ExchangeError("not_found", _("The auction is cleared: read its results instead."))
        indicative = selectors.dayahead_indicative(auction=auction) if auction is not None else None
        if auction is None or indicative is None:
            raise ExchangeError("not_found", _("No indicative results yet: they are computed every 5 minutes "
                                               "from one hour after the book opens."))
        return Response(indicative_payload(auction, indicative))
