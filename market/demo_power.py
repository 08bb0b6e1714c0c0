"""A year of demo electricity prices (issue 11) for ``seed_demo``: hourly
day-ahead prices of DE-LU for the same days as the demo index history
(``market.demo_index``), so that the electricity page is not empty under
``make run``. Every row is marked ``is_demo`` (the page and the open data
say so), and a real SMARD import replaces a demo hour.

The model, invented: 85 EUR/MWh, dearer in winter, a morning and an
evening peak, cheap around midday (solar) and at weekends, a slow wave of
some weeks and a few per cent of noise; now and then a negative hour at
midday in summer. Deterministic (a generator seeded by the day) and
idempotent (hours already stored are skipped).
"""

import math
import random
from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from market import calendar
from market.demo_index import HISTORY_DAYS
from market.models import PowerPrice

SHAPE = (0.92, 0.88, 0.85, 0.84, 0.86, 0.95, 1.10, 1.25, 1.22, 1.05, 0.90, 0.78,
         0.72, 0.75, 0.85, 0.98, 1.12, 1.30, 1.38, 1.28, 1.15, 1.05, 0.98, 0.94)


def demo_power_price(day: date, local_hour: int) -> Decimal:
    rng = random.Random(f"power:{day.isoformat()}:{local_hour}")  # noqa: S311 - demo data, not secrets
    season = 1 + 0.18 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365)
    wave = 1 + 0.08 * math.sin(day.toordinal() / 9.0)
    weekend = 0.82 if day.weekday() >= 5 else 1.0
    price = 85 * season * wave * weekend * SHAPE[local_hour] * (1 + rng.uniform(-0.06, 0.06))
    if 11 <= local_hour <= 14 and season < 0.9 and rng.random() < 0.08:
        price = -rng.uniform(1, 15)
    return Decimal(f"{price:.2f}")


def seed_power_history(*, today: date | None = None, days: int = HISTORY_DAYS) -> int:
    """Demo hours for the ``days`` days ending the day before yesterday; answers how many were added."""
    today = today or timezone.now().astimezone(calendar.BERLIN).date()
    last = today - timedelta(days=2)
    first = last - timedelta(days=days - 1)
    existing = set(PowerPrice.objects.filter(
        zone=PowerPrice.DE_LU, hour_start__gte=calendar.local_midnight(first),
        hour_start__lt=calendar.local_midnight(last + timedelta(days=1))).values_list("hour_start", flat=True))
    now = timezone.now()
    rows = []
    day = first
    while day <= last:
        for hour in calendar.day_hours(day):
            if hour.start in existing:
                continue
            local_hour = hour.start.astimezone(calendar.BERLIN).hour
            rows.append(PowerPrice(zone=PowerPrice.DE_LU, hour_start=hour.start,
                                   price=demo_power_price(day, local_hour), source="demo", is_demo=True,
                                   imported_at=now))
        day += timedelta(days=1)
    PowerPrice.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return len(rows)
