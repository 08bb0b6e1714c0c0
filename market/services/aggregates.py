"""Daily trade aggregates (issue 11, "Speed"; docs/architecture.md, "Public
dashboards and open data"): once a Berlin day has ended its trades are final,
so the GPU-hours each organisation traded per class, segment and side
(``ActivityDay``), and sold per class and zone in the spot segments
(``SellerDay``), and the net futures contracts each organisation bought or
sold per future (``FuturesFlowDay``, for open interest), are written once by
three ``INSERT … SELECT`` statements, and the indicators (market activity,
concentration, the observers' page) read those few rows per day instead of
every trade. Today is read from the trades as before.

``aggregates_compute_due`` writes every ended day since the first trade that
has no aggregates yet, oldest first (beat: every 15 minutes; the first run
back-fills the history). A day is claimed by its ``AggregateDay`` row in the
same transaction as its rows, so two runs never write a day twice.

A day-ahead trade is booked on the hour's instrument and names its auction:
it counts as day-ahead, as the live indicators count it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from market import calendar
from market.models import AggregateDay, Segment, Trade

log = logging.getLogger(__name__)

_SEGMENT = "CASE WHEN t.auction_id IS NOT NULL THEN %s ELSE i.segment END"


def day_ended(day: date, now: datetime) -> bool:
    return calendar.local_midnight(day + timedelta(days=1)) <= now


def aggregate_day(day: date, *, now: datetime) -> bool:
    """Write the aggregates of ``day`` (which must have ended); False if they exist or the day has not ended."""
    if not day_ended(day, now):
        return False
    start, end = calendar.local_midnight(day), calendar.local_midnight(day + timedelta(days=1))
    with transaction.atomic():
        try:
            with transaction.atomic():
                AggregateDay.objects.create(date=day, computed_at=now)
        except IntegrityError:
            return False
        with connection.cursor() as cursor:
            cursor.execute(f"""
                INSERT INTO market_activityday (date, gpu_class_id, segment, organisation_id, side, gpuh)
                SELECT %s, i.gpu_class_id, {_SEGMENT}, t.buyer_id, 'buy', SUM(t.quantity * i.hours)
                FROM market_trade t JOIN market_instrument i ON i.id = t.instrument_id
                WHERE t.executed_at >= %s AND t.executed_at < %s
                GROUP BY i.gpu_class_id, 3, t.buyer_id
                UNION ALL
                SELECT %s, i.gpu_class_id, {_SEGMENT}, t.seller_id, 'sell', SUM(t.quantity * i.hours)
                FROM market_trade t JOIN market_instrument i ON i.id = t.instrument_id
                WHERE t.executed_at >= %s AND t.executed_at < %s
                GROUP BY i.gpu_class_id, 3, t.seller_id""",  # noqa: S608 - a constant expression, values bound
                           [day, Segment.DAYAHEAD, start, end, day, Segment.DAYAHEAD, start, end])
            cursor.execute("""
                INSERT INTO market_sellerday (date, gpu_class_id, zone_id, organisation_id, gpuh)
                SELECT %s, i.gpu_class_id, i.zone_id, t.seller_id, SUM(t.quantity * i.hours)
                FROM market_trade t JOIN market_instrument i ON i.id = t.instrument_id
                WHERE t.executed_at >= %s AND t.executed_at < %s AND i.segment IN (%s, %s)
                GROUP BY i.gpu_class_id, i.zone_id, t.seller_id""",
                           [day, start, end, Segment.INTRADAY, Segment.DAYAHEAD])
            cursor.execute("""
                INSERT INTO market_futuresflowday (date, instrument_id, organisation_id, quantity)
                SELECT %s, f.instrument_id, f.organisation_id, SUM(f.quantity)
                FROM (SELECT t.instrument_id, t.buyer_id AS organisation_id, t.quantity
                      FROM market_trade t JOIN market_instrument i ON i.id = t.instrument_id
                      WHERE t.executed_at >= %s AND t.executed_at < %s AND i.segment = %s
                      UNION ALL
                      SELECT t.instrument_id, t.seller_id, -t.quantity
                      FROM market_trade t JOIN market_instrument i ON i.id = t.instrument_id
                      WHERE t.executed_at >= %s AND t.executed_at < %s AND i.segment = %s) AS f
                GROUP BY f.instrument_id, f.organisation_id
                HAVING SUM(f.quantity) <> 0""",
                           [day, start, end, Segment.FUTURES, start, end, Segment.FUTURES])
    return True


def aggregates_compute_due(*, now: datetime | None = None, limit: int = 4000) -> int:
    """Aggregate every ended day from the first trade's day on that is not
    aggregated yet (at most ``limit`` days per call); answers how many."""
    now = now or timezone.now()
    first = Trade.objects.order_by("executed_at").values_list("executed_at", flat=True).first()
    if first is None:
        return 0
    day = first.astimezone(calendar.BERLIN).date()
    done = set(AggregateDay.objects.filter(date__gte=day).values_list("date", flat=True))
    written = 0
    while day_ended(day, now) and written < limit:
        if day not in done and aggregate_day(day, now=now):
            written += 1
        day += timedelta(days=1)
    if written:
        log.info("trade aggregates: %d days written", written)
    return written
