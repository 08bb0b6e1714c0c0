"""Order entry of the continuous segments: submit, cancel, amend, expire.

The design is docs/architecture.md, "Continuous trading ... (issue 3)".
``market.matching`` (pure) decides; this module checks, locks, persists and
posts. The database is the book: an order rests while its status is open or
partially filled, and every write to an instrument's orders, trades and
positions happens while its ``Instrument`` row is locked.

One transaction per request (``@transaction.atomic(durable=True)`` on the
``_*_tx`` functions), retried as a whole up to ``MAX_RETRIES`` times when
PostgreSQL aborts it for a deadlock or a serialization failure. Lock order,
always: instrument row -> seller organisation row -> ledger account rows (in
pk order within each posting, ``clearing.services.ledger_post``).

Decisions (beyond the design):

* A refused request writes nothing, no order row either. That includes a FOK
  order that cannot fill (``fok_not_fillable``) and a post-only order that
  would trade (``post_only_would_trade``): they are answered as errors and
  the transaction is rolled back, so ``rejected`` is never stored in v1. An
  IOC or market remainder, or a remainder stopped by self-trade prevention,
  is an ordinary cancellation of an order that was created (and may have
  traded): status ``cancelled`` with the reason.
* Only the intraday segment trades in this issue; futures orders are refused
  with ``not_permitted`` until margining exists (the futures issue).
* Sell prices are at least ``clearing.fees.min_sell_price`` (0.03 EUR/GPUh
  at a taker rate of 0.015 and 19 % VAT): the seller's fee step comes out of
  the proceeds, and below that price it could exceed them.
  A lower sell price is ``price_out_of_bounds``.
* A market order's protection price is the reference price (last trade, else
  the mid of best bid and ask, else the middle of the price bounds) +50 %
  for a buy, rounded down to the tick, or -50 % for a sell, rounded up, then
  clipped to the bounds (and the sell floor). A market buy reserves cash at
  that price; what it does not use is released with its remainder.
* Cancel is allowed while the instrument is halted or closed (it only ever
  takes risk out); submit and amend are not.
* Amending an order that is no longer resting (filled, cancelled, expired,
  or a GTD order past its expiry that the job has not reached yet) or
  cancelling one answers ``order_not_open`` (409).
* Sell capacity: ``capacity_check`` (``market.services.capacity``) gets the
  order's whole quantity (an amend: the increase) and accounts for resale
  of a long position itself (a pure resale passes).
* Fee rates: an order stores the intraday rates in force at its entry
  (``Order.maker_rate``/``taker_rate``; its reservation uses the taker
  rate), and a fill pays the lower of those and the rates in force at the
  fill (``clearing.selectors.fee_terms_at``). Fees are exact and held per
  month (``clearing.services.fees.FeeBook``; docs "Fees as published").
* Broadcasts run after commit (``transaction.on_commit``, robust: a channel
  layer failure is logged and never turns a committed order into an error).
  Two transactions of one instrument commit in sequence order, but their
  after-commit callbacks run in their own threads, so a client may receive
  update N+1 before N; the sequence numbers let it notice and re-snapshot.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Max, Min, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg import errors as pg_errors

from accounts.models import Organisation
from accounts.services import trading_gate
from clearing import fees
from clearing.selectors import fee_terms_at
from clearing.services import (
    LedgerAccounts,
    Posting,
    delivery_tickets_for_trade,
    ledger_accounts,
    ledger_post_all,
    release_posting,
    reserve_posting,
    trade_posting,
)
from clearing.services.allocation import CannotDeliver
from clearing.services.fees import FeeBook
from exchange.errors import ExchangeError
from exchange.formats import number
from exchange.locks import lock_organisations
from market import broadcast, matching
from market.models import (
    RESTING_STATUSES,
    Instrument,
    InstrumentStatus,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Segment,
    Side,
    StpMode,
    TimeInForce,
    Trade,
)
from market.selectors.orders import (
    OrderFill,
    OrderView,
    fill_payload,
    order_payload,
    orders_with_fills,
    own_fill,
    public_trade_payload,
)
from market.services import capacity

if TYPE_CHECKING:
    from accounts.models import Membership, User

log = logging.getLogger(__name__)

MAX_RETRIES = 3
MAX_BATCH = 100
# Far above any member's GPUs of one class in one hour; keeps every sum in its column.
MAX_ORDER_QUANTITY = 1_000_000
PROTECTION_BAND = Decimal("0.5")
CLIENT_ORDER_ID_MAX_LENGTH = 64

# Reasons stored on orders this module ends (besides matching.Reason values).
REASON_CANCELLED = "cancelled_by_member"
REASON_EXPIRED = matching.Reason.EXPIRED.value
REASON_INSTRUMENT_CLOSED = "instrument_closed"

T = TypeVar("T")


class _RestingUnfillable(Exception):
    """A resting order cannot be filled for its own reasons (its seller's
    sites cannot deliver); the transaction is rolled back, the order is
    cancelled, and the incoming order is entered again."""

    def __init__(self, order_id: int) -> None:
        super().__init__(order_id)
        self.order_id = order_id


REASON_CANNOT_DELIVER = "cannot_deliver"
MAX_UNFILLABLE = 5


@dataclass(frozen=True)
class SubmitResult:
    order: Order
    created: bool
    # The order with its fills as the transaction left it (None for a
    # resend): the API answers from it without reading the order again.
    view: OrderView | None = None


# --- seams -------------------------------------------------------------------------------
# The concurrency tests' control twins replace these to show the races they
# prevent (tests/market/test_orders_concurrency.py). Nothing else should.


def _lock_instrument(instrument_id: int) -> Instrument:
    """Lock and re-read the instrument: every write to its book waits here.
    FOR NO KEY UPDATE: the lock only serialises, and must not block the
    foreign-key checks of inserts that point at the instrument."""
    return (Instrument.objects.select_related("zone").select_for_update(no_key=True, of=("self",))
            .get(pk=instrument_id))


def _lock_organisations(organisation_ids: set[int]) -> None:
    """Step 2 of the lock order (``exchange.locks``): every organisation
    whose money, commitments or capacity the transaction changes, in id
    order, before the first write. Serialises one organisation's
    sell-side commitments across instruments."""
    lock_organisations(organisation_ids)


def _reserve_cash(changes: _Changes, *, organisation: Organisation, amount: Decimal, reference: str,
                  actor: User | None) -> None:
    assert changes.book is not None, "lock the organisations first"  # noqa: S101 (programming error)
    changes.post(reserve_posting(book=changes.book, organisation_id=organisation.pk, amount=amount,
                                 reference=reference, actor=actor))


# --- helpers -----------------------------------------------------------------------------


def _clock(instrument: Instrument, now: datetime | None) -> datetime:
    """The transaction's time, read AFTER the instrument lock: an order that
    queued behind the lock past ``closes_at`` or its own expiry is judged at
    the time it actually gets to the book. Never earlier than the
    instrument's last trade, so ``executed_at`` never decreases with the
    trade id. ``now`` (tests, jobs) is taken as given."""
    at = now or timezone.now()
    if instrument.last_trade_at is not None and at < instrument.last_trade_at:
        return instrument.last_trade_at
    return at


def _entry_rates(order: Order) -> fees.FeeRates:
    return fees.FeeRates(maker=order.maker_rate, taker=order.taker_rate)


def _fill_rate(order: Order, *, taker: bool, rates: fees.FeeRates) -> Decimal:
    """The rate a fill of ``order`` pays: the lower of the rate in force at
    its entry and the one in force now (market rules §3)."""
    if taker:
        return min(order.taker_rate, rates.taker)
    return min(order.maker_rate, rates.maker)


def _is_transient(error: OperationalError) -> bool:
    return isinstance(error.__cause__, (pg_errors.DeadlockDetected, pg_errors.SerializationFailure))


def _with_retries(work: Callable[[], T]) -> T:
    """Run a whole transaction again when PostgreSQL aborted it for a
    deadlock or a serialization failure (see the lock order above)."""
    attempt = 0
    while True:
        try:
            return work()
        except OperationalError as error:
            if attempt >= MAX_RETRIES or not _is_transient(error):
                raise
            attempt += 1
            log.warning("order transaction aborted (%s); retry %d of %d", error.__cause__, attempt, MAX_RETRIES)
            # A little random back-off so two retried transactions do not collide again.
            time.sleep(random.uniform(0, 0.02 * attempt))  # noqa: S311 (jitter, not security)


def _invalid(fields: dict[str, list[str]]) -> ExchangeError:
    return ExchangeError("invalid", _("The order is invalid."), fields)


def _not_open(order: Order) -> ExchangeError:
    return ExchangeError(
        "order_not_open",
        _("The order is %(status)s and no longer in the book.") % {"status": OrderStatus(order.status).label},
        status=409,
    )


def _to_tick(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return ((value / tick).to_integral_value(rounding=rounding) * tick).quantize(fees.CENT)


def _core(order: Order) -> matching.Order:
    """The order as the matching core sees it."""
    return matching.Order(
        id=order.pk or 0,  # an incoming order is matched before it is written
        side=matching.Side(order.side),
        price=order.price,
        quantity=order.quantity,
        priority=order.priority,
        organisation=order.organisation_id,
        type=matching.OrderType(order.type),
        tif=matching.TimeInForce(order.time_in_force),
        expires_at=order.expires_at,
        post_only=order.post_only,
        stp=matching.StpMode(order.stp_mode),
        filled=order.filled_quantity,
    )


def _reservation(order: Order, hours: int) -> Decimal:
    """What a buy order's open quantity needs reserved at its entry's taker
    rate (0.00 for sells and for nothing open)."""
    if order.side != Side.BUY:
        return Decimal("0.00")
    return fees.open_buy_reservation(order.price, order.quantity - order.filled_quantity, hours, order.taker_rate)


def _check_segment(instrument: Instrument) -> None:
    if instrument.segment == Segment.FUTURES:
        # Left for the futures issue: orders need the initial-margin check first.
        raise ExchangeError("not_permitted", _("Futures trading opens with margining."))
    if instrument.segment != Segment.INTRADAY:
        raise ExchangeError("not_permitted", _("Only instruments of continuous trading take orders."))


def _check_open(instrument: Instrument, now: datetime) -> None:
    if instrument.accepts_orders_at(now):
        return
    if instrument.status == InstrumentStatus.HALTED:
        raise ExchangeError("market_halted", _("Trading in %(symbol)s is halted.") % {"symbol": instrument.symbol})
    raise ExchangeError("instrument_closed",
                        _("%(symbol)s does not take orders now.") % {"symbol": instrument.symbol})


def _check_quantity(instrument: Instrument, quantity: Any) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_ORDER_QUANTITY:
        raise _invalid({"quantity": [_("Enter a whole number of GPUs from 1 to %(max)s.")
                                     % {"max": number(MAX_ORDER_QUANTITY, 0)}]})
    if quantity % instrument.lot_size:
        raise _invalid({"quantity": [_("The quantity must be a multiple of the lot size %(lot)d.")
                                     % {"lot": instrument.lot_size}]})


def _check_price(instrument: Instrument, side: str, price: Any, rates: fees.FeeRates) -> Decimal:
    if not isinstance(price, Decimal) or not price.is_finite():
        raise _invalid({"price": [_("Enter the price as a decimal number of euros.")]})
    tick = instrument.tick_size
    if price % tick:
        message = _("The price must be a multiple of the tick size %(tick)s EUR/GPUh.") % {"tick": number(tick)}
        raise ExchangeError("tick_size", message, {"price": [message]})
    low, high = instrument.min_price, instrument.max_price
    if not low <= price <= high:
        message = _("The price must be between %(min)s and %(max)s EUR/GPUh.") % {
            "min": number(low), "max": number(high)}
        raise ExchangeError("price_out_of_bounds", message, {"price": [message]})
    floor = fees.min_sell_price(rates.taker, tick)
    if side == Side.SELL and price < floor:
        message = _("A sell price must be at least %(floor)s EUR/GPUh, or the fee would exceed the proceeds.") % {
            "floor": number(floor)}
        raise ExchangeError("price_out_of_bounds", message, {"price": [message]})
    return price.quantize(fees.CENT)


def _check_request(
    *, side: str, type: str, price: Any, time_in_force: str, expires_at: datetime | None, post_only: bool,
    client_order_id: str | None, stp_mode: str, now: datetime,
) -> None:
    """The rules that need no instrument state; all field errors at once."""
    fields: dict[str, list[str]] = {}
    if side not in Side.values:
        fields["side"] = [_('Choose "buy" or "sell".')]
    if type not in OrderType.values:
        fields["type"] = [_('Choose "limit" or "market".')]
    elif type == OrderType.LIMIT and price is None:
        fields["price"] = [_("A limit order needs a price.")]
    elif type == OrderType.MARKET and price is not None:
        fields["price"] = [_("A market order takes no price: it trades up to its protection price.")]
    if time_in_force not in TimeInForce.values:
        fields["time_in_force"] = [_("Choose GTC, GTD, IOC or FOK.")]
    elif time_in_force == TimeInForce.GTD:
        if expires_at is None:
            fields["expires_at"] = [_("A GTD order needs an expiry time.")]
        elif timezone.is_naive(expires_at):
            fields["expires_at"] = [_("Give the expiry time with its UTC offset.")]
        elif expires_at <= now:
            fields["expires_at"] = [_("The expiry time must be in the future.")]
    elif expires_at is not None:
        fields["expires_at"] = [_("Only GTD orders have an expiry time.")]
    if post_only and (type != OrderType.LIMIT or time_in_force not in (TimeInForce.GTC, TimeInForce.GTD)):
        fields["post_only"] = [_("Post-only is for limit orders that may rest (GTC or GTD).")]
    if client_order_id is not None and not 1 <= len(client_order_id) <= CLIENT_ORDER_ID_MAX_LENGTH:
        fields["client_order_id"] = [_("Use 1 to %(max)d characters.") % {"max": CLIENT_ORDER_ID_MAX_LENGTH}]
    if stp_mode not in StpMode.values:
        fields["stp_mode"] = [_('Choose "cancel_incoming" or "cancel_resting".')]
    if fields:
        raise _invalid(fields)


def _protection_price(instrument: Instrument, side: str, rates: fees.FeeRates) -> Decimal:
    """A market order's limit: the reference price +/-50 %, within the bounds (see the module docstring)."""
    tick = instrument.tick_size
    reference = Trade.objects.filter(instrument=instrument).order_by("-id").values_list("price", flat=True).first()
    if reference is None:
        best = Order.objects.filter(instrument=instrument, status__in=RESTING_STATUSES).aggregate(
            bid=Max("price", filter=Q(side=Side.BUY)), ask=Min("price", filter=Q(side=Side.SELL)))
        if best["bid"] is not None and best["ask"] is not None:
            reference = _to_tick((best["bid"] + best["ask"]) / 2, tick, ROUND_HALF_UP)
        else:
            reference = _to_tick((instrument.min_price + instrument.max_price) / 2, tick, ROUND_HALF_UP)
    if side == Side.BUY:
        return max(instrument.min_price, min(instrument.max_price,
                                             _to_tick(reference * (1 + PROTECTION_BAND), tick, ROUND_DOWN)))
    floor = max(instrument.min_price, fees.min_sell_price(rates.taker, tick))
    return min(instrument.max_price, max(floor, _to_tick(reference * (1 - PROTECTION_BAND), tick, ROUND_UP)))


