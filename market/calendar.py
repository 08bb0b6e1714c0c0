"""The exchange calendar: delivery hours, futures periods, symbols, trading windows.

Pure Python, no Django import: the one place that knows about Europe/Berlin
daylight saving time, so that it can be property-tested on its own.

Delivery periods are local (Europe/Berlin) and every instant returned here is
an aware UTC datetime. A local day has 23, 24 or 25 hours, counted as elapsed
hours; on the October change day the repeated hour 02 is labelled ``02A``
(the first, summer time) and ``02B`` (the second, winter time); the March
change day has no hour ``02``.

Symbols (market rules §1)::

    H100.DE.2026-11-29T14      an hour, 14:00-15:00 local
    H100.DE-BY.2026-10-25T02B  the second 02:00-03:00 of the October change day
    H100.DE.M2027-01           month future
    H100.DE.Q2027-2            quarter future
    H100.DE.Y2028              year future
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)

# Years the calendar accepts. Far enough either way for history and listing;
# the bound keeps date arithmetic (the day after, D-14) away from date.max.
MIN_YEAR = 2000
MAX_YEAR = 2199

# "DE" (any site in Germany) and the 16 federal states by ISO 3166-2.
ZONE_CODES: tuple[str, ...] = (
    "DE",
    "DE-BB", "DE-BE", "DE-BW", "DE-BY", "DE-HB", "DE-HE", "DE-HH", "DE-MV",
    "DE-NI", "DE-NW", "DE-RP", "DE-SH", "DE-SL", "DE-SN", "DE-ST", "DE-TH",
)
FUTURES_ZONE = "DE"

GPU_CLASS_PATTERN = r"[A-Z0-9]{2,16}"

INTRADAY_OPEN_LOCAL = time(15, 0)  # on D-1
DAYAHEAD_GATE_CLOSURE_LOCAL = time(12, 0)  # on D-1
DAYAHEAD_BOOK_OPENS_DAYS = 14
FUTURES_SESSION = (time(8, 0), time(18, 0))

# How far ahead futures are listed: the next N periods after the current one.
FuturesKind = Literal["M", "Q", "Y"]
FUTURES_LISTED_AHEAD: dict[FuturesKind, int] = {"M": 6, "Q": 4, "Y": 2}


class CalendarError(ValueError):
    """A date, hour label, period or symbol that the calendar does not know."""


# --- delivery hours --------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryHour:
    """One delivery hour of a local day. ``start``/``end`` are UTC."""

    day: date
    label: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class FuturesPeriod:
    """A base futures period: a month, quarter or year of all hours.

    ``number`` is the month (1-12), the quarter (1-4), or 1 for a year.
    """

    kind: FuturesKind
    year: int
    number: int = 1

    def __post_init__(self) -> None:
        highest = {"M": 12, "Q": 4, "Y": 1}.get(self.kind)
        if highest is None:
            raise CalendarError(f"Unknown futures period kind {self.kind!r}.")
        if not MIN_YEAR <= self.year <= MAX_YEAR:
            raise CalendarError(f"Year {self.year} is outside {MIN_YEAR}-{MAX_YEAR}.")
        if not 1 <= self.number <= highest:
            raise CalendarError(f"{self.kind} period number {self.number} is out of range.")

    @property
    def first_month(self) -> int:
        return {"M": self.number, "Q": 3 * self.number - 2, "Y": 1}[self.kind]

    @property
    def months(self) -> int:
        return {"M": 1, "Q": 3, "Y": 12}[self.kind]

    @property
    def first_day(self) -> date:
        return date(self.year, self.first_month, 1)

    @property
    def end_day(self) -> date:
        """The first local day after the period."""
        return _add_months(self.first_day, self.months)

    def shifted(self, steps: int) -> FuturesPeriod:
        """The period ``steps`` periods of the same kind later (or earlier)."""
        if self.kind == "Y":
            return FuturesPeriod("Y", self.year + steps)
        per_year = 12 if self.kind == "M" else 4
        index = self.year * per_year + (self.number - 1) + steps
        return FuturesPeriod(self.kind, index // per_year, index % per_year + 1)


Period = DeliveryHour | FuturesPeriod


@dataclass(frozen=True)
class Symbol:
    gpu_class: str
    zone: str
    period: Period

    def __str__(self) -> str:
        return format_symbol(self.gpu_class, self.zone, self.period)


def _check_year(year: int) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise CalendarError(f"Year {year} is outside {MIN_YEAR}-{MAX_YEAR}.")


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def local_midnight(day: date) -> datetime:
    """Local midnight starting ``day``, in UTC. Midnight is never skipped or
    repeated in Europe/Berlin (the changes happen at 02:00/03:00)."""
    return datetime.combine(day, time(0), tzinfo=BERLIN).astimezone(UTC)


def local_time(day: date, at: time) -> datetime:
    """A wall-clock time on a local day, in UTC. Only for times that exist
    exactly once on every day (15:00, 12:00, ...), never 02:xx."""
    return datetime.combine(day, at, tzinfo=BERLIN).astimezone(UTC)


@lru_cache(maxsize=4096)
def day_hours(day: date) -> tuple[DeliveryHour, ...]:
    """The delivery hours of a local day, in order: 23, 24 or 25 of them."""
    _check_year(day.year)
    start = local_midnight(day)
    count = (local_midnight(day + timedelta(days=1)) - start) // HOUR
    starts = [start + i * HOUR for i in range(count)]
    local_hours = [s.astimezone(BERLIN).hour for s in starts]
    repeated = Counter(local_hours)
    seen: Counter[int] = Counter()
    hours = []
    for s, hour in zip(starts, local_hours, strict=True):
        label = f"{hour:02d}"
        if repeated[hour] > 1:
            label += "AB"[seen[hour]]
            seen[hour] += 1
        hours.append(DeliveryHour(day=day, label=label, start=s, end=s + HOUR))
    return tuple(hours)


_DAY_RE = re.compile(r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})")


def parse_day(text: str) -> date:
    """A local day written ``YYYY-MM-DD`` (as in URLs: ``/dayahead/2026-10-25/``)
    within the calendar's years; CalendarError for anything else (``20261025``,
    ``2026-02-30``, year 1999)."""
    match = _DAY_RE.fullmatch(text)
    if not match:
        raise CalendarError(f"{text!r} is not a day (YYYY-MM-DD).")
    try:
        day = date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError as exc:
        raise CalendarError(f"{text!r} is not a valid date.") from exc
    _check_year(day.year)
    return day


def delivery_hour(day: date, label: str) -> DeliveryHour:
    """The hour of ``day`` called ``label``; CalendarError if the day has none."""
    for hour in day_hours(day):
        if hour.label == label:
            return hour
    raise CalendarError(f"{day.isoformat()} has no hour {label!r}.")


def hour_at(instant: datetime) -> DeliveryHour:
    """The delivery hour an aware instant falls in."""
    if instant.tzinfo is None:
        raise CalendarError("A naive datetime has no place on the calendar.")
    day = instant.astimezone(BERLIN).date()
    for hour in day_hours(day):
        if hour.start <= instant < hour.end:
            return hour
    raise AssertionError("the hours of a day cover it")  # pragma: no cover


# --- periods -------------------------------------------------------------------------


def period_interval(period: Period) -> tuple[datetime, datetime]:
    """UTC start and end of a delivery period."""
    if isinstance(period, DeliveryHour):
        return period.start, period.end
    return local_midnight(period.first_day), local_midnight(period.end_day)


def period_hours(period: Period) -> int:
    """Elapsed hours in a period (a month with the October change has 745)."""
    start, end = period_interval(period)
    return (end - start) // HOUR


def period_code(period: Period) -> str:
    """The period part of a symbol: ``2026-10-25T02B``, ``M2027-01``, ``Q2027-2``, ``Y2028``."""
    if isinstance(period, DeliveryHour):
        return f"{period.day.isoformat()}T{period.label}"
    if period.kind == "M":
        return f"M{period.year:04d}-{period.number:02d}"
    if period.kind == "Q":
        return f"Q{period.year:04d}-{period.number}"
    return f"Y{period.year:04d}"


_HOUR_RE = re.compile(r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})T(?P<label>[0-9]{2}[AB]?)")
_MONTH_RE = re.compile(r"M(?P<y>[0-9]{4})-(?P<n>[0-9]{2})")
_QUARTER_RE = re.compile(r"Q(?P<y>[0-9]{4})-(?P<n>[0-9])")
_YEAR_RE = re.compile(r"Y(?P<y>[0-9]{4})")


def parse_period(text: str) -> Period:
    """Inverse of :func:`period_code`; CalendarError for anything it would not write."""
    if match := _HOUR_RE.fullmatch(text):
        try:
            day = date(int(match["y"]), int(match["m"]), int(match["d"]))
        except ValueError as exc:
            raise CalendarError(f"{text!r} is not a valid date.") from exc
        _check_year(day.year)
        return delivery_hour(day, match["label"])
    if match := _MONTH_RE.fullmatch(text):
        return FuturesPeriod("M", int(match["y"]), int(match["n"]))
    if match := _QUARTER_RE.fullmatch(text):
        return FuturesPeriod("Q", int(match["y"]), int(match["n"]))
    if match := _YEAR_RE.fullmatch(text):
        return FuturesPeriod("Y", int(match["y"]))
    raise CalendarError(f"{text!r} is not a delivery period.")


# --- symbols -------------------------------------------------------------------------

_GPU_CLASS_RE = re.compile(GPU_CLASS_PATTERN)
_SYMBOL_RE = re.compile(r"(?P<cls>[^.]+)\.(?P<zone>[^.]+)\.(?P<period>[^.]+)")


def _check_class_and_zone(gpu_class: str, zone: str) -> None:
    if not _GPU_CLASS_RE.fullmatch(gpu_class):
        raise CalendarError(f"{gpu_class!r} is not a GPU class code.")
    if zone not in ZONE_CODES:
        raise CalendarError(f"{zone!r} is not a delivery zone.")


def format_symbol(gpu_class: str, zone: str, period: Period) -> str:
    _check_class_and_zone(gpu_class, zone)
    return f"{gpu_class}.{zone}.{period_code(period)}"


def parse_symbol(text: str) -> Symbol:
    """Parse a canonical symbol; CalendarError for anything else."""
    match = _SYMBOL_RE.fullmatch(text)
    if not match:
        raise CalendarError(f"{text!r} is not a symbol (CLASS.ZONE.PERIOD).")
    _check_class_and_zone(match["cls"], match["zone"])
    return Symbol(match["cls"], match["zone"], parse_period(match["period"]))


# --- futures listing -------------------------------------------------------------


def current_period(kind: FuturesKind, on: date) -> FuturesPeriod:
    """The period of ``kind`` that local day ``on`` lies in."""
    number = {"M": on.month, "Q": (on.month - 1) // 3 + 1, "Y": 1}[kind]
    return FuturesPeriod(kind, on.year, number)


def listed_futures(on: date) -> list[FuturesPeriod]:
    """The futures periods listed on local day ``on``: the 6 months after the
    current month, the 4 quarters after the current quarter and the 2 years
    after the current year. The period in delivery is no longer traded."""
    periods: list[FuturesPeriod] = []
    for kind, ahead in FUTURES_LISTED_AHEAD.items():
        current = current_period(kind, on)
        periods.extend(current.shifted(step) for step in range(1, ahead + 1))
    return periods


def futures_listing_start(period: FuturesPeriod) -> date:
    """The first local day on which ``period`` is listed: the first day of the
    period that is 6 months / 4 quarters / 2 years before it."""
    return period.shifted(-FUTURES_LISTED_AHEAD[period.kind]).first_day


# --- trading windows --------------------------------------------------------------


def intraday_opens_at(day: date) -> datetime:
    """Hourly instruments of delivery day D open at 15:00 local on D-1."""
    return local_time(day - timedelta(days=1), INTRADAY_OPEN_LOCAL)


def intraday_closes_at(delivery_start: datetime, lead_time_minutes: int) -> datetime:
    return delivery_start - timedelta(minutes=lead_time_minutes)


def dayahead_gate_closure(day: date) -> datetime:
    """Gate closure of the auction for delivery day D: 12:00 local on D-1."""
    return local_time(day - timedelta(days=1), DAYAHEAD_GATE_CLOSURE_LOCAL)


def dayahead_book_opens(day: date) -> datetime:
    """The auction book for D opens 14 days ahead: local midnight of D-14."""
    return local_midnight(day - timedelta(days=DAYAHEAD_BOOK_OPENS_DAYS))


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=256)
def exchange_holidays(year: int) -> frozenset[date]:
    """Nationwide German public holidays plus 24 and 31 December, on which
    the exchange (like EEX) does not trade futures."""
    easter = easter_sunday(year)
    return frozenset({
        date(year, 1, 1),
        easter - timedelta(days=2),  # Good Friday
        easter + timedelta(days=1),  # Easter Monday
        date(year, 5, 1),
        easter + timedelta(days=39),  # Ascension Day
        easter + timedelta(days=50),  # Whit Monday
        date(year, 10, 3),
        date(year, 12, 24),
        date(year, 12, 25),
        date(year, 12, 26),
        date(year, 12, 31),
    })


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in exchange_holidays(day.year)


def previous_business_day(day: date) -> date:
    day -= timedelta(days=1)
    while not is_business_day(day):
        day -= timedelta(days=1)
    return day


def futures_last_trading(delivery_start: datetime) -> datetime:
    """The end of a future's last session: 18:00 on the business day before its delivery starts."""
    return local_time(previous_business_day(delivery_start.astimezone(BERLIN).date()), FUTURES_SESSION[1])


def futures_session_open(at: datetime) -> bool:
    """Whether continuous futures trading is in session (08:00-18:00 local, business days)."""
    if at.tzinfo is None:
        raise CalendarError("A naive datetime has no place on the calendar.")
    local = at.astimezone(BERLIN)
    start, end = FUTURES_SESSION
    return is_business_day(local.date()) and start <= local.time() < end
