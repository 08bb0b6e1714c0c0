"""Hand-written examples for every rule of the matching core (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest

from market.matching import (
    Fill,
    MatchResult,
    Order,
    OrderStatus,
    OrderType,
    Reason,
    Side,
    StpMode,
    TimeInForce,
    amend,
    match,
)
from tests.market.matching_book import ServiceBook

NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
ALICE, BOB, CHARLIE = "alice-gmbh", "bob-ag", "charlie-ug"
_ids = count(1)


def order(side: Side, price: str, quantity: int, *, org: str = BOB, id: int | None = None, **kwargs: Any) -> Order:
    """An order whose id and priority key both come from one increasing counter unless given."""
    oid = next(_ids) if id is None else id
    kwargs.setdefault("priority", oid)
    return Order(id=oid, side=side, price=Decimal(price), quantity=quantity, organisation=org, **kwargs)


def buy(price: str, quantity: int, **kwargs: Any) -> Order:
    return order(Side.BUY, price, quantity, **kwargs)


def sell(price: str, quantity: int, **kwargs: Any) -> Order:
    return order(Side.SELL, price, quantity, **kwargs)


def trades(result: MatchResult) -> list[tuple[object, str, int]]:
    return [(f.maker_order_id, str(f.price), f.quantity) for f in result.fills]


# -- price-time priority and the trade price ----------------------------------


def test_partial_fills_across_levels_at_each_resting_price_and_the_rest_rests():
    s1, s2, s3 = sell("10.00", 3), sell("10.01", 4), sell("10.02", 5)
    incoming = buy("10.01", 10, org=ALICE)

    result = match(incoming, [s1, s2, s3], now=NOW)

    assert trades(result) == [(s1.id, "10.00", 3), (s2.id, "10.01", 4)]
    assert result.resting_remaining == {s1.id: 0, s2.id: 0}  # s3 does not cross and is untouched
    assert (result.status, result.filled, result.remaining, result.cancelled) == (
        OrderStatus.PARTIALLY_FILLED,
        7,
        3,
        0,
    )
    assert result.rests is True
    assert result.average_price == (Decimal("10.00") * 3 + Decimal("10.01") * 4) / 7
    assert all(f.taker_order_id == incoming.id and f.aggressor is Side.BUY for f in result.fills)
    assert result.fills[0].maker_side is Side.SELL


def test_a_sell_into_a_higher_bid_trades_at_the_bid_price():
    bid = buy("10.05", 5)

    result = match(sell("9.90", 2, org=ALICE), [bid], now=NOW)

    assert result.fills == [Fill(bid.id, result.order_id, Decimal("10.05"), 2, Side.SELL, 3)]
    assert result.status is OrderStatus.FILLED
    assert result.resting_remaining == {bid.id: 3}


def test_time_priority_at_one_price_level():
    first, second, third = sell("10.00", 2), sell("10.00", 2), sell("10.00", 2)

    result = match(buy("10.00", 3, org=ALICE), [first, second, third], now=NOW)

    assert trades(result) == [(first.id, "10.00", 2), (second.id, "10.00", 1)]
    assert result.resting_remaining == {first.id: 0, second.id: 1}


def test_the_book_fills_the_earlier_order_at_a_level_first_and_the_better_price_before_it():
    book = ServiceBook()
    early, late = sell("10.01", 2), sell("10.01", 2)
    better = sell("10.00", 1)
    for o in (early, late, better):
        assert book.submit(o, now=NOW).status is OrderStatus.OPEN

    result = book.submit(buy("10.01", 4, org=ALICE), now=NOW)

    assert trades(result) == [(better.id, "10.00", 1), (early.id, "10.01", 2), (late.id, "10.01", 1)]
    assert book.depth(Side.SELL) == [(Decimal("10.01"), 1)]
    assert book.get(late.id) == Order(
        id=late.id,
        side=Side.SELL,
        price=Decimal("10.01"),
        quantity=2,
        priority=late.priority,
        organisation=BOB,
        filled=1,
    )


def test_a_buy_that_does_not_cross_rests_and_nothing_trades():
    result = match(buy("9.99", 4, org=ALICE), [sell("10.00", 5)], now=NOW)

    assert result == MatchResult(result.order_id, OrderStatus.OPEN, 0, 4, 0, True)


# -- order types and time in force ---------------------------------------------


def test_market_order_trades_only_up_to_its_protection_price_and_never_rests():
    cheap, dear = sell("10.00", 2), sell("14.00", 5)
    # reference price 8.00: the protection price for a market buy is 8.00 + 50 % = 12.00
    market_buy = buy("12.00", 5, org=ALICE, type=OrderType.MARKET)

    result = match(market_buy, [cheap, dear], now=NOW)

    assert trades(result) == [(cheap.id, "10.00", 2)]
    assert (result.status, result.reason, result.filled, result.cancelled) == (
        OrderStatus.CANCELLED,
        Reason.MARKET_REMAINDER,
        2,
        3,
    )
    assert result.rests is False


def test_market_order_fully_filled_within_protection():
    result = match(sell("8.00", 3, org=ALICE, type=OrderType.MARKET), [buy("10.00", 2), buy("9.00", 5)], now=NOW)

    assert [(str(f.price), f.quantity) for f in result.fills] == [("10.00", 2), ("9.00", 1)]
    assert result.status is OrderStatus.FILLED


def test_ioc_remainder_is_cancelled():
    ask = sell("10.00", 2)

    result = match(buy("10.00", 5, org=ALICE, tif=TimeInForce.IOC), [ask], now=NOW)

    assert trades(result) == [(ask.id, "10.00", 2)]
    assert (result.status, result.reason, result.filled, result.remaining, result.cancelled, result.rests) == (
        OrderStatus.CANCELLED,
        Reason.IOC_REMAINDER,
        2,
        0,
        3,
        False,
    )


def test_ioc_without_liquidity_is_cancelled_whole_and_never_enters_the_book():
    book = ServiceBook()
    ioc = buy("10.00", 5, org=ALICE, tif=TimeInForce.IOC)

    result = book.submit(ioc, now=NOW)

    assert (result.status, result.filled, result.cancelled) == (OrderStatus.CANCELLED, 0, 5)
    assert ioc.id not in book
    assert book.best_bid() is None


def test_fok_fills_completely_across_levels_when_there_is_enough():
    a, b = sell("10.00", 2), sell("10.01", 3)

    result = match(buy("10.01", 5, org=ALICE, tif=TimeInForce.FOK), [a, b], now=NOW)

    assert trades(result) == [(a.id, "10.00", 2), (b.id, "10.01", 3)]
    assert result.status is OrderStatus.FILLED


def test_fok_one_gpu_short_trades_nothing_and_is_rejected():
    a, b = sell("10.00", 2), sell("10.01", 3)
    beyond_limit = sell("10.02", 10)

    result = match(buy("10.01", 6, org=ALICE, tif=TimeInForce.FOK), [a, b, beyond_limit], now=NOW)

    assert result.fills == []
    assert (result.status, result.reason, result.filled, result.cancelled, result.rests) == (
        OrderStatus.REJECTED,
        Reason.FOK_NOT_FILLABLE,
        0,
        6,
        False,
    )


def test_rejected_fok_leaves_the_book_unchanged():
    book = ServiceBook()
    book.submit(sell("10.00", 2), now=NOW)
    before = book.orders(Side.SELL)

    result = book.submit(buy("10.00", 3, org=ALICE, tif=TimeInForce.FOK), now=NOW)

    assert result.reason is Reason.FOK_NOT_FILLABLE
    assert book.orders(Side.SELL) == before
    assert book.best_bid() is None


# -- post-only ------------------------------------------------------------------


def test_post_only_rests_when_it_does_not_cross():
    book = ServiceBook()
    book.submit(sell("10.00", 2), now=NOW)

    result = book.submit(buy("9.99", 3, org=ALICE, post_only=True), now=NOW)

    assert (result.status, result.remaining, result.rests) == (OrderStatus.OPEN, 3, True)
    assert book.depth(Side.BUY) == [(Decimal("9.99"), 3)]


def test_post_only_that_would_trade_is_rejected_and_nothing_trades():
    book = ServiceBook()
    ask = sell("10.00", 2)
    book.submit(ask, now=NOW)

    result = book.submit(buy("10.00", 3, org=ALICE, post_only=True), now=NOW)

    assert (result.status, result.reason, result.fills, result.cancelled) == (
        OrderStatus.REJECTED,
        Reason.POST_ONLY_WOULD_TRADE,
        [],
        3,
    )
    assert book.get(ask.id) == ask
    assert book.best_bid() is None


def test_post_only_is_rejected_against_its_own_organisations_crossing_order_too():
    # STP would stop the trade, but resting would leave the book crossed.
    result = match(buy("10.00", 1, org=ALICE, post_only=True), [sell("10.00", 2, org=ALICE)], now=NOW)

    assert result.reason is Reason.POST_ONLY_WOULD_TRADE


def test_post_only_rests_when_the_only_crossing_order_has_expired():
    stale = sell("10.00", 2, tif=TimeInForce.GTD, expires_at=NOW)

    result = match(buy("10.00", 1, org=ALICE, post_only=True), [stale], now=NOW)

    assert (result.status, result.rests, result.expired) == (OrderStatus.OPEN, True, [stale.id])


# -- self-trade prevention -----------------------------------------------------


def _stp_book() -> tuple[Order, Order, Order]:
    return sell("10.00", 2, org=BOB), sell("10.00", 3, org=ALICE), sell("10.01", 5, org=CHARLIE)


def test_stp_cancel_incoming_cancels_the_remainder_where_it_meets_its_own_order():
    bob, own, charlie = _stp_book()

    result = match(buy("10.01", 10, org=ALICE), [bob, own, charlie], now=NOW)

    assert trades(result) == [(bob.id, "10.00", 2)]  # fills before the own order stand
    assert (result.status, result.reason, result.filled, result.cancelled, result.rests) == (
        OrderStatus.CANCELLED,
        Reason.SELF_TRADE_PREVENTION,
        2,
        8,
        False,
    )
    assert result.stp_cancelled == []
    assert own.id not in result.resting_remaining


def test_stp_cancel_resting_cancels_the_own_order_and_matching_goes_on():
    bob, own, charlie = _stp_book()
    incoming = buy("10.01", 10, org=ALICE, stp=StpMode.CANCEL_RESTING)

    result = match(incoming, [bob, own, charlie], now=NOW)

    assert trades(result) == [(bob.id, "10.00", 2), (charlie.id, "10.01", 5)]
    assert result.stp_cancelled == [own.id]
    assert (result.status, result.filled, result.remaining) == (OrderStatus.PARTIALLY_FILLED, 7, 3)


def test_stp_in_the_book_removes_the_cancelled_resting_order():
    book = ServiceBook()
    bob, own, charlie = _stp_book()
    for o in (bob, own, charlie):
        book.submit(o, now=NOW)

    book.submit(buy("10.01", 10, org=ALICE, stp=StpMode.CANCEL_RESTING), now=NOW)

    assert own.id not in book
    assert book.depth(Side.SELL) == []
    assert book.depth(Side.BUY) == [(Decimal("10.01"), 3)]


def test_fok_with_stp_cancel_incoming_counts_only_liquidity_before_its_own_order():
    bob, own, charlie = _stp_book()

    rejected = match(buy("10.01", 3, org=ALICE, tif=TimeInForce.FOK), [bob, own, charlie], now=NOW)
    filled = match(buy("10.01", 2, org=ALICE, tif=TimeInForce.FOK), [bob, own, charlie], now=NOW)

    assert (rejected.reason, rejected.fills) == (Reason.FOK_NOT_FILLABLE, [])
    assert (filled.status, trades(filled)) == (OrderStatus.FILLED, [(bob.id, "10.00", 2)])


def test_fok_with_stp_cancel_resting_skips_own_liquidity_and_cancels_it_only_when_it_executes():
    bob, own, charlie = _stp_book()
    fok = {"org": ALICE, "tif": TimeInForce.FOK, "stp": StpMode.CANCEL_RESTING}

    filled = match(buy("10.01", 7, **fok), [bob, own, charlie], now=NOW)
    rejected = match(buy("10.01", 8, **fok), [bob, own, charlie], now=NOW)

    assert filled.status is OrderStatus.FILLED
    assert trades(filled) == [(bob.id, "10.00", 2), (charlie.id, "10.01", 5)]
    assert filled.stp_cancelled == [own.id]
    assert (rejected.reason, rejected.fills, rejected.stp_cancelled) == (Reason.FOK_NOT_FILLABLE, [], [])


# -- GTD expiry -----------------------------------------------------------------


def test_expired_gtd_resting_orders_are_skipped_and_reported():
    stale = sell("10.00", 5, tif=TimeInForce.GTD, expires_at=NOW)  # expires_at <= now: expired
    live_gtd = sell("10.00", 2, tif=TimeInForce.GTD, expires_at=NOW + timedelta(seconds=1))
    gtc = sell("10.01", 2)

    result = match(buy("10.01", 3, org=ALICE), [stale, live_gtd, gtc], now=NOW)

    assert result.expired == [stale.id]
    assert trades(result) == [(live_gtd.id, "10.00", 2), (gtc.id, "10.01", 1)]
    assert stale.id not in result.resting_remaining


def test_an_expired_own_order_is_reported_expired_not_self_trade():
    stale_own = sell("10.00", 5, org=ALICE, tif=TimeInForce.GTD, expires_at=NOW - timedelta(minutes=1))
    other = sell("10.00", 1)

    result = match(buy("10.00", 1, org=ALICE), [stale_own, other], now=NOW)

    assert (result.expired, result.status, result.stp_cancelled) == ([stale_own.id], OrderStatus.FILLED, [])


def test_incoming_gtd_that_has_already_expired_is_rejected():
    result = match(buy("10.00", 1, org=ALICE, tif=TimeInForce.GTD, expires_at=NOW), [sell("10.00", 1)], now=NOW)

    assert (result.status, result.reason, result.fills) == (OrderStatus.REJECTED, Reason.EXPIRED, [])


def test_book_expire_removes_due_gtd_orders_and_the_book_skips_them_when_matching():
    book = ServiceBook()
    due = sell("10.00", 5, tif=TimeInForce.GTD, expires_at=NOW + timedelta(minutes=5))
    later = sell("10.00", 5, tif=TimeInForce.GTD, expires_at=NOW + timedelta(hours=1))
    book.submit(due, now=NOW)
    book.submit(later, now=NOW)

    result = book.submit(buy("10.00", 1, org=ALICE), now=NOW + timedelta(minutes=5))

    assert result.expired == [due.id]
    assert trades(result) == [(later.id, "10.00", 1)]
    assert book.expire(NOW + timedelta(hours=1)) == [later.id]
    assert len(book) == 0
    assert book.best_ask() is None


# -- amend ----------------------------------------------------------------------


def test_amend_lowering_quantity_keeps_priority():
    resting = sell("10.00", 10, filled=3)

    decision = amend(resting, new_quantity=6, new_priority=999)

    assert (decision.valid, decision.keeps_priority) == (True, True)
    assert decision.order is not None
    assert (decision.order.priority, decision.order.quantity, decision.order.remaining) == (resting.priority, 6, 3)


@pytest.mark.parametrize(
    ("new_price", "new_quantity"),
    [("10.01", None), ("9.99", 5), (None, 11), ("10.01", 4)],
    ids=["price up", "price down, quantity down", "quantity up", "price and quantity"],
)
def test_amend_any_other_change_loses_priority(new_price, new_quantity):
    resting = sell("10.00", 10)

    decision = amend(
        resting, new_price=Decimal(new_price) if new_price else None, new_quantity=new_quantity, new_priority=999
    )

    assert (decision.valid, decision.keeps_priority) == (True, False)
    assert decision.order is not None and decision.order.priority == 999


def test_amend_without_a_change_keeps_priority():
    resting = sell("10.00", 10)

    decision = amend(resting, new_price=Decimal("10.00"), new_quantity=10, new_priority=999)

    assert (decision.keeps_priority, decision.order) == (True, resting)


@pytest.mark.parametrize("new_quantity", [0, -1, 2, 3], ids=["zero", "negative", "below filled", "equal to filled"])
def test_amend_to_no_open_quantity_is_invalid(new_quantity):
    resting = sell("10.00", 10, filled=3)

    decision = amend(resting, new_quantity=new_quantity, new_priority=999)

    assert (decision.valid, decision.order, decision.reason) == (False, None, Reason.QUANTITY_NOT_ABOVE_FILLED)


def test_book_amend_down_keeps_the_place_in_the_queue_and_up_goes_to_the_back():
    book = ServiceBook()
    first, second, third = sell("10.00", 5), sell("10.00", 5), sell("10.00", 5)
    for o in (first, second, third):
        book.submit(o, now=NOW)

    kept, _ = book.amend(first.id, new_quantity=2, new_priority=100, now=NOW)
    lost, reentry = book.amend(second.id, new_quantity=6, new_priority=101, now=NOW)

    assert kept.keeps_priority and not lost.keeps_priority
    assert reentry is not None and reentry.status is OrderStatus.OPEN
    assert [(o.id, o.remaining) for o in book.orders(Side.SELL)] == [(first.id, 2), (third.id, 5), (second.id, 6)]
    assert book.depth(Side.SELL) == [(Decimal("10.00"), 13)]


def test_amended_price_that_crosses_trades_as_a_new_incoming_order_at_the_resting_price():
    book = ServiceBook()
    ask = sell("10.00", 3, org=BOB)
    bid = buy("9.90", 5, org=ALICE)
    book.submit(ask, now=NOW)
    book.submit(bid, now=NOW)

    decision, result = book.amend(bid.id, new_price=Decimal("10.05"), new_priority=50, now=NOW)

    assert decision.keeps_priority is False
    assert result is not None
    assert result.fills == [Fill(ask.id, bid.id, Decimal("10.00"), 3, Side.BUY, 0)]
    assert (result.status, result.remaining) == (OrderStatus.PARTIALLY_FILLED, 2)
    assert book.get(bid.id) == Order(
        id=bid.id, side=Side.BUY, price=Decimal("10.05"), quantity=5, priority=50, organisation=ALICE, filled=3
    )
    assert book.best_ask() is None


def test_amend_then_cross_with_match_as_the_service_does_it():
    resting_bid = buy("9.90", 5, org=ALICE, filled=1)
    asks = [sell("10.00", 2), sell("10.01", 2)]

    decision = amend(resting_bid, new_price=Decimal("10.00"), new_priority=77)
    assert decision.order is not None and not decision.keeps_priority
    result = match(decision.order, asks, now=NOW)

    assert trades(result) == [(asks[0].id, "10.00", 2)]
    assert (result.status, result.filled, result.remaining) == (OrderStatus.PARTIALLY_FILLED, 2, 2)


def test_re_entered_order_with_earlier_fills_that_does_not_trade_is_partially_filled():
    decision = amend(buy("9.90", 5, org=ALICE, filled=1), new_price=Decimal("9.95"), new_priority=77)
    assert decision.order is not None

    result = match(decision.order, [sell("10.00", 1)], now=NOW)

    assert (result.status, result.remaining) == (OrderStatus.PARTIALLY_FILLED, 4)


def test_post_only_amended_into_a_crossing_price_is_refused_and_the_order_stands():
    book = ServiceBook()
    book.submit(sell("10.00", 3), now=NOW)
    bid = buy("9.90", 5, org=ALICE, post_only=True)
    book.submit(bid, now=NOW)

    decision, result = book.amend(bid.id, new_price=Decimal("10.00"), new_priority=50, now=NOW)

    assert decision.valid and result is not None
    assert (result.status, result.reason) == (OrderStatus.REJECTED, Reason.POST_ONLY_WOULD_TRADE)
    assert book.get(bid.id) == bid


def test_book_amend_of_an_expired_gtd_order_removes_it():
    book = ServiceBook()
    gtd = buy("9.90", 5, org=ALICE, tif=TimeInForce.GTD, expires_at=NOW)
    book.submit(gtd, now=NOW - timedelta(hours=1))

    decision, result = book.amend(gtd.id, new_quantity=4, new_priority=50, now=NOW)

    assert (decision.valid, decision.reason, result) == (False, Reason.EXPIRED, None)
    assert gtd.id not in book


# -- the book --------------------------------------------------------------------


def test_cancel_removes_the_order_and_answers_its_open_quantity():
    book = ServiceBook()
    a, b = buy("9.99", 2), buy("9.99", 3)
    book.submit(a, now=NOW)
    book.submit(b, now=NOW)

    assert book.cancel(a.id) == 2
    assert book.cancel(a.id) is None
    assert book.depth(Side.BUY) == [(Decimal("9.99"), 3)]
    assert book.cancel(b.id) == 3
    assert (book.best_bid(), len(book)) == (None, 0)


def test_depth_is_best_first_on_both_sides():
    book = ServiceBook()
    for o in (buy("9.98", 1), buy("9.99", 2), buy("9.98", 3), sell("10.02", 4), sell("10.01", 5)):
        book.submit(o, now=NOW)

    assert book.depth(Side.BUY) == [(Decimal("9.99"), 2), (Decimal("9.98"), 4)]
    assert book.depth(Side.SELL, 1) == [(Decimal("10.01"), 5)]
    assert (book.best_bid(), book.best_ask()) == (Decimal("9.99"), Decimal("10.01"))


def test_match_over_the_crossing_orders_the_service_reads_equals_match_over_the_whole_side():
    # The service reads the crossing side only until other organisations' unexpired
    # orders hold the taker's quantity; what lies beyond must not change the answer.
    resting = [sell("10.00", 2), sell("10.00", 1, org=ALICE), sell("10.01", 3), sell("10.02", 4), sell("10.03", 9)]
    book = ServiceBook()
    for o in resting:
        book.submit(o, now=NOW)
    incoming = buy("10.02", 5, org=ALICE, stp=StpMode.CANCEL_RESTING)

    assert [o.id for o in book.crossing(incoming, NOW)] == [o.id for o in resting[:3]]
    assert book.submit(incoming, now=NOW) == match(incoming, resting, now=NOW)


# -- malformed input is a service bug: ValueError ------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"price": Decimal("-0.01")},
        {"price": Decimal("NaN")},
        {"price": Decimal("Infinity")},
        {"price": 10.0},
        {"quantity": 0},
        {"quantity": 2.5},
        {"quantity": True},
        {"quantity": 3, "filled": 3},
        {"filled": -1},
        {"tif": TimeInForce.GTD},
        {"expires_at": NOW},
        {"tif": TimeInForce.GTD, "expires_at": datetime(2026, 11, 28, 14, 0)},  # noqa: DTZ001 - naive on purpose
        {"post_only": True, "tif": TimeInForce.IOC},
        {"post_only": True, "type": OrderType.MARKET},
        {"side": "buy"},
    ],
)
def test_malformed_orders_are_refused(kwargs):
    fields = {"id": 1, "side": Side.BUY, "price": Decimal("10.00"), "quantity": 5, "priority": 1, "organisation": ALICE}

    with pytest.raises(ValueError):
        Order(**{**fields, **kwargs})


@pytest.mark.parametrize(("low", "high"), [("10.00", "10.05"), ("10.000", "10.001"), ("10", "11")])
def test_the_core_matches_on_any_grid_the_instrument_has(low, high):
    # The tick is the instrument's (Instrument.tick_size), checked by the order
    # service; the core only needs finite non-negative Decimal prices.
    cheap, dear = sell(low, 2), sell(high, 2)

    result = match(buy(high, 3, org=ALICE), [cheap, dear], now=NOW)

    assert trades(result) == [(cheap.id, low, 2), (dear.id, high, 1)]
    assert result.status is OrderStatus.FILLED


def test_match_refuses_resting_orders_out_of_priority_order_or_on_the_wrong_side():
    incoming = buy("10.05", 1, org=ALICE)
    early, late = sell("10.00", 1), sell("10.00", 1)

    with pytest.raises(ValueError, match="priority"):
        match(incoming, [sell("10.01", 1), sell("10.00", 1)], now=NOW)  # worse price first
    with pytest.raises(ValueError, match="priority"):
        match(incoming, [late, early], now=NOW)  # later order first at one price
    with pytest.raises(ValueError, match="other side"):
        match(incoming, [buy("10.00", 1)], now=NOW)
    with pytest.raises(ValueError, match="cannot rest"):
        match(incoming, [sell("10.00", 1, tif=TimeInForce.IOC)], now=NOW)
    with pytest.raises(ValueError, match="timezone"):
        match(incoming, [], now=NOW.replace(tzinfo=None))

