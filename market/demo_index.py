"""A year of demo history of the compute price indices (issue 9, item 6),
for ``seed_demo``: daily Base, Peak and intraday VWAP for every active GPU
class in zone DE and the two demo states (DE-BY, DE-NW).

The values are made by the real rules (``market.indices``) from invented
hourly auction results and intraday trades, so their documents, hashes and
fingerprints check out like real ones -- and every one is marked: the row's
``is_demo`` and the hashed document's ``"demo": true`` (the API and CSV show
``is_demo``; the methodology page explains it). Nothing here writes an
auction, a bid or a trade.

The model: each class trades around its demo reference price
(``market.demo.REFERENCE_PRICES``, where the demo market makers quote
today) and was dearer a year ago, older generations falling faster; a
slow wave of some weeks, a day-to-day shock shared by the class's zones,
the demo market's daily shape (afternoons dearer), weekends 6 % cheaper,
a few per cent of noise per zone and hour, the states' premium. The states
have thinner books: some hours without bids, fewer intraday trades.

Deterministic (each day's numbers come from generators seeded by class,
zone and date) and idempotent: it covers the 365 days ending the day before
yesterday, and skips every (day, class, zone) that already has any value,
demo or real -- the job publishes real ones for yesterday onwards, so the
two never meet in one day. One bulk insert.
"""

import math
import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from django.db import connection, transaction
from django.utils import timezone

from market import calendar, indices
from market.demo import MAIN_ZONES, REFERENCE_PRICES, ZONE_PREMIUM, _rng
from market.models import DeliveryZone, GpuClass, IndexValue

HISTORY_DAYS = 365
# How much dearer than today each class was a year ago (older generations fall faster).
YEARLY_DECLINE = {"A100": 0.24, "L40S": 0.18, "H100": 0.16, "H200": 0.10, "B200": 0.06}
# GPUs traded per hour in the auction of zone DE, and each state's share of it.
HOURLY_VOLUME = {"H100": 420, "H200": 260, "B200": 140, "A100": 300, "L40S": 180}
ZONE_SHARE = {"DE": 1.0, "DE-BY": 0.3, "DE-NW": 0.22}
# Chance that an hour has no bids (an empty book), and that it has intraday trades.
EMPTY_HOUR = {"DE": 0.0, "DE-BY": 0.02, "DE-NW": 0.03}
TRADED_HOUR = {"DE": 0.75, "DE-BY": 0.45, "DE-NW": 0.4}
MIN_PRICE = 0.10


@lru_cache(maxsize=1024)
def _local_hours(day: date) -> tuple[tuple[str, int], ...]:
    """(label, local hour) of the day's delivery hours."""
    return tuple((hour.label, hour.start.astimezone(calendar.BERLIN).hour) for hour in calendar.day_hours(day))


def _price(value: float) -> Decimal:
    return Decimal(f"{max(value, MIN_PRICE):.2f}")


def demo_day(*, gpu_class: str, zone: str, day: date, last: date
             ) -> tuple[list[indices.AuctionHour], list[indices.TradeHour]]:
    """The invented auction hours and intraday trade sums of one day; ``last``
    is the newest day of the history (where the trend meets today's prices)."""
    reference = float(REFERENCE_PRICES.get(gpu_class, Decimal("2.00")))
    years_back = (last - day).days / 365
    trend = 1 + YEARLY_DECLINE.get(gpu_class, 0.12) * years_back
    phase = _rng("index-wave", gpu_class, zone).random()
    wave = 0.04 * math.sin(2 * math.pi * (day.toordinal() / 61 + phase))
    shock = _rng("index-class-day", gpu_class, day).gauss(0, 0.025)  # shared by the class's zones
    rng: random.Random = _rng("index-day", gpu_class, zone, day)
    weekend = -0.06 if day.weekday() >= 5 else 0.0
    premium = float(ZONE_PREMIUM.get(zone, Decimal("0")))
    volume = HOURLY_VOLUME.get(gpu_class, 150) * ZONE_SHARE.get(zone, 0.2) * (0.7 if weekend else 1.0)
    auction, trades = [], []
    for label, local in _local_hours(day):
        shape = 0.12 * math.cos((local - 15) / 24 * 2 * math.pi)
        noise = rng.uniform(-0.025, 0.025)
        price = _price(reference * trend * (1 + wave + shock + shape + weekend + noise) + premium)
        if rng.random() < EMPTY_HOUR.get(zone, 0.0):
            auction.append(indices.AuctionHour(hour=label, price=None, volume=0))
            continue
        gpus = max(1, round(volume * (1 + 1.5 * shape) * rng.uniform(0.85, 1.15)))
        auction.append(indices.AuctionHour(hour=label, price=price, volume=gpus))
        if rng.random() < TRADED_HOUR.get(zone, 0.3):
            count = rng.randint(1, 5)
            quantity = sum(rng.randint(1, 16) for _ in range(count))
            traded = _price(float(price) * (1 + rng.gauss(0, 0.02)))
            trades.append(indices.TradeHour(hour=label, notional=traded * quantity, quantity=quantity,
                                            trades=count))
    return auction, trades


