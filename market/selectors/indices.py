"""Reads of the published indices: one row per day for the API's list and
CSV, and one day's values with their hashed documents (what anyone needs
to recompute the fingerprint)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from market import indices
from market.models import DeliveryZone, GpuClass, IndexValue


@dataclass(frozen=True)
class IndexDay:
    """One day of a class and zone: the three values (``None``: not
    published, or no value that day), the day-ahead volume behind Base
    (GPU-hours), the intraday volume behind the VWAP, and the fingerprint of
    what is published."""

    date: date
    base: Decimal | None
    peak: Decimal | None
    intraday_vwap: Decimal | None
    volume: int
    intraday_volume: int
    fingerprint: str
    is_demo: bool
    methodology_version: str
    published: tuple[str, ...]


@dataclass(frozen=True)
class PublishedValue:
    index: str
    value: Decimal | None
    volume: int
    sha256: str
    computed_at: datetime
    is_demo: bool
    document: dict[str, Any]


@dataclass(frozen=True)
class IndexDayDetail:
    date: date
    gpu_class: str
    zone: str
    methodology_version: str
    fingerprint: str
    is_demo: bool
    values: list[PublishedValue]


def _day(day: date, version: str, values: dict[str, IndexValue]) -> IndexDay:
    def value_of(kind: str) -> Decimal | None:
        row = values.get(kind)
        return row.value if row is not None else None

    return IndexDay(
        date=day, base=value_of(indices.BASE), peak=value_of(indices.PEAK),
        intraday_vwap=value_of(indices.INTRADAY_VWAP),
        volume=values[indices.BASE].volume if indices.BASE in values else 0,
        intraday_volume=values[indices.INTRADAY_VWAP].volume if indices.INTRADAY_VWAP in values else 0,
        fingerprint=indices.day_fingerprint({kind: row.sha256 for kind, row in values.items()}),
        is_demo=any(row.is_demo for row in values.values()), methodology_version=version,
        published=tuple(kind for kind in indices.KINDS if kind in values),
    )


def index_days(*, gpu_class: GpuClass, zone: DeliveryZone, start: date, end: date,
               version: str = indices.METHODOLOGY_VERSION) -> list[IndexDay]:
    """The days from ``start`` to ``end`` (both included) that have a
    published value, oldest first."""
    by_day: dict[date, dict[str, IndexValue]] = defaultdict(dict)
    rows = (IndexValue.objects.filter(gpu_class=gpu_class, zone=zone, methodology_version=version,
                                      date__gte=start, date__lte=end)
            .only("kind", "date", "value", "volume", "sha256", "is_demo").order_by("date", "kind"))
    for row in rows.iterator(chunk_size=2000):
        by_day[row.date][row.kind] = row
    return [_day(day, version, values) for day, values in sorted(by_day.items())]


def index_day_detail(*, gpu_class: GpuClass, zone: DeliveryZone, day: date,
                     version: str = indices.METHODOLOGY_VERSION) -> IndexDayDetail | None:
    """One day's published values with their documents; None if it has none."""
    values = {row.kind: row for row in IndexValue.objects.filter(gpu_class=gpu_class, zone=zone, date=day,
                                                                 methodology_version=version)}
    if not values:
        return None
    summary = _day(day, version, values)
    return IndexDayDetail(
        date=day, gpu_class=gpu_class.code, zone=zone.code, methodology_version=version,
        fingerprint=summary.fingerprint, is_demo=summary.is_demo,
        values=[PublishedValue(index=kind, value=values[kind].value, volume=values[kind].volume,
                               sha256=values[kind].sha256, computed_at=values[kind].computed_at,
                               is_demo=values[kind].is_demo, document=values[kind].inputs)
                for kind in summary.published],
    )
