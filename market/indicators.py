"""The pure core of the policy indicators (issue 11; market rules §5):
market shares, the Herfindahl-Hirschman index (HHI), the suppression of
aggregates over too few members, the concentration thresholds, size classes
of the EU SME definition, and the calendar periods the dashboards group by.

No Django import: plain values in and out, exact arithmetic (``Fraction``)
inside and ``Decimal`` quantised once at the end, so that the hand-computed
tests and the hypothesis properties in tests/market/test_indicators_core.py
hold for every input. ``market.selectors.activity`` feeds it from the
database.
"""

from __future__ import annotations

import datetime
from collections.abc import Hashable, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# The statistics offices' rule (open_data.MIN_MEMBERS; a test keeps the two equal):
# a figure computed from fewer members than this is not published.
MIN_MEMBERS = 3

HHI_SCALE = 10_000
# The thresholds of the US Horizontal Merger Guidelines (2010), the ones the
# market commonly cites: below 1,500 unconcentrated, 1,500 to 2,500
# moderately concentrated, above 2,500 highly concentrated.
HHI_MODERATE = 1_500
HHI_HIGH = 2_500

UNCONCENTRATED = "unconcentrated"
MODERATE = "moderately_concentrated"
HIGH = "highly_concentrated"

SHARE_PLACES = Decimal("0.0001")
PRICE_PLACES = Decimal("0.01")
HHI_PLACES = Decimal("1")

DAY, WEEK, MONTH = "day", "week", "month"
RESOLUTIONS = (DAY, WEEK, MONTH)

# How far back a page looks from today (days, inclusive of today); "all": from the first trade.
RANGES: dict[str, int | None] = {"month": 31, "quarter": 92, "year": 366, "all": None}


def _decimal(value: Fraction, places: Decimal) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(places, rounding=ROUND_HALF_UP)


def suppressed(members: int) -> bool:
    """Whether a figure over ``members`` distinct members must not be shown
    (0 is not suppressed: an empty aggregate reveals nobody)."""
    return 0 < members < MIN_MEMBERS


def exact_shares(volumes: Mapping[K, int | Decimal]) -> dict[K, Fraction]:
    """Each member's exact share of the total (members with no volume left out);
    empty when the total is zero."""
    positive = {key: Fraction(value) for key, value in volumes.items() if value > 0}
    total = sum(positive.values(), Fraction(0))
    if total == 0:
        return {}
    return {key: value / total for key, value in positive.items()}


def shares(volumes: Mapping[K, int | Decimal]) -> dict[K, Decimal]:
    """Each member's share of the total, 0-1, to 4 places (half up)."""
    return {key: _decimal(share, SHARE_PLACES) for key, share in exact_shares(volumes).items()}


def hhi_exact(volumes: Iterable[int | Decimal]) -> Fraction | None:
    """The HHI on the 0-10,000 scale: 10,000 x the sum of the squared shares
    of the volumes; ``None`` with no volume."""
    positive = [Fraction(value) for value in volumes if value > 0]
    total = sum(positive, Fraction(0))
    if total == 0:
        return None
    return HHI_SCALE * sum(((value / total) ** 2 for value in positive), Fraction(0))


def hhi(volumes: Iterable[int | Decimal]) -> Decimal | None:
    """The HHI in whole points (half up), e.g. shares 50/30/20 -> 3800."""
    exact = hhi_exact(volumes)
    return None if exact is None else _decimal(exact, HHI_PLACES)


def public_hhi(volumes: Mapping[K, int | Decimal]) -> Decimal | None:
    """The HHI of the members' volumes, or ``None`` when fewer than
    ``MIN_MEMBERS`` members have volume (or none has)."""
    members = sum(1 for value in volumes.values() if value > 0)
    if members < MIN_MEMBERS:
        return None
    return hhi(volumes.values())


def concentration_band(value: Decimal | None) -> str:
    """The band of an HHI: unconcentrated below 1,500, moderately concentrated
    from 1,500 to 2,500, highly concentrated above 2,500; "" without a value."""
    if value is None:
        return ""
    if value < HHI_MODERATE:
        return UNCONCENTRATED
    if value <= HHI_HIGH:
        return MODERATE
    return HIGH


def group_share(total_by_member: Mapping[K, int], group_by_member: Mapping[K, int]) -> Decimal | None:
    """The share (0-1, 4 places) of the total volume that members of a group
    (SMEs, start-ups) account for.

    ``total_by_member`` is every member's volume, ``group_by_member`` the part
    of it that counts for the group. ``None`` when there is no volume, or when
    the group or the rest has one or two members: with the total public, the
    share of either side would reveal the volume of those one or two.
    """
    total = sum(total_by_member.values())
    if total <= 0:
        return None
    in_group = {key for key, value in group_by_member.items() if value > 0}
    rest = {key for key, value in total_by_member.items() if value - group_by_member.get(key, 0) > 0}
    if suppressed(len(in_group)) or suppressed(len(rest)):
        return None
    return _decimal(Fraction(sum(group_by_member.values()), total), SHARE_PLACES)


