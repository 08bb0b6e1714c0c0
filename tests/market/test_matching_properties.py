"""Properties of the matching core over random order flows (hypothesis, no database).

A flow is a list of operations (submit, cancel, amend, clock tick) run through
``ServiceBook`` (tests/market/matching_book.py): resting orders kept as the
order service keeps them, each incoming order matched by ``match()`` over the
crossing orders read as ``_load_crossing`` reads them. Beside the book, the test keeps its own ledger of every order,
built only from what the core answers, and checks after every operation:

* conservation: for every order, filled + open + cancelled == entered, where
  ``entered`` is its first quantity plus every amend increase and
  ``cancelled`` counts rejections, IOC/market/STP remainders, resting orders
  cancelled by STP or expired, cancels and amend reductions; and each match
  accounts for the whole open quantity it was given;
* the book equals the ledger (every open order, its open and filled quantity,
  price-time order of each side) and is never crossed (best bid < best ask);
* every fill is at the maker's price, within the taker's limit, and the maker
  was on the other side and not of the taker's organisation;
* price-time priority: after a match, no order that was ahead of a filled
  maker (better price, or same price and earlier priority key) still rests;
* FOK fills all or nothing; IOC and market orders never rest; post-only never
  takes liquidity;
* against a plain re-count of the ledger's unexpired crossing liquidity (own
  organisation's orders skipped or stopping the count, as STP says): an order
  fills exactly min(quantity, that liquidity), FOK is rejected exactly when it
  is short, post-only exactly when anything unexpired crosses;
* ``match()`` over the crossing orders the service reads (only as far as the
  taker can use them) gives exactly what it gives over the whole other side;
* determinism: the same flow gives the same answers.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from market.matching import (
    MatchResult,
    Order,
    OrderStatus,
    OrderType,
    Side,
    StpMode,
    TimeInForce,
    amend,
    match,
)
from tests.market.matching_book import ServiceBook

START = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
BASE = Decimal("10.00")
TICK = Decimal("0.01")
ORGS = ("alice", "bob", "charlie")
KINDS = ("gtc", "gtc", "gtd", "gtd", "ioc", "fok", "fok", "market", "post_only", "post_only")

submit_op = st.tuples(
    st.just("submit"),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(-2, 2),  # price, ticks from 10.00: a narrow band, so orders meet often
    st.integers(1, 6),  # quantity
    st.sampled_from(ORGS),
    st.sampled_from(KINDS),
    st.sampled_from([StpMode.CANCEL_INCOMING, StpMode.CANCEL_RESTING]),
    st.integers(1, 4),  # GTD lifetime in clock ticks
)
cancel_op = st.tuples(st.just("cancel"), st.integers(0, 1000))
amend_op = st.tuples(
    st.just("amend"),
    st.integers(0, 1000),  # which order (modulo the orders so far)
    st.none() | st.integers(-2, 2),  # new price, ticks from 10.00
    st.none() | st.integers(-1, 8),  # new total quantity
)
tick_op = st.tuples(st.just("tick"), st.integers(1, 2))
expire_op = st.tuples(st.just("expire"))
flows = st.lists(
    st.one_of(submit_op, submit_op, submit_op, cancel_op, amend_op, tick_op, expire_op), min_size=30, max_size=120
)


@dataclass
class Ledger:
    order: Order  # as last entered (price, priority, quantity as last amended)
    entered: int
    filled: int = 0
    open: int = 0
    cancelled: int = 0


@dataclass
class Harness:
    book: ServiceBook = field(default_factory=ServiceBook)
    ledger: dict[Hashable, Ledger] = field(default_factory=dict)
    now: datetime = START
    next_key: int = 1
    answers: list[object] = field(default_factory=list)

    def key(self) -> int:
        self.next_key += 1
        return self.next_key

    # -- operations ---------------------------------------------------------

    def run(self, flow: list[tuple[Any, ...]]) -> list[object]:
        for op in flow:
            getattr(self, op[0])(*op[1:])
            self.check_book()
        return self.answers

    def submit(self, side: Side, ticks: int, quantity: int, org: str, kind: str, stp: StpMode, life: int) -> None:
        oid = self.key()
        price = BASE + ticks * TICK
        tif, order_type, expires_at = TimeInForce.GTC, OrderType.LIMIT, None
        if kind == "gtd":
            tif, expires_at = TimeInForce.GTD, self.now + timedelta(minutes=life)
        elif kind == "ioc":
            tif = TimeInForce.IOC
        elif kind == "fok":
            tif = TimeInForce.FOK
        elif kind == "market":
            # protection price: reference 10.00 +/- 50 %; GTC, which a market order ignores
            price = BASE * Decimal("1.5") if side is Side.BUY else BASE * Decimal("0.5")
            order_type = OrderType.MARKET
        order = Order(
            id=oid,
            side=side,
            price=price,
            quantity=quantity,
            priority=oid,
            organisation=org,
            type=order_type,
            tif=tif,
            expires_at=expires_at,
            post_only=kind == "post_only",
            stp=stp,
        )
        self.ledger[oid] = Ledger(order, entered=quantity)

        tradable, blocked = self.liquidity(order)
        expected = match(order, self.book.orders(side.opposite), now=self.now)
        result = self.book.submit(order, now=self.now)
        assert result == expected, "match() over what the service reads and over the whole side disagree"
        self.answers.append(result)
        self.apply(order, result, need=quantity)

        if order.post_only:
            assert (result.status is OrderStatus.REJECTED) == (tradable > 0 or blocked)
        elif order.tif is TimeInForce.FOK:
            assert result.filled in (0, quantity)
            assert (result.status is OrderStatus.REJECTED) == (tradable < quantity)
        else:
            assert result.filled == min(quantity, tradable)
        if order.tif is TimeInForce.IOC or order.type is OrderType.MARKET:
            assert not result.rests and oid not in self.book
        if order.post_only:
            assert result.fills == []
            assert result.status in (OrderStatus.OPEN, OrderStatus.REJECTED)

    def cancel(self, index: int) -> None:
        if not self.ledger:
            return
        oid = list(self.ledger)[index % len(self.ledger)]
        entry = self.ledger[oid]
        answer = self.book.cancel(oid)
        self.answers.append(("cancel", oid, answer))
        if entry.open:
            assert answer == entry.open
            entry.cancelled += entry.open
            entry.open = 0
        else:
            assert answer is None

    def amend(self, index: int, ticks: int | None, quantity: int | None) -> None:
        if not self.ledger:
            return
        oid = list(self.ledger)[index % len(self.ledger)]
        entry = self.ledger[oid]
        if not entry.open:
            assert oid not in self.book
            return
        new_price = None if ticks is None else BASE + ticks * TICK
        key = self.key()
        current = self.book.get(oid)
        assert current is not None
        pure = amend(current, new_price=new_price, new_quantity=quantity, new_priority=key)
        decision, result = self.book.amend(
            oid, new_price=new_price, new_quantity=quantity, new_priority=key, now=self.now
        )
        self.answers.append((decision, result))

        expired_self = entry.order.expires_at is not None and entry.order.expires_at <= self.now
        if expired_self:
            assert (decision.valid, result) == (False, None)
            entry.cancelled += entry.open
            entry.open = 0
            return
        assert decision == pure
        if not decision.valid:
            assert quantity is not None and quantity <= entry.filled and result is None
            return
        amended = decision.order
        assert amended is not None
        if decision.keeps_priority:
            assert result is None
            assert amended.priority == entry.order.priority and amended.price == entry.order.price
            entry.cancelled += entry.open - amended.remaining
            entry.open = amended.remaining
            entry.order = amended
            return
        assert result is not None
        assert amended.priority == key and (amended.price != current.price or amended.quantity > current.quantity)
        if result.status is OrderStatus.REJECTED:
            # Refused re-entry (post-only into a crossing price): the order stands as it was.
            assert entry.order.post_only
            self.apply(amended, result, need=amended.remaining, taker_stands=True)
            return
        delta = amended.quantity - (entry.filled + entry.open)
        if delta > 0:
            entry.entered += delta
        else:
            entry.cancelled -= delta
        entry.open = 0
        entry.order = amended
        self.apply(amended, result, need=amended.remaining)

    def liquidity(self, taker: Order) -> tuple[int, bool]:
        """From the ledger alone: how much the taker may trade at once under STP, and whether
        an order of its own organisation crosses it (unexpired resting orders only)."""
        sign = -1 if taker.side is Side.SELL else 1
        crossing = sorted(
            (
                e
                for e in self.ledger.values()
                if e.open
                and e.order.side is taker.side.opposite
                and (e.order.expires_at is None or e.order.expires_at > self.now)
                and (e.order.price <= taker.price if taker.side is Side.BUY else e.order.price >= taker.price)
            ),
            key=lambda e: (sign * e.order.price, e.order.priority),
        )
        tradable = 0
        for e in crossing:
            if e.order.organisation == taker.organisation:
                if taker.stp is StpMode.CANCEL_INCOMING:
                    return tradable, True
                continue
            tradable += e.open
        return tradable, any(e.order.organisation == taker.organisation for e in crossing)

    def tick(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    def expire(self) -> None:
        due = sorted(
            (
                e
                for e in self.ledger.values()
                if e.open and e.order.expires_at is not None and e.order.expires_at <= self.now
            ),
            key=lambda e: e.order.priority,
        )
        answer = self.book.expire(self.now)
        self.answers.append(("expire", answer))
        assert answer == [e.order.id for e in due]
        for e in due:
            e.cancelled += e.open
            e.open = 0

    # -- bookkeeping and checks ---------------------------------------------

    def apply(self, taker: Order, result: MatchResult, *, need: int, taker_stands: bool = False) -> None:
        assert result.order_id == taker.id
        assert result.filled + result.remaining + result.cancelled == need
        assert result.filled == sum(f.quantity for f in result.fills)
        assert result.rests == (result.remaining > 0)
        assert result.rests == (result.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED))
        assert (result.status is OrderStatus.FILLED) == (result.filled == need)
        if result.status is OrderStatus.REJECTED:
            assert result.fills == [] and result.stp_cancelled == [] and result.cancelled == need
        makers = [f.maker_order_id for f in result.fills]
        assert len(makers) == len(set(makers)), "a resting order appears in at most one fill per match"

        for f in result.fills:
            maker = self.ledger[f.maker_order_id]
            assert maker.order.side is taker.side.opposite and f.aggressor is taker.side
            assert maker.order.organisation != taker.organisation
            assert f.price == maker.order.price, "a trade executes at the resting order's price"
            assert f.price <= taker.price if taker.side is Side.BUY else f.price >= taker.price
            assert f.taker_order_id == taker.id
            assert 0 < f.quantity <= maker.open
            maker.open -= f.quantity
            maker.filled += f.quantity
            assert maker.open == f.maker_remaining
        for oid in result.stp_cancelled:
            resting = self.ledger[oid]
            assert resting.order.organisation == taker.organisation and resting.open > 0
            resting.cancelled += resting.open
            resting.open = 0
        for oid in result.expired:
            resting = self.ledger[oid]
            assert resting.order.expires_at is not None and resting.order.expires_at <= self.now and resting.open > 0
            resting.cancelled += resting.open
            resting.open = 0
        if not taker_stands:
            own = self.ledger[taker.id]
            own.filled += result.filled
            own.open = result.remaining
            own.cancelled += result.cancelled
            if result.rests:
                expected_status = OrderStatus.PARTIALLY_FILLED if own.filled else OrderStatus.OPEN
                assert result.status is expected_status

        # Price-time priority: nothing that was ahead of a filled maker still rests.
        for f in result.fills:
            made = self.ledger[f.maker_order_id].order
            for other in self.ledger.values():
                if other.open and other.order.side is made.side and other.order.id != made.id:
                    o = other.order
                    better = o.price > made.price if made.side is Side.BUY else o.price < made.price
                    assert not better, f"{o.id} at a better price still rests after {made.id} filled"
                    assert not (o.price == made.price and o.priority < made.priority), (
                        f"{o.id} is ahead of {made.id} in time but still rests after {made.id} filled"
                    )

    def check_book(self) -> None:
        for oid, entry in self.ledger.items():
            assert entry.filled + entry.open + entry.cancelled == entry.entered, f"quantity of {oid} not conserved"
            resting = self.book.get(oid)
            if entry.open:
                assert resting is not None
                assert (resting.remaining, resting.filled, resting.price) == (
                    entry.open,
                    entry.filled,
                    entry.order.price,
                )
            else:
                assert resting is None
        assert len(self.book) == sum(1 for e in self.ledger.values() if e.open > 0)

        for side in (Side.BUY, Side.SELL):
            sign = -1 if side is Side.BUY else 1
            expected = sorted(
                (e.order for e in self.ledger.values() if e.open and e.order.side is side),
                key=lambda o: (sign * o.price, o.priority),
            )
            assert [o.id for o in self.book.orders(side)] == [o.id for o in expected]
            levels = self.book.depth(side)
            assert sum(q for _, q in levels) == sum(self.ledger[o.id].open for o in expected)
            assert all(q > 0 for _, q in levels)

        bid, ask = self.book.best_bid(), self.book.best_ask()
        if bid is not None and ask is not None:
            assert bid < ask, f"crossed book: bid {bid} >= ask {ask}"


@settings(max_examples=400, deadline=None)
@given(flows)
def test_random_flows_keep_every_invariant(flow):
    Harness().run(flow)


@settings(max_examples=100, deadline=None)
@given(flows)
def test_the_same_flow_gives_the_same_answers(flow):
    first = Harness().run(flow)
    second = Harness().run(flow)

    assert first == second


@settings(max_examples=300, deadline=None)
@given(
    price=st.integers(-4, 4),
    quantity=st.integers(1, 10),
    filled=st.integers(0, 9),
    new_price=st.none() | st.integers(-4, 4),
    new_quantity=st.none() | st.integers(-2, 12),
)
def test_amend_keeps_priority_exactly_when_nothing_but_a_reduction_happens(
    price, quantity, filled, new_price, new_quantity
):
    if filled >= quantity:
        filled = quantity - 1
    order = Order(
        id=1, side=Side.SELL, price=BASE + price * TICK, quantity=quantity, priority=1, organisation="a", filled=filled
    )
    target_price = order.price if new_price is None else BASE + new_price * TICK
    target_quantity = quantity if new_quantity is None else new_quantity

    decision = amend(
        order,
        new_price=None if new_price is None else target_price,
        new_quantity=new_quantity,
        new_priority=2,
    )

    assert decision.valid == (target_quantity > filled)
    if decision.valid:
        assert decision.order is not None
        assert decision.keeps_priority == (target_price == order.price and target_quantity <= quantity)
        assert decision.order.priority == (1 if decision.keeps_priority else 2)
        assert (decision.order.price, decision.order.quantity, decision.order.filled) == (
            target_price,
            target_quantity,
            filled,
        )
    else:
        assert decision.order is None