def _existing(organisation: Organisation, client_order_id: str | None) -> Order | None:
    if client_order_id is None:
        return None
    return Order.objects.select_related("instrument").filter(
        organisation=organisation, client_order_id=client_order_id).first()


def _own_order(organisation: Organisation, order_id: Any) -> Order:
    order = None
    if isinstance(order_id, int) and not isinstance(order_id, bool):
        order = Order.objects.filter(pk=order_id, organisation=organisation).only("pk", "instrument_id").first()
    if order is None:
        # Another organisation's order does not exist for this one (404, never 403).
        raise ExchangeError("not_found", _("This order does not exist."))
    return order


# --- what one transaction changed ---------------------------------------------------------


@dataclass
class _PositionDelta:
    quantity: int = 0
    bought: int = 0
    sold: int = 0
    buy_cost: Decimal = Decimal("0.00")
    sell_proceeds: Decimal = Decimal("0.00")


@dataclass
class _Changes:
    """Collects what one transaction does to one instrument's book: the
    journal entries (posted together at the end, ``ledger_post_all``), the
    positions, the book sequence and the broadcasts."""

    instrument: Instrument
    now: datetime
    rates: fees.FeeRates
    actor: User | None
    book: LedgerAccounts | None = None
    fee_book: FeeBook | None = None
    postings: list[Posting] = field(default_factory=list)
    touched: dict[str, set[Decimal]] = field(default_factory=lambda: {Side.BUY: set(), Side.SELL: set()})
    changed_orders: dict[int, Order] = field(default_factory=dict)  # in the order they changed
    new_orders: set[int] = field(default_factory=set)  # entered by this transaction: no earlier fills
    views: dict[int, OrderView] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    positions: dict[int, _PositionDelta] = field(default_factory=lambda: defaultdict(_PositionDelta))
    order_sequence: int | None = None

    def lock(self, organisation_ids: set[int]) -> None:
        """Lock the organisations (step 2 of the lock order) and read their
        ledger accounts and the house accounts with one query."""
        _lock_organisations(organisation_ids)
        self.book = ledger_accounts(organisation_ids=organisation_ids)
        # Their fee accruals of this month: no query until a fill charges one.
        self.fee_book = FeeBook.load(organisation_ids, self.now)

    def post(self, posting: Posting) -> None:
        self.postings.append(posting)

    def touch(self, side: str, price: Decimal) -> None:
        self.touched[side].add(price)

    def changed(self, order: Order) -> None:
        self.changed_orders[order.pk] = order

    def next_priority(self) -> int:
        self.order_sequence = (self.order_sequence or self.instrument.order_sequence) + 1
        return self.order_sequence


