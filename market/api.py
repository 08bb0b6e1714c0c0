"""Reference data of the public API v1: the instrument catalogue (public, no auth)."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from exchange.schema import ErrorSerializer
from market import calendar, selectors
from market.models import Instrument

# A plain list is the contract's shape; the cap keeps a history query from
# answering millions of rows. X-Total-Count tells the client it was cut.
MAX_LIST = 5000



class InstrumentSerializer(serializers.ModelSerializer[Instrument]):
    gpu_class = serializers.CharField(source="gpu_class.code", read_only=True)
    zone = serializers.CharField(source="zone.code", read_only=True)
    # Europe/Berlin offsets: 02A renders as 02:00+02:00, 02B as 02:00+01:00.
    delivery_start = serializers.DateTimeField(default_timezone=calendar.BERLIN, read_only=True)
    delivery_end = serializers.DateTimeField(default_timezone=calendar.BERLIN, read_only=True)
    opens_at = serializers.DateTimeField(default_timezone=calendar.BERLIN, read_only=True)
    closes_at = serializers.DateTimeField(default_timezone=calendar.BERLIN, read_only=True)

    class Meta:
        model = Instrument
        fields = ["symbol", "segment", "gpu_class", "zone", "delivery_start", "delivery_end", "hours",
                  "tick_size", "lot_size", "min_price", "max_price", "status",
                  # Extensions beyond the contract's list:
                  "period", "opens_at", "closes_at"]
        read_only_fields = fields


class InstrumentListView(generics.ListAPIView[Instrument]):
    permission_classes = [AllowAny]
    serializer_class = InstrumentSerializer
    filterset_class = selectors.InstrumentFilter
    pagination_class = None

    def get_queryset(self) -> Any:
        return selectors.instrument_queryset()

    @extend_schema(
        operation_id="instruments_list",
        summary="List instruments",
        description=(
            "The instrument catalogue. Without `status` it lists the live catalogue (scheduled, open and "
            f"halted instruments). A plain list, ordered by delivery start, capped at {MAX_LIST} rows; "
            "`X-Total-Count` carries the number of matching instruments."
        ),
        parameters=[OpenApiParameter("X-Total-Count", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[200],
                                     description="Number of matching instruments before the cap.")],
        responses={200: InstrumentSerializer(many=True), 400: ErrorSerializer},
        auth=[],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        rows = list(queryset[: MAX_LIST + 1])
        total = len(rows) if len(rows) <= MAX_LIST else queryset.count()
        response = Response(self.get_serializer(rows[:MAX_LIST], many=True).data)
        response["X-Total-Count"] = str(total)
        return response


class InstrumentDetailView(generics.RetrieveAPIView[Instrument]):
    permission_classes = [AllowAny]
    serializer_class = InstrumentSerializer
    lookup_field = "symbol"
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return selectors.instrument_queryset()

    @extend_schema(
        operation_id="instruments_retrieve",
        summary="One instrument",
        description="Any status. 404 in the error shape for an unknown symbol.",
        responses={200: InstrumentSerializer, 404: OpenApiResponse(ErrorSerializer, description="Unknown symbol.")},
        auth=[],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
