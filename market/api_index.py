"""The compute price indices in the public API (contract: "Indices and open
data"): ``GET /api/v1/index/`` (JSON or ``?format=csv``) and, to recompute
a day's fingerprint, ``GET /api/v1/index/{date}/`` with the hashed
documents. Public (no login), under the anonymous request limit like every
public endpoint. The rules are ``market.indices``; the methodology page is
``/dashboard/methodology/index/``."""

import re
from dataclasses import dataclass
from datetime import date, timedelta

from django.urls import reverse
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

from exchange.errors import ExchangeError
from exchange.renderers import CsvErrorsAsJson, CsvRenderer
from exchange.schema import ErrorSerializer
from market import calendar, indices
from market.models import DeliveryZone, GpuClass
from market.open_data import LICENCE_URL
from market.selectors.indices import index_day_detail, index_days

# Published methodology versions, oldest first; the last is the current one.
METHODOLOGY_VERSIONS: tuple[str, ...] = (indices.METHODOLOGY_VERSION,)
DEFAULT_RANGE_DAYS = 365
# One row per day: ten years is a few hundred kilobytes.
MAX_RANGE_DAYS = 3660

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _price(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=True, allow_null=True,
                                    help_text=help_text)


# market.selectors.indices.IndexDay
class IndexDaySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="The delivery day (Europe/Berlin).")
    base = _price("Base: mean of the day's hourly day-ahead clearing prices, EUR/GPUh; null if not published "
                  "or no hour had a price.")
    peak = _price("Peak: the same over 08:00-20:00 on Monday to Friday; null on weekends.")
    intraday_vwap = _price("Volume-weighted average price of the day's continuous intraday trades, EUR/GPUh; "
                           "null until trading in the day has closed, or if nothing traded.")
    volume = serializers.IntegerField(help_text="GPU-hours traded in the day's auction (the volume behind Base).")
    fingerprint = serializers.CharField(
        help_text="SHA-256 (hex) of the day's values' sha256, concatenated in the order base, peak, intraday_vwap "
        "(published ones only). Recompute it from GET /api/v1/index/{date}/.")
    # Extensions beyond the contract's list:
    intraday_volume = serializers.IntegerField(help_text="GPU-hours traded continuously (the VWAP's volume).")
    is_demo = serializers.BooleanField(help_text="True: demo data, never real trading.")
    methodology_version = serializers.CharField(help_text="The methodology the values follow, e.g. v1.")


# market.selectors.indices.PublishedValue
class PublishedValueSerializer(serializers.Serializer):
    index = serializers.ChoiceField(choices=list(indices.KINDS))
    value = _price("EUR/GPUh; null: no value that day.")
    volume = serializers.IntegerField(help_text="GPU-hours.")
    sha256 = serializers.CharField(help_text="SHA-256 (hex) of the canonical JSON of `document`.")
    computed_at = serializers.DateTimeField(default_timezone=calendar.BERLIN)
    is_demo = serializers.BooleanField()
    document = serializers.JSONField(
        help_text="What was hashed: identity, inputs per hour and result. Canonical JSON: UTF-8, keys sorted, "
        "no spaces (separators ',' and ':').")


# market.selectors.indices.IndexDayDetail
class IndexDayDetailSerializer(serializers.Serializer):
    date = serializers.DateField()
    gpu_class = serializers.CharField()
    zone = serializers.CharField()
    methodology_version = serializers.CharField()
    fingerprint = serializers.CharField()
    is_demo = serializers.BooleanField()
    values = PublishedValueSerializer(many=True, help_text="In the order base, peak, intraday_vwap.")


@dataclass(frozen=True)
class _Query:
    gpu_class: GpuClass
    zone: DeliveryZone
    version: str


def _invalid(errors: dict[str, list[str]]) -> ExchangeError:
    return ExchangeError("invalid", _("The request is invalid."), errors)


def _parse_date(raw: str) -> tuple[date | None, str | None]:
    if not _DATE.fullmatch(raw):
        return None, _("Enter a date as YYYY-MM-DD.")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None, _("Enter a valid date.")
    if not calendar.MIN_YEAR <= day.year <= calendar.MAX_YEAR:
        return None, _("Enter a date from %(first)d to %(last)d.") % {"first": calendar.MIN_YEAR,
                                                                       "last": calendar.MAX_YEAR}
    return day, None


def _series(request: Request, errors: dict[str, list[str]]) -> _Query | None:
    """Class, zone and methodology version from the query; messages into ``errors``."""
    params = request.query_params
    code = params.get("gpu_class", "")
    gpu_class = GpuClass.objects.filter(code=code).first() if code else None
    if not code:
        errors["gpu_class"] = [_("Name a GPU class, e.g. H100.")]
    elif gpu_class is None:
        errors["gpu_class"] = [_("There is no such GPU class.")]
    zone = DeliveryZone.objects.filter(code=params.get("zone") or calendar.FUTURES_ZONE).first()
    if zone is None:
        errors["zone"] = [_("There is no such delivery zone.")]
    version = params.get("methodology_version") or METHODOLOGY_VERSIONS[-1]
    if version not in METHODOLOGY_VERSIONS:
        errors["methodology_version"] = [_("There is no such methodology version.")]
    if gpu_class is None or zone is None or errors:
        return None
    return _Query(gpu_class=gpu_class, zone=zone, version=version)