def _changes(instrument: Instrument, now: datetime, actor: User | None) -> _Changes:
    return _Changes(instrument=instrument, now=now, rates=fee_terms_at(now).intraday, actor=actor)


def _end_resting(changes: _Changes, order: Order, *, status: str, reason: str) -> None:
    """Take a resting order off the book (cancel, STP, expiry) and release its reservation."""
    assert changes.book is not None, "lock the organisations first"  # noqa: S101 (programming error)
    if order.reserved_amount > 0:
        changes.post(release_posting(book=changes.book, organisation_id=order.organisation_id,
                                     amount=order.reserved_amount, reference=f"order:{order.pk}",
                                     actor=changes.actor))
    updated = Order.objects.filter(pk=order.pk, status__in=RESTING_STATUSES).update(
        status=status, reason=reason, reserved_amount=Decimal("0.00"), updated_at=changes.now)
    if updated != 1:
        raise RuntimeError(f"order {order.pk} was not resting: the instrument lock was not held")
    order.status, order.reason, order.reserved_amount = status, reason, Decimal("0.00")
    changes.touch(order.side, order.price)
    changes.changed(order)


def _parties(taker: Order, result: matching.MatchResult, resting: Mapping[Hashable, Order]) -> set[int]:
    """Every organisation whose money or commitments this match changes: the
    taker's, the makers', and those of resting orders it takes off the book."""
    ids = {taker.organisation_id}
    for fill in result.fills:
        ids.add(resting[fill.maker_order_id].organisation_id)
    for order_id in (*result.stp_cancelled, *result.expired):
        ids.add(resting[order_id].organisation_id)
    return ids


