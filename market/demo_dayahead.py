"""Demo bids for the next open day-ahead auction (issue 9, item 6): the two
demo market makers bid for H100 in zone DE so that a newcomer finds a book
to bid into, indicative prices while it is open and results once it clears.

``Taktgeber`` offers sell curves in every hour (three steps around the
demo reference price), ``Nordkurs`` buy curves in every hour and one
daytime block. The bids go through ``dayahead_bid_submit`` with the makers'
own traders, so reservations and capacity are exactly what a member's bids
leave. "Tomorrow's auction" is taken as the next one whose book is open:
tomorrow's until its gate closure at 12:00, then the day after's.
Idempotent: a maker that has active bids in that auction is skipped.

``seed_dayahead_results`` gives the last two delivery days whose gate has
closed the same bids, entered and cleared at the times they would have been,
so a visitor finds results, not only an open book.
"""

import math
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import User
from market import calendar
from market.demo import REFERENCE_PRICES, TICK, _rng, maker_traders
from market.models import AuctionStatus, BidStatus, DayAheadAuction, DayAheadBid
from market.services import dayahead

DEMO_CLASS = "H100"
DEMO_ZONE = "DE"


def next_open_day(now: datetime) -> date:
    """The first delivery day whose auction book is open at ``now``."""
    day = timezone.localdate(now, calendar.BERLIN) + timedelta(days=1)
    while calendar.dayahead_gate_closure(day) <= now:
        day += timedelta(days=1)
    return day


def _reference(day: date, label: str) -> Decimal:
    """The demo reference price of an hour: dearer in the afternoon, cheaper at the weekend."""
    hour = int(label[:2])
    base = REFERENCE_PRICES[DEMO_CLASS]
    daily = Decimal(str(round(0.12 * math.cos((hour - 15) / 24 * 2 * math.pi), 4)))
    weekend = Decimal("-0.06") if day.weekday() >= 5 else Decimal("0")
    noise = Decimal(str(round(_rng("dayahead", day, label).uniform(-0.02, 0.02), 4)))
    return (base * (1 + daily + weekend + noise)).quantize(TICK)


def seed_dayahead_bids(*, now: datetime | None = None) -> int:
    """Enter the makers' demo bids for the next open auction; answers how many bids were entered."""
    now = now or timezone.now()
    traders = maker_traders()
    if set(traders) != {"maker", "maker2"}:
        return 0
    return _enter_bids(traders, next_open_day(now), now)


def seed_dayahead_results(*, now: datetime | None = None, days: int = 2) -> int:
    """The auctions of the last ``days`` delivery days whose gate has closed
    (tomorrow's once it is past 12:00, today's, ...), as they would have run:
    the makers bid two hours before gate closure and the auction clears at
    it, through the services with the clock set then. So the public pages
    show results, the index and trades, and the makers deliver them like any
    other (``clearing.demo``). A day whose H100 DE auction is cleared already
    is skipped; answers how many auctions were cleared now."""
    now = now or timezone.now()
    traders = maker_traders()
    if set(traders) != {"maker", "maker2"}:
        return 0
    day = next_open_day(now) - timedelta(days=1)  # the latest day whose gate has closed
    cleared = 0
    for delivery_day in sorted(day - timedelta(days=n) for n in range(days)):
        if DayAheadAuction.objects.filter(delivery_date=delivery_day, gpu_class__code=DEMO_CLASS,
                                          zone__code=DEMO_ZONE, status=AuctionStatus.CLEARED).exists():
            continue
        gate = calendar.dayahead_gate_closure(delivery_day)
        if gate - timedelta(hours=2) < calendar.dayahead_book_opens(delivery_day):
            continue
        _enter_bids(traders, delivery_day, gate - timedelta(hours=2))
        cleared += dayahead.auctions_clear_due(now=gate, delivery_date=delivery_day)
    return cleared


def _enter_bids(traders: dict[str, User], day: date, now: datetime) -> int:
    """Maker ``maker`` offers sell curves in every hour of ``day``, ``maker2``
    bids buy curves and one daytime block; a maker with active bids there is skipped."""
    entered = 0
    labels = [h.label for h in calendar.day_hours(day)]
    for key, side in (("maker", "sell"), ("maker2", "buy")):
        user = traders[key]
        if DayAheadBid.objects.filter(auction__delivery_date=day, auction__gpu_class__code=DEMO_CLASS,
                                      auction__zone__code=DEMO_ZONE, placed_by__in=[user],
                                      status=BidStatus.ACTIVE).exists():
            continue
        for label in labels:
            reference = _reference(day, label)
            sign = 1 if side == "sell" else -1
            steps = [[str((reference + sign * offset).quantize(TICK)), quantity]
                     for offset, quantity in ((Decimal("-0.10"), 10), (Decimal("0.05"), 15), (Decimal("0.25"), 20))]
            dayahead.dayahead_bid_submit(user=user, delivery_date=day, gpu_class=DEMO_CLASS, zone=DEMO_ZONE,
                                         side=side, kind="curve", hour=label, steps=steps, now=now)
            entered += 1
        if side == "buy":
            # A training job that can run in the day or in the night: one exclusive group.
            for first, last in (("08", "19"), ("20", "23")):
                dayahead.dayahead_bid_submit(
                    user=user, delivery_date=day, gpu_class=DEMO_CLASS, zone=DEMO_ZONE, side="buy", kind="block",
                    first_hour=first, last_hour=last, price=str(REFERENCE_PRICES[DEMO_CLASS] + Decimal("0.20")),
                    quantity=8, min_acceptance_ratio="0.5", exclusive_group="training-run", now=now)
                entered += 1
    return entered
