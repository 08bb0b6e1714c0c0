"""The market's part of the public API v1: the instrument catalogue and
market data (public, no auth), and orders, fills and positions (members)."""

from typing import Any, cast

from django.utils.functional import lazy
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Organisation, User
from accounts.selectors import membership_for
from exchange import rawsql
from exchange.errors import ExchangeError, error_from_exception
from exchange.fields import AwareDateTimeField
from exchange.schema import ErrorSerializer
from market import calendar, selectors
from market.models import RESTING_STATUSES, Instrument, Order, OrderStatus
from market.selectors import events as event_selectors
from market.serializers import (
    BookSerializer,
    OrderEventSerializer,
    OrderFillSerializer,  # noqa: F401 (named here by the tests, beside the others)
    OrderSerializer,
    OwnFillSerializer,
    PositionSerializer,
    PublicTradeSerializer,
)
from market.services import controls
from market.services import orders as order_services
from market.services.orders import MAX_ORDER_QUANTITY

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


# --- Continuous trading: orders, fills, positions, market data (issue 3) -------------------
# Request serializers check shapes only; every rule is the order service's,
# which answers with the contract's error codes. The response shapes are the
# serializers of market.serializers, through market.selectors.orders'
# *_payload functions (the order service broadcasts the same dicts).

MAX_ORDER_LIST = 1000
MAX_FILL_LIST = 1000
MAX_BOOK_DEPTH = 100
MAX_PUBLIC_TRADES = 1000
MAX_BATCH = 100


def _quantity_message() -> str:
    # The order service's own words, so the answer reads the same whichever refuses it.
    return _("Enter a whole number of GPUs from 1 to %(max)d.") % {"max": MAX_ORDER_QUANTITY}


_QUANTITY_MESSAGES: dict[str, Any] = {"min_value": lazy(_quantity_message, str)(),
                                      "max_value": lazy(_quantity_message, str)()}

_AUTH_ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="`not_authenticated` or `authentication_failed`."),
    429: OpenApiResponse(ErrorSerializer, description="`throttled`: too many requests; see Retry-After."),
}
_READ_ERRORS = {
    **_AUTH_ERRORS,
    403: OpenApiResponse(ErrorSerializer, description="`not_permitted`: the user belongs to no organisation."),
}
_ORDER_ERRORS = {
    400: OpenApiResponse(
        ErrorSerializer,
        description="`invalid` (the fields say what), `tick_size` (price off the tick) or "
        "`price_out_of_bounds` (outside the instrument's bounds; a sell below the taker fee rate).",
    ),
    **_AUTH_ERRORS,
    403: OpenApiResponse(
        ErrorSerializer,
        description="`kyc_not_approved`, or `not_permitted` (no trader role, observer organisation, "
        "futures before margining).",
    ),
    409: OpenApiResponse(
        ErrorSerializer,
        description="`instrument_closed`, `market_halted`, `insufficient_funds`, `insufficient_capacity`, "
        "`fok_not_fillable`, `post_only_would_trade`. A refused order writes nothing.",
    ),
}
_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="`not_found`: no such order of your organisation.")


class OrderRequestSerializer(serializers.Serializer):
    instrument = serializers.CharField(max_length=64, help_text="Instrument symbol, e.g. H100.DE.2026-11-29T14.")
    side = serializers.ChoiceField(choices=["buy", "sell"])
    type = serializers.ChoiceField(choices=["limit", "market"], default="limit")
    # Many places accepted so that a price off the tick is answered `tick_size`, not a shape error.
    price = serializers.DecimalField(
        max_digits=20, decimal_places=10, required=False, allow_null=True,
        help_text='Limit price in EUR/GPUh as a decimal string, e.g. "12.30". Required for limit orders; '
        "market orders take none (they trade up to the protection price: reference price +/-50 %).",
    )
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_ORDER_QUANTITY,
                                        error_messages=_QUANTITY_MESSAGES,
                                        help_text="Whole GPUs, a multiple of the lot size.")
    time_in_force = serializers.ChoiceField(choices=["GTC", "GTD", "IOC", "FOK"], default="GTC")
    expires_at = AwareDateTimeField(required=False, allow_null=True,
                                    help_text="GTD only: when the order expires (ISO 8601 with offset; a time "
                                    "without one is refused).")
    post_only = serializers.BooleanField(required=False, default=False,
                                         help_text="Refuse the order (409) instead of letting it trade on entry.")
    client_order_id = serializers.CharField(
        required=False, allow_null=True, max_length=64,
        help_text="Your own id. Reusing one your organisation has used answers 200 with the existing order.",
    )
    stp_mode = serializers.ChoiceField(
        choices=["cancel_incoming", "cancel_resting"], default="cancel_incoming",
        help_text="Self-trade prevention (extension): which order is cancelled where yours would meet your own.",
    )