def _apply_match(
    changes: _Changes, taker: Order, result: matching.MatchResult, resting: Mapping[Hashable, Order]
) -> None:
    """Persist one match: trades, the resting orders' fills, STP cancels and
    expiries, the taker's new state, the ledger entries, position deltas.
    The caller has locked every organisation of ``_parties``."""
    instrument, rates, now, book = changes.instrument, changes.rates, changes.now, changes.book
    assert book is not None and changes.fee_book is not None, "lock the organisations first"  # noqa: S101
    hours = instrument.hours
    booked: list[tuple[Trade, Decimal, tuple[Decimal, Decimal]]] = []
    for fill in result.fills:
        maker = resting[fill.maker_order_id]
        quantity = fill.quantity
        buy, sell = (taker, maker) if taker.side == Side.BUY else (maker, taker)
        taker.filled_quantity += quantity
        maker.filled_quantity += quantity
        # The share of the buy order's reservation this fill uses: whatever
        # the reservation holds beyond what the quantity still open needs.
        needed = min(buy.reserved_amount, _reservation(buy, hours))
        share = buy.reserved_amount - needed
        buy.reserved_amount = needed
        trade = Trade(
            instrument=instrument, buy_order=buy, sell_order=sell, buyer_id=buy.organisation_id,
            seller_id=sell.organisation_id, price=fill.price, quantity=quantity, aggressor=taker.side,
            buyer_fee=fees.exact_fee(_fill_rate(buy, taker=buy is taker, rates=rates), quantity, hours),
            seller_fee=fees.exact_fee(_fill_rate(sell, taker=sell is taker, rates=rates), quantity, hours),
            executed_at=now,
        )
        # What each side moves into its fee reserve for this trade (cents).
        held = (changes.fee_book.charge(buy.organisation_id, trade.buyer_fee),
                changes.fee_book.charge(sell.organisation_id, trade.seller_fee))
        booked.append((trade, share, held))
        maker.status = OrderStatus.PARTIALLY_FILLED if fill.maker_remaining else OrderStatus.FILLED
        # Database arithmetic for the fill: the check constraint
        # filled_quantity <= quantity is the last line of defence.
        Order.objects.filter(pk=maker.pk).update(
            filled_quantity=F("filled_quantity") + quantity, status=maker.status,
            reserved_amount=maker.reserved_amount, updated_at=now)
        changes.touch(maker.side, maker.price)
        changes.changed(maker)
        value = fill.price * quantity
        for organisation_id, sign in ((buy.organisation_id, 1), (sell.organisation_id, -1)):
            delta = changes.positions[organisation_id]
            delta.quantity += sign * quantity
            if sign > 0:
                delta.bought += quantity
                delta.buy_cost += value
            else:
                delta.sold += quantity
                delta.sell_proceeds += value
    if booked:
        trades = Trade.objects.bulk_create([trade for trade, _share, _held in booked])
        for trade, (_trade, share, (buyer_held, seller_held)) in zip(trades, booked, strict=True):
            changes.post(trade_posting(trade=trade, reservation=share, hours=hours, book=book,
                                       buyer_held=buyer_held, seller_held=seller_held))
            try:
                delivery_tickets_for_trade(trade=trade, buyer_held=buyer_held, seller_held=seller_held)
            except CannotDeliver:
                if trade.sell_order is taker:
                    raise
                # The resting sell cannot be delivered for its own reasons:
                # the caller cancels it and enters the incoming order again.
                raise _RestingUnfillable(trade.sell_order.pk) from None
        changes.trades.extend(trades)

    for order_id in result.stp_cancelled:
        _end_resting(changes, resting[order_id], status=OrderStatus.CANCELLED,
                     reason=matching.Reason.SELF_TRADE_PREVENTION.value)
    for order_id in result.expired:
        _end_resting(changes, resting[order_id], status=OrderStatus.EXPIRED, reason=REASON_EXPIRED)

    before = (taker.status, taker.reason, taker.reserved_amount)
    taker.status = result.status.value
    taker.reason = result.reason.value if result.reason is not None else ""
    if result.rests:
        changes.touch(taker.side, taker.price)
    elif taker.reserved_amount > 0:
        # An IOC, market or STP remainder: its reservation goes back.
        changes.post(release_posting(book=book, organisation_id=taker.organisation_id,
                                     amount=taker.reserved_amount, reference=f"order:{taker.pk}",
                                     actor=changes.actor))
        taker.reserved_amount = Decimal("0.00")
    if booked or getattr(taker, "_amended", False) or before != (taker.status, taker.reason, taker.reserved_amount):
        taker.save(update_fields=["price", "quantity", "priority", "filled_quantity", "status", "reason",
                                  "reserved_amount", "updated_at"])
    changes.changed(taker)


