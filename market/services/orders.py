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
* Intraday and futures trade here (the same engine, order types and
  checks), day-ahead bids do not (``market.services.dayahead``). A futures
  order (either side) reserves the most its fees can be at the futures
  rate, and is checked for initial margin instead of cash or capacity
  (``_check_margin``; docs "Futures"): under the organisation's lock, the
  requirement with the order at its worst case, less the margin held, must
  be covered by available cash, and the difference moves into ``margin`` in
  the order's transaction. A futures trade moves only the fee steps
  (``futures_trade_posting``) and writes no delivery tickets.
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
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg import errors as pg_errors

from accounts.models import Organisation
from accounts.selectors import membership_for
from accounts.services import trading_gate, trading_gate_check
from clearing import fees
from clearing.models import Account
from clearing.selectors import fee_terms_at
from clearing.services import (
    LedgerAccounts,
    Posting,
    delivery_tickets_for_trade,
    futures_trade_posting,
    ledger_post_all,
    release_posting,
    reserve_posting,
    trade_posting,
)
from clearing.services.allocation import AllocationMemo, CannotDeliver
from clearing.services.fees import FeeBook
from clearing.services.ledger import insufficient_funds_detail, lock_and_read_accounts
from exchange import rawsql
from exchange.errors import ExchangeError
from exchange.formats import number
from market import broadcast, matching
from market.models import (
    RESTING_STATUSES,
    DeliveryZone,
    Instrument,
    InstrumentStatus,
    KillSwitch,
    Order,
    OrderEvent,
    OrderEventKind,
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
from market.services import futures as futures_margin

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
REASON_KILL_SWITCH = "kill_switch"
REASON_CANCEL_ON_DISCONNECT = "cancel_on_disconnect"
REASON_EXPIRED = matching.Reason.EXPIRED.value
REASON_INSTRUMENT_CLOSED = "instrument_closed"

T = TypeVar("T")


class _RestingUnfillable(Exception):
    """A resting order cannot be filled for its own reasons (its seller's
    sites cannot deliver); the transaction is rolled back, the order is
    cancelled, and the incoming order is entered again."""

    def __init__(self, order_id: int, instrument_id: int) -> None:
        super().__init__(order_id)
        self.order_id = order_id
        self.instrument_id = instrument_id


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


# The order path reads whole rows with plain SQL (``exchange.rawsql``: the
# ORM's compile costs more than these statements).
_INSTRUMENT, _ZONE, _ORDER = (rawsql.Columns(Instrument, "i"), rawsql.Columns(DeliveryZone, "z"),
                              rawsql.Columns(Order, "o"))


def _lock_instrument(instrument_id: int) -> Instrument:
    """Lock and re-read the instrument (with its zone): every write to its
    book waits here. FOR NO KEY UPDATE: the lock only serialises, and must
    not block the foreign-key checks of inserts that point at the instrument."""
    instrument = _lock_instruments([instrument_id]).get(instrument_id)
    if instrument is None:
        raise Instrument.DoesNotExist(instrument_id)
    return instrument


def _lock_parties(organisation_ids: set[int]) -> LedgerAccounts:
    """Step 2 of the lock order (``exchange.locks``): every organisation
    whose money, commitments or capacity the transaction changes, in id
    order, before the first write; with their ledger accounts and the house
    accounts, read by the same statement. Serialises one organisation's
    sell-side commitments across instruments."""
    return lock_and_read_accounts(organisation_ids)


def _reserve_cash(changes: _Changes, *, organisation: Organisation, amount: Decimal, reference: str,
                  actor: User | None) -> None:
    """Reserve an order's value and fees (a futures order's fees). Incentive
    credits pay before cash in every segment (``credits=True`` on every
    reservation, release and trade of this module); a futures margin is
    collateral and moves from available cash only (``_check_margin``)."""
    assert changes.book is not None, "lock the organisations first"  # noqa: S101 (programming error)
    changes.post(reserve_posting(book=changes.book, organisation_id=organisation.pk, amount=amount,
                                 reference=reference, actor=actor, credits=True))


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


def _reservation(order: Order, hours: int, futures: bool) -> Decimal:
    """What an order's open quantity needs reserved at its entry's taker
    rate: a spot buy its value at the limit and its fees, a futures order
    (either side) its fees; 0.00 for a spot sell and for nothing open."""
    open_quantity = order.quantity - order.filled_quantity
    if futures:
        return fees.open_fee_reservation(open_quantity, hours, order.taker_rate)
    if order.side != Side.BUY:
        return Decimal("0.00")
    return fees.open_buy_reservation(order.price, open_quantity, hours, order.taker_rate)


def _is_futures(instrument: Instrument) -> bool:
    return instrument.segment == Segment.FUTURES


def segment_rates(instrument: Instrument, terms: fees.FeeTerms) -> fees.FeeRates:
    """The maker and taker rates of ``instrument``'s segment in ``terms``."""
    return terms.futures if _is_futures(instrument) else terms.intraday


def entry_reservation(instrument: Instrument, side: str, price: Decimal, quantity: int,
                      rates: fees.FeeRates) -> Decimal:
    """What a new order of ``quantity`` GPUs at ``price`` reserves (the
    trading screen's preview asks it too)."""
    if _is_futures(instrument):
        return fees.open_fee_reservation(quantity, instrument.hours, rates.taker)
    if side == Side.BUY:
        return fees.buy_reservation(price, quantity, instrument.hours, rates.taker)
    return Decimal("0.00")


def _check_segment(instrument: Instrument) -> None:
    if instrument.segment not in (Segment.INTRADAY, Segment.FUTURES):
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


def check_price(instrument: Instrument, side: str, price: Any, rates: fees.FeeRates) -> Decimal:
    """A limit price as the exchange takes it at ``rates`` (on the tick, within
    the bounds, a sell not below the fee floor), or ``ExchangeError`` saying why.
    The trading screen's cost preview asks it too."""
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
    # A spot seller's fee comes out of the proceeds; a futures seller's is reserved.
    floor = instrument.min_price if _is_futures(instrument) else fees.min_sell_price(rates.taker, tick)
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


def protection_price(instrument: Instrument, side: str, rates: fees.FeeRates) -> Decimal:
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
    floor = instrument.min_price if _is_futures(instrument) else max(instrument.min_price,
                                                                      fees.min_sell_price(rates.taker, tick))
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
    # Per account id: the sum of ``postings``' lines so far (``_balance``;
    # a batch's instruments share it, as they share ``postings``).
    posted: dict[int, Decimal] = field(default_factory=dict)
    touched: dict[str, set[Decimal]] = field(default_factory=lambda: {Side.BUY: set(), Side.SELL: set()})
    changed_orders: dict[int, Order] = field(default_factory=dict)  # in the order they changed
    new_orders: set[int] = field(default_factory=set)  # entered by this transaction: no earlier fills
    views: dict[int, OrderView] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    positions: dict[int, _PositionDelta] = field(default_factory=lambda: defaultdict(_PositionDelta))
    order_sequence: int | None = None
    # A batch locks every organisation it may touch before its first order
    # (``_batch_tx``); its instruments' changes then share the book, the fee
    # book and the postings, and ``lock`` only checks.
    locked: frozenset[int] | None = None
    # The locked organisations' capacity by state (``capacity.capacity_check``'s memo).
    sites: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)
    # The order events of the transaction, in the order they happened; all
    # the instruments' events are written with one insert (``_finish_books``).
    events: list[OrderEvent] = field(default_factory=list)
    # A batch's resting orders within its reach, read once (``_BatchBook``).
    batch_book: _BatchBook | None = None
    # A batch's capacity commitments per (organisation, class, hour), read
    # once; every write below that changes an open sell or a position tells it.
    commitments: capacity.HourCommitments | None = None
    # A batch's sites, their use and resale sources per seller (``delivery_tickets_for_trade``).
    allocation: AllocationMemo | None = None

    def open_sell_changed(self, order: Order, delta: int) -> None:
        if self.commitments is not None and order.side == Side.SELL:
            self.commitments.open_sell(order.organisation_id, self.instrument, delta)

    def lock(self, organisation_ids: set[int]) -> None:
        """Lock the organisations (step 2 of the lock order) and read their
        ledger accounts and the house accounts with one statement."""
        if self.locked is not None:
            if not organisation_ids <= self.locked:
                raise RuntimeError(f"organisations {organisation_ids - self.locked} were not locked by the batch")
            return
        self.book = _lock_parties(organisation_ids)
        # Their fee accruals of this month: no query until a fill charges one.
        self.fee_book = FeeBook.load(organisation_ids, self.now)

    def post(self, posting: Posting) -> None:
        self.postings.append(posting)
        for account, amount in posting.lines:
            self.posted[account.pk] = self.posted.get(account.pk, Decimal("0.00")) + amount

    def touch(self, side: str, price: Decimal) -> None:
        self.touched[side].add(price)

    def changed(self, order: Order) -> None:
        self.changed_orders[order.pk] = order

    def next_priority(self) -> int:
        self.order_sequence = (self.order_sequence or self.instrument.order_sequence) + 1
        return self.order_sequence

    def event(self, order: Order, kind: str, *, actor: User | None, trade: Trade | None = None,
              fill_quantity: int | None = None, status: str | None = None) -> None:
        """Record what happened to ``order``, with its state now (``status``:
        the state after this event when the order object already holds a
        later one, as a taker does during its fills). Written at the end."""
        self.events.append(OrderEvent(
            order=order, organisation_id=order.organisation_id, instrument_id=order.instrument_id, kind=kind,
            at=self.now, actor=actor, side=order.side, price=order.price, quantity=order.quantity,
            filled_quantity=order.filled_quantity, status=status or order.status,
            reason="" if kind in (OrderEventKind.SUBMITTED, OrderEventKind.AMENDED, OrderEventKind.FILLED)
            else order.reason,
            trade=trade, fill_price=trade.price if trade is not None else None, fill_quantity=fill_quantity))