class OrderAmendSerializer(serializers.Serializer):
    """Send `quantity`, `price` or both; an empty body is refused (`invalid`)."""

    quantity = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ORDER_QUANTITY,
                                        error_messages=_QUANTITY_MESSAGES,
                                        help_text="New total quantity, including what is filled.")
    price = serializers.DecimalField(max_digits=20, decimal_places=10, required=False,
                                     help_text="New limit price, EUR/GPUh.")


class BatchRequestSerializer(serializers.Serializer):
    orders = serializers.ListField(child=serializers.JSONField(), min_length=1, max_length=MAX_BATCH)


class BatchRequestSchemaSerializer(serializers.Serializer):
    orders = OrderRequestSerializer(many=True, help_text=f"1 to {MAX_BATCH} orders.")


class _AtLeastOneField(OpenApiSerializerExtension):
    """PATCH /orders/{id}/ needs quantity, price or both: an empty body is refused."""

    target_class = "market.api.OrderAmendSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        return {**schema, "minProperties": 1}


class _BatchSize(OpenApiSerializerExtension):
    """The batch's bounds (BatchRequestSerializer checks them) as minItems and maxItems."""

    target_class = "market.api.BatchRequestSchemaSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        orders = schema["properties"]["orders"]
        orders.update({"minItems": 1, "maxItems": MAX_BATCH})
        return schema


_STATUS_CODE = {"type": "integer", "description": "The HTTP status this order alone would have had."}


@extend_schema_field({
    "type": "array",
    "items": {"oneOf": [
        {"allOf": [{"$ref": "#/components/schemas/Order"}, {
            "type": "object", "required": ["status_code"],
            "properties": {"status_code": {**_STATUS_CODE, "enum": [200, 201],
                                           "description": "201: created; 200: existing order "
                                           "(client_order_id used before)."}},
        }]},
        {"allOf": [{"$ref": "#/components/schemas/Error"}, {
            "type": "object", "required": ["status_code"],
            "properties": {"status_code": {**_STATUS_CODE, "minimum": 400, "maximum": 499}},
        }]},
    ]},
})
class BatchResultsField(serializers.ListField):
    """Results of a batch: an Order plus status_code, or an Error plus status_code."""


class BatchResponseSchemaSerializer(serializers.Serializer):
    results = BatchResultsField(
        help_text="One result per order, in the order sent: the order with `status_code` 201 or 200, or the "
        "error (`code`, `detail`, `fields`) with its `status_code`.",
    )


def _organisation(request: Request) -> Organisation:
    membership = membership_for(request.user)
    if membership is None:
        raise ExchangeError("not_permitted", _("Only members of an organisation have orders."))
    return membership.organisation


_INSTRUMENT = rawsql.Columns(Instrument, "i")


def _instruments(symbols: set[str]) -> dict[str, Instrument]:
    """The instruments of these symbols, by symbol, in one plain statement
    (every order names one; a batch names up to a hundred)."""
    if not symbols:
        return {}
    rows = rawsql.fetch(f"SELECT {_INSTRUMENT.sql} FROM {_INSTRUMENT.table} i "  # noqa: S608 (model table)
                        f"WHERE i.symbol IN ({rawsql.placeholders(len(symbols))})", sorted(symbols))
    return {instrument.symbol: instrument for instrument in (_INSTRUMENT.load(row)[0] for row in rows)}


def _named_instrument(symbol: str, detail: str, known: dict[str, Instrument] | None = None) -> Instrument:
    """The instrument a request names (``known``: instruments already read), or
    ``invalid`` with ``detail`` and the reason at the ``instrument`` field."""
    instrument = (known if known is not None else _instruments({symbol})).get(symbol)
    if instrument is None:
        raise ExchangeError("invalid", detail, {"instrument": [
            _("There is no instrument %(symbol)s.") % {"symbol": symbol}]})
    return instrument