# Crossing orders are read in pages of this many, best first.
CROSSING_PAGE = 50


def _load_crossing(taker: Order, now: datetime) -> list[Order]:
    """The other side's resting orders that cross the taker's limit, in
    price-time priority, as far as the taker can use them.

    Reading stops once the orders read hold enough quantity to fill the taker
    whole. Orders of the taker's own organisation and expired ones do not count
    towards that, so self-trade prevention and FOK still see every order they
    may need; the matching core ignores what lies beyond.
    """
    rows = Order.objects.filter(
        instrument_id=taker.instrument_id, side=Side.SELL if taker.side == Side.BUY else Side.BUY,
        status__in=RESTING_STATUSES,
    )
    if taker.side == Side.BUY:
        rows = rows.filter(price__lte=taker.price).order_by("price", "priority")
    else:
        rows = rows.filter(price__gte=taker.price).order_by("-price", "priority")
    need = taker.quantity - taker.filled_quantity
    loaded: list[Order] = []
    usable = 0
    offset = 0
    while True:
        # Plain pages (LIMIT/OFFSET under the instrument lock: the book cannot
        # change between them) rather than a server-side cursor, which costs
        # three round trips even when the first page is all there is.
        page = list(rows[offset:offset + CROSSING_PAGE])
        for order in page:
            loaded.append(order)
            if order.organisation_id != taker.organisation_id and (order.expires_at is None or order.expires_at > now):
                usable += order.quantity - order.filled_quantity
                if usable >= need:
                    return loaded
        if len(page) < CROSSING_PAGE:
            return loaded
        offset += CROSSING_PAGE


def _decide(changes: _Changes, taker: Order) -> tuple[matching.MatchResult, dict[Hashable, Order]]:
    """Read the crossing orders and let the pure core match the taker; writes
    nothing. A refused order raises (the caller's transaction leaves nothing)."""
    resting = _load_crossing(taker, changes.now)
    result = matching.match(_core(taker), [_core(order) for order in resting], now=changes.now)
    if result.status == matching.OrderStatus.REJECTED:
        if result.reason == matching.Reason.FOK_NOT_FILLABLE:
            raise ExchangeError("fok_not_fillable",
                                _("The whole quantity cannot be filled at once at this price: nothing traded."))
        if result.reason == matching.Reason.POST_ONLY_WOULD_TRADE:
            raise ExchangeError("post_only_would_trade",
                                _("A post-only order must not trade on entry, and this price would trade."),
                                {"price": [_("This price crosses the other side of the book.")]})
        raise _invalid({"expires_at": [_("The expiry time must be in the future.")]})
    return result, {order.pk: order for order in resting}


def _finish(changes: _Changes) -> None:
    """The ledger, positions, the instrument's counters, and the broadcasts after commit."""
    instrument = changes.instrument
    if changes.fee_book is not None:
        changes.fee_book.save()  # one upsert, and only when a fill accrued fees
    if changes.postings:
        # Every journal entry of the transaction at once: member balances in
        # one pass in account id order, house accounts insert-only.
        ledger_post_all(changes.postings, savepoint=False)
    if changes.positions:
        _positions_add(instrument.pk, changes.positions)

    counters: dict[str, Any] = {}
    if changes.order_sequence is not None:
        counters["order_sequence"] = instrument.order_sequence = changes.order_sequence
    if changes.trades:
        counters["last_trade_at"] = instrument.last_trade_at = changes.now
    bids: list[broadcast.Level] = []
    asks: list[broadcast.Level] = []
    publish_book = bool(changes.touched[Side.BUY] or changes.touched[Side.SELL])
    if publish_book:
        bids, asks = _levels(instrument, changes.touched)
        counters["book_sequence"] = instrument.book_sequence = instrument.book_sequence + 1
    if counters:
        Instrument.objects.filter(pk=instrument.pk).update(**counters)

    symbol, sequence = instrument.symbol, instrument.book_sequence
    private: list[tuple[int, dict[str, Any]]] = []
    changes.views = _order_views(changes)
    for order_id in changes.changed_orders:
        view = changes.views[order_id]
        private.append((view.order.organisation_id, {"type": "order", "order": order_payload(view)}))
    public = []
    for trade in changes.trades:
        public.append(public_trade_payload(id=trade.pk, price=trade.price, quantity=trade.quantity,
                                           executed_at=trade.executed_at, aggressor=trade.aggressor))
        for organisation_id in (trade.buyer_id, trade.seller_id):
            fill = own_fill(trade, organisation_id=organisation_id, symbol=symbol)
            private.append((organisation_id, {"type": "fill", "fill": fill_payload(fill)}))

    def publish() -> None:
        messages = [broadcast.book_message(symbol, sequence, bids, asks)] if publish_book else []
        messages += [broadcast.trade_message(symbol, trade_event) for trade_event in public]
        messages += [broadcast.private_message(organisation_id, event) for organisation_id, event in private]
        broadcast.publish(messages)

    transaction.on_commit(publish, robust=True)