def average_price(value: Decimal, gpu_hours: int) -> Decimal | None:
    """Volume-weighted average price in EUR/GPUh (2 places, half up): value / GPU-hours."""
    if gpu_hours <= 0:
        return None
    return _decimal(Fraction(value) / gpu_hours, PRICE_PLACES)


def open_interest(net_positions: Mapping[K, int]) -> int:
    """Open interest of one contract: the sum of the long net positions
    (equal to the sum of the short ones, since every trade has two sides)."""
    return sum(quantity for quantity in net_positions.values() if quantity > 0)


# --- size classes (EU SME definition, Recommendation 2003/361/EC, by staff and turnover) -------

MICRO, SMALL, MEDIUM, LARGE, UNKNOWN = "micro", "small", "medium", "large", "unknown"
SIZE_CLASSES = (MICRO, SMALL, MEDIUM, LARGE, UNKNOWN)

# Organisation.EmployeesBand and Organisation.TurnoverBand codes, smallest first.
_EMPLOYEES = ("lt10", "10-49", "50-249", "250+")
_TURNOVER = ("le2m", "le10m", "le50m", "gt50m")


def size_class(employees_band: str, turnover_band: str) -> str:
    """micro (< 10 staff, <= 2 M EUR), small (< 50, <= 10 M), medium (< 250,
    <= 50 M), else large; unknown when a band is missing. The larger of the
    two bands decides (the balance-sheet alternative is not recorded)."""
    if employees_band not in _EMPLOYEES or turnover_band not in _TURNOVER:
        return UNKNOWN
    step = max(_EMPLOYEES.index(employees_band), _TURNOVER.index(turnover_band))
    return (MICRO, SMALL, MEDIUM, LARGE)[step]


# --- periods -------------------------------------------------------------------------------------


def period_start(day: datetime.date, resolution: str) -> datetime.date:
    """The first day of the day's period: the day, its ISO week's Monday, or the first of its month."""
    if resolution == WEEK:
        return day - datetime.timedelta(days=day.weekday())
    if resolution == MONTH:
        return day.replace(day=1)
    return day


def next_period(start: datetime.date, resolution: str) -> datetime.date:
    if resolution == WEEK:
        return start + datetime.timedelta(days=7)
    if resolution == MONTH:
        return (start.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    return start + datetime.timedelta(days=1)


def periods(first: datetime.date, last: datetime.date, resolution: str) -> list[datetime.date]:
    """The starts of every period from the one holding ``first`` to the one holding ``last``."""
    out: list[datetime.date] = []
    current = period_start(first, resolution)
    while current <= last:
        out.append(current)
        current = next_period(current, resolution)
    return out


def range_first_day(today: datetime.date, range_name: str, earliest: datetime.date | None) -> datetime.date:
    """The first day a range covers: ``RANGES[range_name]`` days back
    including today, or for "all" the earliest day with data (today without any)."""
    days = RANGES[range_name]
    if days is None:
        return min(earliest, today) if earliest is not None else today
    return today - datetime.timedelta(days=days - 1)


def protect(cells: list[tuple[int, int]]) -> list[int | None]:
    """Primary and secondary suppression of a column of a table whose total
    is known elsewhere: ``cells`` are (members, value) pairs; a cell over one
    or two members is withheld (primary), and when that leaves exactly one
    withheld cell, the smallest other cell with a value is withheld too, so
    the total minus the shown cells cannot give it away."""
    out: list[int | None] = [None if suppressed(members) else value for members, value in cells]
    hidden = [index for index, (members, _value) in enumerate(cells) if suppressed(members)]
    if len(hidden) == 1:
        others = [index for index, (members, value) in enumerate(cells)
                  if index not in hidden and members > 0 and value > 0]
        if others:
            out[min(others, key=lambda index: (cells[index][1], index))] = None
    return out


def apportion(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """``total`` (whole units) split in proportion to the positive
    ``weights`` by largest remainder: each part the floor of its exact
    share, the units left over one each to the largest remainders (ties: the
    first key in order). The parts sum to ``total``; empty without a
    positive weight. Used to place an offer that may be delivered from
    several states (a DE order) in the states of the seller's capacity."""
    positive = [(key, weight) for key, weight in weights.items() if weight > 0]
    whole = sum(weight for _key, weight in positive)
    if whole == 0:
        return {}
    parts = {key: total * weight // whole for key, weight in positive}
    remainders = sorted(range(len(positive)), key=lambda i: (-(total * positive[i][1] % whole), i))
    for index in remainders[:total - sum(parts.values())]:
        parts[positive[index][0]] += 1
    return parts