def _licence_headers(response: Response, version: str) -> Response:
    # Open data: the licence and the methodology travel with every answer.
    methodology = reverse("index-methodology-version", kwargs={"version": version})
    response["Link"] = f'<{LICENCE_URL}>; rel="license", <{methodology}>; rel="describedby"'
    return response


_SERIES_PARAMETERS = [
    OpenApiParameter("gpu_class", OpenApiTypes.STR, required=True, description="GPU class code, e.g. H100."),
    OpenApiParameter("zone", OpenApiTypes.STR, description="Delivery zone, `DE` (default) or a state, e.g. DE-BY."),
    OpenApiParameter("methodology_version", OpenApiTypes.STR, enum=list(METHODOLOGY_VERSIONS),
                     description=f"Default: the current one ({METHODOLOGY_VERSIONS[-1]})."),
]
_ERRORS: dict[int | tuple[int, str], OpenApiResponse] = {
    400: OpenApiResponse(ErrorSerializer, description="`invalid`: the fields say what (unknown class or zone, a date "
                         "not YYYY-MM-DD, `from` after `to`, a range over the maximum)."),
    429: OpenApiResponse(ErrorSerializer, description="`throttled`: too many requests; see Retry-After."),
}


class IndexListView(CsvErrorsAsJson, APIView):
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer, CsvRenderer]
    csv_columns = list(IndexDaySerializer().fields)

    @extend_schema(
        operation_id="index_list",
        summary="Daily compute price indices of a class and zone",
        description=(
            "One row per day from `from` to `to` (both included) that has a published value, oldest first. "
            "Without `to`: up to tomorrow (its auction clears at noon today); without `from`: "
            f"{DEFAULT_RANGE_DAYS} days before `to`; at most {MAX_RANGE_DAYS} days per request. "
            "`?format=csv` answers the same columns as CSV (UTF-8, comma, header row, empty cell for null). "
            "Values are never changed once published. Rows with `is_demo` true are demo data. Licence CC BY 4.0 "
            "(`Link` header); methodology: /dashboard/methodology/index/."
        ),
        parameters=[
            *_SERIES_PARAMETERS,
            OpenApiParameter("from", OpenApiTypes.DATE, description="First day, YYYY-MM-DD."),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Last day, YYYY-MM-DD."),
        ],
        responses={(200, "application/json"): IndexDaySerializer(many=True),
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The same columns as CSV."),
                   # Errors are JSON whatever the format asked for (CsvErrorsAsJson).
                   **{(status, "application/json"): response for status, response in _ERRORS.items()}},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        errors: dict[str, list[str]] = {}
        series = _series(request, errors)
        bounds: dict[str, date | None] = {}
        for name in ("from", "to"):
            raw = request.query_params.get(name)
            bounds[name], message = _parse_date(raw) if raw else (None, None)
            if message:
                errors[name] = [message]
        if errors or series is None:
            raise _invalid(errors)
        tomorrow = timezone.now().astimezone(calendar.BERLIN).date() + timedelta(days=1)
        end = bounds["to"] or max(tomorrow, bounds["from"] or tomorrow)
        start = bounds["from"] or end - timedelta(days=DEFAULT_RANGE_DAYS)
        if start > end:
            raise _invalid({"to": [_("The end of the range is before its start.")]})
        if (end - start).days >= MAX_RANGE_DAYS:
            raise _invalid({"to": [_("Ask for at most %(days)d days at a time.") % {"days": MAX_RANGE_DAYS}]})
        days = index_days(gpu_class=series.gpu_class, zone=series.zone, start=start, end=end, version=series.version)
        response = _licence_headers(Response(IndexDaySerializer(days, many=True).data), series.version)
        if request.accepted_renderer.format == "csv":
            name = f"index-{series.gpu_class.code}-{series.zone.code}-{start.isoformat()}-{end.isoformat()}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class IndexDayView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="index_day",
        summary="One day's published index values with the documents they hash",
        description=(
            "Each value with its `sha256` and the `document` it hashes (identity, the inputs per hour, the "
            "result). Anyone can recompute: `sha256` = SHA-256 of the canonical JSON of `document` (keys "
            "sorted, no spaces, UTF-8); the day's `fingerprint` = SHA-256 of the values' `sha256` concatenated "
            "in the order given; the value from the document's hours (see the methodology page). 404 when the "
            "day has no published value."
        ),
        parameters=[OpenApiParameter("date", OpenApiTypes.DATE, OpenApiParameter.PATH,
                                     description="The delivery day, YYYY-MM-DD."), *_SERIES_PARAMETERS],
        responses={200: IndexDayDetailSerializer,
                   404: OpenApiResponse(ErrorSerializer, description="`not_found`: nothing published that day."),
                   **_ERRORS},
        auth=[],
    )
    def get(self, request: Request, date: str) -> Response:  # the path's name, as in the contract's {date}
        errors: dict[str, list[str]] = {}
        series = _series(request, errors)
        parsed, message = _parse_date(date)
        if message:
            errors["date"] = [message]
        if errors or series is None or parsed is None:
            raise _invalid(errors)
        detail = index_day_detail(gpu_class=series.gpu_class, zone=series.zone, day=parsed, version=series.version)
        if detail is None:
            raise ExchangeError("not_found", _("Not found."))
        return _licence_headers(Response(IndexDayDetailSerializer(detail).data), series.version)