def seed_index_history(*, now: datetime | None = None) -> int:
    """Add the demo history that is missing; answers how many values were added."""
    now = now or timezone.now()
    last = now.astimezone(calendar.BERLIN).date() - timedelta(days=2)
    days = [last - timedelta(days=back) for back in range(HISTORY_DAYS - 1, -1, -1)]
    classes = list(GpuClass.objects.filter(active=True).order_by("code"))
    zones = list(DeliveryZone.objects.filter(code__in=MAIN_ZONES).order_by("code"))
    taken = set(IndexValue.objects.filter(date__gte=days[0], date__lte=last, gpu_class__in=classes, zone__in=zones)
                .values_list("date", "gpu_class_id", "zone_id").distinct())
    rows: list[tuple[object, ...]] = []
    for gpu_class in classes:
        for zone in zones:
            for day in days:
                if (day, gpu_class.pk, zone.pk) in taken:
                    continue
                auction, trades = demo_day(gpu_class=gpu_class.code, zone=zone.code, day=day, last=last)
                for record in (
                    indices.base_record(day=day, gpu_class=gpu_class.code, zone=zone.code, hours=auction, demo=True),
                    indices.peak_record(day=day, gpu_class=gpu_class.code, zone=zone.code, hours=auction, demo=True),
                    indices.intraday_vwap_record(day=day, gpu_class=gpu_class.code, zone=zone.code, hours=trades,
                                                 demo=True),
                ):
                    # As if published when due: Base and Peak at the auction (noon the day before).
                    computed_at = (calendar.dayahead_gate_closure(day) if record.kind != indices.INTRADAY_VWAP
                                   else calendar.local_midnight(day + timedelta(days=1)))
                    rows.append((record.kind, day, gpu_class.pk, zone.pk, record.value, record.volume,
                                 record.canonical.decode("utf-8"), record.sha256, record.methodology_version, True,
                                 computed_at))
    return _insert(rows)


_COLUMNS = ("kind", "date", "gpu_class_id", "zone_id", "value", "volume", "inputs", "sha256", "methodology_version",
            "is_demo", "computed_at")


@transaction.atomic
def _insert(rows: list[tuple[object, ...]]) -> int:
    """Insert the rows, leaving any (kind, day, class, zone, version) that
    exists alone (a value the job published meanwhile stays as it is),
    through COPY into a temporary table: a year of five classes is 16,000
    rows of JSON, which INSERT statements quote and parse for tens of seconds
    (PostgreSQL everywhere, the embedded default too). Answers how many
    rows were inserted."""
    if not rows:
        return 0
    columns = ", ".join(_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS demo_index_rows")
        cursor.execute(f"CREATE TEMPORARY TABLE demo_index_rows AS SELECT {columns} FROM market_indexvalue "  # noqa: S608 (constant names)
                       "WITH NO DATA")
        with cursor.cursor.copy(f"COPY demo_index_rows ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO market_indexvalue ({columns}) SELECT {columns} FROM demo_index_rows "  # noqa: S608
                       "ON CONFLICT DO NOTHING")
        inserted = cursor.rowcount
        cursor.execute("DROP TABLE demo_index_rows")
    return inserted
