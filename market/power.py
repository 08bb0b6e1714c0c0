"""Electricity and compute, the capacity signal and the exchange's revenue
(issue 11): the pure rules behind the public pages of ``market.views.power``.
No Django here: plain values in, ``Decimal`` out, every rounding explicit
(half up). The methodology pages write these rules out; docs/pwr-notes.md
gives the reasons.

* Electricity cost of a GPU-hour (EUR/GPUh, 4 places) =
  power draw (kW per GPU, with its share of the server) x PUE x power price
  (EUR/MWh) / 1000.
* Compute spark spread (EUR/GPUh, 4 places) = compute price (2 places)
  - electricity cost (4 places): exact, no further rounding, so the table
  adds up.
* Rolling correlation: Pearson's r of the daily compute Base index and the
  daily mean power price over the 30 calendar days ending on a day, where
  both exist; at least 20 such days, else none. 4 places.
* Capacity signal: forward = the hour-weighted mean of the prices of the 7
  delivery months from the 6th to the 12th month after the day's month
  (each month at its monthly future's settlement price, else its quarter's,
  else its year's); spot = mean of the daily Base index of the 30 days
  ending on the day (at least 20 days); premium = forward / spot - 1. The
  signal is "scarce" once the premium has been above +10 % on each of the
  last 20 days, "surplus" once below -10 % on each of the last 20 days,
  else "balanced".
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

PRICE = Decimal("0.01")  # EUR/GPUh and EUR/MWh
COST = Decimal("0.0001")  # EUR/GPUh of electricity, and the spread
SHARE = Decimal("0.0001")  # correlations, premiums, PUE
KWH_PER_MWH = 1000

CORRELATION_WINDOW_DAYS = 30
CORRELATION_MIN_DAYS = 20
# The PUE used when fewer than the minimum number of providers offer a class
# (a mean over fewer would reveal a member's site): the limit the German
# Energy Efficiency Act (EnEfG §11) sets for existing data centres from July 2027.
REFERENCE_PUE = Decimal("1.50")

FORWARD_FIRST_MONTH = 6
FORWARD_LAST_MONTH = 12
SPOT_WINDOW_DAYS = 30
SPOT_MIN_DAYS = 20
SIGNAL_THRESHOLD = Decimal("0.10")
SIGNAL_DAYS = 20
SCARCE = "scarce"
SURPLUS = "surplus"
BALANCED = "balanced"


def _decimal(value: Fraction, places: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 40
        return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(places, rounding=ROUND_HALF_UP)


def mean(values: Iterable[Decimal], places: Decimal = PRICE) -> Decimal | None:
    """The exact mean, rounded once; None for no values."""
    items = [Fraction(value) for value in values]
    if not items:
        return None
    return _decimal(sum(items, Fraction(0)) / len(items), places)


def mean_of_total(total: Decimal, count: int, places: Decimal = PRICE) -> Decimal | None:
    """``mean`` of values given by their exact sum and their number (the
    database sums a day's hours): the same rational, rounded the same way."""
    if count <= 0:
        return None
    return _decimal(Fraction(total) / count, places)


# --- electricity cost and the spark spread -----------------------------------------------------


def electricity_cost(*, power_draw_kw: Decimal, pue: Decimal, power_price: Decimal) -> Decimal:
    """EUR per GPU-hour of electricity: kW x PUE x EUR/MWh / 1000 (4 places)."""
    exact = Fraction(power_draw_kw) * Fraction(pue) * Fraction(power_price) / KWH_PER_MWH
    return _decimal(exact, COST)


def spark_spread(*, compute_price: Decimal, cost: Decimal) -> Decimal:
    """Compute price minus the electricity cost of the GPU-hour (4 places, exact)."""
    return (compute_price - cost).quantize(COST)


@dataclass(frozen=True)
class SitePue:
    organisation: int  # never leaves this module's callers' selectors
    pue: Decimal
    gpus: int


def average_pue(sites: Sequence[SitePue], *, min_members: int) -> tuple[Decimal, bool]:
    """The GPU-weighted mean PUE of the sites offering a class (4 places),
    and True; or ``REFERENCE_PUE`` and False when fewer than ``min_members``
    organisations offer it (or none has a GPU of it)."""
    offering = [site for site in sites if site.gpus > 0]
    if len({site.organisation for site in offering}) < min_members:
        return REFERENCE_PUE, False
    total = sum(site.gpus for site in offering)
    weighted = sum((Fraction(site.pue) * site.gpus for site in offering), Fraction(0))
    return _decimal(weighted / total, SHARE), True


# --- correlation ---------------------------------------------------------------------------------


def correlation(xs: Sequence[Decimal], ys: Sequence[Decimal]) -> Decimal | None:
    """Pearson's r of two paired series (4 places); None for fewer than two
    pairs or a series that does not move."""
    if len(xs) != len(ys):
        raise ValueError("the two series must pair up")
    n = len(xs)
    if n < 2:
        return None
    fx = [Fraction(x) for x in xs]
    fy = [Fraction(y) for y in ys]
    mx = sum(fx, Fraction(0)) / n
    my = sum(fy, Fraction(0)) / n
    cov = sum(((x - mx) * (y - my) for x, y in zip(fx, fy, strict=True)), Fraction(0))
    vx = sum(((x - mx) ** 2 for x in fx), Fraction(0))
    vy = sum(((y - my) ** 2 for y in fy), Fraction(0))
    if vx == 0 or vy == 0:
        return None
    return _signed_root(cov * cov / (vx * vy), positive=cov >= 0)


def _signed_root(squared: Fraction, *, positive: bool) -> Decimal:
    """r from r² and the sign of the covariance (4 places): one rounding, shared
    by ``correlation`` and ``rolling_correlation`` so that both give the same figure."""
    with localcontext() as context:
        context.prec = 40
        root = (Decimal(squared.numerator) / Decimal(squared.denominator)).sqrt()
        value = root if positive else -root
        return min(max(value, Decimal(-1)), Decimal(1)).quantize(SHARE, rounding=ROUND_HALF_UP)


def _integers(values: Mapping[date, Decimal]) -> dict[date, int]:
    """The values scaled by one power of ten to whole numbers (exact). Pearson's r
    does not change when a series is multiplied by a positive constant."""
    places = max((max(-int(value.as_tuple().exponent), 0) for value in values.values()), default=0)
    return {day: int(value.scaleb(places)) for day, value in values.items()}


def rolling_correlation(days: Sequence[date], xs: Mapping[date, Decimal], ys: Mapping[date, Decimal], *,
                        window: int = CORRELATION_WINDOW_DAYS,
                        min_points: int = CORRELATION_MIN_DAYS) -> dict[date, Decimal | None]:
    """For each day: the correlation over the ``window`` calendar days ending
    on it, of the days that have both values; None with fewer than ``min_points``.

    The same figure as ``correlation`` over each window, but in one pass: the
    window's sums n, Σx, Σy, Σxy, Σx², Σy² (whole numbers, see ``_integers``)
    are carried from day to day, and r² = (nΣxy − ΣxΣy)² / ((nΣx² − (Σx)²)(nΣy² − (Σy)²))
    is the same fraction ``correlation`` reaches through the deviations from
    the means (three years by day: 1,096 windows of 30 days, which ``correlation``
    recomputed in fractions per day)."""
    x_int, y_int = _integers(xs), _integers(ys)
    common = sorted(day for day in x_int if day in y_int)
    out: dict[date, Decimal | None] = {}
    n = sx = sy = sxy = sxx = syy = 0
    first = last = 0  # common[first:last] is the current window
    for day in sorted(set(days)):
        while last < len(common) and common[last] <= day:
            x, y = x_int[common[last]], y_int[common[last]]
            n, sx, sy, sxy, sxx, syy = n + 1, sx + x, sy + y, sxy + x * y, sxx + x * x, syy + y * y
            last += 1
        while first < last and common[first] <= day - timedelta(days=window):
            x, y = x_int[common[first]], y_int[common[first]]
            n, sx, sy, sxy, sxx, syy = n - 1, sx - x, sy - y, sxy - x * y, sxx - x * x, syy - y * y
            first += 1
        cov = n * sxy - sx * sy
        vx = n * sxx - sx * sx
        vy = n * syy - sy * sy
        if n < max(min_points, 2) or vx == 0 or vy == 0:
            out[day] = None
        else:
            out[day] = _signed_root(Fraction(cov * cov, vx * vy), positive=cov >= 0)
    return out


# --- the capacity signal --------------------------------------------------------------------------


@dataclass(frozen=True)
class FutureQuote:
    """A future's settlement price: ``kind`` M, Q or Y; ``first`` and
    ``last`` its first and last local delivery day."""

    kind: str
    first: date
    last: date
    price: Decimal


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def forward_months(day: date) -> list[date]:
    """The first days of the delivery months of the forward window: the 6th
    to the 12th month after ``day``'s month (7 months)."""
    return [add_months(day.replace(day=1), ahead) for ahead in range(FORWARD_FIRST_MONTH, FORWARD_LAST_MONTH + 1)]


def month_hours(first: date) -> int:
    """Hours of a calendar month in Europe/Berlin: 24 per day, one less in
    March and one more in October (the clock changes on their last Sundays)."""
    days = _calendar.monthrange(first.year, first.month)[1]
    return days * 24 + {3: -1, 10: 1}.get(first.month, 0)


def forward_price(day: date, quotes: Sequence[FutureQuote]) -> tuple[Decimal | None, int]:
    """The hour-weighted mean price of the forward window's months (2 places)
    and how many of its 7 months had a price. A month takes its monthly
    future's price, else its quarter's, else its year's."""
    order = {"M": 0, "Q": 1, "Y": 2}
    total = Fraction(0)
    hours = 0
    covered = 0
    for first in forward_months(day):
        found = sorted((q for q in quotes if q.first <= first <= q.last), key=lambda q: order.get(q.kind, 3))
        if not found:
            continue
        weight = month_hours(first)
        total += Fraction(found[0].price) * weight
        hours += weight
        covered += 1
    if not hours:
        return None, 0
    return _decimal(total / hours, PRICE), covered


def trailing_spot(day: date, base: Mapping[date, Decimal], *, window: int = SPOT_WINDOW_DAYS,
                  min_days: int = SPOT_MIN_DAYS) -> tuple[Decimal | None, int]:
    """Mean of the daily Base index over the ``window`` days ending on ``day``
    (2 places) and the number of days with a value; None with fewer than ``min_days``."""
    values = [base[d] for d in (day - timedelta(days=back) for back in range(window)) if d in base]
    if len(values) < min_days:
        return None, len(values)
    return mean(values), len(values)


def premium(forward: Decimal | None, spot: Decimal | None) -> Decimal | None:
    """forward / spot - 1 (4 places); None without both or with a spot of 0."""
    if forward is None or spot is None or spot == 0:
        return None
    return _decimal(Fraction(forward) / Fraction(spot) - 1, SHARE)


def signals(days: Sequence[date], premiums: Mapping[date, Decimal | None], *,
            threshold: Decimal = SIGNAL_THRESHOLD, persist: int = SIGNAL_DAYS) -> dict[date, str | None]:
    """Per day: None without a premium; SCARCE when the premium was above
    ``threshold`` on each of the ``persist`` calendar days ending on it,
    SURPLUS when below ``-threshold`` on each of them, else BALANCED."""
    out: dict[date, str | None] = {}
    for day in days:
        if premiums.get(day) is None:
            out[day] = None
            continue
        window = [premiums.get(day - timedelta(days=back)) for back in range(persist)]
        if all(p is not None and p > threshold for p in window):
            out[day] = SCARCE
        elif all(p is not None and p < -threshold for p in window):
            out[day] = SURPLUS
        else:
            out[day] = BALANCED
    return out


# --- revenue --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevenueMonth:
    """A month of the ledger: the members whose fees were charged for it,
    the net fee revenue, the shares swept into the two funds, the credits
    granted from the incentive fund, and the funds' balances at its end."""

    month: date
    members: frozenset[int]
    fee_revenue: Decimal
    to_incentive_fund: Decimal
    to_rnd_fund: Decimal
    credits_granted: Decimal
    incentive_fund: Decimal
    rnd_fund: Decimal


@dataclass(frozen=True)
class RevenueRow:
    month: date
    members: int | None
    fee_revenue: Decimal | None
    to_incentive_fund: Decimal | None
    to_rnd_fund: Decimal | None
    credits_granted: Decimal | None
    incentive_fund: Decimal | None
    rnd_fund: Decimal | None


def revenue_rows(months: Sequence[RevenueMonth], *, min_members: int) -> list[RevenueRow]:
    """The public rows: a month's fee figures are suppressed (None) when
    fewer than ``min_members`` members paid fees in it (none at all is shown
    as 0). A balance is shown only when the suppressed months since the last
    shown balance together have no member or at least ``min_members``
    (else the difference of two balances would give a suppressed month away)."""
    rows = []
    pending: set[int] = set()
    for month in sorted(months, key=lambda m: m.month):
        hidden = 0 < len(month.members) < min_members
        if hidden:
            pending |= month.members
        show_balance = not pending or len(pending) >= min_members
        if show_balance:
            pending = set()
        rows.append(RevenueRow(
            month=month.month, members=None if hidden else len(month.members),
            fee_revenue=None if hidden else month.fee_revenue,
            to_incentive_fund=None if hidden else month.to_incentive_fund,
            to_rnd_fund=None if hidden else month.to_rnd_fund,
            credits_granted=None if hidden else month.credits_granted,
            incentive_fund=month.incentive_fund if show_balance else None,
            rnd_fund=month.rnd_fund if show_balance else None))
    return rows
