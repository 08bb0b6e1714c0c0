"""Reads of continuous trading: the public book and trades, and a member's
orders, fills and positions.

Each selector answers in a fixed, small number of queries (noted on each).
The ``*_payload`` functions give the JSON shapes of the API contract through
the serializers of ``market.serializers``, the ones the OpenAPI schema
shows; the API answers them and the order service broadcasts the same
dicts, so a client sees one shape over REST, WebSocket and the schema.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection
from django.db.models import DecimalField, F, FilteredRelation, OuterRef, Q, QuerySet, Subquery, Sum

from accounts.models import Organisation
from clearing.fees import CENT
from exchange import rawsql
from market.models import RESTING_STATUSES, Instrument, Order, Position, Segment, Side, Trade
from market.selectors.futures import futures_marks
from market.serializers import (
    BookSerializer,
    OrderSerializer,
    OwnFillSerializer,
    PositionSerializer,
    PublicTradeSerializer,
)

Level = tuple[Decimal, int]

# Averages are not prices on the tick: four places keep a VWAP of cent prices
# readable without hiding the difference between, say, 12.30 and 12.3067.
AVERAGE_PLACES = Decimal("0.0001")


# One instance of each, built once: instantiating a serializer copies its
# fields, which the order service's broadcasts should not pay per order.
# to_representation keeps no state, so threads may share them.
_ORDER = OrderSerializer()
_OWN_FILL = OwnFillSerializer()
_POSITION = PositionSerializer()
_BOOK = BookSerializer()
_PUBLIC_TRADE = PublicTradeSerializer()


def _average(total: Decimal, quantity: int) -> Decimal | None:
    if not quantity:
        return None
    return (total / quantity).quantize(AVERAGE_PLACES, rounding=ROUND_HALF_UP)


# --- the public book --------------------------------------------------------------------


@dataclass(frozen=True)
class BookSnapshot:
    """Aggregated open quantity per price, best first, and the book sequence it belongs to."""

    sequence: int
    bids: list[Level]
    asks: list[Level]


def book_snapshot(*, instrument: Instrument, depth: int = 20) -> BookSnapshot:
    """The instrument's book, ``depth`` levels a side. One query.

    The sequence and the levels come from the same statement, so from the
    same snapshot of the database: the order service advances
    ``book_sequence`` in the transaction that changes the levels, so a client
    can apply the updates with a higher sequence on top of this answer.
    """
    rows = (
        Instrument.objects.filter(pk=instrument.pk)
        .annotate(resting=FilteredRelation("orders", condition=Q(orders__status__in=RESTING_STATUSES)))
        .order_by()
        .values("book_sequence", "resting__side", "resting__price")
        .annotate(open=Sum(F("resting__quantity") - F("resting__filled_quantity")))
    )
    sequence = instrument.book_sequence
    bids: list[Level] = []
    asks: list[Level] = []
    for row in rows:
        sequence = row["book_sequence"]
        if row["resting__side"] is None or not row["open"]:
            continue  # the one row of an empty book
        level = (row["resting__price"], int(row["open"]))
        (bids if row["resting__side"] == Side.BUY else asks).append(level)
    bids.sort(key=lambda level: level[0], reverse=True)
    asks.sort(key=lambda level: level[0])
    return BookSnapshot(sequence=sequence, bids=bids[:depth], asks=asks[:depth])


def book_payload(*, symbol: str, snapshot: BookSnapshot) -> dict[str, Any]:
    return dict(_BOOK.to_representation(
        {"instrument": symbol, "sequence": snapshot.sequence, "bids": snapshot.bids, "asks": snapshot.asks}))


# --- public trades ----------------------------------------------------------------------


def public_trades(*, instrument: Instrument, limit: int = 100) -> list[dict[str, Any]]:
    """The instrument's latest trades, newest first, without member identity. One query."""
    rows = (
        Trade.objects.filter(instrument=instrument)
        .order_by("-id")
        .values("id", "price", "quantity", "executed_at", "aggressor")[:limit]
    )
    return [public_trade_payload(**row) for row in rows]


