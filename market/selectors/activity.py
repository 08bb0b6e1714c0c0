"""Reads for the policy indicators (issue 11; market rules §5): market
activity, supply concentration (HHI) and regions, public and registered as
open data, and the observers' non-public aggregates.

Each public dataset is registered here (``open_data.register``) and drawn by
its page in ``market.views.indicators`` from the very same ``rows``: the page
cleans its query leniently (a bad value falls back to the default), the API
strictly (``OpenDataError``), and both then call the same ``*_rows`` function.
The arithmetic is in the pure ``market.indicators``; this module only groups
the database's rows. Nothing here ever returns a member's name or id.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import STARTUP_MAX_AGE_YEARS, Organisation, years_before
from market import calendar, indicators, open_data
from market.models import (
    RESTING_STATUSES,
    ActivityDay,
    AggregateDay,
    DeliveryZone,
    FuturesFlowDay,
    GpuClass,
    Instrument,
    Order,
    Segment,
    SellerDay,
    Side,
    SiteCapacity,
    Trade,
)
from market.open_data import Column, Dataset, OpenDataError, Param, Rows

# The hourly instruments: continuous trades and, naming their auction, the day-ahead auction's.
SPOT = (Segment.INTRADAY, Segment.DAYAHEAD)
DEFAULT_CLASS = "H100"
DEFAULT_ZONE = "DE"
METHODOLOGY_VERSION = "1"
ALL = ""  # the gpu_class value for "every class"


def methodology_path(indicator: str) -> str:
    # A path, not reverse(): datasets are registered at import, before the URLconf may be loaded.
    return f"/dashboard/methodology/{indicator}/v{METHODOLOGY_VERSION}/"


# --- parameters ----------------------------------------------------------------------------------


def class_codes() -> list[str]:
    return list(GpuClass.objects.filter(active=True).order_by("code").values_list("code", flat=True))


def zone_codes() -> list[str]:
    return list(DeliveryZone.objects.order_by("code").values_list("code", flat=True))


def default_class() -> str:
    codes = class_codes()
    return DEFAULT_CLASS if DEFAULT_CLASS in codes or not codes else codes[0]


@dataclass(frozen=True)
class Choice:
    """One parameter: the values it takes (a callable: classes and zones
    come from the database) and its default."""

    choices: Callable[[], list[str]]
    default: Callable[[], str]


def _fixed(*values: str) -> Callable[[], list[str]]:
    return lambda: list(values)


def _const(value: str) -> Callable[[], str]:
    return lambda: value


RESOLUTION = Choice(_fixed(*indicators.RESOLUTIONS), _const(indicators.WEEK))
RANGE = Choice(_fixed(*indicators.RANGES), _const("quarter"))
ANY_CLASS = Choice(lambda: [ALL, *class_codes()], _const(ALL))
ONE_CLASS = Choice(class_codes, default_class)
ZONE = Choice(zone_codes, _const(DEFAULT_ZONE))

ACTIVITY_PARAMS = {"resolution": RESOLUTION, "range": RANGE, "gpu_class": ANY_CLASS}
CONCENTRATION_PARAMS = {"gpu_class": ONE_CLASS, "zone": ZONE, "resolution": RESOLUTION, "range": RANGE}
REGIONS_PARAMS = {"gpu_class": ANY_CLASS, "range": RANGE}
OBSERVER_PARAMS = {"gpu_class": ANY_CLASS, "range": RANGE}


def clean(params: Mapping[str, str], spec: Mapping[str, Choice], *, strict: bool) -> dict[str, str]:
    """The parameters of ``spec`` from ``params``: a missing value takes the
    default; a bad one raises ``OpenDataError`` when ``strict`` (the API),
    else takes the default too (a page never fails on its query)."""
    out: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for name, choice in spec.items():
        value = str(params.get(name, "") or "")
        allowed = choice.choices()
        if value == "" and "" not in allowed:
            value = choice.default()
        elif value not in allowed:
            if strict:
                shown = ", ".join(v or '""' for v in allowed)
                errors[name] = [_("Choose one of: %(choices)s.") % {"choices": shown}]
            value = choice.default()
        out[name] = value
    if errors:
        raise OpenDataError(errors)
    return out


def today() -> datetime.date:
    return timezone.now().astimezone(calendar.BERLIN).date()


def _window(range_name: str, earliest: datetime.date | None, resolution: str | None = None,
            ) -> tuple[datetime.date, datetime.date]:
    """The first and last day a range covers, the first moved back to the
    start of its period so that every period is whole (the last one runs to today)."""
    last = today()
    first = indicators.range_first_day(last, range_name, earliest)
    if resolution is not None:
        first = indicators.period_start(first, resolution)
    return first, last


def _instants(first: datetime.date, last: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    return calendar.local_midnight(first), calendar.local_midnight(last + datetime.timedelta(days=1))


def _earliest_trade(trades: QuerySet[Trade]) -> datetime.date | None:
    first = trades.order_by("executed_at").values_list("executed_at", flat=True).first()
    return None if first is None else first.astimezone(calendar.BERLIN).date()


def _trades(gpu_class: str) -> QuerySet[Trade]:
    trades = Trade.objects.all()
    if gpu_class:
        trades = trades.filter(instrument__gpu_class__code=gpu_class)
    return trades


GPUH = Sum(F("quantity") * F("instrument__hours"))


@dataclass(frozen=True)
class _OrgFacts:
    sme: bool
    founding_date: datetime.date | None
    state: str
    size: str

    def startup(self, on: datetime.date) -> bool:
        # Organisation.is_startup's rule, without building a model instance per row.
        if self.founding_date is None:
            return False
        return years_before(on, STARTUP_MAX_AGE_YEARS) <= self.founding_date <= on


def _org_facts(ids: set[int]) -> dict[int, _OrgFacts]:
    facts = {}
    for org in Organisation.objects.filter(id__in=ids).only(
            "id", "kind", "employees_band", "turnover_band", "founding_date", "state"):
        facts[org.id] = _OrgFacts(sme=org.is_sme(), founding_date=org.founding_date, state=org.state,
                                  size=indicators.size_class(org.employees_band, org.turnover_band))
    return facts


# --- market activity -----------------------------------------------------------------------------


def activity_rows(query: Mapping[str, str]) -> Rows:
    """Per period: GPU-hours traded per segment, futures open interest at the
    period's end, active buyers and sellers, and the SMEs' and start-ups'
    shares of the volume bought and sold (``None`` where suppressed)."""
    resolution, gpu_class = query["resolution"], query["gpu_class"]
    trades = _trades(gpu_class)
    first, last = _window(query["range"], _earliest_trade(trades), resolution)
    side_rows = _activity_side_rows(trades, gpu_class, first, last)
    per_period: dict[datetime.date, list[tuple[datetime.date, str, str, int, int]]] = defaultdict(list)
    for row in side_rows:
        per_period[indicators.period_start(row[0], resolution)].append(row)
    facts = _org_facts({org for _day, _segment, _side, org, _gpuh in side_rows})
    interest = _open_interest(gpu_class, indicators.periods(first, last, resolution), resolution, last)
    out: Rows = []
    startups: dict[tuple[int, datetime.date], bool] = {}  # start-up on that day (one check per member and day)
    for period in indicators.periods(first, last, resolution):
        rows = per_period.get(period, [])
        # Every trade is one buy row and one sell row: the volume counts the buy side.
        volume = {segment: sum(gpuh for _d, seg, side, _o, gpuh in rows if seg == segment and side == "buy")
                  for segment in Segment.values}
        sides: dict[str, dict[str, dict[int, int]]] = {
            side: {"total": defaultdict(int), "sme": defaultdict(int), "startup": defaultdict(int)}
            for side in ("buy", "sell")}
        for day, _seg, side, org, gpuh in rows:
            sides[side]["total"][org] += gpuh
            if facts[org].sme:
                sides[side]["sme"][org] += gpuh
            if (org, day) not in startups:
                startups[org, day] = facts[org].startup(day)
            if startups[org, day]:
                sides[side]["startup"][org] += gpuh
        out.append({
            "period_start": period,
            "volume_intraday_gpuh": volume[Segment.INTRADAY], "volume_dayahead_gpuh": volume[Segment.DAYAHEAD],
            "volume_futures_gpuh": volume[Segment.FUTURES], "volume_total_gpuh": sum(volume.values()),
            "open_interest_gpuh": interest[period],
            "active_buyers": len(sides["buy"]["total"]), "active_sellers": len(sides["sell"]["total"]),
            **{f"{group}_{side}_share": indicators.group_share(sides[side]["total"], sides[side][group])
               for group in ("sme", "startup") for side in ("buy", "sell")},
        })
    return out


def _segment(row: Mapping[str, Any]) -> str:
    # A day-ahead trade is booked on the hour's (intraday) instrument and names its auction.
    return str(Segment.DAYAHEAD if row["by_auction"] else row["instrument__segment"])


DayRun = tuple[datetime.date, datetime.date]


def _split(first: datetime.date, last: datetime.date) -> tuple[list[datetime.date], list[DayRun]]:
    """The days of ``first``..``last`` with aggregates (``market.services.aggregates``),
    and the runs of days without, which are read from the trades (today, and any day not written yet)."""
    done = sorted(AggregateDay.objects.filter(date__gte=first, date__lte=last).values_list("date", flat=True))
    written = set(done)
    runs: list[DayRun] = []
    day = first
    while day <= last:
        if day not in written:
            if runs and runs[-1][1] == day - datetime.timedelta(days=1):
                runs[-1] = (runs[-1][0], day)
            else:
                runs.append((day, day))
        day += datetime.timedelta(days=1)
    return done, runs


def _activity_side_rows(trades: QuerySet[Trade], gpu_class: str, first: datetime.date, last: datetime.date,
                        ) -> list[tuple[datetime.date, str, str, int, int]]:
    """(day, segment, side, organisation, GPU-hours) of ``first``..``last``:
    written days from ``ActivityDay``, the others grouped from the trades."""
    done, runs = _split(first, last)
    out: list[tuple[datetime.date, str, str, int, int]] = []
    if done:
        written = ActivityDay.objects.filter(date__gte=done[0], date__lte=done[-1])
        if gpu_class:
            written = written.filter(gpu_class__code=gpu_class)
        out += [(r["date"], r["segment"], r["side"], r["organisation_id"], int(r["total"]))
                for r in written.values("date", "segment", "side", "organisation_id").annotate(total=Sum("gpuh"))
                .order_by()]
    for run_first, run_last in runs:
        start, end = _instants(run_first, run_last)
        for row in (trades.filter(executed_at__gte=start, executed_at__lt=end)
                    .annotate(day=TruncDate("executed_at", tzinfo=calendar.BERLIN))
                    .annotate(by_auction=ExpressionWrapper(Q(auction__isnull=False), output_field=BooleanField()))
                    .values("day", "instrument__segment", "by_auction", "buyer_id", "seller_id").annotate(gpuh=GPUH)
                    .order_by()):
            segment = _segment(row)
            out.append((row["day"], segment, "buy", row["buyer_id"], int(row["gpuh"])))
            out.append((row["day"], segment, "sell", row["seller_id"], int(row["gpuh"])))
    return out


def _futures_flows(gpu_class: str, last: datetime.date) -> list[tuple[datetime.date, int, int, int]]:
    """(day, future, organisation, net contracts bought) of every day up to
    ``last``: written days from ``FuturesFlowDay``, the others (today, and any
    day not written yet) grouped from the futures trades, oldest day first."""
    futures = _trades(gpu_class).filter(instrument__segment=Segment.FUTURES)
    earliest = _earliest_trade(futures)
    if earliest is None or earliest > last:
        return []
    done, runs = _split(earliest, last)
    out: list[tuple[datetime.date, int, int, int]] = []
    if done:
        written = FuturesFlowDay.objects.filter(date__gte=done[0], date__lte=done[-1])
        if gpu_class:
            written = written.filter(instrument__gpu_class__code=gpu_class)
        out += list(written.values_list("date", "instrument_id", "organisation_id", "quantity"))
    for run_first, run_last in runs:
        start, end = _instants(run_first, run_last)
        for row in (futures.filter(executed_at__gte=start, executed_at__lt=end)
                    .annotate(day=TruncDate("executed_at", tzinfo=calendar.BERLIN))
                    .values("day", "instrument_id", "buyer_id", "seller_id").annotate(total=Sum("quantity"))
                    .order_by()):
            out.append((row["day"], row["instrument_id"], row["buyer_id"], row["total"]))
            out.append((row["day"], row["instrument_id"], row["seller_id"], -row["total"]))
    out.sort(key=lambda flow: flow[0])
    return out


def _open_interest(gpu_class: str, starts: list[datetime.date], resolution: str, last: datetime.date,
                   ) -> dict[datetime.date, int]:
    """Futures open interest in GPU-hours at the end of each period (or
    today): the members' net positions rebuilt from the daily flows up to
    then; a future counts until its delivery has ended."""
    if not starts:
        return {}
    ends = {start: min(indicators.next_period(start, resolution) - datetime.timedelta(days=1), last)
            for start in starts}
    flows = _futures_flows(gpu_class, ends[starts[-1]])
    contracts = {row["id"]: (row["hours"], row["delivery_end"]) for row in Instrument.objects.filter(
        id__in={flow[1] for flow in flows}).values("id", "hours", "delivery_end")}
    net: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    seen: set[int] = set()
    out: dict[datetime.date, int] = {}
    index = 0
    for start in starts:
        day_end = calendar.local_midnight(ends[start] + datetime.timedelta(days=1))
        while index < len(flows) and flows[index][0] <= ends[start]:
            _day, instrument, organisation, quantity = flows[index]
            net[instrument][organisation] += quantity
            seen.add(instrument)
            index += 1
        out[start] = sum(contracts[instrument][0] * indicators.open_interest(net[instrument])
                         for instrument in seen if contracts[instrument][1] > day_end)
    return out


def _share_column(name: str, description: Any) -> Column:
    return Column(name, "share", description)


ACTIVITY = open_data.register(Dataset(
    slug="market-activity",
    title=gettext_lazy("Market activity"),
    description=gettext_lazy("GPU-hours traded per segment, futures open interest, active buyers and sellers, and "
                             "the share of volume bought and sold by SMEs and start-ups, per day, week or month."),
    columns=(
        Column("period_start", "", gettext_lazy("First day of the period (Europe/Berlin)")),
        Column("volume_intraday_gpuh", "GPUh", gettext_lazy("GPU-hours traded intraday")),
        Column("volume_dayahead_gpuh", "GPUh", gettext_lazy("GPU-hours traded in the day-ahead auction")),
        Column("volume_futures_gpuh", "GPUh", gettext_lazy("GPU-hours traded in futures")),
        Column("volume_total_gpuh", "GPUh", gettext_lazy("GPU-hours traded in all segments")),
        Column("open_interest_gpuh", "GPUh", gettext_lazy("Futures open interest at the end of the period")),
        Column("active_buyers", "members", gettext_lazy("Members that bought")),
        Column("active_sellers", "members", gettext_lazy("Members that sold")),
        _share_column("sme_buy_share", gettext_lazy("Share of volume bought by SMEs (empty: suppressed)")),
        _share_column("sme_sell_share", gettext_lazy("Share of volume sold by SMEs (empty: suppressed)")),
        _share_column("startup_buy_share", gettext_lazy("Share of volume bought by start-ups (empty: suppressed)")),
        _share_column("startup_sell_share", gettext_lazy("Share of volume sold by start-ups (empty: suppressed)")),
    ),
    rows=lambda params: activity_rows(clean(params, ACTIVITY_PARAMS, strict=True)),
    methodology_url=methodology_path("activity"), methodology_version=METHODOLOGY_VERSION,
    params=(Param("resolution", gettext_lazy("day, week or month"), indicators.WEEK),
            Param("range", gettext_lazy("month, quarter, year or all, back from today"), "quarter"),
            Param("gpu_class", gettext_lazy("A GPU class; empty for all classes"), ALL)),
    page_url="/dashboard/activity/",
))


# --- supply concentration ------------------------------------------------------------------------


def concentration_rows(query: Mapping[str, str]) -> Rows:
    """Per period: sellers, GPU-hours sold in the spot segments of the class
    and zone, the HHI of the sellers' volumes and its band (``None`` and ""
    with fewer than three sellers)."""
    resolution = query["resolution"]
    trades = _trades(query["gpu_class"]).filter(instrument__segment__in=SPOT, instrument__zone__code=query["zone"])
    first, last = _window(query["range"], _earliest_trade(trades), resolution)
    per_period: dict[datetime.date, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    done, runs = _split(first, last)
    if done:
        written = SellerDay.objects.filter(date__gte=done[0], date__lte=done[-1], zone__code=query["zone"])
        if query["gpu_class"]:
            written = written.filter(gpu_class__code=query["gpu_class"])
        for row in written.values("date", "organisation_id").annotate(total=Sum("gpuh")).order_by():
            per_period[indicators.period_start(row["date"], resolution)][row["organisation_id"]] += int(row["total"])
    for run_first, run_last in runs:
        start, end = _instants(run_first, run_last)
        for row in (trades.filter(executed_at__gte=start, executed_at__lt=end)
                    .annotate(day=TruncDate("executed_at", tzinfo=calendar.BERLIN))
                    .values("day", "seller_id").annotate(gpuh=GPUH).order_by()):
            per_period[indicators.period_start(row["day"], resolution)][row["seller_id"]] += row["gpuh"]
    out: Rows = []
    for period in indicators.periods(first, last, resolution):
        volumes = per_period.get(period, {})
        value = indicators.public_hhi(volumes)
        out.append({"period_start": period, "sellers": len(volumes), "volume_gpuh": sum(volumes.values()),
                    "hhi": value, "band": indicators.concentration_band(value)})
    return out


CONCENTRATION = open_data.register(Dataset(
    slug="supply-concentration",
    title=gettext_lazy("Supply concentration (HHI)"),
    description=gettext_lazy("The Herfindahl-Hirschman index of the GPU-hours sold in the spot segments (intraday "
                             "and day-ahead) of one class and zone, per day, week or month; suppressed for a "
                             "period with fewer than three sellers."),
    columns=(
        Column("period_start", "", gettext_lazy("First day of the period (Europe/Berlin)")),
        Column("sellers", "members", gettext_lazy("Members that sold")),
        Column("volume_gpuh", "GPUh", gettext_lazy("GPU-hours sold")),
        Column("hhi", "HHI", gettext_lazy("HHI of the sellers' volumes, 0-10,000 (empty: suppressed or no trade)")),
        Column("band", "", gettext_lazy("unconcentrated (< 1,500), moderately_concentrated (1,500-2,500) or "
                                        "highly_concentrated (> 2,500)")),
    ),
    rows=lambda params: concentration_rows(clean(params, CONCENTRATION_PARAMS, strict=True)),
    methodology_url=methodology_path("concentration"), methodology_version=METHODOLOGY_VERSION,
    params=(Param("gpu_class", gettext_lazy("A GPU class"), DEFAULT_CLASS),
            Param("zone", gettext_lazy("A delivery zone"), DEFAULT_ZONE),
            Param("resolution", gettext_lazy("day, week or month"), indicators.WEEK),
            Param("range", gettext_lazy("month, quarter, year or all, back from today"), "quarter")),
    page_url="/dashboard/concentration/",
))


# --- regions -------------------------------------------------------------------------------------

# Why a state's figures are withheld.
FEWER_PROVIDERS = "fewer_than_3_providers"
FEWER_SELLERS = "fewer_than_3_sellers"
PROTECTS_ANOTHER = "protects_another_state"


def regions_rows(query: Mapping[str, str]) -> Rows:
    """The 16 federal states: GPUs of capacity at the providers' sites there,
    GPU-hours delivered from those sites in the range and their average
    price. A state with fewer than three providers shows none of it, one
    with fewer than three selling providers no volume and price."""
    from clearing.models import DeliveryTicket

    gpu_class = query["gpu_class"]
    capacities = SiteCapacity.objects.filter(gpus__gt=0, site__organisation__kind=Organisation.Kind.MEMBER)
    tickets = DeliveryTicket.objects.filter(seller_site__isnull=False)
    if gpu_class:
        capacities = capacities.filter(gpu_class__code=gpu_class)
        tickets = tickets.filter(gpu_class__code=gpu_class)
    first_ticket = tickets.order_by("delivery_start").values_list("delivery_start", flat=True).first()
    first, last = _window(query["range"], None if first_ticket is None
                          else first_ticket.astimezone(calendar.BERLIN).date())
    start, end = _instants(first, last)
    capacity: dict[str, int] = defaultdict(int)
    providers: dict[str, set[int]] = defaultdict(set)
    for row in capacities.values("site__state", "site__organisation_id").annotate(gpus_total=Sum("gpus")).order_by():
        capacity[row["site__state"]] += row["gpus_total"]
        providers[row["site__state"]].add(row["site__organisation_id"])
    gpuh: dict[str, int] = defaultdict(int)
    value: dict[str, Decimal] = defaultdict(Decimal)
    sellers: dict[str, set[int]] = defaultdict(set)
    for state, seller, gpus, begins, ends, amount in tickets.filter(
            delivery_start__gte=start, delivery_start__lt=end).values_list(
            "seller_site__state", "seller_id", "gpus", "delivery_start", "delivery_end", "value"):
        gpuh[state] += gpus * int((ends - begins).total_seconds() // 3600)
        value[state] += amount
        sellers[state].add(seller)
    states = list(Organisation.State)
    # A state with one or two providers is withheld (primary); if that leaves
    # one withheld capacity, a second one is (secondary; the national total is known).
    shown_capacity = indicators.protect([(len(providers[s]), capacity[s]) for s in states])
    shown_volume = indicators.protect([(len(sellers[s]), gpuh[s]) for s in states])
    out: Rows = []
    for index, state in enumerate(states):
        reason = ""
        if indicators.suppressed(len(providers[state])):
            reason = FEWER_PROVIDERS
        elif indicators.suppressed(len(sellers[state])):
            reason = FEWER_SELLERS
        elif shown_capacity[index] is None or shown_volume[index] is None:
            reason = PROTECTS_ANOTHER
        hide_all = reason == FEWER_PROVIDERS or shown_capacity[index] is None
        hide_volume = hide_all or reason == FEWER_SELLERS or shown_volume[index] is None
        out.append({
            "state": state.value, "state_name": str(state.label),
            "providers": None if hide_all else len(providers[state]),
            "capacity_gpus": None if hide_all else capacity[state],
            "volume_gpuh": None if hide_volume else gpuh[state],
            "average_price": None if hide_volume else indicators.average_price(value[state], gpuh[state]),
            "suppressed": reason,
        })
    return out


REGIONS = open_data.register(Dataset(
    slug="regions",
    title=gettext_lazy("Regions"),
    description=gettext_lazy("Per federal state: GPUs of capacity at the providers' sites, GPU-hours delivered "
                             "from them and their average price; a state with fewer than three providers is "
                             "withheld."),
    columns=(
        Column("state", "", gettext_lazy("Federal state (ISO 3166-2)")),
        Column("state_name", "", gettext_lazy("Name of the federal state")),
        Column("providers", "members", gettext_lazy("Members with capacity at sites in the state (empty: withheld)")),
        Column("capacity_gpus", "GPUs", gettext_lazy("GPUs of capacity at sites in the state (empty: withheld)")),
        Column("volume_gpuh", "GPUh", gettext_lazy("GPU-hours delivered from sites in the state (empty: withheld)")),
        Column("average_price", "EUR/GPUh", gettext_lazy("Average price of those GPU-hours (empty: withheld)")),
        Column("suppressed", "", gettext_lazy("Why figures are withheld: fewer_than_3_providers, "
                                              "fewer_than_3_sellers, protects_another_state; empty if shown")),
    ),
    rows=lambda params: regions_rows(clean(params, REGIONS_PARAMS, strict=True)),
    methodology_url=methodology_path("regions"), methodology_version=METHODOLOGY_VERSION,
    params=(Param("gpu_class", gettext_lazy("A GPU class; empty for all classes"), ALL),
            Param("range", gettext_lazy("month, quarter, year or all, back from today"), "quarter")),
    page_url="/dashboard/regions/",
))


# --- observers (not open data) -------------------------------------------------------------------


@dataclass(frozen=True)
class ObserverTables:
    first: datetime.date
    last: datetime.date
    states: Rows
    sizes: Rows
    zones: Rows
    # The open book now (not the range): offered capacity and unmet demand.
    open_states: Rows
    open_sizes: Rows
    as_of: datetime.datetime


def _protected_rows(keys: list[str], labels: Mapping[str, str], key_name: str,
                    columns: Mapping[tuple[str, str], tuple[Mapping[str, set[int]], Mapping[str, int]]]) -> Rows:
    """One row per key: for each (members column, value column), the number
    of members and their value, withheld with primary and secondary
    suppression down the column (``indicators.protect``)."""
    shown = {names: indicators.protect([(len(members.get(k, ())), values.get(k, 0)) for k in keys])
             for names, (members, values) in columns.items()}
    out: Rows = []
    for i, key in enumerate(keys):
        row: dict[str, Any] = {key_name: key, "name": labels[key]}
        for (count_name, value_name), (members, _values) in columns.items():
            row[count_name] = len(members.get(key, ()))
            row[value_name] = shown[count_name, value_name][i]
        out.append(row)
    return out


def _spot_volumes(query: Mapping[str, str], first: datetime.date, last: datetime.date,
                  ) -> tuple[dict[int, int], dict[int, int], dict[str, dict[int, int]]]:
    """GPU-hours each organisation bought and sold in the spot segments of
    ``first``..``last``, and sold per zone: written days from ``ActivityDay``
    and ``SellerDay``, the others (today) from the trades."""
    gpu_class = query["gpu_class"]
    bought: dict[int, int] = defaultdict(int)
    sold: dict[int, int] = defaultdict(int)
    zones: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    done, runs = _split(first, last)
    if done:
        sides = ActivityDay.objects.filter(date__gte=done[0], date__lte=done[-1], segment__in=SPOT)
        sellers = SellerDay.objects.filter(date__gte=done[0], date__lte=done[-1])
        if gpu_class:
            sides = sides.filter(gpu_class__code=gpu_class)
            sellers = sellers.filter(gpu_class__code=gpu_class)
        for row in sides.values("organisation_id", "side").annotate(total=Sum("gpuh")).order_by():
            (bought if row["side"] == "buy" else sold)[row["organisation_id"]] += int(row["total"])
        for row in sellers.values("zone__code", "organisation_id").annotate(total=Sum("gpuh")).order_by():
            zones[row["zone__code"]][row["organisation_id"]] += int(row["total"])
    trades = _trades(gpu_class).filter(instrument__segment__in=SPOT)
    for run_first, run_last in runs:
        start, end = _instants(run_first, run_last)
        for row in (trades.filter(executed_at__gte=start, executed_at__lt=end)
                    .values("buyer_id", "seller_id", "instrument__zone__code").annotate(gpuh=GPUH).order_by()):
            bought[row["buyer_id"]] += row["gpuh"]
            sold[row["seller_id"]] += row["gpuh"]
            zones[row["instrument__zone__code"]][row["seller_id"]] += row["gpuh"]
    return bought, sold, zones


# The row of offers in the DE instrument by a seller without capacity of the class (a resale):
# they may be delivered from anywhere in Germany.
NO_SITE = "DE"


def _open_book(gpu_class: str, now: datetime.datetime,
               ) -> tuple[dict[tuple[int, str], int], dict[int, int]]:
    """The open spot book now: GPU-hours offered per (seller, state of the
    sites they come from), and GPU-hours bid per buyer. An open order is
    resting (open or partly filled) in an instrument still open for trading;
    its GPU-hours are the remaining quantity x the instrument's hours. A
    state's instrument is delivered from that state; a DE order is placed in
    the states of the seller's capacity of the class in proportion to it
    (``indicators.apportion``), or in ``NO_SITE`` without any."""
    orders = Order.objects.filter(status__in=RESTING_STATUSES, instrument__segment__in=SPOT,
                                  instrument__closes_at__gt=now)
    if gpu_class:
        orders = orders.filter(instrument__gpu_class__code=gpu_class)
    remaining = (F("quantity") - F("filled_quantity")) * F("instrument__hours")
    offered: dict[tuple[int, str], int] = defaultdict(int)
    unplaced: dict[tuple[int, int], int] = defaultdict(int)  # (seller, class) -> GPU-hours in DE instruments
    bid: dict[int, int] = defaultdict(int)
    for row in (orders.values("side", "organisation_id", "instrument__zone__code", "instrument__gpu_class_id")
                .annotate(gpuh=Sum(remaining)).order_by()):
        gpuh = int(row["gpuh"])
        if row["side"] == Side.BUY:
            bid[row["organisation_id"]] += gpuh
        elif row["instrument__zone__code"] == NO_SITE:
            unplaced[row["organisation_id"], row["instrument__gpu_class_id"]] += gpuh
        else:
            offered[row["organisation_id"], row["instrument__zone__code"]] += gpuh
    if unplaced:
        capacity: dict[tuple[int, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in (SiteCapacity.objects.filter(site__organisation_id__in={o for o, _c in unplaced}, gpus__gt=0)
                    .values("site__organisation_id", "gpu_class_id", "site__state").annotate(total=Sum("gpus"))
                    .order_by()):
            capacity[row["site__organisation_id"], row["gpu_class_id"]][row["site__state"]] += row["total"]
        for (seller, gpu_class_id), gpuh in unplaced.items():
            for state, part in (indicators.apportion(gpuh, dict(sorted(capacity[seller, gpu_class_id].items())))
                                or {NO_SITE: gpuh}).items():
                offered[seller, state] += part
    return {key: gpuh for key, gpuh in offered.items() if gpuh > 0}, {k: v for k, v in bid.items() if v > 0}


def observer_tables(query: Mapping[str, str], *, now: datetime.datetime | None = None) -> ObserverTables:
    """Non-public aggregates for observers. Over the range: GPU-hours bought
    (demand met) and sold (supply met) in the spot segments by the members'
    federal state (seat) and size class, and the HHI of the sellers per zone.
    The open book now: capacity offered by the state of the sites (where the
    GPUs are) and by the seller's size class, and unmet demand (open buy
    orders) by the buyer's seat and size class. A cell over one or two
    members is withheld (and one more if it would give it away)."""
    now = now or timezone.now()
    trades = _trades(query["gpu_class"]).filter(instrument__segment__in=SPOT)
    first, last = _window(query["range"], _earliest_trade(trades))
    bought, sold, zone_volumes = _spot_volumes(query, first, last)
    offered, bid = _open_book(query["gpu_class"], now)
    facts = _org_facts(set(bought) | set(sold) | {seller for seller, _state in offered} | set(bid))
    state_labels = {state.value: str(state.label) for state in Organisation.State}
    size_labels = size_class_labels()

    def grouped(volumes: Mapping[int, int], key: Callable[[int], str]) -> tuple[dict[str, set[int]], dict[str, int]]:
        members: dict[str, set[int]] = defaultdict(set)
        values: dict[str, int] = defaultdict(int)
        for organisation, gpuh in volumes.items():
            members[key(organisation)].add(organisation)
            values[key(organisation)] += gpuh
        return members, values

    def seat(organisation: int) -> str:
        return facts[organisation].state

    def size(organisation: int) -> str:
        return facts[organisation].size

    traded = {("buyers", "demand_gpuh"): bought, ("sellers", "supply_gpuh"): sold}
    states = _protected_rows(list(state_labels), state_labels, "state",
                             {names: grouped(v, seat) for names, v in traded.items()})
    sizes = _protected_rows(list(indicators.SIZE_CLASSES), size_labels, "size_class",
                            {names: grouped(v, size) for names, v in traded.items()})
    by_site: tuple[dict[str, set[int]], dict[str, int]] = (defaultdict(set), defaultdict(int))
    offered_by_seller: dict[int, int] = defaultdict(int)
    for (seller, state), gpuh in offered.items():
        by_site[0][state].add(seller)
        by_site[1][state] += gpuh
        offered_by_seller[seller] += gpuh
    open_labels = dict(state_labels)
    if by_site[0].get(NO_SITE):
        open_labels[NO_SITE] = _("Germany, no site of the seller (resale)")
    open_states = _protected_rows(list(open_labels), open_labels, "state", {
        ("bidders", "unmet_demand_gpuh"): grouped(bid, seat), ("offerers", "offered_gpuh"): by_site})
    open_sizes = _protected_rows(list(indicators.SIZE_CLASSES), size_labels, "size_class", {
        ("bidders", "unmet_demand_gpuh"): grouped(bid, size),
        ("offerers", "offered_gpuh"): grouped(offered_by_seller, size)})
    zones: Rows = []
    for zone in zone_codes():
        volumes = zone_volumes.get(zone, {})
        value = indicators.public_hhi(volumes)
        zones.append({"zone": zone, "sellers": len(volumes), "volume_gpuh": sum(volumes.values()), "hhi": value,
                      "band": indicators.concentration_band(value)})
    return ObserverTables(first=first, last=last, states=states, sizes=sizes, zones=zones,
                          open_states=open_states, open_sizes=open_sizes, as_of=now)


def size_class_labels() -> dict[str, str]:
    return {indicators.MICRO: _("micro (fewer than 10 staff, up to 2 million EUR)"),
            indicators.SMALL: _("small (fewer than 50 staff, up to 10 million EUR)"),
            indicators.MEDIUM: _("medium (fewer than 250 staff, up to 50 million EUR)"),
            indicators.LARGE: _("large"),
            indicators.UNKNOWN: _("size not recorded")}


def band_labels() -> dict[str, str]:
    return {indicators.UNCONCENTRATED: _("unconcentrated"), indicators.MODERATE: _("moderately concentrated"),
            indicators.HIGH: _("highly concentrated"), "": "–"}
