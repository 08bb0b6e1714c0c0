"""The futures day (issue 10; docs/architecture.md "Futures"): daily
settlement prices at 17:30, variation margin and the initial margin after
the session, margin calls. ``market.futures`` (pure) computes; this module
reads, locks and books.

Each job runs once per business day: its ``FuturesJobRun`` row is inserted
first in its one durable transaction, so a second run waits for the first
and then finds the row (and does nothing), and a run that fails leaves no
row and books nothing.

Money (``clearing.services.ledger``; the CCP is the counterparty of every
futures trade): a member's variation margin gain is paid from the house
``ccp`` account into its ``cash_available``; a loss is paid from
``cash_available``, then from its ``margin``, and what neither holds is
owed to the clearing house (``ccp_claim``, as for refunds). The initial
margin is then topped up from ``cash_available`` into ``margin`` as far as
the cash goes, or the excess released; a member whose margin is below the
maintenance margin (75 % of the requirement) gets a ``MarginCall`` for the
difference to the requirement, due at 10:00 on the next business day.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.services import audit_record
from clearing.models import Account, JournalEntry
from clearing.services import Posting, ledger_post_all
from clearing.services.ledger import LedgerAccounts, lock_and_read_accounts
from exchange.errors import ExchangeError
from exchange.formats import moment
from market import calendar
from market import futures as core
from market.models import (
    RESTING_STATUSES,
    FuturesJob,
    FuturesJobRun,
    Instrument,
    MarginCall,
    Order,
    Position,
    PositionTransfer,
    Segment,
    SettlementPrice,
    SettlementSource,
    Side,
    Trade,
    TransferKind,
    VariationMargin,
)

if TYPE_CHECKING:
    from accounts.models import User

log = logging.getLogger(__name__)

DSP_TIME = time(17, 30)  # Europe/Berlin
DSP_WINDOW = timedelta(minutes=30)
MARGIN_DUE = time(10, 0)
ZERO = Decimal("0.00")


def dsp_instant(day: date) -> datetime:
    """17:30 Europe/Berlin on ``day``: the settlement time and the cut-off
    between one day's trades and the next's for variation margin."""
    return calendar.local_time(day, DSP_TIME)


def next_business_day(day: date) -> date:
    day += timedelta(days=1)
    while not calendar.is_business_day(day):
        day += timedelta(days=1)
    return day


def _claim(kind: str, day: date, now: datetime) -> FuturesJobRun | None:
    """The job's row for the day, or None if the job already ran (inside the caller's transaction)."""
    try:
        with transaction.atomic():
            return FuturesJobRun.objects.create(kind=kind, date=day, finished_at=now)
    except IntegrityError:
        return None


def _listed_on(day: date) -> list[Instrument]:
    """The futures traded on ``day`` (listed by then, not yet expired)."""
    return list(Instrument.objects.filter(segment=Segment.FUTURES, opens_at__lte=dsp_instant(day),
                                          closes_at__gt=calendar.local_midnight(day))
                .select_related("gpu_class").order_by("id"))


# --- daily settlement prices ------------------------------------------------------------------


@transaction.atomic(durable=True)
def settlement_prices_compute(*, day: date, now: datetime | None = None) -> int:
    """The DSP of every listed future for ``day`` (a business day), by the
    market rules' cascade: VWAP of 17:00-17:30, else the mid of the book at
    the run, else the previous DSP; a future with none of them gets no DSP
    yet. Once per day; answers how many prices were set (0 on a re-run)."""
    now = now or timezone.now()
    if not calendar.is_business_day(day):
        raise ExchangeError("invalid", _("%(day)s is not a business day.") % {"day": day.isoformat()})
    if now < dsp_instant(day):
        raise ExchangeError("conflict", _("The settlement prices of %(day)s are computed at 17:30.")
                            % {"day": day.isoformat()}, status=409)
    run = _claim(FuturesJob.SETTLEMENT_PRICES, day, now)
    if run is None:
        return 0
    end = dsp_instant(day)
    rows = []
    for instrument in _listed_on(day):
        trades = list(Trade.objects.filter(instrument=instrument, executed_at__gte=end - DSP_WINDOW,
                                           executed_at__lt=end).values_list("price", "quantity"))
        book = Order.objects.filter(instrument=instrument, status__in=RESTING_STATUSES)
        best_bid = book.filter(side=Side.BUY).aggregate(p=Max("price"))["p"]
        best_ask = book.filter(side=Side.SELL).aggregate(p=Min("price"))["p"]
        previous = (SettlementPrice.objects.filter(instrument=instrument, date__lt=day).order_by("-date")
                    .values_list("price", flat=True).first())
        found = core.settlement_price(trades=trades, best_bid=best_bid, best_ask=best_ask, previous=previous,
                                      tick=instrument.tick_size)
        if found is None:
            continue
        price, source = found
        rows.append(SettlementPrice(instrument=instrument, date=day, price=price, source=source,
                                    computed_price=price, computed_source=source, computed_at=now))
    SettlementPrice.objects.bulk_create(rows)
    run.summary = {"prices": len(rows)}
    run.save(update_fields=["summary"])
    return len(rows)


@transaction.atomic(durable=True)
def settlement_price_override(*, operator: User, settlement_price: SettlementPrice, price: Decimal,
                              reason: str) -> SettlementPrice:
    """An operator sets the day's DSP, with a reason, before the day's
    variation margin has run (audited; the computed price is kept)."""
    reason = (reason or "").strip()
    if not reason:
        raise ExchangeError("invalid", _("Give the reason for the override."),
                            {"reason": [_("Give the reason for the override.")]})
    row = SettlementPrice.objects.select_for_update(no_key=True).select_related("instrument").get(
        pk=settlement_price.pk)
    if FuturesJobRun.objects.filter(kind=FuturesJob.VARIATION_MARGIN, date=row.date).exists():
        raise ExchangeError("conflict", _("The variation margin of %(day)s is already booked with this price.")
                            % {"day": row.date.isoformat()}, status=409)
    instrument = row.instrument
    if price != price.quantize(instrument.tick_size) or not instrument.min_price <= price <= instrument.max_price:
        raise ExchangeError("price_out_of_bounds", _("Enter a price on the tick within the instrument's bounds."),
                            {"price": [_("Enter a price on the tick within the instrument's bounds.")]})
    before = {"price": str(row.price), "source": row.source}
    row.price, row.source, row.overridden_by, row.override_reason = price, SettlementSource.OVERRIDE, operator, reason
    row.save(update_fields=["price", "source", "overridden_by", "override_reason"])
    audit_record(actor=operator, action="settlement_price.override", organisation=None, obj=row, before=before,
                 after={"price": str(price), "source": row.source}, reason=reason)
    return row


def settlement_prices_on(day: date) -> dict[int, Decimal]:
    """The DSP of each future on ``day``, by instrument id."""
    return dict(SettlementPrice.objects.filter(date=day).values_list("instrument_id", "price"))


# --- variation and initial margin -------------------------------------------------------------


@dataclass
class _Stake:
    """One member's stake in one future on the day: the position it held at
    its last mark (the previous day's variation margin, or a cascade) and
    the price it was marked at, and the day's trades."""

    overnight: int = 0
    marked_at: Decimal | None = None
    traded: list[tuple[Decimal, int]] = field(default_factory=list)  # (price, signed GPUs)

    @property
    def position(self) -> int:
        return self.overnight + sum(q for _p, q in self.traded)


def _stakes(instruments: list[Instrument], day: date) -> dict[tuple[int, int], _Stake]:
    """Per (organisation, instrument): the last marked position before
    ``day`` and the trades since the previous business day's cut-off."""
    stakes: dict[tuple[int, int], _Stake] = defaultdict(_Stake)
    last = (VariationMargin.objects.filter(instrument__in=instruments, date__lt=day)
            .order_by("organisation_id", "instrument_id", "-date").distinct("organisation_id", "instrument_id")
            .values_list("organisation_id", "instrument_id", "position", "settlement_price"))
    for organisation, instrument_id, position, price in last:
        if position:
            stakes[organisation, instrument_id] = _Stake(overnight=position, marked_at=price)
    since, until = dsp_instant(calendar.previous_business_day(day)), dsp_instant(day)
    for instrument_id, buyer, seller, price, quantity in Trade.objects.filter(
            instrument__in=instruments, executed_at__gte=since, executed_at__lt=until).values_list(
            "instrument_id", "buyer_id", "seller_id", "price", "quantity").order_by("id"):
        for organisation, sign in ((buyer, 1), (seller, -1)):
            stakes[organisation, instrument_id].traded.append((price, sign * quantity))
    return stakes


def open_futures_orders(organisation_ids: list[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """Per (organisation, future): the open quantity of resting buys and sells."""
    out: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for organisation, instrument, side, quantity, filled in Order.objects.filter(
            organisation_id__in=organisation_ids, status__in=RESTING_STATUSES,
            instrument__segment=Segment.FUTURES).values_list("organisation_id", "instrument_id", "side",
                                                            "quantity", "filled_quantity"):
        out[organisation, instrument][0 if side == Side.BUY else 1] += quantity - filled
    return {key: (buy, sell) for key, (buy, sell) in out.items()}


def requirement_of(legs_by_class: dict[Decimal, list[core.Leg]]) -> Decimal:
    """Initial margin over the legs, each class at its own rate."""
    return sum((core.margin_requirement(legs=legs, rate=rate) for rate, legs in legs_by_class.items()), ZERO)


def _variation_posting(book: LedgerAccounts, organisation: int, amount: Decimal, reference: str, *,
                       cash: Decimal | None = None, margin: Decimal | None = None
                       ) -> tuple[Posting, Decimal, Decimal]:
    """The entry of a variation (or final settlement) of ``amount`` for one
    member, against the CCP: a gain into ``cash_available``; a loss from
    ``cash_available``, then ``margin``, the rest owed (``ccp_claim``).
    ``cash``/``margin``: the balances so far in the caller's transaction
    (default: as read with the lock). Answers the posting and the balances after it."""
    cash = book.member(organisation, Account.Kind.CASH_AVAILABLE).balance if cash is None else cash
    margin = book.member(organisation, Account.Kind.MARGIN).balance if margin is None else margin
    if amount > 0:
        return Posting(kind=JournalEntry.Kind.VARIATION_MARGIN, reference=reference, lines=[
            (book.house(Account.Kind.CCP), -amount),
            (book.member(organisation, Account.Kind.CASH_AVAILABLE), amount)]), cash + amount, margin
    loss = -amount
    from_cash = min(cash, loss)
    from_margin = min(margin, loss - from_cash)
    owed = loss - from_cash - from_margin
    lines = [(book.house(Account.Kind.CCP), loss)]
    for kind, part in ((Account.Kind.CASH_AVAILABLE, from_cash), (Account.Kind.MARGIN, from_margin),
                       (Account.Kind.CCP_CLAIM, owed)):
        if part:
            lines.append((book.member(organisation, kind), -part))
    return (Posting(kind=JournalEntry.Kind.VARIATION_MARGIN, reference=reference, lines=lines),
            cash - from_cash, margin - from_margin)


@transaction.atomic(durable=True)
def variation_margin_run(*, day: date, now: datetime | None = None) -> int:
    """Book the day's variation margin and the initial margin of every
    member with futures, then issue margin calls. Once per business day,
    after the DSP. Answers how many members were booked (0 on a re-run)."""
    now = now or timezone.now()
    if not FuturesJobRun.objects.filter(kind=FuturesJob.SETTLEMENT_PRICES, date=day).exists():
        raise ExchangeError("conflict", _("The settlement prices of %(day)s are not computed yet.")
                            % {"day": day.isoformat()}, status=409)
    run = _claim(FuturesJob.VARIATION_MARGIN, day, now)
    if run is None:
        return 0
    instruments = {i.pk: i for i in _listed_on(day)}
    # Futures past their last session whose final settlement is still to come keep
    # their positions (marked at their last price) and their margin until it is paid.
    from market.models import InstrumentStatus

    awaiting = (Instrument.objects.filter(segment=Segment.FUTURES, pk__in=VariationMargin.objects.exclude(
        position=0).values("instrument_id")).exclude(status=InstrumentStatus.SETTLED).exclude(pk__in=list(instruments))
        .select_related("gpu_class"))
    instruments.update({i.pk: i for i in awaiting})
    today = settlement_prices_on(day)
    stakes = _stakes(list(instruments.values()), day)
    with_orders = (Order.objects.filter(instrument__in=list(instruments), status__in=RESTING_STATUSES)
                   .values_list("organisation_id", flat=True).distinct())
    # Members holding margin are looked at too: a position that expired releases it.
    with_margin = Account.objects.filter(kind=Account.Kind.MARGIN, balance__gt=0).values_list("organisation_id",
                                                                                              flat=True)
    organisations = sorted({org for org, _i in stakes} | set(with_orders) | set(with_margin))
    if not organisations:
        return 0
    book = lock_and_read_accounts(organisations)
    orders = open_futures_orders(organisations)
    records: list[VariationMargin] = []
    amounts: dict[int, Decimal] = defaultdict(lambda: ZERO)
    legs: dict[int, dict[Decimal, list[core.Leg]]] = defaultdict(lambda: defaultdict(list))
    for (organisation, instrument_id), stake in sorted(stakes.items()):
        instrument = instruments.get(instrument_id)
        price = today.get(instrument_id, stake.marked_at)  # no DSP: expired, kept at its last mark
        if instrument is None or price is None:
            continue
        amount = ZERO
        if stake.overnight and stake.marked_at is not None:
            amount += core.variation_margin(quantity=stake.overnight, hours=instrument.hours,
                                            price_then=stake.marked_at, price_now=price)
        for trade_price, quantity in stake.traded:
            amount += core.variation_margin(quantity=quantity, hours=instrument.hours, price_then=trade_price,
                                            price_now=price)
        if stake.position or amount:
            records.append(VariationMargin(date=day, organisation_id=organisation, instrument=instrument,
                                           position=stake.position, settlement_price=price, amount=amount))
            amounts[organisation] += amount
    for organisation in organisations:
        for instrument_id, instrument in instruments.items():
            position = stakes[organisation, instrument_id].position if (organisation, instrument_id) in stakes else 0
            open_buy, open_sell = orders.get((organisation, instrument_id), (0, 0))
            held = stakes.get((organisation, instrument_id))
            price = today.get(instrument_id, held.marked_at if held is not None else None)
            if price is None or not (position or open_buy or open_sell):
                continue
            legs[organisation][instrument.gpu_class.initial_margin_rate].append(
                core.Leg(position=position, open_buy=open_buy, open_sell=open_sell, price=price,
                         hours=instrument.hours))
    VariationMargin.objects.bulk_create(records)

    postings: list[Posting] = []
    calls: list[MarginCall] = []
    due_at = calendar.local_time(next_business_day(day), MARGIN_DUE)
    for organisation in organisations:
        cash = book.member(organisation, Account.Kind.CASH_AVAILABLE).balance
        margin = book.member(organisation, Account.Kind.MARGIN).balance
        amount = amounts.get(organisation, ZERO)
        if amount:
            posting, cash, margin = _variation_posting(book, organisation, amount,
                                                       f"variation-margin:{day.isoformat()}", cash=cash,
                                                       margin=margin)
            postings.append(posting)
        required = requirement_of(legs.get(organisation, {}))
        move = min(required - margin, cash) if required > margin else required - margin  # + in, - out
        if move:
            postings.append(margin_posting(book, organisation, move, f"initial-margin:{day.isoformat()}"))
            margin += move
        if required and margin < core.maintenance(required):
            calls.append(MarginCall(organisation_id=organisation, date=day, amount=required - margin,
                                    due_at=due_at))
    if postings:
        ledger_post_all(postings, savepoint=False)
    # Earlier calls of members that are back at their requirement are met.
    called = {call.organisation_id for call in calls}
    MarginCall.objects.filter(organisation_id__in=[org for org in organisations if org not in called],
                              met_at__isnull=True, closed_out_at__isnull=True).update(met_at=now)
    MarginCall.objects.bulk_create(calls)
    for call in calls:
        _mail_margin_call(call)
    run.summary = {"members": len(organisations), "calls": len(calls),
                   "variation_margin": {str(k): str(v) for k, v in amounts.items()}}
    run.save(update_fields=["summary"])
    log.info("futures %s: variation margin for %d members, %d margin calls", day, len(organisations), len(calls))
    return len(organisations)


def margined_day() -> date | None:
    """The last business day whose variation margin run has booked."""
    return FuturesJobRun.objects.filter(kind=FuturesJob.VARIATION_MARGIN).aggregate(day=Max("date"))["day"]


def reference_prices(instrument_ids: set[int] | list[int], *, on: date | None = None) -> dict[int, Decimal]:
    """The price each future's initial margin is computed at: its DSP of the
    last day whose margin run has booked (``on``: of that day or before),
    else its latest DSP, else its last trade. The order check, the margin
    page and ``reconcile`` use the same prices, so the margin a run set and
    the margin an order moved are measured alike. A future with neither has
    no entry (the caller prices it at its orders' highest limit)."""
    ids = sorted(set(instrument_ids))
    if not ids:
        return {}
    day = on or margined_day()
    dsps = SettlementPrice.objects.filter(instrument_id__in=ids)
    if day is not None and dsps.filter(date__lte=day).exists():
        dsps = dsps.filter(date__lte=day)
    prices = dict(dsps.order_by("instrument_id", "-date").distinct("instrument_id")
                  .values_list("instrument_id", "price"))
    missing = [pk for pk in ids if pk not in prices]
    if missing:
        prices.update(Trade.objects.filter(instrument_id__in=missing).order_by("instrument_id", "-id")
                      .distinct("instrument_id").values_list("instrument_id", "price"))
    return prices


@dataclass(frozen=True)
class Extra:
    """An order not (or not yet so) in the book that the requirement must
    count at its worst case: a new order, or an order as it is amended."""

    instrument_id: int
    side: str
    quantity: int  # open GPUs
    price: Decimal  # its limit


def requirement_for(organisation_id: int, *, extra: Extra | None = None, exclude_order_id: int | None = None,
                    on: date | None = None) -> Decimal:
    """The organisation's initial margin: every futures position and resting
    futures order (without ``exclude_order_id``; with ``extra``) at its worst
    case (``market.futures.Leg``), at ``reference_prices``, each class at its
    rate. Read under the organisation's lock by the order service."""
    positions = dict(Position.objects.filter(organisation_id=organisation_id, instrument__segment=Segment.FUTURES)
                     .exclude(quantity=0).values_list("instrument_id", "quantity"))
    resting = Order.objects.filter(organisation_id=organisation_id, status__in=RESTING_STATUSES,
                                   instrument__segment=Segment.FUTURES)
    if exclude_order_id is not None:
        resting = resting.exclude(pk=exclude_order_id)
    sides: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    limits: dict[int, Decimal] = {}
    rows = [(instrument, side, quantity - filled, price) for instrument, side, quantity, filled, price
            in resting.values_list("instrument_id", "side", "quantity", "filled_quantity", "price")]
    if extra is not None:
        rows.append((extra.instrument_id, extra.side, extra.quantity, extra.price))
    for instrument, side, open_quantity, price in rows:
        sides[instrument][0 if side == Side.BUY else 1] += open_quantity
        limits[instrument] = max(limits.get(instrument, price), price)
    ids = set(positions) | set(sides)
    if not ids:
        return ZERO
    prices = reference_prices(ids, on=on)
    legs: dict[Decimal, list[core.Leg]] = defaultdict(list)
    for pk, rate, hours in Instrument.objects.filter(pk__in=ids).values_list("pk", "gpu_class__initial_margin_rate",
                                                                             "hours"):
        reference = prices.get(pk, limits.get(pk))
        if reference is None:
            continue
        open_buy, open_sell = sides.get(pk, (0, 0))
        legs[rate].append(core.Leg(position=positions.get(pk, 0), open_buy=open_buy, open_sell=open_sell,
                                   price=reference, hours=hours))
    return requirement_of(legs)


def margin_posting(book: LedgerAccounts, organisation_id: int, amount: Decimal, reference: str, *,
                   actor: User | None = None) -> Posting:
    """Move ``amount`` (+) from available cash into the margin account, or (−) back."""
    source, target = ((Account.Kind.CASH_AVAILABLE, Account.Kind.MARGIN) if amount > 0
                      else (Account.Kind.MARGIN, Account.Kind.CASH_AVAILABLE))
    return Posting(kind=JournalEntry.Kind.MARGIN, reference=reference, actor=actor,
                   lines=[(book.member(organisation_id, source), -abs(amount)),
                          (book.member(organisation_id, target), abs(amount))])


def margin_summary(*, organisation_id: int, on: date | None = None) -> dict[str, Any]:
    """What ``GET /api/v1/margin/`` shows: the requirement now (at
    ``reference_prices``; with ``on``, at the DSPs of that day or before),
    the collateral, the day's variation margin and any open call."""
    initial = requirement_for(organisation_id, on=on)
    on = on or timezone.localdate(timezone.now(), calendar.BERLIN)
    held = dict(Account.objects.filter(organisation_id=organisation_id, kind__in=[
        Account.Kind.MARGIN, Account.Kind.DEFAULT_FUND]).values_list("kind", "balance"))
    collateral = held.get(Account.Kind.MARGIN, ZERO)
    today_vm = sum(VariationMargin.objects.filter(organisation_id=organisation_id, date=on)
                   .values_list("amount", flat=True), ZERO)
    call = (MarginCall.objects.filter(organisation_id=organisation_id, met_at__isnull=True,
                                      closed_out_at__isnull=True).order_by("-date").first())
    return {
        "initial_margin": initial,
        "maintenance_margin": core.maintenance(initial),
        "collateral": collateral,
        "variation_margin_today": today_vm,
        "margin_call": None if call is None else {"amount": call.amount, "due_at": call.due_at},
        "default_fund_contribution": held.get(Account.Kind.DEFAULT_FUND, ZERO),
    }


__all__ = [
    "CloseOut", "Extra", "dsp_instant", "margin_call_close_out", "margin_posting", "margin_summary",
    "next_business_day",
    "reference_prices", "requirement_for", "settlement_price_override", "settlement_prices_compute",
    "settlement_prices_on", "variation_margin_run",
]


# --- expiry: cascading and final settlement ---------------------------------------------------


def last_trading_day(instrument: Instrument) -> date:
    """The last business day before the future's delivery starts (its last session)."""
    return calendar.previous_business_day(timezone.localdate(instrument.delivery_start, calendar.BERLIN))


def final_settlement_price(instrument: Instrument) -> Decimal | None:
    """The base index of the delivery period: the mean of the hourly
    day-ahead clearing prices of the class in zone DE over the period's
    hours that have one, half up to the cent; None before every day of the
    period is cleared (or if no hour has a price)."""
    from market.models import AuctionStatus, DayAheadAuction, DayAheadHour

    start, end = instrument.delivery_start, instrument.delivery_end
    days = (end - start).days + 1
    auctions = DayAheadAuction.objects.filter(gpu_class_id=instrument.gpu_class_id, zone_id=instrument.zone_id,
                                              delivery_date__gte=timezone.localdate(start, calendar.BERLIN),
                                              delivery_date__lt=timezone.localdate(end, calendar.BERLIN))
    if auctions.filter(status=AuctionStatus.CLEARED).count() < days - 1 or auctions.filter(
            status=AuctionStatus.OPEN).exists():
        return None
    prices: list[Decimal] = [p for p in DayAheadHour.objects.filter(auction__in=auctions, price__isnull=False)
                             .values_list("price", flat=True) if p is not None]
    if not prices:
        return None
    # The index's own rule for a mean of hourly prices (whole cents, half up, exact).
    from market.indices import cents, divide_half_up

    return divide_half_up(sum(cents(price) for price in prices), len(prices))


def _transfer_rows(*, day: date, organisation: int, instrument: Instrument, quantity: int, price: Decimal,
                   kind: str) -> PositionTransfer:
    return PositionTransfer(date=day, organisation_id=organisation, instrument=instrument, kind=kind,
                            side=Side.BUY if quantity > 0 else Side.SELL, quantity=abs(quantity), price=price)


def _apply_transfers(transfers: list[PositionTransfer]) -> None:
    """Add the transfers to the positions, as trades with the CCP would."""
    from market.services.orders import _PositionDelta, _positions_add

    by_instrument: dict[int, dict[int, _PositionDelta]] = defaultdict(lambda: defaultdict(_PositionDelta))
    for t in transfers:
        delta = by_instrument[t.instrument_id][t.organisation_id]
        if t.side == Side.BUY:
            delta.quantity += t.quantity
            delta.bought += t.quantity
            delta.buy_cost += t.price * t.quantity
        else:
            delta.quantity -= t.quantity
            delta.sold += t.quantity
            delta.sell_proceeds += t.price * t.quantity
    for instrument_id, deltas in by_instrument.items():
        _positions_add(instrument_id, deltas)
    PositionTransfer.objects.bulk_create(transfers)


@transaction.atomic(durable=True)
def futures_expire(*, day: date, now: datetime | None = None) -> dict[str, int]:
    """The expiry of ``day`` (a business day, after its margin run), once:
    years and quarters whose last trading day it is cascade into their
    children at their settlement price of the day (each child then marked
    to its own settlement price: the difference is variation margin), and
    months whose delivery has ended and whose base index is complete settle
    in cash against it; their positions close and their margin is released
    by the next margin run."""
    from market.models import InstrumentStatus

    now = now or timezone.now()
    if not FuturesJobRun.objects.filter(kind=FuturesJob.VARIATION_MARGIN, date=day).exists():
        raise ExchangeError("conflict", _("The margin run of %(day)s has not run yet.") % {"day": day.isoformat()},
                            status=409)
    run = _claim(FuturesJob.EXPIRY, day, now)
    if run is None:
        return {}
    marks = {(row.organisation_id, row.instrument_id): row
             for row in VariationMargin.objects.filter(date=day).select_related("instrument")}
    today = settlement_prices_on(day)
    by_symbol = {i.symbol: i for i in Instrument.objects.filter(segment=Segment.FUTURES)}
    transfers: list[PositionTransfer] = []
    amounts: dict[int, Decimal] = defaultdict(lambda: ZERO)
    new_marks: list[VariationMargin] = []
    cascaded = settled = 0
    parents = [i for i in by_symbol.values() if i.period[0] in "YQ" and last_trading_day(i) == day]
    for parent in parents:
        period = calendar.parse_period(parent.period)
        kids = [by_symbol.get(calendar.format_symbol(parent.gpu_class.code, parent.zone.code, child))
                for child in _children(period)]
        price = today.get(parent.pk)
        if any(kid is None for kid in kids) or price is None:
            log.error("futures %s: cannot cascade %s (children not listed or no settlement price)", day, parent)
            continue
        for (organisation, instrument_id), mark in list(marks.items()):
            if instrument_id != parent.pk or not mark.position:
                continue
            q = mark.position
            transfers.append(_transfer_rows(day=day, organisation=organisation, instrument=parent, quantity=-q,
                                            price=price, kind=TransferKind.CASCADE))
            for kid in kids:
                assert kid is not None  # noqa: S101 (checked above)
                transfers.append(_transfer_rows(day=day, organisation=organisation, instrument=kid, quantity=q,
                                                price=price, kind=TransferKind.CASCADE))
                kid_price = today.get(kid.pk, price)
                amount = core.variation_margin(quantity=q, hours=kid.hours, price_then=price, price_now=kid_price)
                amounts[organisation] += amount
                existing = marks.get((organisation, kid.pk))
                if existing is not None:
                    VariationMargin.objects.filter(pk=existing.pk).update(
                        position=existing.position + q, amount=existing.amount + amount)
                    existing.position += q
                else:
                    row = VariationMargin(date=day, organisation_id=organisation, instrument=kid, position=q,
                                          settlement_price=kid_price, amount=amount)
                    new_marks.append(row)
                    marks[organisation, kid.pk] = row
            VariationMargin.objects.filter(pk=mark.pk).update(position=0)
        cascaded += 1
        Instrument.objects.filter(pk=parent.pk).update(status=InstrumentStatus.SETTLED)
    months = Instrument.objects.filter(segment=Segment.FUTURES, period__startswith="M",
                                       delivery_end__lte=calendar.local_midnight(day)).exclude(
        status=InstrumentStatus.SETTLED)
    for month in months.select_related("gpu_class", "zone"):
        final = final_settlement_price(month)
        if final is None:
            continue
        SettlementPrice.objects.update_or_create(instrument=month, date=day, defaults={
            "price": final, "source": SettlementSource.FINAL, "computed_price": final,
            "computed_source": SettlementSource.FINAL, "computed_at": now})
        latest = (VariationMargin.objects.filter(instrument=month).order_by("organisation_id", "-date")
                  .distinct("organisation_id"))
        for mark in latest:
            if not mark.position:
                continue
            amount = core.final_settlement(quantity=mark.position, hours=month.hours,
                                           last_dsp=mark.settlement_price, final_price=final)
            amounts[mark.organisation_id] += amount
            transfers.append(_transfer_rows(day=day, organisation=mark.organisation_id, instrument=month,
                                            quantity=-mark.position, price=final, kind=TransferKind.FINAL))
            if mark.date == day:  # carried to today by the margin run: the final mark replaces it
                VariationMargin.objects.filter(pk=mark.pk).update(position=0, settlement_price=final,
                                                                  amount=mark.amount + amount)
            else:
                new_marks.append(VariationMargin(date=day, organisation_id=mark.organisation_id, instrument=month,
                                                 position=0, settlement_price=final, amount=amount))
        Instrument.objects.filter(pk=month.pk).update(status=InstrumentStatus.SETTLED)
        settled += 1
    if amounts:
        book = lock_and_read_accounts(sorted(amounts))
        postings = []
        for organisation, amount in sorted(amounts.items()):
            if amount:
                postings.append(_variation_posting(book, organisation, amount, f"expiry:{day.isoformat()}")[0])
        if postings:
            ledger_post_all(postings, savepoint=False)
    VariationMargin.objects.bulk_create(new_marks)
    _apply_transfers(transfers)
    run.summary = {"cascaded": cascaded, "settled": settled, "members": len(amounts)}
    run.save(update_fields=["summary"])
    return {"cascaded": cascaded, "settled": settled}


def _children(period: Any) -> list[Any]:
    """The calendar periods a year or quarter cascades into."""
    from market.futures import Period as CorePeriod

    out = []
    for child in core.children(CorePeriod(period.kind, period.year, period.number)):
        code = f"M{child.year:04d}-{child.number:02d}" if child.kind == "M" else f"Q{child.year:04d}-{child.number}"
        out.append(calendar.parse_period(code))
    return out


# --- default fund ------------------------------------------------------------------------------

# The exchange's own capital in the waterfall: this share of the fund's size,
# at most what fee revenue holds (docs/architecture.md "Futures").
SKIN_IN_THE_GAME_SHARE = Decimal("0.25")


def _legs_on(day: date) -> dict[int, dict[Decimal, list[core.Leg]]]:
    """Each member's positions as marked by the day's margin run (open orders not counted)."""
    legs: dict[int, dict[Decimal, list[core.Leg]]] = defaultdict(lambda: defaultdict(list))
    for mark in VariationMargin.objects.filter(date=day).exclude(position=0).select_related(
            "instrument__gpu_class"):
        legs[mark.organisation_id][mark.instrument.gpu_class.initial_margin_rate].append(core.Leg(
            position=mark.position, open_buy=0, open_sell=0, price=mark.settlement_price,
            hours=mark.instrument.hours))
    return legs


@transaction.atomic(durable=True)
def default_fund_run(*, day: date, now: datetime | None = None) -> Decimal | None:
    """Size the default fund for ``day`` (after its margin run; once): cover
    the two largest stress losses beyond initial margin under a ±30 % move
    of every settlement price, and collect each member's share, in
    proportion to its initial margin, from its available cash into its
    ``default_fund`` account (or release what it holds beyond its share).
    A share the cash cannot cover is added to the member's margin call of
    the day. Answers the size (None on a re-run)."""
    from market.models import DefaultFundContribution, DefaultFundSize

    now = now or timezone.now()
    if not FuturesJobRun.objects.filter(kind=FuturesJob.VARIATION_MARGIN, date=day).exists():
        raise ExchangeError("conflict", _("The margin run of %(day)s has not run yet.") % {"day": day.isoformat()},
                            status=409)
    run = _claim(FuturesJob.DEFAULT_FUND, day, now)
    if run is None:
        return None
    legs = _legs_on(day)
    holders = set(Account.objects.filter(kind=Account.Kind.DEFAULT_FUND, balance__gt=0)
                  .values_list("organisation_id", flat=True))
    members = {org: (sum((core.stress_loss(legs=group) for group in by_rate.values()), ZERO),
                     requirement_of(by_rate)) for org, by_rate in legs.items()}
    size, shares = core.default_fund(members=members)
    fund = DefaultFundSize.objects.create(date=day, size=size, stress_move=core.STRESS_MOVE, computed_at=now,
                                          inputs={str(org): [str(loss), str(im)] for org, (loss, im)
                                                  in sorted(members.items())})
    DefaultFundContribution.objects.bulk_create([
        DefaultFundContribution(fund=fund, organisation_id=org, initial_margin=members[org][1],
                                stress_loss=members[org][0], amount=shares.get(org, ZERO))
        for org in sorted(members)])
    organisations = sorted(set(members) | holders)
    if organisations:
        book = lock_and_read_accounts(organisations)
        postings = []
        for org in organisations:
            held = book.member(org, Account.Kind.DEFAULT_FUND).balance
            want = shares.get(org, ZERO)
            move = want - held
            if move > 0:
                move = min(move, book.member(org, Account.Kind.CASH_AVAILABLE).balance)
                if want - held - move > 0:
                    _add_to_call(org, day, want - held - move)
            if move:
                source, target = ((Account.Kind.CASH_AVAILABLE, Account.Kind.DEFAULT_FUND) if move > 0
                                  else (Account.Kind.DEFAULT_FUND, Account.Kind.CASH_AVAILABLE))
                postings.append(Posting(kind=JournalEntry.Kind.MARGIN, reference=f"default-fund:{day.isoformat()}",
                                        lines=[(book.member(org, source), -abs(move)),
                                               (book.member(org, target), abs(move))]))
        if postings:
            ledger_post_all(postings, savepoint=False)
    run.summary = {"size": str(size), "members": len(members)}
    run.save(update_fields=["summary"])
    return size


# --- close-out of an unpaid margin call --------------------------------------------------------

REASON_CLOSE_OUT = "margin_close_out"


@dataclass(frozen=True)
class CloseOut:
    """What a close-out did: per future, the GPUs it set out to close and those the book filled."""

    call: MarginCall
    legs: list[tuple[str, int, int]]  # (symbol, GPUs to close, GPUs closed)
    cancelled: int  # resting futures orders taken off the book first

    @property
    def complete(self) -> bool:
        return all(wanted == closed for _symbol, wanted, closed in self.legs)


def margin_call_close_out(*, operator: User, call: MarginCall, now: datetime | None = None) -> CloseOut:
    """Close out the futures of a member whose margin call is unpaid past its
    due time (market rules §3: 10:00 on the next business day). The member's
    resting futures orders are cancelled, then each position is closed by a
    market order (IOC) on its account, entered and recorded by ``operator``
    (``Order.placed_by``, the order events, the audit log). The call counts as
    closed out once every position is flat; what the book could not fill stays
    open for another try."""
    from market.services.orders import close_out_submit, organisation_orders_cancel

    now = now or timezone.now()
    if not operator.is_staff:
        raise ExchangeError("not_permitted", _("Only an operator closes out a member."))
    call = MarginCall.objects.select_related("organisation").get(pk=call.pk)
    if not call.open:
        raise ExchangeError("conflict", _("This margin call is no longer open."), status=409)
    if now < call.due_at:
        raise ExchangeError("conflict", _("The margin call is due at %(due)s; a close-out may follow only then.") % {
            "due": moment(call.due_at, "DATETIME_FORMAT")}, status=409)
    if not calendar.futures_session_open(now):
        raise ExchangeError("instrument_closed", _("Futures trade on business days 08:00-18:00: close out then."))
    organisation = call.organisation
    resting = sorted(set(Order.objects.filter(organisation=organisation, status__in=RESTING_STATUSES,
                                              instrument__segment=Segment.FUTURES)
                         .values_list("instrument_id", flat=True)))
    cancelled = 0
    for instrument_id in resting:
        cancelled += len(organisation_orders_cancel(organisation_id=organisation.pk, actor=operator,
                                                    reason=REASON_CLOSE_OUT, instrument_id=instrument_id, now=now))
    legs = []
    for position in (Position.objects.filter(organisation=organisation, instrument__segment=Segment.FUTURES)
                     .exclude(quantity=0).select_related("instrument").order_by("instrument_id")):
        instrument = position.instrument
        if not instrument.accepts_orders_at(now):
            legs.append((instrument.symbol, abs(position.quantity), 0))  # expired: it waits for its settlement
            continue
        side = Side.SELL if position.quantity > 0 else Side.BUY
        try:
            order = close_out_submit(operator=operator, organisation=organisation, instrument=instrument, side=side,
                                     quantity=abs(position.quantity), now=now).order
            closed = order.filled_quantity
        except ExchangeError as error:
            log.warning("close-out of %s in %s refused: %s", organisation.pk, instrument.symbol, error.detail)
            closed = 0
        legs.append((instrument.symbol, abs(position.quantity), closed))
    result = CloseOut(call=call, legs=legs, cancelled=cancelled)
    with transaction.atomic():
        if result.complete:
            MarginCall.objects.filter(pk=call.pk, closed_out_at__isnull=True).update(closed_out_at=now,
                                                                                     closed_out_by=operator)
            call.closed_out_at, call.closed_out_by = now, operator
        audit_record(actor=operator, action="margin_call.close_out", organisation=organisation, obj=call,
                     before={"positions": {symbol: wanted for symbol, wanted, _closed in legs}},
                     after={"closed": {symbol: closed for symbol, _wanted, closed in legs},
                            "cancelled_orders": cancelled, "complete": result.complete},
                     reason=_("Margin call of %(day)s unpaid at %(due)s.") % {
                         "day": call.date.isoformat(), "due": moment(call.due_at, "DATETIME_FORMAT")})
    return result


def _mail_margin_call(call: MarginCall) -> None:
    """E-mail the organisation's owners and traders (after commit)."""
    from django.utils import formats
    from django.utils.translation import gettext_lazy

    from accounts.models import Membership
    from accounts.services import _send_mail_on_commit
    from exchange.site import absolute_url

    organisation = call.organisation
    to = Membership.objects.filter(organisation=organisation, user__is_active=True).filter(
        Q(is_owner=True) | Q(is_trader=True)).values_list("user__email", flat=True)
    _send_mail_on_commit(
        to=list(to), subject=gettext_lazy("Margin call: %(organisation)s"),
        template="market/email/margin_call.txt",
        context={"organisation": organisation.legal_name, "day": formats.date_format(call.date),
                 "amount": formats.number_format(call.amount, 2, use_l10n=True, force_grouping=True),
                 "due_at": moment(call.due_at, "DATETIME_FORMAT"),
                 "url": absolute_url("/statements/"),
                 "subject_args": {"organisation": organisation.legal_name}})


def _add_to_call(organisation: int, day: date, amount: Decimal) -> None:
    call = MarginCall.objects.filter(organisation_id=organisation, date=day).first()
    if call is None:
        MarginCall.objects.create(organisation_id=organisation, date=day, amount=amount,
                                  due_at=calendar.local_time(next_business_day(day), MARGIN_DUE))
    else:
        MarginCall.objects.filter(pk=call.pk).update(amount=call.amount + amount)


@dataclass(frozen=True)
class Drill:
    """What ``default_drill`` prints: the member's loss under the stress
    move and how the waterfall covers it."""

    organisation_id: int
    loss: Decimal
    layers: list[tuple[core.Layer, Decimal]]
    others: dict[int, Decimal]


def default_drill(*, organisation_id: int, day: date | None = None) -> Drill:
    """Simulate the default of one member on the books as they are (the
    latest margin run's marks): its positions closed out at the worse of
    DSP ± 30 %, the loss covered layer by layer. Reads only, inside a
    transaction that is rolled back: it changes nothing."""
    from market.models import DefaultFundSize

    with transaction.atomic():
        day = day or (VariationMargin.objects.order_by("-date").values_list("date", flat=True).first())
        legs = _legs_on(day) if day else {}
        loss = sum((core.stress_loss(legs=group) for group in legs.get(organisation_id, {}).values()), ZERO)
        balances = dict(Account.objects.filter(organisation_id=organisation_id).values_list("kind", "balance"))
        fund = DefaultFundSize.objects.order_by("-date").first()
        others = dict(Account.objects.filter(kind=Account.Kind.DEFAULT_FUND, organisation__isnull=False)
                      .exclude(organisation_id=organisation_id).values_list("organisation_id", "balance"))
        from clearing.selectors import house_balances

        revenue = house_balances([Account.Kind.FEE_REVENUE]).get(Account.Kind.FEE_REVENUE, ZERO)
        skin = min(max(revenue, ZERO), (SKIN_IN_THE_GAME_SHARE * (fund.size if fund else ZERO)).quantize(core.CENT))
        layers, taken = core.waterfall(loss=loss, margin=balances.get(Account.Kind.MARGIN, ZERO),
                                       contribution=balances.get(Account.Kind.DEFAULT_FUND, ZERO),
                                       skin_in_the_game=skin, others=others)
        transaction.set_rollback(True)
    return Drill(organisation_id=organisation_id, loss=loss, layers=layers, others=taken)
