"""Pure arithmetic of the public price pages (issue 11): no Django import.

Means over weeks and months of daily index values, the price per unit of a
class's benchmark figure, the spread between two generations and the change
against the day before. Decimals in, decimals out, quantised explicitly
(prices to the cent, half up, as the indices are)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
DAY, WEEK, MONTH = "day", "week", "month"
# Price per performance is given per this many units of the benchmark figure
# (1,000 TFLOPS: the price of a PFLOPS for an hour), so that it reads like a price.
PER_UNITS = Decimal("1000")


def price(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def period_start(day: date, resolution: str) -> date:
    """The first day of the period holding ``day``: itself, the Monday of its ISO week, the 1st of its month."""
    if resolution == WEEK:
        return day - timedelta(days=day.weekday())
    if resolution == MONTH:
        return day.replace(day=1)
    return day


def period_means(values: Iterable[tuple[date, Decimal | None]], resolution: str
                 ) -> list[tuple[date, Decimal, int]]:
    """(first day of the period, mean of its daily values to the cent, number of days) per period,
    oldest first; a day without a value (None) counts in neither the sum nor the number."""
    sums: dict[date, tuple[Decimal, int]] = {}
    for day, value in values:
        if value is None:
            continue
        start = period_start(day, resolution)
        total, count = sums.get(start, (Decimal(0), 0))
        sums[start] = (total + value, count + 1)
    return [(start, price(total / count), count) for start, (total, count) in sorted(sums.items())]


def per_performance(value: Decimal, benchmark: Decimal) -> Decimal:
    """EUR per GPU-hour divided by the benchmark figure, per ``PER_UNITS`` units, to the cent."""
    if benchmark <= 0:
        raise ValueError("the benchmark figure must be positive")
    return price(value * PER_UNITS / benchmark)


def difference(newer: Decimal | None, older: Decimal | None) -> Decimal | None:
    """``newer - older`` (a spread, or a change against the day before); None if either is missing."""
    if newer is None or older is None:
        return None
    return newer - older


def window(end: date, span: str, first: date | None) -> date:
    """The first day of a range ending on ``end``: day 1 day, week 7, month 31, year 365, all from ``first``."""
    days = {"day": 1, "week": 7, "month": 31, "year": 365}
    if span in days:
        return end - timedelta(days=days[span] - 1)
    return first if first is not None and first <= end else end