def _submit_kwargs(data: dict[str, Any], known: dict[str, Instrument] | None = None) -> dict[str, Any]:
    """Validated request fields -> order_submit's keyword arguments (``known``: instruments already read)."""
    return {**data, "instrument": _named_instrument(data["instrument"], _("The order is invalid."), known)}


def _bounded(name: str, *, default: int | None, maximum: int, description: str) -> OpenApiParameter:
    """A whole-number query parameter from 1 to ``maximum``, as _int_param reads it."""
    schema: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": maximum}
    if default is not None:
        schema["default"] = default
    return OpenApiParameter(name, schema, description=description)


def _int_param(request: Request, name: str, *, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise ExchangeError("invalid", _("The request is invalid."),
                            {name: [_("Enter a whole number from 1 to %(max)d.") % {"max": maximum}]})
    return value


def _order_response(order: Order, status: int) -> Response:
    view = selectors.orders_with_fills([order])[0]
    return Response(selectors.order_payload(view), status=status)


class OrderListView(APIView):
    @extend_schema(
        operation_id="orders_list",
        summary="My organisation's orders",
        description="Newest first, at most `limit` (default and maximum 1000); `X-Total-Count` carries the number "
        "of matching orders. `status` may be repeated or comma-separated. `status=open` lists every order resting "
        "in the book, partially filled ones included (statuses `open` and `partially_filled`); "
        "`status=partially_filled` lists only those.",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR,
                             description="Order status(es); `open` means resting: open or partially filled."),
            OpenApiParameter("instrument", OpenApiTypes.STR, description="Instrument symbol."),
            _bounded("limit", default=MAX_ORDER_LIST, maximum=MAX_ORDER_LIST, description=f"1 to {MAX_ORDER_LIST}."),
            OpenApiParameter("X-Total-Count", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[200]),
        ],
        responses={200: OrderSerializer(many=True), 400: ErrorSerializer, **_READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        organisation = _organisation(request)
        statuses = [s for raw in request.query_params.getlist("status") for s in raw.split(",") if s]
        unknown = [s for s in statuses if s not in OrderStatus.values]
        if unknown:
            raise ExchangeError("invalid", _("The request is invalid."),
                                {"status": [_("Unknown status: %(status)s.") % {"status": ", ".join(unknown)}]})
        if OrderStatus.OPEN in statuses:
            # "open" as API users mean it: in the book, partially filled or not.
            statuses = list(dict.fromkeys([*statuses, *RESTING_STATUSES]))
        limit = _int_param(request, "limit", default=MAX_ORDER_LIST, maximum=MAX_ORDER_LIST)
        rows = selectors.orders_for(organisation=organisation, statuses=statuses)
        symbol = request.query_params.get("instrument")
        if symbol:
            rows = rows.filter(instrument__symbol=symbol)
        page = list(rows[: limit + 1])
        total = len(page) if len(page) <= limit else rows.count()
        response = Response([selectors.order_payload(view) for view in selectors.orders_with_fills(page[:limit])])
        response["X-Total-Count"] = str(total)
        return response

    @extend_schema(
        operation_id="orders_create",
        summary="Submit an order",
        description="201 with the new order. With a `client_order_id` your organisation has used before: 200 with "
        "that order, nothing created. A refused order (any 4xx) changes nothing: no order, no reservation.",
        request=OrderRequestSerializer,
        responses={201: OrderSerializer, 200: OrderSerializer, **_ORDER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = OrderRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = order_services.order_submit(user=cast(User, request.user),
                                             **_submit_kwargs(dict(serializer.validated_data)))
        if result.view is not None:
            return Response(selectors.order_payload(result.view), status=201)
        return _order_response(result.order, 201 if result.created else 200)


class OrderDetailView(APIView):
    @extend_schema(operation_id="orders_retrieve", summary="One of my organisation's orders",
                   responses={200: OrderSerializer, 404: _NOT_FOUND, **_READ_ERRORS})
    def get(self, request: Request, order_id: int) -> Response:
        view = selectors.order_for(organisation=_organisation(request), order_id=order_id)
        if view is None:
            raise ExchangeError("not_found", _("This order does not exist."))
        return Response(selectors.order_payload(view))

    @extend_schema(
        operation_id="orders_amend",
        summary="Amend a resting order",
        description="Send `quantity` (the new total, above what is filled) and/or `price`. Lowering the quantity "
        "keeps time priority; any other change loses it and the order is matched again (it may trade). "
        "409 `order_not_open` when the order is no longer in the book.",
        request=OrderAmendSerializer,
        responses={200: OrderSerializer, 404: _NOT_FOUND, **_ORDER_ERRORS},
    )
    def patch(self, request: Request, order_id: int) -> Response:
        serializer = OrderAmendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = order_services.order_amend(user=cast(User, request.user), order_id=order_id,
                                           quantity=serializer.validated_data.get("quantity"),
                                           price=serializer.validated_data.get("price"))
        return _order_response(order, 200)

    @extend_schema(
        operation_id="orders_cancel",
        summary="Cancel a resting order",
        description="Answers the cancelled order; its reserved cash is released. Allowed while the instrument is "
        "halted. 409 `order_not_open` when the order is no longer in the book.",
        responses={200: OrderSerializer, 404: _NOT_FOUND,
                   409: OpenApiResponse(ErrorSerializer, description="`order_not_open`."),
                   403: _ORDER_ERRORS[403], **_AUTH_ERRORS},
    )
    def delete(self, request: Request, order_id: int) -> Response:
        order = order_services.order_cancel(user=cast(User, request.user), order_id=order_id)
        return _order_response(order, 200)


class OrderBatchView(APIView):
    @extend_schema(
        operation_id="orders_batch",
        summary="Submit up to 100 orders",
        description="Each order is checked and entered on its own, in the order sent, as if posted to "
        "`/api/v1/orders/`; one refused order does not stop the others. The answer (200) has one result per "
        "order in `results`: the order object plus `status_code` (201 created, 200 existing "
        "`client_order_id`), or the contract's error object (`code`, `detail`, `fields`) plus the `status_code` "
        "that order alone would have had. A malformed batch, or a user who may not trade, is refused as a whole.",
        request=BatchRequestSchemaSerializer,
        responses={200: BatchResponseSchemaSerializer, **_ORDER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        batch = BatchRequestSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        shapes: list[dict[str, Any] | ExchangeError] = []
        # One serializer validates every item, as a ListSerializer runs its
        # child: a serializer per item deep-copied its ten fields each time
        # (about a third of the batch's validation). run_validation is what
        # is_valid runs. A refused item is judged again by a serializer of
        # its own, whose ``errors`` (with DRF's wording for a null item)
        # the answer has always carried.
        request_shape = OrderRequestSerializer()
        for raw in batch.validated_data["orders"]:
            try:
                shapes.append(dict(request_shape.run_validation(raw)))
            except ValidationError:
                refused = OrderRequestSerializer(data=raw)
                refused.is_valid()
                shapes.append(error_from_exception(ValidationError(refused.errors))
                              or ExchangeError("invalid", ""))
        known = _instruments({shape["instrument"] for shape in shapes if not isinstance(shape, ExchangeError)})
        items: list[dict[str, Any] | ExchangeError] = []
        for shape in shapes:
            try:
                items.append(shape if isinstance(shape, ExchangeError) else _submit_kwargs(shape, known))
            except ExchangeError as error:
                items.append(error)
        specs = [item for item in items if not isinstance(item, ExchangeError)]
        outcomes = iter(order_services.orders_submit_batch(user=cast(User, request.user), orders=specs)
                        if specs else [])
        results = []
        for item in items:
            outcome = item if isinstance(item, ExchangeError) else next(outcomes)
            if isinstance(outcome, ExchangeError):
                results.append({**outcome.as_dict(), "status_code": outcome.status})
            else:
                view = outcome.view or selectors.orders_with_fills([outcome.order])[0]
                results.append({**selectors.order_payload(view), "status_code": 201 if outcome.created else 200})
        return Response({"results": results})


class OwnTradesView(APIView):
    @extend_schema(
        operation_id="trades_list",
        summary="My organisation's fills",
        description="Newest first, at most `limit` (default and maximum 1000). Each fill is one trade seen from "
        "your side: your order, side, price, quantity, maker or taker, and your fee. Never the other party.",
        parameters=[OpenApiParameter("instrument", OpenApiTypes.STR, description="Instrument symbol."),
                    _bounded("limit", default=MAX_FILL_LIST, maximum=MAX_FILL_LIST,
                             description=f"1 to {MAX_FILL_LIST}.")],
        responses={200: OwnFillSerializer(many=True), 400: ErrorSerializer, **_READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        organisation = _organisation(request)
        limit = _int_param(request, "limit", default=MAX_FILL_LIST, maximum=MAX_FILL_LIST)
        symbol = request.query_params.get("instrument")
        instrument = Instrument.objects.filter(symbol=symbol).first() if symbol else None
        if symbol and instrument is None:
            return Response([])
        fills = selectors.fills_for(organisation=organisation, instrument=instrument, limit=limit)
        return Response([selectors.fill_payload(fill) for fill in fills])


class PositionListView(APIView):
    @extend_schema(
        operation_id="positions_list",
        summary="My organisation's open positions",
        description="Every instrument where the organisation's net quantity is not zero, by delivery start.",
        responses={200: PositionSerializer(many=True), **_READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        positions = selectors.positions_for(organisation=_organisation(request))
        return Response([selectors.position_payload(position) for position in positions])


def _public_instrument(symbol: str) -> Instrument:
    instrument = Instrument.objects.filter(symbol=symbol).first()
    if instrument is None:
        raise ExchangeError("not_found", _("Not found."))
    return instrument


class BookView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="instruments_book",
        summary="The order book of an instrument",
        description="Aggregated open quantity per price level, best first; no member identity. `sequence` is the "
        "book sequence the snapshot includes: apply WebSocket updates with a higher sequence on top.",
        parameters=[_bounded("depth", default=20, maximum=MAX_BOOK_DEPTH,
                             description=f"Levels per side, 1 to {MAX_BOOK_DEPTH} (default 20).")],
        responses={200: BookSerializer, 400: ErrorSerializer,
                   404: OpenApiResponse(ErrorSerializer, description="Unknown symbol."),
                   429: _AUTH_ERRORS[429]},
        auth=[],
    )
    def get(self, request: Request, symbol: str) -> Response:
        instrument = _public_instrument(symbol)
        depth = _int_param(request, "depth", default=20, maximum=MAX_BOOK_DEPTH)
        snapshot = selectors.book_snapshot(instrument=instrument, depth=depth)
        return Response(selectors.book_payload(symbol=instrument.symbol, snapshot=snapshot))


class PublicTradesView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="instruments_trades",
        summary="The latest trades of an instrument",
        description="Newest first, at most `limit` (default 100); no member identity.",
        parameters=[_bounded("limit", default=100, maximum=MAX_PUBLIC_TRADES,
                             description=f"1 to {MAX_PUBLIC_TRADES} (default 100).")],
        responses={200: PublicTradeSerializer(many=True), 400: ErrorSerializer,
                   404: OpenApiResponse(ErrorSerializer, description="Unknown symbol."),
                   429: _AUTH_ERRORS[429]},
        auth=[],
    )
    def get(self, request: Request, symbol: str) -> Response:
        instrument = _public_instrument(symbol)
        limit = _int_param(request, "limit", default=100, maximum=MAX_PUBLIC_TRADES)
        return Response(selectors.public_trades(instrument=instrument, limit=limit))


# --- Trader controls (issue 8, item 5; docs/trader-controls.md) ----------------------------------

MAX_EVENT_LIST = 1000


class CancelAllRequestSerializer(serializers.Serializer):
    instrument = serializers.CharField(max_length=64, required=False,
                                       help_text="Only this instrument's orders; without it, every instrument.")


class CancelAllResponseSerializer(serializers.Serializer):
    cancelled = OrderSerializer(many=True, help_text="The orders cancelled, as they are now; empty if none rested.")


class OrderCancelAllView(APIView):
    @extend_schema(
        operation_id="orders_cancel_all",
        summary="Mass cancel: every resting order of my organisation",
        description="Cancels every order of your organisation (placed by any of its members) resting in the book "
        "when the request runs, in all instruments or in `instrument`, in one transaction, and releases their "
        "reserved cash. Traders and owners may. Answers 200 with the cancelled orders (an empty list when none "
        "rested). An unknown `instrument` is `invalid`.",
        request=CancelAllRequestSerializer,
        responses={200: CancelAllResponseSerializer, 400: ErrorSerializer, **_READ_ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = CancelAllRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        symbol = serializer.validated_data.get("instrument")
        instrument = None if symbol is None else _named_instrument(symbol, _("The request is invalid."))
        cancelled = order_services.orders_cancel_all(user=cast(User, request.user), instrument=instrument)
        views = selectors.orders_with_fills(cancelled) if cancelled else []
        return Response({"cancelled": [selectors.order_payload(view) for view in views]})


class KillSwitchRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                   help_text="Why, for the record (at most 200 characters).")


class KillSwitchSerializer(serializers.Serializer):
    engaged = serializers.BooleanField()
    engaged_at = serializers.DateTimeField(allow_null=True, help_text="Europe/Berlin with offset.")
    engaged_by = serializers.EmailField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    cancelled = serializers.ListField(child=serializers.IntegerField(), required=False,
                                      help_text="POST only: the ids of the orders the switch cancelled.")


def _kill_switch_payload(organisation: Organisation, cancelled: list[Order] | None = None) -> dict[str, Any]:
    switch = controls.kill_switch_engaged(organisation=organisation)
    payload: dict[str, Any] = {
        "engaged": switch is not None,
        "engaged_at": switch.engaged_at.astimezone(calendar.BERLIN).isoformat() if switch is not None else None,
        "engaged_by": switch.engaged_by.email if switch is not None else None,
        "reason": switch.reason if switch is not None else "",
    }
    if cancelled is not None:
        payload["cancelled"] = [order.pk for order in cancelled]
    return payload


_OWNER_ERRORS = {
    **_AUTH_ERRORS,
    403: OpenApiResponse(ErrorSerializer, description="`not_permitted`: only the organisation's owners, or "
                         "`kyc_not_approved`."),
}


class KillSwitchView(APIView):
    @extend_schema(operation_id="kill_switch_retrieve", summary="My organisation's kill switch",
                   responses={200: KillSwitchSerializer, **_READ_ERRORS})
    def get(self, request: Request) -> Response:
        return Response(_kill_switch_payload(_organisation(request)))

    @extend_schema(
        operation_id="kill_switch_engage",
        summary="Engage the kill switch (owners)",
        description="Cancels every resting order of your organisation and refuses its new orders and amends "
        "(403 `trading_stopped`) until an owner or an operator lifts it. Cancelling stays possible. When it "
        "answers, none of the organisation's orders rests. Engaging it again while it is on changes nothing "
        "but cancels what might rest.",
        request=KillSwitchRequestSerializer,
        responses={200: KillSwitchSerializer, 400: ErrorSerializer, **_OWNER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = KillSwitchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = cast(User, request.user)
        cancelled = controls.kill_switch_engage(user=user, reason=serializer.validated_data["reason"])
        return Response(_kill_switch_payload(_organisation(request), cancelled))

    @extend_schema(
        operation_id="kill_switch_lift",
        summary="Lift the kill switch (owners)",
        description="The organisation may trade again. 404 `not_found` when the switch is not on.",
        responses={200: KillSwitchSerializer, 404: OpenApiResponse(ErrorSerializer, description="`not_found`."),
                   **_OWNER_ERRORS},
    )
    def delete(self, request: Request) -> Response:
        controls.kill_switch_lift(user=cast(User, request.user))
        return Response(_kill_switch_payload(_organisation(request)))


class OrderEventListView(APIView):
    @extend_schema(
        operation_id="order_events_list",
        summary="My organisation's order events",
        description="Every submit, amend, fill, cancel and expiry of your organisation's orders, append-only, "
        "newest first, at most `limit` (default and maximum 1000); page back with `before_id`. The trading "
        "screens offer the same as CSV (`/markets/events/?format=csv`).",
        parameters=[
            OpenApiParameter("instrument", OpenApiTypes.STR, description="Instrument symbol."),
            OpenApiParameter("order", OpenApiTypes.INT, description="One order's events."),
            OpenApiParameter("before_id", OpenApiTypes.INT, description="Only events with a smaller id."),
            _bounded("limit", default=MAX_EVENT_LIST, maximum=MAX_EVENT_LIST, description=f"1 to {MAX_EVENT_LIST}."),
        ],
        responses={200: OrderEventSerializer(many=True), 400: ErrorSerializer, **_READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        organisation = _organisation(request)
        limit = _int_param(request, "limit", default=MAX_EVENT_LIST, maximum=MAX_EVENT_LIST)
        order_id = _int_param(request, "order", default=0, maximum=2**62) if "order" in request.query_params else None
        rows = event_selectors.order_events_for(organisation=organisation,
                                                instrument_symbol=request.query_params.get("instrument"),
                                                order_id=order_id)
        if "before_id" in request.query_params:
            rows = rows.filter(id__lt=_int_param(request, "before_id", default=0, maximum=2**62))
        return Response([event_selectors.order_event_payload(event) for event in rows[:limit]])