def _order_views(changes: _Changes) -> dict[int, OrderView]:
    """The changed orders with their fills, from memory: an order entered by
    this transaction has exactly this transaction's fills; only orders that
    rested before need their earlier fills read (one query)."""
    fills: dict[int, list[OrderFill]] = {order_id: [] for order_id in changes.changed_orders}
    earlier = [order_id for order_id in changes.changed_orders if order_id not in changes.new_orders]
    if earlier:
        for view in orders_with_fills([changes.changed_orders[order_id] for order_id in earlier]):
            fills[view.order.pk] = view.fills
    for trade in changes.trades:  # in execution order, like orders_with_fills
        for order_id, side in ((trade.buy_order_id, Side.BUY), (trade.sell_order_id, Side.SELL)):
            if order_id in changes.new_orders:
                fills[order_id].append(OrderFill(trade.pk, trade.price, trade.quantity,
                                                 "taker" if trade.aggressor == side else "maker"))
    views = {}
    for order_id, order in changes.changed_orders.items():
        order.instrument = changes.instrument
        views[order_id] = OrderView(order=order, fills=fills[order_id])
    return views


def _positions_add(instrument_id: int, deltas: Mapping[int, _PositionDelta]) -> None:
    """Add each organisation's position change in one statement (insert or
    add; the unique (organisation, instrument) index decides)."""
    table = Position._meta.db_table
    rows = sorted(deltas.items())
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for organisation_id, delta in rows:
        params += [organisation_id, instrument_id, delta.quantity, delta.bought, delta.sold,
                   delta.buy_cost, delta.sell_proceeds]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (organisation_id, instrument_id, quantity, bought, sold, buy_cost, sell_proceeds) "  # noqa: S608 (table name from the model, values as parameters)
            f"VALUES {values} ON CONFLICT (organisation_id, instrument_id) DO UPDATE SET "
            f"quantity = {table}.quantity + EXCLUDED.quantity, bought = {table}.bought + EXCLUDED.bought, "
            f"sold = {table}.sold + EXCLUDED.sold, buy_cost = {table}.buy_cost + EXCLUDED.buy_cost, "
            f"sell_proceeds = {table}.sell_proceeds + EXCLUDED.sell_proceeds",
            params,
        )


def _levels(
    instrument: Instrument, touched: dict[str, set[Decimal]]
) -> tuple[list[broadcast.Level], list[broadcast.Level]]:
    """The open quantity now at every touched price level (0: the level is gone), best first. One query."""
    prices = touched[Side.BUY] | touched[Side.SELL]
    rows = (
        Order.objects.filter(instrument=instrument, status__in=RESTING_STATUSES, price__in=prices)
        .order_by()
        .values("side", "price")
        .annotate(open=Sum(F("quantity") - F("filled_quantity")))
    )
    open_at = {(row["side"], row["price"]): int(row["open"]) for row in rows}
    bids = sorted(((p, open_at.get((Side.BUY, p), 0)) for p in touched[Side.BUY]), reverse=True)
    asks = sorted((p, open_at.get((Side.SELL, p), 0)) for p in touched[Side.SELL])
    return bids, asks


# --- submit ------------------------------------------------------------------------------


def order_submit(
    *,
    user: User,
    instrument: Instrument,
    side: str,
    type: str = OrderType.LIMIT,
    quantity: int,
    price: Decimal | None = None,
    time_in_force: str = TimeInForce.GTC,
    expires_at: datetime | None = None,
    post_only: bool = False,
    client_order_id: str | None = None,
    stp_mode: str = StpMode.CANCEL_INCOMING,
    now: datetime | None = None,
) -> SubmitResult:
    """Enter an order: check it, reserve cash (buy) or check capacity (sell),
    match it, and persist everything in one transaction.

    Answers ``SubmitResult(order, created=True)``; with a ``client_order_id``
    the organisation used before, the existing order and ``created=False``
    (nothing written). Raises ``ExchangeError`` with the contract's codes.
    """
    return _order_submit(
        user=user, membership=trading_gate(user=user, role="trader"), instrument=instrument, side=side, type=type,
        quantity=quantity, price=price, time_in_force=time_in_force, expires_at=expires_at, post_only=post_only,
        client_order_id=client_order_id, stp_mode=stp_mode, now=now)


