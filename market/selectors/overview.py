"""Reads of the market overview screen: every tradable intraday instrument
with its best bid and ask, last price and today's volume, in one query."""

from datetime import datetime

from django.db.models import IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from market import calendar
from market.models import RESTING_STATUSES, Instrument, InstrumentStatus, Order, Segment, Side, Trade
from market.selectors.catalogue import instrument_queryset


def instruments_overview(*, now: datetime, active_only: bool = False) -> QuerySet[Instrument]:
    """Intraday instruments still in their trading window (open, or halted by
    an operator), annotated with ``best_bid``, ``best_ask`` and ``last_price``
    (None when there is none) and ``volume_today`` (GPUs traded since local
    midnight). ``active_only`` keeps those with an order in the book or a
    trade today. Each annotation is a correlated subquery on an index
    (``order_book``, ``trade_instrument_recent``)."""
    resting = Order.objects.filter(instrument=OuterRef("pk"), status__in=RESTING_STATUSES)
    trades = Trade.objects.filter(instrument=OuterRef("pk"))
    since = calendar.local_midnight(now.astimezone(calendar.BERLIN).date())
    volume = (
        trades.filter(executed_at__gte=since).order_by().values("instrument")
        .annotate(total=Sum("quantity")).values("total")
    )
    queryset = (
        instrument_queryset()
        .filter(segment=Segment.INTRADAY, status__in=[InstrumentStatus.OPEN, InstrumentStatus.HALTED],
                closes_at__gt=now)
        .annotate(
            best_bid=Subquery(resting.filter(side=Side.BUY).order_by("-price").values("price")[:1]),
            best_ask=Subquery(resting.filter(side=Side.SELL).order_by("price").values("price")[:1]),
            last_price=Subquery(trades.order_by("-id").values("price")[:1]),
            volume_today=Coalesce(Subquery(volume, output_field=IntegerField()), 0),
        )
        .order_by("delivery_start", "gpu_class__code", "zone__code")
    )
    if active_only:
        queryset = queryset.filter(
            Q(best_bid__isnull=False) | Q(best_ask__isnull=False) | Q(volume_today__gt=0)
        )
    return queryset
