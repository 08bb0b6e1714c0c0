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
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Min
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.services import audit_record
from clearing.models import Account, JournalEntry
from clearing.services import Posting, ledger_post_all
from clearing.services.ledger import lock_and_read_accounts
from exchange.errors import ExchangeError
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
    Segment,
    SettlementPrice,
    SettlementSource,
    Side,
    Trade,
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


def previous_business_day(day: date) -> date:
    day -= timedelta(days=1)
    while not calendar.is_business_day(day):
        day -= timedelta(days=1)
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
    """One member's stake in one future on the day."""

    overnight: int = 0  # position at yesterday's cut-off
    traded: list[tuple[Decimal, int]] | None = None  # today's trades (price, signed GPUs)

    @property
    def position(self) -> int:
        return self.overnight + sum(q for _p, q in self.traded or [])


def _stakes(instruments: list[Instrument], since: datetime, until: datetime) -> dict[tuple[int, int], _Stake]:
    """Per (organisation, instrument): the position before ``since`` and the trades in [since, until)."""
    stakes: dict[tuple[int, int], _Stake] = defaultdict(_Stake)
    for instrument_id, buyer, seller, price, quantity, at in Trade.objects.filter(
            instrument__in=instruments, executed_at__lt=until).values_list(
            "instrument_id", "buyer_id", "seller_id", "price", "quantity", "executed_at").order_by("id"):
        for organisation, sign in ((buyer, 1), (seller, -1)):
            stake = stakes[organisation, instrument_id]
            if at < since:
                stake.overnight += sign * quantity
            else:
                stake.traded = [*(stake.traded or []), (price, sign * quantity)]
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
    today = settlement_prices_on(day)
    yesterday_day = previous_business_day(day)
    yesterday = settlement_prices_on(yesterday_day)
    stakes = _stakes(list(instruments.values()), dsp_instant(yesterday_day), dsp_instant(day))
    with_orders = (Order.objects.filter(instrument__in=list(instruments), status__in=RESTING_STATUSES)
                   .values_list("organisation_id", flat=True).distinct())
    organisations = sorted({org for org, _i in stakes} | set(with_orders))
    if not organisations:
        return 0
    book = lock_and_read_accounts(organisations)
    orders = open_futures_orders(organisations)
    records: list[VariationMargin] = []
    amounts: dict[int, Decimal] = defaultdict(lambda: ZERO)
    legs: dict[int, dict[Decimal, list[core.Leg]]] = defaultdict(lambda: defaultdict(list))
    for (organisation, instrument_id), stake in sorted(stakes.items()):
        instrument = instruments.get(instrument_id)
        price = today.get(instrument_id)
        if instrument is None or price is None:
            continue
        then = yesterday.get(instrument_id)
        amount = ZERO
        if stake.overnight and then is not None:
            amount += core.variation_margin(quantity=stake.overnight, hours=instrument.hours, price_then=then,
                                            price_now=price)
        for trade_price, quantity in stake.traded or []:
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
            price = today.get(instrument_id)
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
        reference = f"variation-margin:{day.isoformat()}"
        if amount > 0:
            postings.append(Posting(kind=JournalEntry.Kind.VARIATION_MARGIN, reference=reference, lines=[
                (book.house(Account.Kind.CCP), -amount),
                (book.member(organisation, Account.Kind.CASH_AVAILABLE), amount)]))
            cash += amount
        elif amount < 0:
            loss = -amount
            from_cash = min(cash, loss)
            from_margin = min(margin, loss - from_cash)
            owed = loss - from_cash - from_margin
            lines = [(book.house(Account.Kind.CCP), loss)]
            for kind, part in ((Account.Kind.CASH_AVAILABLE, from_cash), (Account.Kind.MARGIN, from_margin),
                               (Account.Kind.CCP_CLAIM, owed)):
                if part:
                    lines.append((book.member(organisation, kind), -part))
            postings.append(Posting(kind=JournalEntry.Kind.VARIATION_MARGIN, reference=reference, lines=lines))
            cash, margin = cash - from_cash, margin - from_margin
        required = requirement_of(legs.get(organisation, {}))
        move = min(required - margin, cash) if required > margin else required - margin  # + in, - out
        if move:
            source, target = ((Account.Kind.CASH_AVAILABLE, Account.Kind.MARGIN) if move > 0
                              else (Account.Kind.MARGIN, Account.Kind.CASH_AVAILABLE))
            postings.append(Posting(kind=JournalEntry.Kind.MARGIN, reference=f"initial-margin:{day.isoformat()}",
                                    lines=[(book.member(organisation, source), -abs(move)),
                                           (book.member(organisation, target), abs(move))]))
            margin += move
        if required and margin < core.maintenance(required):
            calls.append(MarginCall(organisation_id=organisation, date=day, amount=required - margin,
                                    due_at=due_at))
    if postings:
        ledger_post_all(postings, savepoint=False)
    MarginCall.objects.bulk_create(calls)
    run.summary = {"members": len(organisations), "calls": len(calls),
                   "variation_margin": {str(k): str(v) for k, v in amounts.items()}}
    run.save(update_fields=["summary"])
    log.info("futures %s: variation margin for %d members, %d margin calls", day, len(organisations), len(calls))
    return len(organisations)


def margin_summary(*, organisation_id: int, on: date | None = None) -> dict[str, Any]:
    """What ``GET /api/v1/margin/`` shows: the requirement now, the
    collateral, the day's variation margin and any open call."""
    on = on or timezone.localdate(timezone.now(), calendar.BERLIN)
    latest = (SettlementPrice.objects.filter(instrument__segment=Segment.FUTURES, date__lte=on)
              .order_by("instrument_id", "-date").distinct("instrument_id"))
    prices = {row.instrument_id: row.price for row in latest}
    positions = dict(Position.objects.filter(organisation_id=organisation_id, instrument__segment=Segment.FUTURES)
                     .values_list("instrument_id", "quantity"))
    orders = {instrument: sides for (org, instrument), sides in open_futures_orders([organisation_id]).items()}
    legs: dict[Decimal, list[core.Leg]] = defaultdict(list)
    for instrument in Instrument.objects.filter(pk__in=set(positions) | set(orders)).select_related("gpu_class"):
        price = prices.get(instrument.pk)
        if price is None:
            continue
        open_buy, open_sell = orders.get(instrument.pk, (0, 0))
        legs[instrument.gpu_class.initial_margin_rate].append(core.Leg(
            position=positions.get(instrument.pk, 0), open_buy=open_buy, open_sell=open_sell, price=price,
            hours=instrument.hours))
    initial = requirement_of(legs)
    collateral = (Account.objects.filter(organisation_id=organisation_id, kind=Account.Kind.MARGIN)
                  .values_list("balance", flat=True).first() or ZERO)
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
        "default_fund_contribution": ZERO,
    }


__all__ = [
    "dsp_instant", "margin_summary", "next_business_day", "previous_business_day", "settlement_price_override",
    "settlement_prices_compute", "settlement_prices_on", "variation_margin_run",
]