def _order_submit(
    *, user: User, membership: Membership, instrument: Instrument, side: str, type: str = OrderType.LIMIT,
    quantity: int, price: Decimal | None = None, time_in_force: str = TimeInForce.GTC,
    expires_at: datetime | None = None, post_only: bool = False, client_order_id: str | None = None,
    stp_mode: str = StpMode.CANCEL_INCOMING, now: datetime | None = None,
) -> SubmitResult:
    """``order_submit`` after the trading gate (the batch asks the gate once)."""
    organisation = membership.organisation
    existing = _existing(organisation, client_order_id)
    if existing is not None:
        return SubmitResult(existing, created=False)
    _check_segment(instrument)
    # The request's own rules, judged by the clock now; the transaction reads
    # the clock again after the instrument lock for everything that counts.
    _check_request(side=side, type=type, price=price, time_in_force=time_in_force, expires_at=expires_at,
                   post_only=post_only, client_order_id=client_order_id, stp_mode=stp_mode,
                   now=now or timezone.now())
    _check_quantity(instrument, quantity)
    try:
        for _attempt in range(MAX_UNFILLABLE):
            try:
                return _with_retries(lambda: _submit_tx(
                    user=user, organisation=organisation, instrument_id=instrument.pk, side=side, type=type,
                    quantity=quantity, price=price, time_in_force=time_in_force, expires_at=expires_at,
                    post_only=post_only, client_order_id=client_order_id, stp_mode=stp_mode, now=now))
            except _RestingUnfillable as unfillable:
                _with_retries(partial(_cancel_unfillable_tx, order_id=unfillable.order_id,
                                      instrument_id=instrument.pk, now=now))
        raise ExchangeError("conflict", _("The book changed too often while this order was entered; try again."))
    except IntegrityError:
        # Two identical submits at once in different instruments' locks: the
        # unique index let the other one win; answer as for a resend.
        existing = _existing(organisation, client_order_id)
        if existing is None:
            raise
        return SubmitResult(existing, created=False)


@transaction.atomic(durable=True)
def _submit_tx(
    *, user: User, organisation: Organisation, instrument_id: int, side: str, type: str, quantity: int,
    price: Decimal | None, time_in_force: str, expires_at: datetime | None, post_only: bool,
    client_order_id: str | None, stp_mode: str, now: datetime | None,
) -> SubmitResult:
    # Lock order (exchange.locks): 1. the instrument ...
    instrument = _lock_instrument(instrument_id)
    at = _clock(instrument, now)
    # The same client_order_id submitted twice at once in this instrument:
    # the second waited for the lock and finds the first.
    existing = _existing(organisation, client_order_id)
    if existing is not None:
        return SubmitResult(existing, created=False)
    _check_open(instrument, at)
    if expires_at is not None and expires_at <= at:
        raise _invalid({"expires_at": [_("The expiry time must be in the future.")]})
    changes = _changes(instrument, at, user)
    rates = changes.rates
    if type == OrderType.MARKET:
        limit = _protection_price(instrument, side, rates)
    else:
        limit = _check_price(instrument, side, price, rates)
    order = Order(
        instrument=instrument, organisation=organisation, placed_by=user, client_order_id=client_order_id,
        side=side, type=type, price=limit, quantity=quantity, time_in_force=time_in_force, expires_at=expires_at,
        post_only=post_only, stp_mode=stp_mode, status=OrderStatus.OPEN, priority=changes.next_priority(),
        maker_rate=rates.maker, taker_rate=rates.taker,
    )
    if side == Side.BUY:
        order.reserved_amount = fees.buy_reservation(limit, quantity, instrument.hours, rates.taker)
    # ... the pure core decides before anything is written ...
    result, resting = _decide(changes, order)
    # ... 2. every organisation it touches, in id order (and their accounts, read once) ...
    changes.lock(_parties(order, result, resting))
    if side == Side.SELL:
        # Nets the resale of a long position itself; the organisation is locked.
        capacity.capacity_check(organisation=organisation, instrument=instrument, quantity=quantity)
    order.save(force_insert=True)
    changes.new_orders.add(order.pk)
    if side == Side.BUY:
        _reserve_cash(changes, organisation=organisation, amount=order.reserved_amount,
                      reference=f"order:{order.pk}", actor=user)
    _apply_match(changes, order, result, resting)
    # ... 3. the accounts, in one pass in id order (ledger_post_all).
    _finish(changes)
    return SubmitResult(order, created=True, view=changes.views.get(order.pk))


def orders_submit_batch(*, user: User, orders: Sequence[Mapping[str, Any]]) -> list[SubmitResult | ExchangeError]:
    """Submit up to ``MAX_BATCH`` orders, each in its own transaction, in
    the given order. Each item holds ``order_submit``'s keyword arguments
    (without ``user``); its result is a ``SubmitResult`` or the
    ``ExchangeError`` that refused it. A user who may not trade at all is
    refused once for the whole batch."""
    if not orders or len(orders) > MAX_BATCH:
        raise _invalid({"orders": [_("Send 1 to %(max)d orders.") % {"max": MAX_BATCH}]})
    membership = trading_gate(user=user, role="trader")
    results: list[SubmitResult | ExchangeError] = []
    for spec in orders:
        try:
            results.append(_order_submit(user=user, membership=membership, **spec))
        except ExchangeError as error:
            results.append(error)
    return results


# --- cancel ------------------------------------------------------------------------------


def order_cancel(*, user: User, order_id: int, now: datetime | None = None) -> Order:
    """Cancel a resting order of the user's organisation and release its reservation."""
    organisation = trading_gate(user=user, role="trader").organisation
    order = _own_order(organisation, order_id)
    return _with_retries(lambda: _cancel_tx(user=user, order_id=order.pk, instrument_id=order.instrument_id, now=now))


@transaction.atomic(durable=True)
def _cancel_tx(*, user: User, order_id: int, instrument_id: int, now: datetime | None) -> Order:
    instrument = _lock_instrument(instrument_id)
    order = Order.objects.select_related("organisation").get(pk=order_id)
    if order.status not in RESTING_STATUSES:
        raise _not_open(order)
    changes = _changes(instrument, _clock(instrument, now), user)
    changes.lock({order.organisation_id})
    _end_resting(changes, order, status=OrderStatus.CANCELLED, reason=REASON_CANCELLED)
    _finish(changes)
    order.instrument = instrument
    return order


