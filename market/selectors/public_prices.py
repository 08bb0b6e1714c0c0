"""Reads of the public price pages (issue 11: Overview, Prices, Chip
generations) and the open datasets they draw, registered here
(``market.open_data``): ``latest-indices``, ``price-history``,
``price-per-performance`` and ``generation-spread``. The pages and the API
call the same ``rows`` functions, so a download is exactly what a chart
plots. Only published aggregates (index values, cleared auction prices,
settlement prices): nothing here reads a member."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from market import calendar, indices, price_stats
from market.models import AuctionStatus, DayAheadHour, DeliveryZone, GpuClass, IndexValue
from market.open_data import Column, Dataset, OpenDataError, Param, Rows, register

METHODOLOGY_VERSION = "v1"
PRICES_METHODOLOGY = "/dashboard/methodology/prices/v1/"
PERFORMANCE_METHODOLOGY = "/dashboard/methodology/price-per-performance/v1/"
RANGES = ("day", "week", "month", "year", "all")
RESOLUTIONS = ("hour", "day", "week", "month")
HOURLY_RANGES = ("day", "week", "month")  # hourly prices: at most 31 days, or the page gets slow
INDEX_KINDS = (indices.BASE, indices.PEAK)
DEFAULTS = {"gpu_class": "H100", "zone": "DE", "index": indices.BASE, "range": "year", "resolution": "day",
            "end": ""}


def _classes() -> list[str]:
    return list(GpuClass.objects.filter(active=True).order_by("code").values_list("code", flat=True))


def _zones() -> list[str]:
    return list(DeliveryZone.objects.order_by("code").values_list("code", flat=True))


def today() -> date:
    return timezone.now().astimezone(calendar.BERLIN).date()


@dataclass(frozen=True)
class Query:
    classes: tuple[str, ...]
    zone: str
    index: str
    span: str
    resolution: str
    end: date | None

    def params(self) -> dict[str, str]:
        """As query parameters (the page's download links and form)."""
        out = {"gpu_class": ",".join(self.classes), "zone": self.zone, "index": self.index, "range": self.span,
               "resolution": self.resolution}
        if self.end is not None:
            out["end"] = self.end.isoformat()
        return out


def clean(params: Mapping[str, str], *, resolutions: tuple[str, ...] = RESOLUTIONS,
          default_classes: tuple[str, ...] | None = None) -> tuple[Query, dict[str, list[str]]]:
    """The query and, per bad parameter, its message; each bad value is
    replaced by its default (the pages show the defaults, the API answers 400)."""
    errors: dict[str, list[str]] = {}
    known = _classes()
    asked = [code.strip() for code in (params.get("gpu_class") or "").split(",") if code.strip()]
    classes = tuple(dict.fromkeys(code for code in asked if code in known))
    if asked and len(classes) != len(asked):
        errors["gpu_class"] = [str(_("Choose active GPU classes, separated by commas."))]
    if not classes:
        fallback = default_classes or ((DEFAULTS["gpu_class"],) if DEFAULTS["gpu_class"] in known else tuple(known[:1]))
        classes = tuple(code for code in fallback if code in known)
    zone = params.get("zone") or DEFAULTS["zone"]
    if zone not in _zones():
        errors["zone"] = [str(_("There is no delivery zone of this code."))]
        zone = DEFAULTS["zone"]
    index = params.get("index") or DEFAULTS["index"]
    if index not in INDEX_KINDS:
        errors["index"] = [str(_("Choose base or peak."))]
        index = DEFAULTS["index"]
    span = params.get("range") or DEFAULTS["range"]
    if span not in RANGES:
        errors["range"] = [str(_("Choose day, week, month, year or all."))]
        span = DEFAULTS["range"]
    resolution = params.get("resolution") or DEFAULTS["resolution"]
    if resolution not in resolutions:
        errors["resolution"] = [str(_("Choose one of: %(choices)s.") % {"choices": ", ".join(resolutions)})]
        resolution = DEFAULTS["resolution"]
    if resolution == "hour" and span not in HOURLY_RANGES:
        errors["resolution"] = [str(_("Hourly prices are given for at most a month (range day, week or month)."))]
        resolution = DEFAULTS["resolution"]
    end = None
    if params.get("end"):
        try:
            end = calendar.parse_day(params["end"])
        except calendar.CalendarError:
            errors["end"] = [str(_("Give a day as YYYY-MM-DD."))]
    return Query(classes, zone, index, span, resolution, end), errors


def _strict(params: Mapping[str, str], **kwargs: Any) -> Query:
    query, errors = clean(params, **kwargs)
    if errors:
        raise OpenDataError(errors)
    return query


def _interval(query: Query) -> tuple[date, date]:
    values = IndexValue.objects.filter(gpu_class__code__in=query.classes, zone__code=query.zone, kind=query.index,
                                       methodology_version=indices.METHODOLOGY_VERSION)
    end = query.end
    if end is None:
        latest = values.aggregate(last=Max("date"))["last"]
        end = latest or today()
    first = None
    if query.span == "all":
        first = values.order_by("date").values_list("date", flat=True).first()
    return price_stats.window(end, query.span, first), end


def _daily(query: Query, start: date, end: date) -> dict[str, list[tuple[date, Decimal | None, bool]]]:
    series: dict[str, list[tuple[date, Decimal | None, bool]]] = {code: [] for code in query.classes}
    rows = (IndexValue.objects.filter(gpu_class__code__in=query.classes, zone__code=query.zone, kind=query.index,
                                      methodology_version=indices.METHODOLOGY_VERSION, date__gte=start,
                                      date__lte=end)
            .order_by("date").values_list("gpu_class__code", "date", "value", "is_demo"))
    for code, day, value, demo in rows.iterator(chunk_size=5000):
        series[code].append((day, value, demo))
    return series


def _hourly(query: Query, start: date, end: date) -> Rows:
    hours = (DayAheadHour.objects.filter(auction__status=AuctionStatus.CLEARED,
                                         auction__gpu_class__code__in=query.classes, auction__zone__code=query.zone,
                                         auction__delivery_date__gte=start, auction__delivery_date__lte=end)
             .order_by("delivery_start", "auction__gpu_class__code")
             .values_list("auction__gpu_class__code", "auction__delivery_date", "hour", "delivery_start", "price"))
    peak: dict[date, set[str]] = {}
    rows: Rows = []
    for code, day, label, start_at, value in hours:
        if query.index == indices.PEAK:
            if day not in peak:
                peak[day] = set(indices.peak_labels(day))
            if label not in peak[day]:
                continue
        rows.append({"period": day, "hour_start": start_at, "gpu_class": code, "zone": query.zone,
                     "index": query.index, "price": value, "days": None, "is_demo": False})
    return rows


def history_rows(query: Query) -> Rows:
    """The prices the Prices page draws: one row per period (or hour) and class."""
    start, end = _interval(query)
    if query.resolution == "hour":
        return _hourly(query, start, end)
    rows: Rows = []
    for code, days in _daily(query, start, end).items():
        demo: dict[date, bool] = {}
        for day, _value, is_demo in days:
            first = price_stats.period_start(day, query.resolution)
            demo[first] = demo.get(first, False) or is_demo
        if query.resolution == "day":
            means = [(day, value, 1) for day, value, _demo in days if value is not None]
        else:
            means = price_stats.period_means([(day, value) for day, value, _demo in days], query.resolution)
        rows += [{"period": first, "hour_start": None, "gpu_class": code, "zone": query.zone, "index": query.index,
                  "price": value, "days": count, "is_demo": demo.get(first, False)} for first, value, count in means]
    return sorted(rows, key=lambda row: (row["period"], row["gpu_class"]))


def _price_history(params: Mapping[str, str]) -> Rows:
    return history_rows(_strict(params))


COMMON_PARAMS = (
    Param("gpu_class", _("GPU classes, separated by commas"), DEFAULTS["gpu_class"]),
    Param("zone", _("Delivery zone"), DEFAULTS["zone"]),
    Param("index", _("base or peak"), DEFAULTS["index"]),
    Param("range", _("day, week, month (31 days), year (365 days) or all, ending on end"), DEFAULTS["range"]),
    Param("end", _("Last day (YYYY-MM-DD); default the newest day with a value"), ""),
)
DEMO_COLUMN = Column("is_demo", "", _("Demonstration data, not from trading"))

PRICE_HISTORY = register(Dataset(
    slug="price-history", title=_("Price history"),
    description=_("Base or Peak index per GPU class and zone: hourly day-ahead prices, daily values, or the mean "
                  "of the daily values per week or month."),
    columns=(Column("period", "", _("Day, or first day of the week (Monday) or month")),
             Column("hour_start", "", _("Start of the delivery hour (hourly resolution only)")),
             Column("gpu_class", "", _("GPU class")), Column("zone", "", _("Delivery zone")),
             Column("index", "", _("base or peak")), Column("price", "EUR/GPUh", _("Price")),
             Column("days", "days", _("Daily values in the mean (empty for hours)")), DEMO_COLUMN),
    rows=_price_history, methodology_url=PRICES_METHODOLOGY, methodology_version=METHODOLOGY_VERSION,
    params=(*COMMON_PARAMS, Param("resolution", _("hour (ranges up to a month), day, week or month"),
                                  DEFAULTS["resolution"])),
    page_url="/dashboard/prices/", time_columns=("hour_start",),
))


# --- price per performance ------------------------------------------------------------------


def performance_rows(query: Query) -> Rows:
    """Each class's price per 1,000 units of its benchmark figure, per period."""
    benchmarks = {code: (value, unit) for code, value, unit in GpuClass.objects.filter(code__in=query.classes)
                  .values_list("code", "min_benchmark_value", "min_benchmark_unit")}
    rows = []
    for row in history_rows(query):
        value, unit = benchmarks[row["gpu_class"]]
        if value is None or value <= 0 or row["price"] is None:
            continue
        rows.append({"period": row["period"], "gpu_class": row["gpu_class"], "zone": row["zone"],
                     "index": row["index"], "price": row["price"], "benchmark_value": value, "benchmark_unit": unit,
                     "price_per_1000_units": price_stats.per_performance(row["price"], value),
                     "is_demo": row["is_demo"]})
    return rows


def spread_rows(query: Query, newer: str, older: str) -> Rows:
    """Per period: newer minus older, each per 1,000 units of its benchmark figure (both needed)."""
    both = Query((newer, older), query.zone, query.index, query.span, query.resolution, query.end)
    by_period: dict[date, dict[str, dict[str, Any]]] = {}
    for row in performance_rows(both):
        by_period.setdefault(row["period"], {})[row["gpu_class"]] = row
    rows = []
    for period, found in sorted(by_period.items()):
        if newer not in found or older not in found:
            continue
        new, old = found[newer]["price_per_1000_units"], found[older]["price_per_1000_units"]
        rows.append({"period": period, "newer": newer, "older": older, "zone": query.zone, "index": query.index,
                     "newer_per_1000_units": new, "older_per_1000_units": old,
                     "spread": price_stats.difference(new, old),
                     "is_demo": found[newer]["is_demo"] or found[older]["is_demo"]})
    return rows


PERFORMANCE_RESOLUTIONS = ("day", "week", "month")


def clean_pair(params: Mapping[str, str]) -> tuple[str, str, dict[str, list[str]]]:
    """The two classes of the spread (defaults H100 and A100, else the two of highest and lowest figure)."""
    ordered = list(GpuClass.objects.filter(active=True).order_by("-min_benchmark_value", "code")
                   .values_list("code", flat=True))
    default_new = "H100" if "H100" in ordered else (ordered[0] if ordered else "")
    default_old = "A100" if "A100" in ordered else (ordered[-1] if ordered else "")
    errors: dict[str, list[str]] = {}
    newer, older = params.get("newer") or default_new, params.get("older") or default_old
    if newer not in ordered:
        errors["newer"] = [str(_("Choose an active GPU class."))]
        newer = default_new
    if older not in ordered:
        errors["older"] = [str(_("Choose an active GPU class."))]
        older = default_old
    return newer, older, errors


def _performance(params: Mapping[str, str]) -> Rows:
    return performance_rows(_strict(params, resolutions=PERFORMANCE_RESOLUTIONS, default_classes=tuple(_classes())))


def _spread(params: Mapping[str, str]) -> Rows:
    query, errors = clean(params, resolutions=PERFORMANCE_RESOLUTIONS)
    newer, older, pair_errors = clean_pair(params)
    errors.update(pair_errors)
    errors.pop("gpu_class", None)  # not a parameter of the spread
    if errors:
        raise OpenDataError(errors)
    return spread_rows(query, newer, older)


PERF_PARAMS = tuple(p for p in COMMON_PARAMS if p.name != "gpu_class") + (
    Param("resolution", _("day, week or month"), DEFAULTS["resolution"]),)

PRICE_PER_PERFORMANCE = register(Dataset(
    slug="price-per-performance", title=_("Price per performance"),
    description=_("Each GPU class's index price divided by its benchmark figure, per 1,000 units of it "
                  "(for TFLOPS: EUR for a PFLOPS for an hour)."),
    columns=(Column("period", "", _("Day, or first day of the week (Monday) or month")),
             Column("gpu_class", "", _("GPU class")), Column("zone", "", _("Delivery zone")),
             Column("index", "", _("base or peak")), Column("price", "EUR/GPUh", _("Price")),
             Column("benchmark_value", "", _("The class's minimum benchmark figure")),
             Column("benchmark_unit", "", _("What the benchmark figure measures")),
             Column("price_per_1000_units", "EUR/h per 1000 units", _("Price per 1,000 units of the figure")),
             DEMO_COLUMN),
    rows=_performance, methodology_url=PERFORMANCE_METHODOLOGY, methodology_version=METHODOLOGY_VERSION,
    params=(Param("gpu_class", _("GPU classes, separated by commas"), "all"), *PERF_PARAMS),
    page_url="/dashboard/generations/",
))

GENERATION_SPREAD = register(Dataset(
    slug="generation-spread", title=_("Spread between chip generations"),
    description=_("The newer class's price per 1,000 units of its benchmark figure minus the older class's."),
    columns=(Column("period", "", _("Day, or first day of the week (Monday) or month")),
             Column("newer", "", _("Newer GPU class")), Column("older", "", _("Older GPU class")),
             Column("zone", "", _("Delivery zone")), Column("index", "", _("base or peak")),
             Column("newer_per_1000_units", "EUR/h per 1000 units", _("Newer class per 1,000 units")),
             Column("older_per_1000_units", "EUR/h per 1000 units", _("Older class per 1,000 units")),
             Column("spread", "EUR/h per 1000 units", _("Newer minus older")), DEMO_COLUMN),
    rows=_spread, methodology_url=PERFORMANCE_METHODOLOGY, methodology_version=METHODOLOGY_VERSION,
    params=(Param("newer", _("Newer GPU class"), "H100"), Param("older", _("Older GPU class"), "A100"),
            *PERF_PARAMS),
    page_url="/dashboard/generations/",
))


# --- the overview ---------------------------------------------------------------------------


def latest_rows(params: Mapping[str, str] | None = None) -> Rows:
    """Per class, zone and index (Base, Peak, intraday VWAP): the newest published value and its
    change against the value of the day before (empty when that day has none)."""
    latest = (IndexValue.objects.filter(methodology_version=indices.METHODOLOGY_VERSION, value__isnull=False)
              .values("gpu_class__code", "zone__code", "kind").annotate(last=Max("date")))
    wanted = {(r["gpu_class__code"], r["zone__code"], r["kind"]): r["last"] for r in latest}
    if not wanted:
        return []
    days = set(wanted.values()) | {day - timedelta(days=1) for day in wanted.values()}
    values = {(code, zone, kind, day): (value, demo) for code, zone, kind, day, value, demo in
              IndexValue.objects.filter(methodology_version=indices.METHODOLOGY_VERSION, date__in=days)
              .values_list("gpu_class__code", "zone__code", "kind", "date", "value", "is_demo")}
    order = {kind: position for position, kind in enumerate(indices.KINDS)}
    rows = []
    for (code, zone, kind), day in sorted(wanted.items(), key=lambda item: (item[0][0], item[0][1],
                                                                            order.get(item[0][2], 9))):
        value, demo = values[(code, zone, kind, day)]
        before = values.get((code, zone, kind, day - timedelta(days=1)), (None, False))[0]
        rows.append({"gpu_class": code, "zone": zone, "index": kind, "date": day, "value": value,
                     "change": price_stats.difference(value, before), "is_demo": demo})
    return rows


def dayahead_rows(params: Mapping[str, str] | None = None) -> Rows:
    """Today's and tomorrow's day-ahead Base per class and zone, with the change against the day before."""
    now = today()
    days = [now - timedelta(days=1), now, now + timedelta(days=1)]
    values = {(code, zone, day): (value, demo) for code, zone, day, value, demo in
              IndexValue.objects.filter(methodology_version=indices.METHODOLOGY_VERSION, kind=indices.BASE,
                                        date__in=days)
              .values_list("gpu_class__code", "zone__code", "date", "value", "is_demo")}
    rows = []
    for code, zone, day in sorted(key for key in values if key[2] != days[0]):
        value, demo = values[(code, zone, day)]
        before = values.get((code, zone, day - timedelta(days=1)), (None, False))[0]
        rows.append({"gpu_class": code, "zone": zone, "date": day, "base": value,
                     "change": price_stats.difference(value, before), "is_demo": demo})
    return rows


def front_rows(params: Mapping[str, str] | None = None) -> Rows:
    """Per class: the front month, quarter and year future's latest DSP and its change to the DSP before."""
    from market.selectors.futures import futures_board

    rows = []
    for code in _classes():
        seen: set[str] = set()
        for row in futures_board(gpu_class=code, now=timezone.now()):
            if row.kind in seen:
                continue
            seen.add(row.kind)
            rows.append({"gpu_class": code, "kind": row.kind, "symbol": row.instrument.symbol,
                         "dsp_date": row.dsp_date, "dsp": row.dsp, "change": row.change})
    return rows


LATEST_INDICES = register(Dataset(
    slug="latest-indices", title=_("Latest indices"),
    description=_("The newest Base, Peak and intraday VWAP per GPU class and zone, with the change against the "
                  "day before."),
    columns=(Column("gpu_class", "", _("GPU class")), Column("zone", "", _("Delivery zone")),
             Column("index", "", _("base, peak or intraday_vwap")), Column("date", "", _("Delivery day")),
             Column("value", "EUR/GPUh", _("Index value")),
             Column("change", "EUR/GPUh", _("Change against the day before (empty: no value that day)")),
             DEMO_COLUMN),
    rows=latest_rows, methodology_url=PRICES_METHODOLOGY, methodology_version=METHODOLOGY_VERSION,
    page_url="/dashboard/overview/",
))

DAYAHEAD_BASE = register(Dataset(
    slug="dayahead-base", title=_("Day-ahead Base today and tomorrow"),
    description=_("The Base index (mean of the hourly day-ahead prices) of today and tomorrow per class and "
                  "zone, with the change against the day before."),
    columns=(Column("gpu_class", "", _("GPU class")), Column("zone", "", _("Delivery zone")),
             Column("date", "", _("Delivery day")), Column("base", "EUR/GPUh", _("Base")),
             Column("change", "EUR/GPUh", _("Change against the day before")), DEMO_COLUMN),
    rows=dayahead_rows, methodology_url=PRICES_METHODOLOGY, methodology_version=METHODOLOGY_VERSION,
    page_url="/dashboard/overview/",
))

FORWARD_FRONT = register(Dataset(
    slug="forward-front", title=_("Front futures"),
    description=_("Per class: the daily settlement price of the front month, quarter and year future, with the "
                  "change against the settlement price before."),
    columns=(Column("gpu_class", "", _("GPU class")), Column("kind", "", _("M month, Q quarter, Y year")),
             Column("symbol", "", _("Future")), Column("dsp_date", "", _("Business day of the settlement price")),
             Column("dsp", "EUR/GPUh", _("Daily settlement price")),
             Column("change", "EUR/GPUh", _("Change against the settlement price before"))),
    rows=front_rows, methodology_url=PRICES_METHODOLOGY, methodology_version=METHODOLOGY_VERSION,
    page_url="/dashboard/overview/",
))
