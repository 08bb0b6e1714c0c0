"""Reads behind the electricity-and-compute, capacity-signal and revenue
pages (issue 11), and their open datasets (``compute-and-power``,
``spark-spread``, ``capacity-signal``, ``exchange-revenue``), registered
here at import (``market.open_data.SOURCES`` names this module). The rules
are in ``market.power``; the pages draw exactly the rows served here.

Sources: the hourly electricity price of DE-LU (``PowerPrice``, imported
from SMARD by an operator), the published daily Base index of a class in
zone DE (``IndexValue``), the sites' PUE and capacity, the futures' daily
settlement prices, and the clearing house's ledger (fee revenue, incentive
fund, R&D fund). Nothing of a single member is shown: the PUE is a mean over
at least ``MIN_MEMBERS`` providers, a month's fee revenue one over at least
``MIN_MEMBERS`` members (``power.revenue_rows``).
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from market import calendar, indices, power
from market.models import (
    GpuClass,
    IndexKind,
    IndexValue,
    Instrument,
    PowerPrice,
    Segment,
    SettlementPrice,
    SiteCapacity,
)
from market.open_data import MIN_MEMBERS, Column, Dataset, OpenDataError, Param, Rows, register

DEFAULT_CLASS = "H100"
DEFAULT_DAYS = 180
MAX_DAYS = 3 * 366
DAY = "day"
HOUR = "hour"
RESOLUTIONS = (DAY, HOUR)
# By hour: 24 rows a day, so a month at most (744 rows), a week by default.
DEFAULT_HOUR_DAYS = 7
MAX_HOUR_DAYS = 31
INDEX_ZONE = "DE"  # the compute price: the daily Base index of zone DE (as the futures settle on)


# --- parameters -----------------------------------------------------------------------------------


def today() -> date:
    return timezone.now().astimezone(calendar.BERLIN).date()


def class_codes() -> list[str]:
    return list(GpuClass.objects.filter(active=True).order_by("code").values_list("code", flat=True))


def default_class() -> str:
    codes = class_codes()
    return DEFAULT_CLASS if DEFAULT_CLASS in codes or not codes else codes[0]


@dataclass(frozen=True)
class Range:
    gpu_class: str
    start: date
    end: date
    resolution: str = DAY
    # A page asked for more days by hour than MAX_HOUR_DAYS: it shows the last MAX_HOUR_DAYS up to ``end``.
    shortened: bool = False

    def query(self) -> dict[str, str]:
        query = {"gpu_class": self.gpu_class, "start": self.start.isoformat(), "end": self.end.isoformat()}
        if self.resolution != DAY:  # by day the links stay as they were before there was a choice
            query["resolution"] = self.resolution
        return query


def parse_range(params: Mapping[str, str], *, strict: bool, hourly: bool = False) -> Range:
    """``gpu_class`` (default H100), ``start`` and ``end`` (ISO days; default
    the 180 days ending today, at most 3 years). With ``hourly`` also
    ``resolution`` (day or hour, default day): by hour the default is the 7
    days ending on ``end``, at most 31 days. ``strict``: bad values raise
    ``OpenDataError`` (the API); else each falls back to its default (pages),
    and an hourly period of more than 31 days is cut to the last 31."""
    errors: dict[str, list[str]] = {}
    resolution = DAY
    if hourly:
        resolution = params.get("resolution") or DAY
        if resolution not in RESOLUTIONS:
            errors["resolution"] = [_("Choose one of: %(codes)s.") % {"codes": ", ".join(RESOLUTIONS)}]
            resolution = DAY
    codes = class_codes()
    gpu_class = params.get("gpu_class") or default_class()
    if gpu_class not in codes:
        errors["gpu_class"] = [_("Choose one of: %(codes)s.") % {"codes": ", ".join(codes) or "–"}]
        gpu_class = default_class()
    days: dict[str, date | None] = {}
    for name in ("start", "end"):
        text = params.get(name, "")
        days[name] = None
        if text:
            try:
                days[name] = calendar.parse_day(text)
            except calendar.CalendarError:
                errors[name] = [_("Enter a day as YYYY-MM-DD.")]
    default_days = DEFAULT_HOUR_DAYS if resolution == HOUR else DEFAULT_DAYS
    end = days["end"] or today()
    start = days["start"] or end - timedelta(days=default_days - 1)
    if start > end:
        errors["start"] = [_("The start must not be after the end.")]
    elif (end - start).days >= MAX_DAYS:
        errors["start"] = [_("Ask for at most %(days)d days at a time.") % {"days": MAX_DAYS}]
    shortened = False
    if "start" not in errors and "end" not in errors and resolution == HOUR and (end - start).days >= MAX_HOUR_DAYS:
        errors["start"] = [_("By hour, ask for at most %(days)d days at a time (or for resolution=day).")
                           % {"days": MAX_HOUR_DAYS}]
        # A page keeps the chosen end and shows the last days before it (the form still holds a long period
        # when a visitor switches to hours).
        start, shortened = end - timedelta(days=MAX_HOUR_DAYS - 1), True
    if errors and strict:
        raise OpenDataError(errors)
    if ("start" in errors or "end" in errors) and not shortened:
        end = today()
        start = end - timedelta(days=default_days - 1)
    return Range(gpu_class=gpu_class, start=start, end=end, resolution=resolution, shortened=shortened)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


# --- the series -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerDay:
    price: Decimal  # the mean of the day's hourly prices, EUR/MWh
    hours: int
    is_demo: bool


def power_days(start: date, end: date) -> dict[date, PowerDay]:
    """Per Berlin day: the mean of its hourly DE-LU prices (2 places), the
    number of hours with a price, and whether any of them is demo data.

    The database sums each day's hours (numeric: exact) and Python divides and
    rounds (``power.mean_of_total``, the rational ``power.mean`` rounds): three
    years are 26,000 hours, which read into Python took 170 ms, a day's sum 15."""
    lower = calendar.local_midnight(start)
    upper = calendar.local_midnight(end + timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT (hour_start AT TIME ZONE %s)::date, SUM(price), COUNT(*), BOOL_OR(is_demo)
            FROM market_powerprice WHERE zone = %s AND hour_start >= %s AND hour_start < %s
            GROUP BY 1""", [calendar.BERLIN.key, PowerPrice.DE_LU, lower, upper])
        return {day: PowerDay(price=power.mean_of_total(total, count) or Decimal("0.00"),  # count > 0 here
                              hours=count, is_demo=is_demo)
                for day, total, count, is_demo in cursor.fetchall()}


def base_days(gpu_class: str, start: date, end: date) -> dict[date, tuple[Decimal, bool]]:
    """The published daily Base index of the class in zone DE (days with a value)."""
    rows = IndexValue.objects.filter(kind=IndexKind.BASE, gpu_class__code=gpu_class, zone__code=INDEX_ZONE,
                                     methodology_version=indices.METHODOLOGY_VERSION, date__gte=start,
                                     date__lte=end, value__isnull=False).values_list("date", "value", "is_demo")
    return {day: (value, is_demo) for day, value, is_demo in rows if value is not None}


@dataclass(frozen=True)
class ClassPue:
    pue: Decimal
    from_sites: bool  # False: the reference PUE (fewer than MIN_MEMBERS providers)
    providers: int
    power_draw_kw: Decimal


def class_pue(gpu_class: str) -> ClassPue:
    """The GPU-weighted mean PUE of the sites of approved providers offering
    the class (today's sites: a site's PUE has no history)."""
    rows = (SiteCapacity.objects.filter(gpu_class__code=gpu_class, gpus__gt=0,
                                        site__organisation__kyc__status="approved")
            .values_list("site__organisation_id", "site__pue", "gpus"))
    sites = [power.SitePue(organisation=org, pue=pue, gpus=gpus) for org, pue, gpus in rows]
    pue, from_sites = power.average_pue(sites, min_members=MIN_MEMBERS)
    draw = GpuClass.objects.filter(code=gpu_class).values_list("power_draw_kw", flat=True).first()
    return ClassPue(pue=pue, from_sites=from_sites, providers=len({s.organisation for s in sites}),
                    power_draw_kw=draw if draw is not None else Decimal("1.000"))


# --- compute-and-power and spark-spread -----------------------------------------------------------


@dataclass(frozen=True)
class Electricity:
    """The rows of both datasets for one range, from one read of each source (the page shows both)."""

    both: Rows  # compute-and-power
    spread: Rows  # spark-spread
    pue: ClassPue


def electricity(span: Range) -> Electricity:
    pue = class_pue(span.gpu_class)
    if span.resolution == HOUR:
        return _electricity_by_hour(span, pue)
    lead = timedelta(days=power.CORRELATION_WINDOW_DAYS - 1)
    base = base_days(span.gpu_class, span.start - lead, span.end)
    electricity = power_days(span.start - lead, span.end)
    days = [day for day in _days(span.start, span.end) if day in base or day in electricity]
    correlations = power.rolling_correlation(days, {d: v for d, (v, _demo) in base.items()},
                                             {d: p.price for d, p in electricity.items()})
    both, spread = [], []
    for day in days:
        compute = base.get(day)
        energy = electricity.get(day)
        both.append({"date": day, "hour": None, "compute_base": compute[0] if compute else None,
                     "power_price": energy.price if energy else None, "power_hours": energy.hours if energy else 0,
                     "correlation_30d": correlations[day],
                     "is_demo": bool((compute and compute[1]) or (energy and energy.is_demo))})
        if compute and energy:
            spread.append(_spread_row(day, None, compute[0], energy.price, pue, compute[1] or energy.is_demo))
    return Electricity(both=both, spread=spread, pue=pue)


def _spread_row(day: date, hour: datetime | None, compute: Decimal, power_price: Decimal, pue: ClassPue,
                is_demo: bool) -> dict[str, object]:
    cost = power.electricity_cost(power_draw_kw=pue.power_draw_kw, pue=pue.pue, power_price=power_price)
    return {"date": day, "hour": hour, "compute_base": compute, "power_price": power_price,
            "power_draw_kw": pue.power_draw_kw, "pue": pue.pue,
            "pue_source": "sites" if pue.from_sites else "reference",
            "electricity_cost": cost, "spark_spread": power.spark_spread(compute_price=compute, cost=cost),
            "is_demo": is_demo}


def base_hours(gpu_class: str, start: date, end: date) -> dict[datetime, tuple[Decimal, bool]]:
    """The hourly compute prices of the class in zone DE: each hour's day-ahead
    clearing price as the published daily Base index lists it (its document's
    ``hours``; the Base is their mean), keyed by the hour's start (UTC)."""
    out: dict[datetime, tuple[Decimal, bool]] = {}
    rows = IndexValue.objects.filter(kind=IndexKind.BASE, gpu_class__code=gpu_class, zone__code=INDEX_ZONE,
                                     methodology_version=indices.METHODOLOGY_VERSION, date__gte=start,
                                     date__lte=end).values_list("date", "inputs", "is_demo")
    for day, document, is_demo in rows:
        starts = {hour.label: hour.start for hour in calendar.day_hours(day)}
        for hour in (document or {}).get("hours", []):
            if hour.get("price") is not None and hour.get("hour") in starts:
                out[starts[hour["hour"]]] = (Decimal(hour["price"]), is_demo)
    return out


def power_hours(start: date, end: date) -> dict[datetime, tuple[Decimal, bool]]:
    """The hourly DE-LU prices of the Berlin days ``start`` to ``end``, keyed by the hour's start (UTC)."""
    return {hour_start: (price, is_demo) for hour_start, price, is_demo in PowerPrice.objects.filter(
        zone=PowerPrice.DE_LU, hour_start__gte=calendar.local_midnight(start),
        hour_start__lt=calendar.local_midnight(end + timedelta(days=1))).values_list("hour_start", "price", "is_demo")}


def _electricity_by_hour(span: Range, pue: ClassPue) -> Electricity:
    """By hour: the hour's compute price beside the hour's power price, and their spread. No correlation
    (the rolling 30-day correlation is a figure of the daily series)."""
    compute = base_hours(span.gpu_class, span.start, span.end)
    energy = power_hours(span.start, span.end)
    both, spread = [], []
    for hour in sorted(set(compute) | set(energy)):
        day = hour.astimezone(calendar.BERLIN).date()
        price, price_demo = compute.get(hour, (None, False))
        power_price, power_demo = energy.get(hour, (None, False))
        both.append({"date": day, "hour": hour, "compute_base": price, "power_price": power_price,
                     "power_hours": 1 if power_price is not None else 0, "correlation_30d": None,
                     "is_demo": price_demo or power_demo})
        if price is not None and power_price is not None:
            spread.append(_spread_row(day, hour, price, power_price, pue, price_demo or power_demo))
    return Electricity(both=both, spread=spread, pue=pue)


def compute_and_power_rows(params: Mapping[str, str], *, strict: bool = True) -> Rows:
    return electricity(parse_range(params, strict=strict, hourly=True)).both


def spark_spread_rows(params: Mapping[str, str], *, strict: bool = True) -> Rows:
    return electricity(parse_range(params, strict=strict, hourly=True)).spread


ELECTRICITY_PATH = "/dashboard/electricity/"
# The methodology pages (market.views.power): each path redirects to the current version.
SPREAD_METHOD = "/dashboard/methodology/electricity/"
SIGNAL_METHOD = "/dashboard/methodology/capacity-signal/"
REVENUE_METHOD = "/dashboard/methodology/revenue/"

RANGE_PARAMS = (
    Param("gpu_class", gettext_lazy("GPU class (code)"), DEFAULT_CLASS),
    Param("start", gettext_lazy("First day (YYYY-MM-DD, Europe/Berlin); default: 179 days before the end")),
    Param("end", gettext_lazy("Last day (YYYY-MM-DD); default: today")),
)
ELECTRICITY_PARAMS = (
    Param("gpu_class", gettext_lazy("GPU class (code)"), DEFAULT_CLASS),
    Param("resolution", gettext_lazy("day or hour; by hour at most 31 days, times in UTC and Europe/Berlin"), DAY),
    Param("start", gettext_lazy("First day (YYYY-MM-DD, Europe/Berlin); default: 179 days before the end, "
                                "by hour 6 days before the end")),
    Param("end", gettext_lazy("Last day (YYYY-MM-DD); default: today")),
)
DATE = Column("date", "", gettext_lazy("Delivery day (Europe/Berlin)"))
HOUR_COLUMN = Column("hour", "", gettext_lazy("Start of the delivery hour (resolution=hour; empty by day)"))
BASE = Column("compute_base", "EUR/GPUh",
              gettext_lazy("Daily Base index of the class in zone DE; by hour the hour's day-ahead clearing price "
                           "(as the Base index lists it)"))
POWER = Column("power_price", "EUR/MWh",
               gettext_lazy("Mean of the day's hourly day-ahead electricity prices of DE-LU (SMARD); by hour the "
                            "hour's price"))
DEMO = Column("is_demo", "", gettext_lazy("True if a figure of the day (or hour) is demo data"))

COMPUTE_AND_POWER = register(Dataset(
    slug="compute-and-power", title=gettext_lazy("Compute price and electricity price"),
    description=gettext_lazy("Per day or hour: the compute price (daily Base index or the hour's price, EUR/GPUh), "
                             "the wholesale electricity price (EUR/MWh) and, by day, their rolling 30-day "
                             "correlation."),
    columns=(DATE, HOUR_COLUMN, BASE, POWER,
             Column("power_hours", "hours", gettext_lazy("Hours with an electricity price that day (by hour: 1 or 0)")),
             Column("correlation_30d", "share",
                    gettext_lazy("Pearson correlation of the two daily series over the 30 days ending that day "
                                 "(at least 20 days with both; else empty; empty by hour)")),
             DEMO),
    rows=compute_and_power_rows, methodology_url=SPREAD_METHOD, methodology_version="1", params=ELECTRICITY_PARAMS,
    page_url=ELECTRICITY_PATH, time_columns=("hour",),
))

SPARK_SPREAD = register(Dataset(
    slug="spark-spread", title=gettext_lazy("Compute spark spread"),
    description=gettext_lazy("Per day or hour: the compute price minus the electricity cost of a GPU-hour (power "
                             "draw x PUE x electricity price)."),
    columns=(DATE, HOUR_COLUMN, BASE, POWER,
             Column("power_draw_kw", "kW", gettext_lazy("Power draw of one GPU with its share of the server")),
             Column("pue", "", gettext_lazy("GPU-weighted mean PUE of the providers' sites offering the class")),
             Column("pue_source", "", gettext_lazy('"sites", or "reference" (1.50) with fewer than 3 providers')),
             Column("electricity_cost", "EUR/GPUh", gettext_lazy("Electricity cost of a GPU-hour (4 places)")),
             Column("spark_spread", "EUR/GPUh", gettext_lazy("Compute price minus electricity cost")),
             DEMO),
    rows=spark_spread_rows, methodology_url=SPREAD_METHOD, methodology_version="1", params=ELECTRICITY_PARAMS,
    page_url=ELECTRICITY_PATH, time_columns=("hour",),
))


# --- capacity-signal ------------------------------------------------------------------------------


def future_quotes_by_day(gpu_class: str, days: list[date]) -> dict[date, list[power.FutureQuote]]:
    """Per day: each future's latest settlement price on or before it."""
    instruments = {i.pk: i for i in Instrument.objects.filter(segment=Segment.FUTURES, gpu_class__code=gpu_class,
                                                              zone__code=calendar.FUTURES_ZONE)}
    history: dict[int, tuple[list[date], list[Decimal]]] = {}
    for instrument_id, day, price in (SettlementPrice.objects.filter(instrument__in=list(instruments),
                                                                     date__lte=max(days))
                                      .order_by("instrument_id", "date").values_list("instrument_id", "date",
                                                                                     "price")):
        dates, prices = history.setdefault(instrument_id, ([], []))
        dates.append(day)
        prices.append(price)
    out: dict[date, list[power.FutureQuote]] = {}
    for day in days:
        quotes = []
        for instrument_id, (dates, prices) in history.items():
            index = bisect.bisect_right(dates, day)
            if index == 0:
                continue
            instrument = instruments[instrument_id]
            quotes.append(power.FutureQuote(
                kind=instrument.period[0], first=instrument.delivery_start.astimezone(calendar.BERLIN).date(),
                last=instrument.last_delivery_day, price=prices[index - 1]))
        out[day] = quotes
    return out


def capacity_signal_rows(params: Mapping[str, str], *, strict: bool = True) -> Rows:
    span = parse_range(params, strict=strict)
    first = span.start - timedelta(days=power.SIGNAL_DAYS - 1)
    base = {day: value for day, (value, _demo) in
            base_days(span.gpu_class, first - timedelta(days=power.SPOT_WINDOW_DAYS - 1), span.end).items()}
    days = _days(first, span.end)
    quotes = future_quotes_by_day(span.gpu_class, days)
    figures = {}
    for day in days:
        forward, months = power.forward_price(day, quotes[day])
        spot, spot_days = power.trailing_spot(day, base)
        figures[day] = (forward, months, spot, spot_days, power.premium(forward, spot))
    signals = power.signals(days, {day: figure[4] for day, figure in figures.items()})
    rows = []
    for day in _days(span.start, span.end):
        forward, months, spot, spot_days, premium = figures[day]
        if forward is None and spot is None:
            continue
        rows.append({"date": day, "forward_price": forward, "forward_months": months, "spot_price": spot,
                     "spot_days": spot_days, "premium": premium, "signal": signals[day]})
    return rows


CAPACITY_SIGNAL = register(Dataset(
    slug="capacity-signal", title=gettext_lazy("Capacity signal"),
    description=gettext_lazy("Per day: the 6-12 month forward price of a class against its trailing 30-day spot "
                             "price, the premium and the signal (scarce, balanced, surplus)."),
    columns=(DATE,
             Column("forward_price", "EUR/GPUh",
                    gettext_lazy("Hour-weighted mean settlement price of the delivery months 6 to 12 months ahead")),
             Column("forward_months", "months", gettext_lazy("Months of the window (of 7) with a price")),
             Column("spot_price", "EUR/GPUh", gettext_lazy("Mean daily Base index of the 30 days ending that day")),
             Column("spot_days", "days", gettext_lazy("Days of the 30 with a Base index")),
             Column("premium", "share", gettext_lazy("Forward price / spot price - 1")),
             Column("signal", "", gettext_lazy('"scarce", "balanced" or "surplus"; empty without a premium'))),
    rows=capacity_signal_rows, methodology_url=SIGNAL_METHOD, methodology_version="1", params=RANGE_PARAMS,
    page_url="/dashboard/capacity-signal/",
))


# --- exchange-revenue -----------------------------------------------------------------------------

_FEES_REFERENCE = re.compile(r"^fees:(?P<org>[0-9]+):(?P<month>[0-9]{4}-[0-9]{2})$")
_SWEEP_REFERENCE = re.compile(r"^fees-sweep:(?P<month>[0-9]{4}-[0-9]{2})$")


def _month(text: str) -> date:
    return date(int(text[:4]), int(text[5:7]), 1)


def _local_month(at: datetime) -> date:
    return at.astimezone(calendar.BERLIN).date().replace(day=1)


def revenue_months() -> list[power.RevenueMonth]:
    """Every month from the first to the last with a line on the house's fee
    revenue, incentive fund or R&D fund account. A charge of a member's fees
    ("fees:<member>:<month>") and the month's sweep into the funds
    ("fees-sweep:<month>") count for the month they name; other movements of
    the funds (programme budgets, start financing, expired credits) for the
    month they were booked in. Credits granted are the ``credit_grant``
    entries out of the programmes' budgets (issue 12), by the month booked."""
    from clearing.models import Account, JournalEntry, JournalLine

    kinds = (Account.Kind.FEE_REVENUE, Account.Kind.INCENTIVE_FUND, Account.Kind.RND_FUND,
             Account.Kind.PROGRAMME_BUDGETS)
    zero = Decimal("0.00")
    revenue: dict[date, Decimal] = defaultdict(lambda: zero)
    members: dict[date, set[int]] = defaultdict(set)
    swept: dict[tuple[str, date], Decimal] = defaultdict(lambda: zero)
    credits: dict[date, Decimal] = defaultdict(lambda: zero)
    moved: dict[tuple[str, date], Decimal] = defaultdict(lambda: zero)
    lines = (JournalLine.objects.filter(account__organisation__isnull=True, account__kind__in=kinds)
             .values_list("account__kind", "amount", "entry__reference", "entry__created_at", "entry__kind")
             .order_by("id"))
    for kind, amount, reference, created_at, entry_kind in lines:
        if kind == Account.Kind.PROGRAMME_BUDGETS:
            if entry_kind == JournalEntry.Kind.CREDIT_GRANT:
                credits[_local_month(created_at)] += -amount
            continue
        charge = _FEES_REFERENCE.match(reference)
        sweep = _SWEEP_REFERENCE.match(reference)
        if kind == Account.Kind.FEE_REVENUE:
            if charge:
                month = _month(charge.group("month"))
                revenue[month] += amount
                members[month].add(int(charge.group("org")))
            continue
        month = _month(sweep.group("month")) if sweep else _local_month(created_at)
        if sweep:
            swept[(kind, month)] += amount
        moved[(kind, month)] += amount
    known = set(revenue) | {month for _kind, month in moved} | set(credits)
    if not known:
        return []
    months = []
    month = min(known)
    balances = {Account.Kind.INCENTIVE_FUND: zero, Account.Kind.RND_FUND: zero}
    while month <= max(known):
        for kind in balances:
            balances[kind] += moved.get((kind, month), zero)
        months.append(power.RevenueMonth(
            month=month, members=frozenset(members.get(month, set())), fee_revenue=revenue.get(month, zero),
            to_incentive_fund=swept.get((Account.Kind.INCENTIVE_FUND, month), zero),
            to_rnd_fund=swept.get((Account.Kind.RND_FUND, month), zero), credits_granted=credits.get(month, zero),
            incentive_fund=balances[Account.Kind.INCENTIVE_FUND], rnd_fund=balances[Account.Kind.RND_FUND]))
        month = power.add_months(month, 1)
    return months


def revenue_rows(params: Mapping[str, str], *, strict: bool = True) -> Rows:
    return [{"month": row.month, "members": row.members, "fee_revenue": row.fee_revenue,
             "to_incentive_fund": row.to_incentive_fund, "to_rnd_fund": row.to_rnd_fund,
             "credits_granted": row.credits_granted, "incentive_fund_balance": row.incentive_fund,
             "rnd_fund_balance": row.rnd_fund}
            for row in power.revenue_rows(revenue_months(), min_members=MIN_MEMBERS)]


EXCHANGE_REVENUE = register(Dataset(
    slug="exchange-revenue", title=gettext_lazy("The exchange's revenue and its use"),
    description=gettext_lazy("Per month: the net fee revenue, the shares swept into the start-up incentive fund "
                             "and the R&D fund, the credits granted, and the two funds' balances at the month's "
                             "end, from the clearing house's ledger."),
    columns=(Column("month", "", gettext_lazy("First day of the month the fees were charged for (Europe/Berlin)")),
             Column("members", "members", gettext_lazy("Members whose fees were charged (empty: suppressed)")),
             Column("fee_revenue", "EUR", gettext_lazy("Net fee revenue of the month, without VAT (empty: fewer "
                                                       "than 3 members)")),
             Column("to_incentive_fund", "EUR", gettext_lazy("Share swept into the start-up incentive fund")),
             Column("to_rnd_fund", "EUR", gettext_lazy("Share swept into the R&D fund")),
             Column("credits_granted", "EUR", gettext_lazy("Trading credits granted from the incentive fund")),
             Column("incentive_fund_balance", "EUR", gettext_lazy("Incentive fund at the month's end")),
             Column("rnd_fund_balance", "EUR", gettext_lazy("R&D fund at the month's end"))),
    rows=revenue_rows, methodology_url=REVENUE_METHOD, methodology_version="1",
    page_url="/dashboard/revenue/",
))
