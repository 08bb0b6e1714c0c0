"""The response shapes of the trading API, written once.

These serializers are what the OpenAPI schema shows and what produces the
answers: ``market.selectors.orders`` turns orders, fills, trades, positions
and book snapshots into JSON through them (``order_payload`` & co.), the API
answers those and the order service broadcasts the same dicts over
WebSocket. A field changed here changes the schema, REST and WebSocket
together.

Read-only: the request serializers live in ``market.api``. Prices are
strings with two places, times Europe/Berlin with their offset (like the
instrument API), averages strings with four places.
"""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from market import calendar


@extend_schema_field({"type": "string", "enum": ["buy", "sell"], "x-spec-enum-id": "aggressor"})
class AggressorField(serializers.ChoiceField):
    """The same choices as a side, named as its own enum (AggressorEnum) in the
    schema: one choice set under two names is a schema warning."""


def _price(help_text: str, **kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=True, help_text=help_text,
                                    **kwargs)


class ExactFeeField(serializers.DecimalField):
    """A trade's exact fee as a decimal string with at least two places and
    no trailing zeros beyond them: "0.02", "0.005", "0.045"."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=18, decimal_places=6, coerce_to_string=True, **kwargs)

    def to_representation(self, value: Any) -> str:
        text = str(super().to_representation(value))
        whole, _point, places = text.partition(".")
        return f"{whole}.{places.rstrip('0').ljust(2, '0')}"


def _time(**kwargs: Any) -> serializers.DateTimeField:
    return serializers.DateTimeField(default_timezone=calendar.BERLIN, **kwargs)


# Each serializer reads the selector's dataclass named in the comment above it.
# (Docstrings would become the schema's descriptions, hence comments.)


# market.selectors.orders.OrderFill
class OrderFillSerializer(serializers.Serializer):
    trade_id = serializers.IntegerField()
    price = _price("EUR/GPUh.")
    quantity = serializers.IntegerField()
    liquidity = serializers.ChoiceField(choices=["maker", "taker"])


# market.selectors.orders.OrderView
class OrderSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="order.pk")
    client_order_id = serializers.CharField(source="order.client_order_id", allow_null=True)
    instrument = serializers.CharField(source="order.instrument.symbol", help_text="Symbol.")
    side = serializers.ChoiceField(source="order.side", choices=["buy", "sell"])
    type = serializers.ChoiceField(source="order.type", choices=["limit", "market"])
    price = _price("Limit price; for a market order the protection price it traded up to.", source="order.price")
    quantity = serializers.IntegerField(source="order.quantity")
    filled_quantity = serializers.IntegerField(source="order.filled_quantity")
    remaining_quantity = serializers.IntegerField(source="order.remaining_quantity",
                                                  help_text="Open quantity in the book; 0 once the order is done.")
    average_price = serializers.CharField(allow_null=True,
                                          help_text="Volume-weighted fill price, 4 decimal places; null before a fill.")
    status = serializers.ChoiceField(source="order.status", choices=["open", "partially_filled", "filled",
                                                                     "cancelled", "expired", "rejected"])
    created_at = _time(source="order.created_at")
    fills = OrderFillSerializer(many=True)
    time_in_force = serializers.ChoiceField(source="order.time_in_force", choices=["GTC", "GTD", "IOC", "FOK"],
                                            help_text="Extension.")
    expires_at = _time(source="order.expires_at", allow_null=True, help_text="Extension.")
    post_only = serializers.BooleanField(source="order.post_only", help_text="Extension.")
    stp_mode = serializers.ChoiceField(source="order.stp_mode", choices=["cancel_incoming", "cancel_resting"],
                                       help_text="Extension.")
    reason = serializers.CharField(
        source="order.reason",
        help_text="Extension: why the order (or its remainder) ended early, e.g. ioc_remainder, market_remainder, "
        "self_trade_prevention, cancelled_by_member, expired, instrument_closed; empty otherwise."
    )
    reason_detail = serializers.CharField(
        source="order.reason_text",
        help_text="Extension: the reason as a sentence in the request's language (German unless the "
        "django_language cookie chooses English), with the protection price of a market order; empty otherwise."
    )


# market.selectors.orders.OwnFill
class OwnFillSerializer(serializers.Serializer):
    trade_id = serializers.IntegerField()
    order_id = serializers.IntegerField(allow_null=True, help_text="null for a day-ahead auction trade.")
    instrument = serializers.CharField()
    side = serializers.ChoiceField(choices=["buy", "sell"])
    price = _price("EUR/GPUh.")
    quantity = serializers.IntegerField()
    liquidity = serializers.ChoiceField(choices=["maker", "taker", "auction"])
    fee = ExactFeeField(help_text="EUR, exact: rate × GPU-hours, up to 6 places. Charged with the month's "
                        "other fees on one invoice, rounded once.")
    executed_at = _time()


# market.selectors.orders.PositionView
class PositionSerializer(serializers.Serializer):
    instrument = serializers.CharField()
    quantity = serializers.IntegerField(help_text="Net GPUs: bought minus sold (negative: sold).")
    average_price = serializers.CharField(
        allow_null=True, help_text="Average price of the side the position is on (buys if long, sells if short), "
        "4 decimal places.")
    unrealised_pnl = serializers.DecimalField(
        max_digits=18, decimal_places=2, coerce_to_string=True,
        help_text="(last trade price - average price) x quantity x hours, EUR.")
    last_price = serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=True, allow_null=True,
                                          help_text="Extension: the instrument's last trade price.")
    settlement_price = serializers.DecimalField(
        max_digits=12, decimal_places=2, coerce_to_string=True, allow_null=True,
        help_text="Futures: the latest daily settlement price (null for spot and before the first DSP).")
    variation_margin = serializers.DecimalField(
        max_digits=18, decimal_places=2, coerce_to_string=True, allow_null=True,
        help_text="Futures: the variation margin booked to the member in this future so far, EUR (null for spot).")


_LEVEL_PRICE = _price("")


@extend_schema_field({
    "type": "array",
    "items": {"type": "array", "minItems": 2, "maxItems": 2,
              "items": {"oneOf": [{"type": "string", "format": "decimal"}, {"type": "integer"}]}},
})
class BookLevelsField(serializers.Field):
    """(price, quantity) levels as ``[["12.30", 40], ...]``."""

    def to_representation(self, value: Any) -> list[list[Any]]:
        return [[_LEVEL_PRICE.to_representation(price), quantity] for price, quantity in value]


# {"instrument", "sequence", "bids", "asks"}, the levels a BookSnapshot's
class BookSerializer(serializers.Serializer):
    instrument = serializers.CharField()
    sequence = serializers.IntegerField(help_text="The book sequence of WebSocket updates this snapshot includes.")
    bids = BookLevelsField(help_text='[["12.30", 40], ...], best first.')
    asks = BookLevelsField(help_text='[["12.40", 10], ...], best first.')


# {"id", "price", "quantity", "executed_at", "aggressor"} of a Trade
class PublicTradeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    price = _price("EUR/GPUh.")
    quantity = serializers.IntegerField()
    executed_at = _time()
    aggressor = AggressorField(choices=["buy", "sell"], help_text="The side of the incoming order.")


ORDER_STATUSES = ["open", "partially_filled", "filled", "cancelled", "expired", "rejected"]


@extend_schema_field({"type": "string", "enum": ORDER_STATUSES, "x-spec-enum-id": "order_event_status"})
class OrderEventStatusField(serializers.ChoiceField):
    """An order status named as its own enum in the schema (the same choices in
    two components cannot be named after either)."""


# market.models.OrderEvent (with instrument, order and actor read along)
class OrderEventSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Ascending in the order the events happened.")
    order = serializers.IntegerField(source="order_id")
    client_order_id = serializers.CharField(source="order.client_order_id", allow_null=True)
    instrument = serializers.CharField(source="instrument.symbol", help_text="Symbol.")
    kind = serializers.ChoiceField(choices=["submitted", "amended", "filled", "cancelled", "expired"])
    at = _time(help_text="When it happened (the order transaction's time).")
    actor = serializers.EmailField(source="actor.email", allow_null=True, default=None,
                                   help_text="The member's user who did it; null when the exchange did (expiry, "
                                   "self-trade prevention, an IOC or market remainder, a fill of a resting order, "
                                   "cancel-on-disconnect).")
    side = serializers.ChoiceField(choices=["buy", "sell"])
    price = _price("The order's limit after the event.")
    quantity = serializers.IntegerField(help_text="The order's total quantity after the event.")
    filled_quantity = serializers.IntegerField(help_text="Filled so far, after the event.")
    status = OrderEventStatusField(choices=ORDER_STATUSES, help_text="The order's status after the event.")
    reason = serializers.CharField(help_text="For cancelled and expired: the order's reason code "
                                   "(e.g. cancelled_by_member, kill_switch, cancel_on_disconnect, expired).")
    trade_id = serializers.IntegerField(allow_null=True, help_text="Fills: the trade.")
    fill_price = _price("Fills: the trade's price.", allow_null=True)
    fill_quantity = serializers.IntegerField(allow_null=True, help_text="Fills: the GPUs of this fill.")