def public_trade_payload(
    *, id: int, price: Decimal, quantity: int, executed_at: datetime, aggressor: str
) -> dict[str, Any]:
    return dict(_PUBLIC_TRADE.to_representation(
        {"id": id, "price": price, "quantity": quantity, "executed_at": executed_at, "aggressor": aggressor}))


# --- a member's orders ------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFill:
    """One fill as the order's owner sees it."""

    trade_id: int
    price: Decimal
    quantity: int
    liquidity: str  # "maker" | "taker"


@dataclass(frozen=True)
class OrderView:
    order: Order
    fills: list[OrderFill]

    @property
    def average_price(self) -> Decimal | None:
        """Volume-weighted price of the fills (4 places), None before the first."""
        return _average(sum((f.price * f.quantity for f in self.fills), Decimal(0)),
                        sum(f.quantity for f in self.fills))


def orders_for(
    *, organisation: Organisation, statuses: Sequence[str] = (), instrument: Instrument | None = None
) -> QuerySet[Order]:
    """The organisation's orders, newest first, with their instruments (lazy;
    slice it, then load fills with ``orders_with_fills``)."""
    rows = Order.objects.filter(organisation=organisation).select_related("instrument")
    if statuses:
        rows = rows.filter(status__in=statuses)
    if instrument is not None:
        rows = rows.filter(instrument=instrument)
    return rows.order_by("-created_at", "-id")


def order_for(*, organisation: Organisation, order_id: int) -> OrderView | None:
    """One of the organisation's orders with its fills; None for anyone
    else's (the API answers 404, never 403). Two queries."""
    order = Order.objects.select_related("instrument").filter(pk=order_id, organisation=organisation).first()
    if order is None:
        return None
    return orders_with_fills([order])[0]


def orders_with_fills(orders: Iterable[Order]) -> list[OrderView]:
    """Attach each order's fills, in execution order. One query for all of them."""
    orders = list(orders)
    by_id = {order.pk: order for order in orders}
    fills: dict[int, list[OrderFill]] = defaultdict(list)
    if by_id:
        # Plain SQL: the order path asks this in every transaction that fills a resting order.
        ids = sorted(by_id)
        table, listed = connection.ops.quote_name(Trade._meta.db_table), rawsql.placeholders(len(ids))
        trades = rawsql.fetch(
            f"SELECT id, price, quantity, aggressor, buy_order_id, sell_order_id FROM {table} "  # noqa: S608
            f"WHERE buy_order_id IN ({listed}) OR sell_order_id IN ({listed}) ORDER BY id", [*ids, *ids])
        for trade_id, raw_price, quantity, aggressor, buy_order_id, sell_order_id in trades:
            price = rawsql.converted(Trade, "price", raw_price)
            for order_id, side in ((buy_order_id, Side.BUY), (sell_order_id, Side.SELL)):
                if order_id in by_id:
                    # The aggressor is the taker's side: the order was the taker iff it is on that side.
                    liquidity = "taker" if aggressor == side else "maker"
                    fills[order_id].append(OrderFill(trade_id, price, quantity, liquidity))
    return [OrderView(order=order, fills=fills[order.pk]) for order in orders]


def order_payload(view: OrderView) -> dict[str, Any]:
    """The order in the contract's shape (plus ``time_in_force``, ``expires_at``,
    ``post_only``, ``stp_mode`` and ``reason``, extensions): ``OrderSerializer``."""
    return dict(_ORDER.to_representation(view))


# --- a member's fills -------------------------------------------------------------------


@dataclass(frozen=True)
class OwnFill:
    """One trade from one side: the organisation's order, price, quantity, fee."""

    trade_id: int
    order_id: int | None  # None: a day-ahead auction trade (no order)
    instrument: str
    side: str
    price: Decimal
    quantity: int
    liquidity: str
    fee: Decimal
    executed_at: datetime