@transaction.atomic(durable=True)
def _cancel_unfillable_tx(*, order_id: int, instrument_id: int, now: datetime | None) -> None:
    instrument = _lock_instrument(instrument_id)
    order = Order.objects.select_related("organisation").get(pk=order_id)
    if order.status not in RESTING_STATUSES:
        return
    log.warning("order %s cancelled: its seller's sites cannot deliver it", order_id)
    changes = _changes(instrument, _clock(instrument, now), None)
    changes.lock({order.organisation_id})
    _end_resting(changes, order, status=OrderStatus.CANCELLED, reason=REASON_CANNOT_DELIVER)
    _finish(changes)


# --- amend -------------------------------------------------------------------------------


def order_amend(
    *, user: User, order_id: int, quantity: int | None = None, price: Decimal | None = None,
    now: datetime | None = None,
) -> Order:
    """Change a resting order's total quantity and/or price.

    Lowering the quantity keeps time priority; any other change loses it:
    the order gets a new priority and is matched again like a new order (so
    it may trade, and a post-only order is refused if it would). A buy's
    reservation follows the new price and open quantity; a sell's increase
    needs capacity. Nothing changes when nothing would. The order keeps the
    fee rates of its entry.
    """
    organisation = trading_gate(user=user, role="trader").organisation
    order = _own_order(organisation, order_id)
    if quantity is None and price is None:
        raise _invalid({"non_field_errors": [_("Send a new quantity, a new price, or both.")]})
    return _with_retries(lambda: _amend_tx(user=user, order_id=order.pk, instrument_id=order.instrument_id,
                                           quantity=quantity, price=price, now=now))


@transaction.atomic(durable=True)
def _amend_tx(
    *, user: User, order_id: int, instrument_id: int, quantity: int | None, price: Decimal | None,
    now: datetime | None,
) -> Order:
    instrument = _lock_instrument(instrument_id)
    at = _clock(instrument, now)
    order = Order.objects.select_related("organisation").get(pk=order_id)
    if order.status not in RESTING_STATUSES:
        raise _not_open(order)
    if order.expires_at is not None and order.expires_at <= at:
        raise ExchangeError("order_not_open", _("The order has expired."), status=409)
    _check_open(instrument, at)
    if price is not None:
        price = _check_price(instrument, order.side, price, _entry_rates(order))
    if quantity is not None:
        _check_quantity(instrument, quantity)
    changes = _changes(instrument, at, user)
    decision = matching.amend(_core(order), new_price=price, new_quantity=quantity,
                              new_priority=instrument.order_sequence + 1)
    if decision.order is None:
        raise _invalid({"quantity": [
            _("The new quantity must be above the filled quantity (%(filled)d); to stop the order, cancel it.")
            % {"filled": order.filled_quantity}]})
    amended = decision.order
    if amended.price == order.price and amended.quantity == order.quantity:
        order.instrument = instrument
        return order  # nothing to change, nothing written

    old_price, old_quantity = order.price, order.quantity
    order.price, order.quantity = amended.price, amended.quantity
    result: matching.MatchResult | None = None
    resting: dict[Hashable, Order] = {}
    if not decision.keeps_priority:
        order.priority = changes.next_priority()
        result, resting = _decide(changes, order)
    changes.lock(_parties(order, result, resting) if result is not None else {order.organisation_id})
    if order.side == Side.SELL and amended.quantity > old_quantity:
        capacity.capacity_check(organisation=order.organisation, instrument=instrument,
                                quantity=amended.quantity - old_quantity)
    assert changes.book is not None  # noqa: S101 (set by changes.lock)
    if order.side == Side.BUY:
        needed = _reservation(order, instrument.hours)
        if needed > order.reserved_amount:
            _reserve_cash(changes, organisation=order.organisation, amount=needed - order.reserved_amount,
                          reference=f"order:{order.pk}", actor=user)
        elif needed < order.reserved_amount:
            changes.post(release_posting(book=changes.book, organisation_id=order.organisation_id,
                                         amount=order.reserved_amount - needed, reference=f"order:{order.pk}",
                                         actor=user))
        order.reserved_amount = needed
    changes.touch(order.side, old_price)
    if result is None:
        order.save(update_fields=["quantity", "reserved_amount", "updated_at"])
        changes.changed(order)
    else:
        order._amended = True  # type: ignore[attr-defined]  # _apply_match saves it whatever the match did
        _apply_match(changes, order, result, resting)
    _finish(changes)
    order.instrument = instrument
    return order


# --- expiry ------------------------------------------------------------------------------


def orders_expire(*, now: datetime | None = None) -> int:
    """Expire resting GTD orders whose time has come, and every resting
    order of an instrument whose trading has closed, releasing their
    reservations. One transaction per instrument; idempotent (a second run
    finds nothing). Answers the number of orders expired."""
    now = now or timezone.now()
    instrument_ids = list(
        Order.objects.filter(status__in=RESTING_STATUSES)
        .filter(Q(expires_at__lte=now) | Q(instrument__closes_at__lte=now))
        .order_by("instrument_id").values_list("instrument_id", flat=True).distinct()
    )
    expired = 0
    for instrument_id in instrument_ids:
        expired += _with_retries(partial(_expire_tx, instrument_id=instrument_id, now=now))
    return expired


@transaction.atomic(durable=True)
def _expire_tx(*, instrument_id: int, now: datetime) -> int:
    instrument = _lock_instrument(instrument_id)
    closed = instrument.closes_at <= now
    due = Order.objects.filter(instrument=instrument, status__in=RESTING_STATUSES).select_related("organisation")
    if not closed:
        due = due.filter(expires_at__lte=now)
    changes = _changes(instrument, now, None)
    orders = list(due.order_by("priority"))
    changes.lock({order.organisation_id for order in orders})
    for order in orders:
        gtd_due = order.expires_at is not None and order.expires_at <= now
        _end_resting(changes, order, status=OrderStatus.EXPIRED,
                     reason=REASON_EXPIRED if gtd_due else REASON_INSTRUMENT_CLOSED)
    _finish(changes)
    return len(orders)
