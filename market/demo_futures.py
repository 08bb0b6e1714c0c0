"""Demo futures (issue 10): the two demo market makers quote the listed
futures of the main classes over the last few business days, and each of
those days ends as a real one does (settlement prices at 17:30, variation and
initial margin, the default fund), so that a newcomer finds a futures board
with bids, asks, settlement prices and their change, and a forward curve on
the public dashboard.

Everything goes through the services with the makers' own traders and a
clock set to the day in question (``now=``): the quotes reserve margin as a
member's would, the day's runs book what they would. The demo term structure:
each month of lead adds ``TERM_PREMIUM`` to the class's reference price
(capacity is expected to be scarcer), with a little noise per day. On each
day one maker moves its quotes, and the front month trades one GPU at 17:10,
so the front month's settlement price is a VWAP and the others' are mids
(the buyer is the maker that does not hold the best ask).

Idempotent: a day whose settlement prices exist is skipped, and so is a day
in a month whose fees are charged already (seed_demo runs this first). Call outside any
transaction (the services are durable).
"""

import logging
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import User
from exchange.errors import ExchangeError
from market import calendar
from market.demo import CLIENT_PREFIX, MAIN_CLASSES, MAKERS, REFERENCE_PRICES, TICK, _month_closed, _rng, maker_traders
from market.models import (
    RESTING_STATUSES,
    FuturesJob,
    FuturesJobRun,
    Instrument,
    InstrumentStatus,
    Order,
    Segment,
    Side,
    TimeInForce,
)
from market.services import futures, order_cancel, order_submit

log = logging.getLogger(__name__)

DAYS = 4
GPUS = 2
TERM_PREMIUM = Decimal("0.004")  # per month of lead, as a share of the reference price
# Half-spreads of the two makers' quotes: the first quotes the tighter bid, the second the tighter ask.
SPREADS = {"maker": (TICK * 3, TICK * 5), "maker2": (TICK * 5, TICK * 3)}


def past_business_days(now: datetime, count: int) -> list[date]:
    """The last ``count`` business days whose settlement time has passed at ``now``, oldest first."""
    day = timezone.localdate(now, calendar.BERLIN)
    days: list[date] = []
    while len(days) < count:
        if calendar.is_business_day(day) and futures.dsp_instant(day) <= now:
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


def reference(instrument: Instrument, day: date) -> Decimal:
    """The demo price of a future on ``day``: the class's reference, dearer by the months of lead, with noise."""
    lead = instrument.delivery_start.astimezone(calendar.BERLIN).date()
    months = (lead.year - day.year) * 12 + lead.month - day.month
    noise = Decimal(str(round(_rng("futures", instrument.symbol, day).uniform(-0.01, 0.01), 4)))
    base = REFERENCE_PRICES[instrument.gpu_class.code]
    return (base * (1 + TERM_PREMIUM * months + noise)).quantize(TICK)


def _listed_on(day: date) -> list[Instrument]:
    morning = calendar.local_time(day, time(10))
    return list(Instrument.objects.select_related("gpu_class").filter(
        # Open now too: a future whose trading has ended since (the month under delivery) takes no orders.
        segment=Segment.FUTURES, status=InstrumentStatus.OPEN, gpu_class__code__in=MAIN_CLASSES, opens_at__lte=morning,
        closes_at__gt=futures.dsp_instant(day)).order_by("gpu_class__code", "delivery_start", "delivery_end"))


def _quote(instrument: Instrument, key: str, user: User, price: Decimal, now: datetime, day: date) -> int:
    """Replace maker ``key``'s quotes in ``instrument`` by a bid and an ask around ``price``."""
    for order_id in Order.objects.filter(instrument=instrument, placed_by=user,
                                         status__in=RESTING_STATUSES).values_list("pk", flat=True):
        order_cancel(user=user, order_id=order_id, now=now)
    below, above = SPREADS[key]
    entered = 0
    for side, limit in ((Side.BUY, price - below), (Side.SELL, price + above)):
        try:
            entered += order_submit(user=user, instrument=instrument, side=side, price=limit, quantity=GPUS,
                                    client_order_id=f"{CLIENT_PREFIX}f:{instrument.symbol}:{key}:{day}:{side}",
                                    now=now).created
        except ExchangeError as error:
            log.warning("demo futures quote in %s refused: %s %s", instrument.symbol, error.code, error.detail)
    return entered


def seed_futures(*, now: datetime | None = None, days: int = DAYS) -> int:
    """Quote and settle the last ``days`` business days; answers how many days were settled now."""
    now = now or timezone.now()
    traders = maker_traders()
    if set(traders) != set(MAKERS):
        return 0
    settled = 0
    for number, day in enumerate(past_business_days(now, days)):
        if (FuturesJobRun.objects.filter(kind=FuturesJob.SETTLEMENT_PRICES, date=day).exists()
                or _month_closed(day.replace(day=1))):  # a trade there would accrue fees never charged
            continue
        morning = calendar.local_time(day, time(10))
        instruments = _listed_on(day)
        # The first day both makers quote; then one of them moves its quotes each day.
        movers = MAKERS if number == 0 else (MAKERS[number % 2],)
        for instrument in instruments:
            for key in movers:
                _quote(instrument, key, traders[key], reference(instrument, day), morning, day)
        fronts = {i.gpu_class_id: i for i in reversed(instruments) if i.hours < 800}  # each class's front month
        for instrument in fronts.values():
            best_ask = Order.objects.filter(instrument=instrument, side=Side.SELL, status__in=RESTING_STATUSES) \
                .order_by("price", "id").values_list("placed_by_id", flat=True).first()
            buyer = next((user for user in traders.values() if user.pk != best_ask), traders["maker"])
            try:
                order_submit(user=buyer, instrument=instrument, side=Side.BUY, type="market",
                             quantity=1, time_in_force=TimeInForce.IOC, now=calendar.local_time(day, time(17, 10)))
            except ExchangeError as error:
                log.warning("demo futures trade in %s refused: %s %s", instrument.symbol, error.code, error.detail)
        futures.settlement_prices_compute(day=day, now=futures.dsp_instant(day))
        futures.variation_margin_run(day=day, now=calendar.local_time(day, time(18, 15)))
        futures.default_fund_run(day=day, now=calendar.local_time(day, time(18, 25)))
        settled += 1
    return settled