def own_fill(trade: Trade, *, organisation_id: int, symbol: str) -> OwnFill:
    """``trade`` as the party ``organisation_id`` sees it (never the other party)."""
    side = Side.BUY if trade.buyer_id == organisation_id else Side.SELL
    return OwnFill(
        trade_id=trade.pk,
        order_id=trade.buy_order_id if side == Side.BUY else trade.sell_order_id,
        instrument=symbol,
        side=side,
        price=trade.price,
        quantity=trade.quantity,
        liquidity="auction" if not trade.aggressor else "taker" if trade.aggressor == side else "maker",
        fee=trade.buyer_fee if side == Side.BUY else trade.seller_fee,
        executed_at=trade.executed_at,
    )


def fills_for(*, organisation: Organisation, instrument: Instrument | None = None, limit: int = 500) -> list[OwnFill]:
    """The organisation's fills, newest first. One query. (Self-trade
    prevention keeps an organisation on one side of each trade.)"""
    rows = Trade.objects.filter(Q(buyer=organisation) | Q(seller=organisation)).select_related("instrument")
    if instrument is not None:
        rows = rows.filter(instrument=instrument)
    return [own_fill(trade, organisation_id=organisation.pk, symbol=trade.instrument.symbol)
            for trade in rows.order_by("-id")[:limit]]


def fill_payload(fill: OwnFill) -> dict[str, Any]:
    return dict(_OWN_FILL.to_representation(fill))


# --- positions --------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionView:
    instrument: str
    quantity: int
    average_price: Decimal | None
    last_price: Decimal | None
    unrealised_pnl: Decimal
    settlement_price: Decimal | None = None  # a future's latest DSP
    variation_margin: Decimal | None = None  # a future: booked to the member so far (None for spot)


def positions_for(*, organisation: Organisation) -> list[PositionView]:
    """The organisation's open (non-zero) positions, by delivery start. One query.

    ``average_price`` is the average price of the side the net position is
    on (buys for a long, sells for a short position: average cost);
    ``unrealised_pnl`` marks the open quantity to the instrument's last trade
    price: (last - average) x quantity x hours, to the cent (HALF_UP), with
    the sign of a long position and the opposite for a short one.
    """
    last_price = Trade.objects.filter(instrument=OuterRef("instrument")).order_by("-id").values("price")[:1]
    rows = list(
        Position.objects.filter(organisation=organisation)
        .exclude(quantity=0)
        .select_related("instrument")
        .annotate(last_price=Subquery(last_price, output_field=DecimalField(max_digits=12, decimal_places=2)))
        .order_by("instrument__delivery_start", "instrument__symbol")
    )
    # Futures also show their settlement price and the variation margin booked (contract).
    marks = futures_marks(organisation_id=organisation.pk, instrument_ids=[
        position.instrument_id for position in rows if position.instrument.segment == Segment.FUTURES])
    result = []
    for position in rows:
        total, count = ((position.buy_cost, position.bought) if position.quantity > 0
                        else (position.sell_proceeds, position.sold))
        last: Decimal | None = position.last_price
        if last is not None:
            last = last.quantize(CENT)  # SQLite answers the subquery with extra places
        pnl = Decimal("0.00")
        if last is not None and count:
            # From the exact average, not the four-place one shown.
            pnl = ((last - total / count) * position.quantity * position.instrument.hours).quantize(
                CENT, rounding=ROUND_HALF_UP) or Decimal("0.00")  # never "-0.00"
        average = _average(total, count)
        dsp, variation = marks.get(position.instrument_id, (None, None))
        result.append(PositionView(instrument=position.instrument.symbol, quantity=position.quantity,
                                   average_price=average, last_price=last, unrealised_pnl=pnl,
                                   settlement_price=dsp, variation_margin=variation))
    return result


def position_payload(view: PositionView) -> dict[str, Any]:
    return dict(_POSITION.to_representation(view))


__all__ = [
    "BookSnapshot",
    "OrderFill",
    "OrderView",
    "OwnFill",
    "PositionView",
    "book_payload",
    "book_snapshot",
    "fill_payload",
    "fills_for",
    "order_for",
    "order_payload",
    "orders_for",
    "orders_with_fills",
    "own_fill",
    "position_payload",
    "positions_for",
    "public_trade_payload",
    "public_trades",
]
