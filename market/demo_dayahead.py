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
"""

import math
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from market import calendar
from market.demo import REFERENCE_PRICES, TICK, _rng, maker_traders
from market.models import BidStatus, DayAheadBid
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
    day = next_open_day(now)
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
