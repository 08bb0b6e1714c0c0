"""Reads of the markets overview: every tradable intraday instrument with its
best bid and ask, last price, today's volume, high and low, and the grid of
delivery hours x GPU classes the overview screen draws from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import DecimalField, IntegerField, Max, Min, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from market import calendar
from market.models import RESTING_STATUSES, GpuClass, Instrument, InstrumentStatus, Order, Segment, Side, Trade
from market.selectors.catalogue import instrument_queryset

SORT_TIME = "time"
SORT_VOLUME = "volume"
SORT_CLASS_VOLUME = "volume-"  # + a class code: by that column's volume


def instruments_overview(*, now: datetime) -> QuerySet[Instrument]:
    """Intraday instruments still in their trading window (open, or halted by
    an operator), annotated with ``best_bid``, ``best_ask`` and ``last_price``
    (None when there is none), ``volume_today`` (GPUs traded since local
    midnight) and ``high_today``/``low_today`` (the highest and lowest trade
    price since local midnight, None without a trade today). Each annotation
    is a correlated subquery on an index (``order_book``,
    ``trade_instrument_recent``)."""
    resting = Order.objects.filter(instrument=OuterRef("pk"), status__in=RESTING_STATUSES)
    trades = Trade.objects.filter(instrument=OuterRef("pk"))
    since = calendar.local_midnight(now.astimezone(calendar.BERLIN).date())
    today = trades.filter(executed_at__gte=since).order_by().values("instrument")
    price: DecimalField[Any, Any] = DecimalField(max_digits=12, decimal_places=2)
    return (
        instrument_queryset()
        .filter(segment=Segment.INTRADAY, status__in=[InstrumentStatus.OPEN, InstrumentStatus.HALTED],
                closes_at__gt=now)
        .annotate(
            best_bid=Subquery(resting.filter(side=Side.BUY).order_by("-price").values("price")[:1]),
            best_ask=Subquery(resting.filter(side=Side.SELL).order_by("price").values("price")[:1]),
            last_price=Subquery(trades.order_by("-id").values("price")[:1]),
            volume_today=Coalesce(Subquery(today.annotate(total=Sum("quantity")).values("total"),
                                           output_field=IntegerField()), 0),
            high_today=Subquery(today.annotate(high=Max("price")).values("high"), output_field=price),
            low_today=Subquery(today.annotate(low=Min("price")).values("low"), output_field=price),
        )
        .order_by("delivery_start", "gpu_class__code", "zone__code")
    )


def is_empty(instrument: Instrument) -> bool:
    """Nothing to show: no order in the book and never traded."""
    row: Any = instrument  # annotated by instruments_overview
    return row.best_bid is None and row.best_ask is None and row.last_price is None


def _volume(instrument: Instrument | None) -> int:
    """Today's volume of an instrument of ``instruments_overview``; -1 for no instrument (sorts last)."""
    row: Any = instrument
    return -1 if row is None else int(row.volume_today)


@dataclass
class GridRow:
    """One delivery hour of the grid: its instruments by class (None where
    the class has no instrument for the hour), in the grid's class order."""

    delivery_start: datetime
    delivery_end: datetime
    label: str  # "14", or "02A"/"02B" on the October change day
    cells: list[Instrument | None]
    volume: int = 0

    @property
    def is_repeated_hour(self) -> bool:
        return not self.label.isdigit()


@dataclass
class MarketGrid:
    classes: list[str]
    rows: list[GridRow]
    # Instruments of the zone and day that are tradable now, and how many of
    # them the grid leaves out because they are empty.
    listed: int = 0
    hidden: int = 0
    sort: str = SORT_TIME
    volume_by_class: dict[str, int] = field(default_factory=dict)


def market_grid(*, zone: str, day: date, now: datetime, show_empty: bool = False,
                sort: str = SORT_TIME) -> MarketGrid:
    """The delivery hours of ``day`` (Europe/Berlin) x the active GPU classes
    in ``zone``, for the instruments tradable now (``instruments_overview``).

    Empty instruments (``is_empty``) are left out unless ``show_empty``: an
    hour whose instruments are all empty has no row, a class whose
    instruments are all empty no column; an empty instrument in a row that
    is shown appears as an empty cell. ``sort``: ``time`` (delivery hour),
    ``volume`` (the hour's volume today over all classes, largest first), or
    ``volume-<class>`` (that class's volume today), ties by delivery hour.
    Two queries (classes, instruments)."""
    starts, ends = calendar.local_midnight(day), calendar.local_midnight(day + timedelta(days=1))
    tradable = list(instruments_overview(now=now).filter(
        zone__code=zone, delivery_start__gte=starts, delivery_start__lt=ends))
    for instrument in tradable:
        row_of: Any = instrument
        row_of.empty = is_empty(instrument)  # the template's one answer to "empty?"
    instruments = [instrument for instrument in tradable if show_empty or not is_empty(instrument)]
    active_classes = list(GpuClass.objects.filter(active=True).order_by("code").values_list("code", flat=True))
    present = {instrument.gpu_class.code for instrument in instruments}
    classes = [code for code in active_classes if code in present or show_empty]
    classes += sorted(present - set(classes))  # an inactive class still trading out its listed hours
    column = {code: index for index, code in enumerate(classes)}

    rows: dict[datetime, GridRow] = {}
    volume_by_class = dict.fromkeys(classes, 0)
    for instrument in instruments:
        row = rows.get(instrument.delivery_start)
        if row is None:
            row = rows[instrument.delivery_start] = GridRow(
                delivery_start=instrument.delivery_start, delivery_end=instrument.delivery_end,
                label=instrument.period.rpartition("T")[2], cells=[None] * len(classes))
        row.cells[column[instrument.gpu_class.code]] = instrument
        row.volume += _volume(instrument)
        volume_by_class[instrument.gpu_class.code] += _volume(instrument)

    ordered = sorted(rows.values(), key=lambda row: row.delivery_start)
    if sort == SORT_VOLUME:
        ordered.sort(key=lambda row: -row.volume)  # stable: ties stay in delivery order
    elif sort.startswith(SORT_CLASS_VOLUME) and sort[len(SORT_CLASS_VOLUME):] in column:
        index = column[sort[len(SORT_CLASS_VOLUME):]]
        ordered.sort(key=lambda row: -_volume(row.cells[index]))
    else:
        sort = SORT_TIME
    return MarketGrid(classes=classes, rows=ordered, listed=len(tradable), hidden=len(tradable) - len(instruments),
                      sort=sort, volume_by_class=volume_by_class)