def _changes(instrument: Instrument, now: datetime, actor: User | None) -> _Changes:
    return _Changes(instrument=instrument, now=now, rates=segment_rates(instrument, fee_terms_at(now)), actor=actor)


def _end_resting(changes: _Changes, order: Order, *, status: str, reason: str, actor: User | None = None) -> None:
    """Take a resting order off the book (cancel, STP, expiry) and release its
    reservation. ``actor``: the member's user who cancelled it, None when the
    exchange ended it (its order event's actor)."""
    assert changes.book is not None, "lock the organisations first"  # noqa: S101 (programming error)
    if order.reserved_amount > 0:
        changes.post(release_posting(book=changes.book, organisation_id=order.organisation_id,
                                     amount=order.reserved_amount, reference=f"order:{order.pk}",
                                     actor=changes.actor, credits=True))
    updated = Order.objects.filter(pk=order.pk, status__in=RESTING_STATUSES).update(
        status=status, reason=reason, reserved_amount=Decimal("0.00"), updated_at=changes.now)
    if updated != 1:
        raise RuntimeError(f"order {order.pk} was not resting: the instrument lock was not held")
    changes.open_sell_changed(order, -(order.quantity - order.filled_quantity))
    order.status, order.reason, order.reserved_amount = status, reason, Decimal("0.00")
    changes.touch(order.side, order.price)
    changes.changed(order)
    changes.event(order, OrderEventKind.EXPIRED if status == OrderStatus.EXPIRED else OrderEventKind.CANCELLED,
                  actor=actor)


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
    The caller has locked every organisation of ``_parties``.

    A taker without a primary key is a new order: its row is written once,
    in the state the match leaves it in, and its reservation is posted
    before its trades (the ledger checks each account's running sum in
    the order of the postings)."""
    instrument, rates, now, book = changes.instrument, changes.rates, changes.now, changes.book
    assert book is not None and changes.fee_book is not None, "lock the organisations first"  # noqa: S101
    hours = instrument.hours
    futures = _is_futures(instrument)
    new = taker.pk is None
    reservation = taker.reserved_amount if new else Decimal("0.00")
    if new:
        changes.event(taker, OrderEventKind.SUBMITTED, actor=changes.actor)
    booked: list[tuple[Trade, tuple[Decimal, Decimal], tuple[Decimal, Decimal]]] = []
    for fill in result.fills:
        maker = resting[fill.maker_order_id]
        quantity = fill.quantity
        buy, sell = (taker, maker) if taker.side == Side.BUY else (maker, taker)
        taker.filled_quantity += quantity
        maker.filled_quantity += quantity
        # The share of each order's reservation this fill uses: whatever the
        # reservation holds beyond what the quantity still open needs (a
        # spot sell reserves nothing).
        shares = []
        for side_order in (buy, sell):
            needed = min(side_order.reserved_amount, _reservation(side_order, hours, futures))
            shares.append(side_order.reserved_amount - needed)
            side_order.reserved_amount = needed
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
        booked.append((trade, (shares[0], shares[1]), held))
        maker.status = OrderStatus.PARTIALLY_FILLED if fill.maker_remaining else OrderStatus.FILLED
        # A fill is the exchange's doing for the resting side, the member's for the taker.
        changes.event(taker, OrderEventKind.FILLED, actor=changes.actor, trade=trade, fill_quantity=quantity,
                      status=OrderStatus.FILLED if taker.filled_quantity == taker.quantity
                      else OrderStatus.PARTIALLY_FILLED)
        changes.event(maker, OrderEventKind.FILLED, actor=None, trade=trade, fill_quantity=quantity)
        # Database arithmetic for the fill: the check constraint
        # filled_quantity <= quantity is the last line of defence.
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_ORDER.table} SET filled_quantity = filled_quantity + %s, status = %s, "  # noqa: S608
                f"reserved_amount = %s, updated_at = %s WHERE id = %s",
                [quantity, maker.status, maker.reserved_amount, rawsql.db_time(now), maker.pk])
        changes.open_sell_changed(maker, -quantity)
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
    before = (taker.status, taker.reason, taker.reserved_amount)
    taker.status = result.status.value
    taker.reason = result.reason.value if result.reason is not None else ""
    release = Decimal("0.00")
    if taker.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        # An IOC, market or STP remainder ends by the order's own terms: the exchange's doing.
        changes.event(taker, OrderEventKind.EXPIRED if taker.status == OrderStatus.EXPIRED
                      else OrderEventKind.CANCELLED, actor=None)
    if result.rests:
        changes.touch(taker.side, taker.price)
    elif taker.reserved_amount > 0:
        # An IOC, market or STP remainder: its reservation goes back.
        release, taker.reserved_amount = taker.reserved_amount, Decimal("0.00")
    taker.updated_at = now
    if new:
        rawsql.insert(taker)
        if taker.status in RESTING_STATUSES:
            changes.open_sell_changed(taker, taker.quantity - taker.filled_quantity)
        changes.new_orders.add(taker.pk)
        if reservation > 0:
            _reserve_cash(changes, organisation=taker.organisation, amount=reservation,
                          reference=f"order:{taker.pk}", actor=changes.actor)
    elif booked or getattr(taker, "_amended", False) or before != (taker.status, taker.reason, taker.reserved_amount):
        # (an amend: its own transaction, which keeps no HourCommitments)
        assert changes.commitments is None, "a batch enters new orders only"  # noqa: S101 (programming error)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_ORDER.table} SET price = %s, quantity = %s, priority = %s, "  # noqa: S608 (model table)
                f"filled_quantity = %s, status = %s, reason = %s, reserved_amount = %s, updated_at = %s WHERE id = %s",
                [taker.price, taker.quantity, taker.priority, taker.filled_quantity, taker.status, taker.reason,
                 taker.reserved_amount, rawsql.db_time(now), taker.pk])

    if booked:
        trades = [trade for trade, _shares, _held in booked]
        rawsql.insert_many(trades)
        for trade, (_trade, (buyer_share, seller_share), (buyer_held, seller_held)) in zip(trades, booked,
                                                                                          strict=True):
            if futures:
                # Cash-settled: the fee steps only; no delivery (docs "Futures").
                unreserved = {taker.organisation_id: (
                    _balance(changes, taker.organisation_id, Account.Kind.CASH_AVAILABLE)[1],
                    _balance(changes, taker.organisation_id, Account.Kind.MARGIN)[1])
                } if getattr(taker, "_close_out", False) else None
                posting = futures_trade_posting(trade=trade, buyer_share=buyer_share, seller_share=seller_share,
                                                book=book, buyer_held=buyer_held, seller_held=seller_held,
                                                unreserved=unreserved, credits=True)
                if posting.lines:
                    changes.post(posting)
                continue
            changes.post(trade_posting(trade=trade, reservation=buyer_share, hours=hours, book=book,
                                       buyer_held=buyer_held, seller_held=seller_held, credits=True))
            try:
                delivery_tickets_for_trade(trade=trade, buyer_held=buyer_held, seller_held=seller_held,
                                           commitments=changes.commitments, memo=changes.allocation)
            except CannotDeliver:
                if trade.sell_order is taker:
                    raise
                # The resting sell cannot be delivered for its own reasons:
                # the caller cancels it and enters the incoming order again.
                raise _RestingUnfillable(trade.sell_order_id or 0, trade.instrument_id) from None
        changes.trades.extend(trades)

    for order_id in result.stp_cancelled:
        _end_resting(changes, resting[order_id], status=OrderStatus.CANCELLED,
                     reason=matching.Reason.SELF_TRADE_PREVENTION.value)
    for order_id in result.expired:
        _end_resting(changes, resting[order_id], status=OrderStatus.EXPIRED, reason=REASON_EXPIRED)
    if release > 0:
        changes.post(release_posting(book=book, organisation_id=taker.organisation_id, amount=release,
                                     reference=f"order:{taker.pk}", actor=changes.actor,
                                     credits=True))
    changes.changed(taker)


# Crossing orders are read in pages of this many, best first.
# (the first page small: most orders fill from the first few orders or rest).
CROSSING_FIRST_PAGE = 8
CROSSING_PAGE = 50


def _load_crossing(taker: Order, now: datetime) -> list[Order]:
    """The other side's resting orders that cross the taker's limit, in
    price-time priority, as far as the taker can use them.

    Reading stops once the orders read hold enough quantity to fill the taker
    whole. Orders of the taker's own organisation and expired ones do not count
    towards that, so self-trade prevention and FOK still see every order they
    may need; the matching core ignores what lies beyond.
    """
    crosses, best_first = ("o.price <= %s", "o.price, o.priority") if taker.side == Side.BUY else (
        "o.price >= %s", "o.price DESC, o.priority")
    sql = (f"SELECT {_ORDER.sql} FROM {_ORDER.table} o WHERE o.instrument_id = %s AND o.side = %s "  # noqa: S608
           f"AND o.status IN (%s, %s) AND {crosses} ORDER BY {best_first} LIMIT %s OFFSET %s")
    other_side = Side.SELL if taker.side == Side.BUY else Side.BUY
    need = taker.quantity - taker.filled_quantity
    loaded: list[Order] = []
    usable = 0
    offset, size = 0, CROSSING_FIRST_PAGE
    while True:
        # Plain pages (LIMIT/OFFSET under the instrument lock: the book cannot
        # change between them) rather than a server-side cursor, which costs
        # three round trips even when the first page is all there is. Rows
        # become orders only as far as they are used.
        rows = rawsql.fetch(sql, [taker.instrument_id, other_side, *RESTING_STATUSES, taker.price, size, offset])
        for row in rows:
            order = _ORDER.load(row)[0]
            loaded.append(order)
            if order.organisation_id != taker.organisation_id and (order.expires_at is None or order.expires_at > now):
                usable += order.quantity - order.filled_quantity
                if usable >= need:
                    return loaded
        if len(rows) < size:
            return loaded
        offset, size = offset + size, CROSSING_PAGE


def _decide(changes: _Changes, taker: Order) -> tuple[matching.MatchResult, dict[Hashable, Order]]:
    """Read the crossing orders and let the pure core match the taker; writes
    nothing. A refused order raises (the caller's transaction leaves nothing)."""
    crossing = changes.batch_book.crossing(taker, changes.now) if changes.batch_book is not None else None
    resting = crossing if crossing is not None else _load_crossing(taker, changes.now)
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
    _finish_money(changes.fee_book, changes.postings)
    _finish_book(changes)


def _finish_money(fee_book: FeeBook | None, postings: list[Posting]) -> None:
    """The fee accruals and every journal entry of the transaction at once:
    member balances in one pass in account id order, house accounts
    insert-only (``ledger_post_all``)."""
    if fee_book is not None:
        fee_book.save()  # one upsert, and only when a fill accrued fees
    if postings:
        ledger_post_all(postings, savepoint=False)


def _flush_positions(changes: _Changes) -> None:
    if changes.positions:
        _positions_add(changes.instrument.pk, changes.positions)
        if changes.commitments is not None:
            for organisation_id, delta in changes.positions.items():
                changes.commitments.position(organisation_id, changes.instrument, delta.quantity)
        changes.positions.clear()


def _finish_book(changes: _Changes) -> None:
    _finish_books([changes])


def _finish_books(all_changes: Sequence[_Changes]) -> None:
    """The instruments' positions, then in ONE statement the transaction's
    order events, the instruments' counters and the open quantity at every
    touched book level; then the broadcasts after commit."""
    for changes in all_changes:
        _flush_positions(changes)
    with_levels = [changes for changes in all_changes if changes.touched[Side.BUY] or changes.touched[Side.SELL]]
    counters: list[tuple[Instrument, dict[str, Any]]] = []
    for changes in all_changes:
        instrument = changes.instrument
        changed: dict[str, Any] = {}
        if changes.order_sequence is not None:
            changed["order_sequence"] = instrument.order_sequence = changes.order_sequence
        if changes.trades:
            changed["last_trade_at"] = instrument.last_trade_at = changes.now
        if changes.touched[Side.BUY] or changes.touched[Side.SELL]:
            changed["book_sequence"] = instrument.book_sequence = instrument.book_sequence + 1
        if changed:
            counters.append((instrument, changed))
    # Data-modifying WITH clauses run to completion whether or not the query
    # reads them; the levels' SELECT sees the orders this transaction wrote.
    clauses: list[str] = []
    params: list[Any] = []
    events = [event for changes in all_changes for event in changes.events]
    if events:
        sql, values = rawsql.insert_sql(events)  # the orders and trades they name are written by now
        clauses.append(f"events AS ({sql})")
        params += values
    if counters:
        sql, values = _counters_sql(counters)
        clauses.append(f"counters AS ({sql})")
        params += values
    sql, values = _levels_sql(with_levels)
    rows = rawsql.fetch((f"WITH {', '.join(clauses)} " if clauses else "") + sql, [*params, *values])
    levels = _levels(with_levels, rows)
    # The earlier fills of every instrument's changed orders that rested
    # before: one query for the whole transaction (a batch: not one per instrument).
    rested_before = [order for changes in all_changes for order_id, order in changes.changed_orders.items()
                     if order_id not in changes.new_orders]
    earlier = {view.order.pk: view.fills for view in orders_with_fills(rested_before)} if rested_before else {}
    for changes in all_changes:
        _publish_after_commit(changes, levels.get(changes.instrument.pk), earlier)


def _counters_sql(counters: Sequence[tuple[Instrument, dict[str, Any]]]) -> tuple[str, list[Any]]:
    """The UPDATE of the instruments' changed counters (a CASE per column)."""
    quote = connection.ops.quote_name
    assignments, params = [], []
    for name in ("order_sequence", "book_sequence", "last_trade_at"):
        cases = [(instrument.pk, changed[name]) for instrument, changed in counters if name in changed]
        if not cases:
            continue
        assignments.append(f"{quote(name)} = CASE id " + " ".join(["WHEN %s THEN %s"] * len(cases))
                           + f" ELSE {quote(name)} END")
        for pk, value in cases:
            params += [pk, rawsql.db_time(value) if isinstance(value, datetime) else value]
    ids = [instrument.pk for instrument, _changed in counters]
    return (f"UPDATE {_INSTRUMENT.table} SET {', '.join(assignments)} "  # noqa: S608 (model table)
            f"WHERE id IN ({rawsql.placeholders(len(ids))})", [*params, *ids])


def _publish_after_commit(changes: _Changes, levels: tuple[list[broadcast.Level], list[broadcast.Level]] | None,
                          earlier: Mapping[int, list[OrderFill]]) -> None:
    """The instrument's book update (``levels``: None when no level changed),
    its trades and the members' own order and fill events, sent after commit."""
    instrument = changes.instrument
    bids, asks = levels if levels is not None else ([], [])
    symbol, sequence = instrument.symbol, instrument.book_sequence
    private: list[tuple[int, dict[str, Any]]] = []
    changes.views = _order_views(changes, earlier)
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
        messages = [broadcast.book_message(symbol, sequence, bids, asks)] if levels is not None else []
        messages += [broadcast.trade_message(symbol, trade_event) for trade_event in public]
        messages += [broadcast.private_message(organisation_id, event) for organisation_id, event in private]
        broadcast.publish(messages)

    transaction.on_commit(publish, robust=True)


def _order_views(changes: _Changes, earlier: Mapping[int, list[OrderFill]]) -> dict[int, OrderView]:
    """The changed orders with their fills, from memory: an order entered by
    this transaction has exactly this transaction's fills; the orders that
    rested before have theirs in ``earlier`` (read by ``_finish_books``)."""
    fills: dict[int, list[OrderFill]] = {order_id: [] for order_id in changes.changed_orders}
    for changed_id in changes.changed_orders:
        if changed_id not in changes.new_orders:
            fills[changed_id] = earlier[changed_id]
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


def _levels_sql(all_changes: Sequence[_Changes]) -> tuple[str, list[Any]]:
    """The SELECT of the open quantity at every price level the changes
    touched, per instrument, side and price (no row where none is left)."""
    pairs = [(changes.instrument.pk, price) for changes in all_changes
             for price in sorted(changes.touched[Side.BUY] | changes.touched[Side.SELL])]
    if not pairs:
        return "SELECT NULL, NULL, NULL, NULL WHERE FALSE", []
    return (f"SELECT o.instrument_id, o.side, o.price, SUM(o.quantity - o.filled_quantity) "  # noqa: S608
            f"FROM {_ORDER.table} o WHERE o.status IN (%s, %s) AND ("
            + " OR ".join(["(o.instrument_id = %s AND o.price = %s)"] * len(pairs))
            + ") GROUP BY o.instrument_id, o.side, o.price",
            [*RESTING_STATUSES, *(value for pair in pairs for value in pair)])


def _levels(
    all_changes: Sequence[_Changes], rows: Sequence[tuple[Any, ...]],
) -> dict[int, tuple[list[broadcast.Level], list[broadcast.Level]]]:
    """Per instrument id: the open quantity now at every price level its
    transaction touched (0: the level is gone), bids and asks best first,
    from the rows of ``_levels_sql``."""
    open_at = {(instrument_id, side, rawsql.converted(Order, "price", price).quantize(fees.CENT)): int(total)
               for instrument_id, side, price, total in rows}
    levels = {}
    for changes in all_changes:
        pk, touched = changes.instrument.pk, changes.touched
        bids = sorted(((p, open_at.get((pk, Side.BUY, p), 0)) for p in touched[Side.BUY]), reverse=True)
        asks = sorted((p, open_at.get((pk, Side.SELL, p), 0)) for p in touched[Side.SELL])
        levels[pk] = (bids, asks)
    return levels


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
    """``order_submit`` after the trading gate."""
    organisation = membership.organisation
    existing = _existing(organisation, client_order_id)
    if existing is not None:
        return SubmitResult(existing, created=False)
    spec = _Spec(instrument=instrument, side=side, type=type, quantity=quantity, price=price,
                 time_in_force=time_in_force, expires_at=expires_at, post_only=post_only,
                 client_order_id=client_order_id, stp_mode=stp_mode)
    _precheck(spec, now)
    try:
        for _attempt in range(MAX_UNFILLABLE):
            try:
                return _with_retries(lambda: _submit_tx(user=user, organisation=organisation, spec=spec, now=now))
            except _RestingUnfillable as unfillable:
                _with_retries(partial(_cancel_unfillable_tx, order_id=unfillable.order_id,
                                      instrument_id=unfillable.instrument_id, now=now))
        raise ExchangeError("conflict", _("The book changed too often while this order was entered; try again."))
    except IntegrityError:
        # Two identical submits at once in different instruments' locks: the
        # unique index let the other one win; answer as for a resend.
        existing = _existing(organisation, client_order_id)
        if existing is None:
            raise
        return SubmitResult(existing, created=False)


def close_out_submit(*, operator: User, organisation: Organisation, instrument: Instrument, side: str,
                     quantity: int, now: datetime | None = None) -> SubmitResult:
    """A market order (IOC) on ``organisation``'s account, entered and
    recorded by ``operator`` (``placed_by``, the order events' actor), that
    reduces a futures position: the close-out of a member whose margin call
    went unpaid (``market.services.futures.margin_call_close_out``, which
    checks who may). What the book cannot fill is cancelled."""
    spec = _Spec(instrument=instrument, side=side, type=OrderType.MARKET, quantity=quantity,
                 time_in_force=TimeInForce.IOC, close_out=True)
    _precheck(spec, now)
    if not _is_futures(instrument):
        raise ExchangeError("not_permitted", _("Only futures positions are closed out."))
    return _with_retries(lambda: _submit_tx(user=operator, organisation=organisation, spec=spec, now=now))


@dataclass(frozen=True)
class _Spec:
    """One order as the member sent it (``order_submit``'s arguments)."""

    instrument: Instrument
    side: str
    quantity: int
    type: str = OrderType.LIMIT
    price: Decimal | None = None
    time_in_force: str = TimeInForce.GTC
    expires_at: datetime | None = None
    post_only: bool = False
    client_order_id: str | None = None
    stp_mode: str = StpMode.CANCEL_INCOMING
    # An operator closes out a futures position of a member whose margin call
    # went unpaid (``close_out_submit``): no margin check and no reservation;
    # its fees are paid at the fill from cash, then margin, else owed.
    close_out: bool = False


def _precheck(spec: _Spec, now: datetime | None) -> None:
    """The rules that need no lock, judged by the clock now; the transaction
    reads the clock again after the instrument lock for everything that counts."""
    _check_segment(spec.instrument)
    _check_request(side=spec.side, type=spec.type, price=spec.price, time_in_force=spec.time_in_force,
                   expires_at=spec.expires_at, post_only=spec.post_only, client_order_id=spec.client_order_id,
                   stp_mode=spec.stp_mode, now=now or timezone.now())
    _check_quantity(spec.instrument, spec.quantity)


@dataclass
class _Entry:
    """An order checked and matched in memory (``_prepare``), not yet written."""

    order: Order
    result: matching.MatchResult
    resting: dict[Hashable, Order]
    margin: Decimal = Decimal("0.00")  # a futures order: what moves from available cash into margin


def _prepare(changes: _Changes, *, user: User, organisation: Organisation, spec: _Spec) -> _Entry:
    """Check one order against its locked instrument, match it in the pure
    core, lock its parties and check its cash and capacity. Writes nothing:
    a refusal (``ExchangeError``) leaves no trace."""
    instrument, at, rates = changes.instrument, changes.now, changes.rates
    _check_open(instrument, at)
    if spec.expires_at is not None and spec.expires_at <= at:
        raise _invalid({"expires_at": [_("The expiry time must be in the future.")]})
    if spec.type == OrderType.MARKET:
        limit = protection_price(instrument, spec.side, rates)
    else:
        limit = check_price(instrument, spec.side, spec.price, rates)
    order = Order(
        instrument=instrument, organisation=organisation, placed_by=user, client_order_id=spec.client_order_id,
        side=spec.side, type=spec.type, price=limit, quantity=spec.quantity, time_in_force=spec.time_in_force,
        expires_at=spec.expires_at, post_only=spec.post_only, stp_mode=spec.stp_mode, status=OrderStatus.OPEN,
        priority=changes.next_priority(), maker_rate=rates.maker, taker_rate=rates.taker,
    )
    order.reserved_amount = entry_reservation(instrument, spec.side, limit, spec.quantity, rates)
    # The pure core decides before anything is written; then every
    # organisation it touches is locked, in id order (step 2).
    result, resting = _decide(changes, order)
    changes.lock(_parties(order, result, resting))
    if changes.locked is None and not spec.close_out:  # a batch reads its kill switch once, after its own lock
        # (an operator's close-out goes ahead whatever the member's own switch says)
        _check_not_stopped(organisation.pk)
    if _is_futures(instrument):
        if spec.close_out:
            _check_reduces(changes, organisation, order)
            order.reserved_amount = Decimal("0.00")
            order._close_out = True  # type: ignore[attr-defined]  # _apply_match: fees from the balances
            margin = Decimal("0.00")
        else:
            margin = _check_margin(changes, organisation, futures_margin.Extra(
                instrument_id=instrument.pk, side=spec.side, quantity=spec.quantity, price=limit),
                reservation=order.reserved_amount)
        return _Entry(order, result, resting, margin)
    if spec.side == Side.SELL:
        # Nets the resale of a long position itself; the organisation is locked.
        _flush_positions(changes)
        capacity.capacity_check(organisation=organisation, instrument=instrument, quantity=spec.quantity,
                                sites=changes.sites, commitments=changes.commitments)
    else:
        _check_cash(changes, organisation, order.reserved_amount)
    return _Entry(order, result, resting)


def _balance(changes: _Changes, organisation_id: int, kind: str) -> tuple[Account, Decimal]:
    """A locked member account and its balance with what this transaction has posted to it so far."""
    assert changes.book is not None, "lock the organisations first"  # noqa: S101 (programming error)
    account = changes.book.member(organisation_id, kind)
    return account, account.balance + changes.posted.get(account.pk, Decimal("0.00"))


def _check_cash(changes: _Changes, organisation: Organisation, amount: Decimal) -> None:
    """Refuse a buy whose reservation the organisation's available cash and
    incentive credits (locked, with what this transaction has posted so far)
    do not cover.
    The ledger's guarded update checks it again when it posts."""
    account, available = _balance(changes, organisation.pk, Account.Kind.CASH_AVAILABLE)
    assert changes.book is not None  # noqa: S101 (checked by _balance)
    available += max(changes.book.credit_balance(organisation.pk, Account.Kind.CREDITS), Decimal("0.00"))
    if amount > available:
        raise ExchangeError("insufficient_funds", insufficient_funds_detail(
            Account.Kind.CASH_AVAILABLE, account_pk=account.pk, need=amount, held=available))


def _check_margin(changes: _Changes, organisation: Organisation, extra: futures_margin.Extra | None, *,
                  reservation: Decimal, exclude_order_id: int | None = None) -> Decimal:
    """Market rules §3, futures: cash available >= initial margin after the
    order. The organisation is locked, so no other order of it changes its
    positions, orders or cash meanwhile: the requirement with ``extra`` at
    its worst case (``futures_margin.requirement_for``) less the margin held
    must fit in available cash beside the order's fee reservation. Answers
    what moves from available cash into margin (0.00 when the margin held
    covers it); the ledger's guarded update is the backstop."""
    _flush_positions(changes)  # the batch's earlier fills count
    required = futures_margin.requirement_for(organisation.pk, extra=extra, exclude_order_id=exclude_order_id)
    _margin_account, held = _balance(changes, organisation.pk, Account.Kind.MARGIN)
    top_up = max(required - held, Decimal("0.00"))
    account, available = _balance(changes, organisation.pk, Account.Kind.CASH_AVAILABLE)
    assert changes.book is not None  # noqa: S101 (checked by _balance)
    # The order's fee reservation takes incentive credits first; the margin only cash.
    credits = max(changes.book.credit_balance(organisation.pk, Account.Kind.CREDITS), Decimal("0.00"))
    reservation = max(reservation - credits, Decimal("0.00"))
    if top_up + reservation > available:
        figures = {"required": number(required), "held": number(held), "available": number(available),
                   "need": number(top_up + reservation)}
        raise ExchangeError("insufficient_funds", _(
            "Not enough cash for the initial margin: with this order it is %(required)s EUR, the margin held is "
            "%(held)s EUR, so %(need)s EUR (with the fees reserved) must come from available cash, which holds "
            "%(available)s EUR.") % figures)
    return top_up


def _check_reduces(changes: _Changes, organisation: Organisation, order: Order) -> None:
    """Refuse a close-out order that would not only reduce the position."""
    _flush_positions(changes)
    position = (Position.objects.filter(organisation=organisation, instrument_id=order.instrument_id)
                .values_list("quantity", flat=True).first() or 0)
    signed = order.quantity if order.side == Side.BUY else -order.quantity
    if not position or abs(position + signed) >= abs(position) or order.quantity > abs(position):
        raise _invalid({"quantity": [_("A close-out only reduces a position.")]})


def _write(changes: _Changes, entry: _Entry) -> None:
    """Write a prepared order: the order row, its reservation, its margin, its trades."""
    _apply_match(changes, entry.order, entry.result, entry.resting)
    if entry.margin > 0:
        assert changes.book is not None  # noqa: S101 (locked in _prepare)
        changes.post(futures_margin.margin_posting(changes.book, entry.order.organisation_id, entry.margin,
                                                   f"initial-margin:order:{entry.order.pk}", actor=changes.actor))


@transaction.atomic(durable=True)
def _submit_tx(*, user: User, organisation: Organisation, spec: _Spec, now: datetime | None) -> SubmitResult:
    # Lock order (exchange.locks): 1. the instrument ...
    instrument = _lock_instrument(spec.instrument.pk)
    at = _clock(instrument, now)
    # The same client_order_id submitted twice at once in this instrument:
    # the second waited for the lock and finds the first.
    existing = _existing(organisation, spec.client_order_id)
    if existing is not None:
        return SubmitResult(existing, created=False)
    changes = _changes(instrument, at, user)
    # ... 2. the organisations (in _prepare) ...
    entry = _prepare(changes, user=user, organisation=organisation, spec=spec)
    _write(changes, entry)
    # ... 3. the accounts, in one pass in id order (ledger_post_all).
    _finish(changes)
    return SubmitResult(entry.order, created=True, view=changes.views.get(entry.order.pk))


def orders_submit_batch(*, user: User, orders: Sequence[Mapping[str, Any]],
                        now: datetime | None = None) -> list[SubmitResult | ExchangeError]:
    """Submit up to ``MAX_BATCH`` orders of one member, in the given order,
    in one transaction. Each item holds ``order_submit``'s keyword arguments
    (without ``user``); its result is a ``SubmitResult`` or the
    ``ExchangeError`` that refused it, and a refused order changes nothing
    (it is refused before anything of it is written). A user who may not
    trade at all is refused once for the whole batch.

    The transaction locks every instrument of the batch (id order), then
    every organisation whose resting orders the batch's prices could reach
    (id order), and posts the ledger once at the end: the lock order holds,
    and the batch costs one lock round instead of one per order.
    """
    if not orders or len(orders) > MAX_BATCH:
        raise _invalid({"orders": [_("Send 1 to %(max)d orders.") % {"max": MAX_BATCH}]})
    organisation = trading_gate(user=user, role="trader").organisation
    results: list[SubmitResult | ExchangeError | None] = [None] * len(orders)
    specs: list[tuple[int, _Spec]] = []
    for index, kwargs in enumerate(orders):
        try:
            spec = _Spec(**kwargs)
            _precheck(spec, now)
            specs.append((index, spec))
        except ExchangeError as error:
            results[index] = error
    if specs:
        for _attempt in range(MAX_UNFILLABLE):
            try:
                entered = _with_retries(lambda: _batch_tx(user=user, organisation=organisation, specs=specs,
                                                          now=now))
                break
            except _RestingUnfillable as unfillable:
                _with_retries(partial(_cancel_unfillable_tx, order_id=unfillable.order_id,
                                      instrument_id=unfillable.instrument_id, now=now))
            except IntegrityError:
                # A client_order_id of this batch was entered by another request
                # at the same moment: enter the batch again, which finds it.
                continue
        else:
            raise ExchangeError("conflict", _("The book changed too often while this batch was entered; try again."))
        for index, outcome in entered.items():
            results[index] = outcome
    return [result for result in results if result is not None]


def _existing_many(organisation: Organisation, client_order_ids: Iterable[str]) -> dict[str, Order]:
    wanted = sorted(set(client_order_ids))
    if not wanted:
        return {}
    return {order.client_order_id: order for order in Order.objects.select_related("instrument").filter(
        organisation=organisation, client_order_id__in=wanted) if order.client_order_id is not None}


def _lock_instruments(instrument_ids: Iterable[int]) -> dict[int, Instrument]:
    """Step 1 of the lock order for a batch: its instruments (with their
    zones) FOR NO KEY UPDATE, in ascending id, in one statement."""
    wanted = sorted(set(instrument_ids))
    rows = rawsql.fetch(
        f"SELECT {_INSTRUMENT.sql}, {_ZONE.sql} FROM {_INSTRUMENT.table} i "  # noqa: S608 (model tables)
        f"JOIN {_ZONE.table} z ON z.id = i.zone_id WHERE i.id IN ({rawsql.placeholders(len(wanted))}) "
        f"ORDER BY i.id{rawsql.lock_clause('i')}", wanted)
    instruments = {}
    for row in rows:
        instrument, at = _INSTRUMENT.load(row)
        zone, _at = _ZONE.load(row, at)
        Instrument.zone.field.set_cached_value(instrument, zone)
        instruments[instrument.pk] = instrument
    return instruments


def _reach(instruments: Mapping[int, Instrument], specs: Sequence[_Spec]) -> dict[tuple[int, str], Decimal]:
    """Per (instrument, resting side): the batch's most aggressive price
    against that side (a market order: the price bound)."""
    reach: dict[tuple[int, str], Decimal] = {}
    for spec in specs:
        instrument = instruments[spec.instrument.pk]
        if spec.side == Side.BUY:
            limit = instrument.max_price if spec.price is None else spec.price
            key = (instrument.pk, Side.SELL)
            reach[key] = max(reach.get(key, limit), limit)
        else:
            limit = instrument.min_price if spec.price is None else spec.price
            key = (instrument.pk, Side.BUY)
            reach[key] = min(reach.get(key, limit), limit)
    return reach


class _Slot:
    """One resting order of a ``_BatchBook``: its row, made an ``Order`` when first used."""

    __slots__ = ("order", "row")

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.row = row
        self.order: Order | None = None

    def load(self) -> Order:
        if self.order is None:
            self.order = _ORDER.load(self.row)[0]
        return self.order


class _BatchBook:
    """Every resting order a batch can reach (``_reach``), read with one
    statement under the batch's instrument locks, best first per
    (instrument, side). Each order of the batch takes its crossing orders
    from here instead of a statement of its own (``_load_crossing``): the
    same orders, cut at the same place. An order is made an ``Order`` once
    and the batch's fills, STP cancels and expiries change that object, so
    the book stays what the database holds. A side to which the batch adds a
    resting order is read from the database again from then on (``rested``)."""

    def __init__(self, reach: dict[tuple[int, str], Decimal], rows: Sequence[tuple[Any, ...]]) -> None:
        self.reach = reach
        self.sides: dict[tuple[int, str], list[_Slot]] = {key: [] for key in reach}
        instrument_at, side_at = _ORDER.attnames.index("instrument_id"), _ORDER.attnames.index("side")
        for row in rows:  # best first (the statement's ORDER BY)
            self.sides[(row[instrument_at], row[side_at])].append(_Slot(row))

    def crossing(self, taker: Order, now: datetime) -> list[Order] | None:
        """As ``_load_crossing``, from memory; None where this book does not cover the taker."""
        other_side = Side.SELL if taker.side == Side.BUY else Side.BUY
        key = (taker.instrument_id, other_side)
        slots, reach = self.sides.get(key), self.reach.get(key)
        if slots is None or reach is None or (taker.price > reach if taker.side == Side.BUY else taker.price < reach):
            return None
        need = taker.quantity - taker.filled_quantity
        loaded: list[Order] = []
        usable = 0
        for slot in slots:
            order = slot.load()
            if order.status not in RESTING_STATUSES:
                continue
            if order.price > taker.price if taker.side == Side.BUY else order.price < taker.price:
                break
            loaded.append(order)
            if order.organisation_id != taker.organisation_id and (order.expires_at is None or order.expires_at > now):
                usable += order.quantity - order.filled_quantity
                if usable >= need:
                    break
        return loaded

    def rested(self, order: Order) -> None:
        """``order`` of the batch now rests: its side is read from the database from now on."""
        self.sides.pop((order.instrument_id, order.side), None)

    def organisations(self) -> set[int]:
        organisation_at = _ORDER.attnames.index("organisation_id")
        return {slot.row[organisation_at] for slots in self.sides.values() for slot in slots}


def _read_batch_book(instruments: Mapping[int, Instrument], specs: Sequence[_Spec]) -> _BatchBook:
    """Every resting order that one of ``specs`` could trade with, cancel
    (self-trade prevention) or expire: the other side of each instrument up
    to the batch's most aggressive price there. One statement; its
    organisations are a superset of the batch's parties."""
    reach = _reach(instruments, specs)
    clauses, params = [], []
    for (instrument_id, side), limit in sorted(reach.items()):
        clauses.append(f"(o.instrument_id = %s AND o.side = %s AND o.price {'<=' if side == Side.SELL else '>='} %s)")
        params += [instrument_id, side, limit]
    # Best first per instrument and side, as _load_crossing orders them.
    rows = rawsql.fetch(
        f"SELECT {_ORDER.sql} FROM {_ORDER.table} o WHERE o.status IN (%s, %s) "  # noqa: S608 (model table)
        f"AND ({' OR '.join(clauses)}) ORDER BY o.instrument_id, o.side, "
        f"CASE WHEN o.side = %s THEN o.price ELSE -o.price END, o.priority",
        [*RESTING_STATUSES, *params, Side.SELL])
    return _BatchBook(reach, rows)


@transaction.atomic(durable=True)
def _batch_tx(*, user: User, organisation: Organisation, specs: Sequence[tuple[int, _Spec]],
              now: datetime | None) -> dict[int, SubmitResult | ExchangeError]:
    # Lock order (exchange.locks): 1. every instrument of the batch ...
    instruments = _lock_instruments(spec.instrument.pk for _index, spec in specs)
    at = now or timezone.now()
    for instrument in instruments.values():
        at = _clock(instrument, at)  # never before any of their last trades
    # ... 2. every organisation the batch may touch, with their accounts ...
    batch_book = _read_batch_book(instruments, [spec for _index, spec in specs])
    locked = frozenset(batch_book.organisations() | {organisation.pk})
    book = _lock_parties(set(locked))
    stopped = _stopped(organisation.pk)  # the kill switch, read after the lock
    fee_book = FeeBook.load(locked, at)
    terms = fee_terms_at(at)
    postings: list[Posting] = []
    posted: dict[int, Decimal] = {}
    sites: dict[tuple[int, int], dict[str, int]] = {}
    commitments = capacity.HourCommitments()
    allocation = AllocationMemo()
    by_instrument: dict[int, _Changes] = {}
    existing = _existing_many(organisation, (spec.client_order_id for _index, spec in specs
                                             if spec.client_order_id is not None))
    outcomes: dict[int, SubmitResult | ExchangeError] = {}
    entered: dict[int, Order] = {}
    for index, spec in specs:
        if spec.client_order_id is not None and spec.client_order_id in existing:
            outcomes[index] = SubmitResult(existing[spec.client_order_id], created=False)
            continue
        if stopped is not None:
            outcomes[index] = stopped
            continue
        changes = by_instrument.get(spec.instrument.pk)
        if changes is None:
            instrument = instruments[spec.instrument.pk]
            changes = by_instrument[spec.instrument.pk] = _Changes(
                instrument=instrument, now=at, rates=segment_rates(instrument, terms), actor=user, book=book,
                fee_book=fee_book, postings=postings, posted=posted, locked=locked, sites=sites,
                batch_book=batch_book,
                commitments=commitments, allocation=allocation)
        try:
            entry = _prepare(changes, user=user, organisation=organisation, spec=spec)
        except ExchangeError as error:
            outcomes[index] = error
            continue
        # ... 3. (at the end) the accounts, in one pass in id order.
        _write(changes, entry)
        if entry.result.rests:
            batch_book.rested(entry.order)
        _flush_positions(changes)  # the next order's capacity and allocation read them
        entered[index] = entry.order
        if spec.client_order_id is not None:
            existing[spec.client_order_id] = entry.order  # the same id again later in the batch: a resend
    _finish_money(fee_book, postings)
    _finish_books(list(by_instrument.values()))
    for changes in by_instrument.values():
        for index, order in entered.items():
            if order.instrument_id == changes.instrument.pk:
                outcomes[index] = SubmitResult(order, created=True, view=changes.views.get(order.pk))
    return outcomes


# --- cancel ------------------------------------------------------------------------------


def order_cancel(*, user: User, order_id: int, now: datetime | None = None) -> Order:
    """Cancel a resting order of the user's organisation (any member's) and
    release its reservation. Traders and owners may."""
    organisation = cancel_gate(user=user).organisation
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
    _end_resting(changes, order, status=OrderStatus.CANCELLED, reason=REASON_CANCELLED, actor=user)
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
        price = check_price(instrument, order.side, price, _entry_rates(order))
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
    _check_not_stopped(order.organisation_id)
    futures = _is_futures(instrument)
    needed = _reservation(order, instrument.hours, futures)
    margin = Decimal("0.00")
    if futures:
        # The amended order at its worst case, instead of the order as it rested.
        margin = _check_margin(changes, order.organisation, futures_margin.Extra(
            instrument_id=instrument.pk, side=order.side, quantity=order.quantity - order.filled_quantity,
            price=order.price), reservation=max(needed - order.reserved_amount, Decimal("0.00")),
            exclude_order_id=order.pk)
    elif order.side == Side.SELL and amended.quantity > old_quantity:
        capacity.capacity_check(organisation=order.organisation, instrument=instrument,
                                quantity=amended.quantity - old_quantity)
    assert changes.book is not None  # noqa: S101 (set by changes.lock)
    if margin > 0:
        changes.post(futures_margin.margin_posting(changes.book, order.organisation_id, margin,
                                                   f"initial-margin:order:{order.pk}", actor=user))
    if order.side == Side.BUY or futures:
        if needed > order.reserved_amount:
            _reserve_cash(changes, organisation=order.organisation, amount=needed - order.reserved_amount,
                          reference=f"order:{order.pk}", actor=user)
        elif needed < order.reserved_amount:
            changes.post(release_posting(book=changes.book, organisation_id=order.organisation_id,
                                         amount=order.reserved_amount - needed, reference=f"order:{order.pk}",
                                         actor=user, credits=True))
        order.reserved_amount = needed
    changes.touch(order.side, old_price)
    changes.event(order, OrderEventKind.AMENDED, actor=user)
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


# --- trader controls: kill switch check, mass cancel (docs/trader-controls.md) -----------------


_KILL_SWITCH_TABLE = rawsql.Columns(KillSwitch, "k")


def _stopped(organisation_id: int) -> ExchangeError | None:
    """``trading_stopped`` while the organisation's kill switch is engaged.

    Read after the organisation row is locked: ``kill_switch_engage``
    (market.services.controls) locks the same row to engage it, so an order
    either locked the organisation first and is in the book before the
    switch's cancel pass runs, or it sees the switch and is refused. One
    indexed statement per transaction (a batch: one for all its orders)."""
    rows = rawsql.fetch(f"SELECT 1 FROM {_KILL_SWITCH_TABLE.table} WHERE organisation_id = %s "  # noqa: S608 (model table)
                        "AND lifted_at IS NULL", [organisation_id])
    if not rows:
        return None
    return ExchangeError("trading_stopped", _("The kill switch of your organisation is on: it takes no new orders "
                                              "and no amendments until an owner lifts it."))


def _check_not_stopped(organisation_id: int) -> None:
    error = _stopped(organisation_id)
    if error is not None:
        raise error


def cancel_gate(*, user: User) -> Membership:
    """Who may cancel the organisation's orders (any member's): its traders
    and its owners. Observers never; KYC as for trading (an organisation not
    approved has no orders)."""
    membership = membership_for(user)
    return trading_gate_check(membership, "trader" if membership is not None and membership.is_trader else "owner")


def orders_cancel_all(*, user: User, instrument: Instrument | None = None, now: datetime | None = None
                      ) -> list[Order]:
    """Mass cancel: every order of the user's organisation resting when this
    runs (any member's), in one instrument or in all; one transaction. Answers
    the orders cancelled (none: an empty list). Traders and owners may."""
    organisation = cancel_gate(user=user).organisation
    return organisation_orders_cancel(organisation_id=organisation.pk, actor=user, reason=REASON_CANCELLED,
                                      instrument_id=instrument.pk if instrument is not None else None, now=now)


def organisation_orders_cancel(*, organisation_id: int, actor: User | None, reason: str,
                               instrument_id: int | None = None, placed_by_id: int | None = None,
                               now: datetime | None = None) -> list[Order]:
    """Cancel the organisation's resting orders (in one instrument; placed by
    one user), for mass cancel, the kill switch and cancel-on-disconnect;
    no permission check here. Orders entered in another instrument while
    this runs are not seen (the kill switch stops them first)."""
    resting = Order.objects.filter(organisation_id=organisation_id, status__in=RESTING_STATUSES)
    if instrument_id is not None:
        resting = resting.filter(instrument_id=instrument_id)
    if placed_by_id is not None:
        resting = resting.filter(placed_by_id=placed_by_id)
    instrument_ids = sorted(set(resting.values_list("instrument_id", flat=True)))
    if not instrument_ids:
        return []
    return _with_retries(partial(_cancel_many_tx, organisation_id=organisation_id, instrument_ids=instrument_ids,
                                 placed_by_id=placed_by_id, actor=actor, reason=reason, now=now))


@transaction.atomic(durable=True)
def _cancel_many_tx(*, organisation_id: int, instrument_ids: Sequence[int], placed_by_id: int | None,
                    actor: User | None, reason: str, now: datetime | None) -> list[Order]:
    # Lock order: 1. the instruments, in id order (as a batch) ...
    instruments = _lock_instruments(instrument_ids)
    at = now or timezone.now()
    for instrument in instruments.values():
        at = _clock(instrument, at)
    resting = Order.objects.filter(organisation_id=organisation_id, instrument_id__in=list(instruments),
                                   status__in=RESTING_STATUSES).order_by("instrument_id", "priority")
    if placed_by_id is not None:
        resting = resting.filter(placed_by_id=placed_by_id)
    orders = list(resting)
    if not orders:
        return []
    # ... 2. the one organisation whose cash the cancels release, with its accounts.
    locked = frozenset({organisation_id})
    book = _lock_parties(set(locked))
    terms = fee_terms_at(at)
    postings: list[Posting] = []
    posted: dict[int, Decimal] = {}
    by_instrument: dict[int, _Changes] = {}
    for order in orders:
        changes = by_instrument.get(order.instrument_id)
        if changes is None:
            instrument = instruments[order.instrument_id]
            changes = by_instrument[order.instrument_id] = _Changes(
                instrument=instrument, now=at, rates=segment_rates(instrument, terms), actor=actor, book=book,
                postings=postings, posted=posted, locked=locked)
        _end_resting(changes, order, status=OrderStatus.CANCELLED, reason=reason, actor=actor)
        order.instrument = instruments[order.instrument_id]
    # ... 3. the accounts, in one pass.
    _finish_money(None, postings)
    _finish_books(list(by_instrument.values()))
    return orders
