"""The order book the way the order service keeps it, for the matching tests.

Production has no in-memory book: ``market.services.orders`` stores resting
orders as rows, reads the other side's crossing orders in price-time priority
only as far as the taker can use them (``_load_crossing``), passes them to
``market.matching.match()`` and persists the result. ``ServiceBook`` does the
same over a dict of resting ``Order``s, so the tests exercise ``match()`` with
exactly the input shape the service gives it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from market.matching import (
    AmendDecision,
    MatchResult,
    Order,
    OrderId,
    OrderStatus,
    Reason,
    Side,
    amend,
    match,
)


def _priority_key(order: Order) -> tuple[Decimal, int]:
    return (-order.price if order.side is Side.BUY else order.price, order.priority)


class ServiceBook:
    """Resting orders of one instrument with their current filled quantity."""

    def __init__(self) -> None:
        self._orders: dict[OrderId, Order] = {}

    # -- reading ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def get(self, order_id: OrderId) -> Order | None:
        return self._orders.get(order_id)

    def orders(self, side: Side) -> list[Order]:
        """One side's resting orders in price-time priority."""
        return sorted((o for o in self._orders.values() if o.side is side), key=_priority_key)

    def best_bid(self) -> Decimal | None:
        bids = self.orders(Side.BUY)
        return bids[0].price if bids else None

    def best_ask(self) -> Decimal | None:
        asks = self.orders(Side.SELL)
        return asks[0].price if asks else None

    def depth(self, side: Side, levels: int | None = None) -> list[tuple[Decimal, int]]:
        """``[(price, open quantity), ...]`` best first, as for the public book."""
        out: list[tuple[Decimal, int]] = []
        for order in self.orders(side):
            if out and out[-1][0] == order.price:
                out[-1] = (order.price, out[-1][1] + order.remaining)
            else:
                out.append((order.price, order.remaining))
        return out[:levels]

    def crossing(self, taker: Order, now: datetime) -> list[Order]:
        """What ``_load_crossing`` reads: the other side's orders that cross the
        taker's limit, in priority order, until those of other organisations
        that have not expired hold the taker's open quantity."""
        loaded: list[Order] = []
        usable = 0
        for order in self.orders(taker.side.opposite):
            if (order.price > taker.price) if taker.side is Side.BUY else (order.price < taker.price):
                break
            loaded.append(order)
            if order.organisation != taker.organisation and (order.expires_at is None or order.expires_at > now):
                usable += order.remaining
                if usable >= taker.remaining:
                    break
        return loaded

    # -- writing ----------------------------------------------------------------------

    def submit(self, order: Order, *, now: datetime) -> MatchResult:
        if order.id in self._orders:
            raise ValueError(f"order {order.id!r} is already in the book")
        return self._enter(order, now)

    def cancel(self, order_id: OrderId) -> int | None:
        """Remove a resting order; its cancelled open quantity, or None if it is not in the book."""
        order = self._orders.pop(order_id, None)
        return None if order is None else order.remaining

    def amend(
        self, order_id: OrderId, *, new_price: Decimal | None = None, new_quantity: int | None = None,
        new_priority: int, now: datetime,
    ) -> tuple[AmendDecision, MatchResult | None]:
        """As the service amends (``KeyError`` if the order is not in the book):
        an expired order is removed and the amend refused; a change that keeps
        priority is applied in place; any other re-enters matching, and a
        rejected re-entry leaves the order as it was."""
        current = self._orders[order_id]
        if current.expires_at is not None and current.expires_at <= now:
            del self._orders[order_id]
            return AmendDecision(valid=False, keeps_priority=False, order=None, reason=Reason.EXPIRED), None
        decision = amend(current, new_price=new_price, new_quantity=new_quantity, new_priority=new_priority)
        if decision.order is None:
            return decision, None
        if decision.keeps_priority:
            self._orders[order_id] = decision.order
            return decision, None
        return decision, self._enter(decision.order, now, replaces=order_id)

    def expire(self, now: datetime) -> list[OrderId]:
        """Remove every resting order with ``expires_at <= now``; their ids by priority key."""
        due = sorted((o for o in self._orders.values() if o.expires_at is not None and o.expires_at <= now),
                     key=lambda o: o.priority)
        for order in due:
            del self._orders[order.id]
        return [order.id for order in due]

    def _enter(self, order: Order, now: datetime, replaces: OrderId | None = None) -> MatchResult:
        result = match(order, self.crossing(order, now), now=now)
        if replaces is not None and result.status is not OrderStatus.REJECTED:
            del self._orders[replaces]
        for fill in result.fills:
            maker = self._orders.pop(fill.maker_order_id)
            if fill.maker_remaining:
                self._orders[maker.id] = replace(maker, filled=maker.filled + fill.quantity)
        for order_id in (*result.stp_cancelled, *result.expired):
            del self._orders[order_id]
        if result.rests:
            self._orders[order.id] = replace(order, filled=order.filled + result.filled)
        return result
