"""Daily trade aggregates (issue 11, "Speed"): a day that has ended is
written once into ActivityDay and SellerDay, and the market-activity and
supply-concentration indicators give exactly the same rows whether they read
those aggregates or every trade (today is always read from the trades)."""

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone

from exchange.celery import app as celery_app
from market import calendar
from market.models import (
    ActivityDay,
    AggregateDay,
    FuturesFlowDay,
    Instrument,
    InstrumentStatus,
    Segment,
    SellerDay,
)
from market.selectors import activity
from market.services.aggregates import aggregate_day, aggregates_compute_due
from tests.market.test_activity import big, future, hour_instrument, sme, startup, today, trade

pytestmark = pytest.mark.django_db


@pytest.fixture
def market():  # type: ignore[no-untyped-def]
    """Trades over ten days: SMEs, large members and a start-up, intraday,
    day-ahead and futures, two zones."""
    s1, s2, s3 = sme("Alpha GmbH"), sme("Beta GmbH"), startup("Neu GmbH")
    b1, b2, b3 = big("Delta AG"), big("Epsilon AG"), big("Zeta AG")
    de, by, month = hour_instrument(), hour_instrument(zone="DE-BY"), future()
    for days_ago in range(10):
        trade(s1, b1, 10 + days_ago, instrument=de, days_ago=days_ago)
        trade(s2, b2, 20, instrument=de, auction=days_ago % 2 == 0, days_ago=days_ago)
        trade(b3, s3, 5 + days_ago % 3, instrument=by, days_ago=days_ago)
        trade(s3, b1, 7, instrument=de, days_ago=days_ago)
        if days_ago % 4 == 0:
            trade(b2, s1, 1, instrument=month, days_ago=days_ago)
    return {"s1": s1, "s2": s2, "s3": s3, "b1": b1, "b2": b2, "b3": b3}


QUERIES = [
    ("activity", {"resolution": "day", "range": "month", "gpu_class": ""}),
    ("activity", {"resolution": "week", "range": "quarter", "gpu_class": "H100"}),
    ("concentration", {"gpu_class": "H100", "zone": "DE", "resolution": "day", "range": "month"}),
    ("concentration", {"gpu_class": "H100", "zone": "DE-BY", "resolution": "week", "range": "quarter"}),
]


def rows(kind, query):  # type: ignore[no-untyped-def]
    return activity.activity_rows(query) if kind == "activity" else activity.concentration_rows(query)


def test_the_indicators_are_the_same_from_the_aggregates_as_from_the_trades(market):
    before = [rows(kind, query) for kind, query in QUERIES]
    assert any(row["volume_total_gpuh"] for row in before[0])  # the data is there

    written = aggregates_compute_due(now=timezone.now())

    assert written == 9  # the ten days of trades but today
    assert AggregateDay.objects.count() == 9 and ActivityDay.objects.exists() and SellerDay.objects.exists()
    assert [rows(kind, query) for kind, query in QUERIES] == before
    assert aggregates_compute_due(now=timezone.now()) == 0  # once

    # And they are what is read: a written day changed by hand shows on the page's rows, today does not move.
    yesterday = today() - timedelta(days=1)
    ActivityDay.objects.filter(date=yesterday, side="buy", segment="intraday").update(gpuh=0)
    changed = activity.activity_rows(QUERIES[0][1])
    assert [r["volume_intraday_gpuh"] for r in changed if r["period_start"] == yesterday] == [0]
    assert [r for r in changed if r["period_start"] == today()] \
        == [r for r in before[0] if r["period_start"] == today()]


def test_a_day_is_written_only_once_it_has_ended(market):
    assert aggregate_day(today(), now=timezone.now()) is False
    assert not AggregateDay.objects.exists()
    yesterday = today() - timedelta(days=1)
    assert aggregate_day(yesterday, now=timezone.now()) is True
    assert aggregate_day(yesterday, now=timezone.now()) is False
    # Yesterday (an odd day: no auction, no future): s1 bought 11 from b1, s2 20 from b2, b3 6 from s3 (DE-BY),
    # s3 7 from b1; all intraday H100, one hour each.
    def side(name):  # type: ignore[no-untyped-def]
        return {(r.organisation_id, r.segment, r.gpuh) for r in ActivityDay.objects.filter(date=yesterday, side=name)}

    m = market
    assert side("buy") == {(m["s1"].pk, "intraday", 11), (m["s2"].pk, "intraday", 20), (m["b3"].pk, "intraday", 6),
                           (m["s3"].pk, "intraday", 7)}
    assert side("sell") == {(m["b1"].pk, "intraday", 18), (m["b2"].pk, "intraday", 20), (m["s3"].pk, "intraday", 6)}
    assert {(r.zone.code, r.organisation_id, r.gpuh) for r in SellerDay.objects.filter(date=yesterday)} == {
        ("DE", m["b1"].pk, 18), ("DE", m["b2"].pk, 20), ("DE-BY", m["s3"].pk, 6)}


def past_future(days_ago_start: int, days_ago_end: int):  # type: ignore[no-untyped-def]
    """A future whose delivery ran from ``days_ago_start`` to ``days_ago_end`` days ago (Berlin midnights)."""
    start = calendar.local_midnight(today() - timedelta(days=days_ago_start))
    end = calendar.local_midnight(today() - timedelta(days=days_ago_end))
    hours = int((end - start).total_seconds() // 3600)
    return Instrument.objects.create(
        symbol=f"H100.DE.P{days_ago_start}-{days_ago_end}", segment=Segment.FUTURES,
        gpu_class=hour_instrument().gpu_class,
        zone_id=hour_instrument().zone_id, period=f"P{days_ago_start}", delivery_start=start, delivery_end=end,
        hours=hours, min_price=Decimal("0"), max_price=Decimal("200"), opens_at=start - timedelta(days=60),
        closes_at=start, status=InstrumentStatus.OPEN)


OBSERVER_QUERIES = [{"gpu_class": "", "range": "month"}, {"gpu_class": "H100", "range": "quarter"}]


def observer(query):  # type: ignore[no-untyped-def]
    tables = activity.observer_tables(query)
    return tables.states, tables.sizes, tables.zones, tables.open_states, tables.open_sizes


def test_open_interest_and_the_observer_tables_are_the_same_from_the_aggregates(market):
    """Futures opened, moved between members and closed over the days, one
    future whose delivery ended five days ago: open interest per day and
    week, and the observers' tables, equal whether read from the trades or
    from the aggregates (FuturesFlowDay, ActivityDay, SellerDay)."""
    m = market
    month, ended = future(), past_future(12, 5)
    trade(m["s1"], m["b1"], 5, instrument=month, days_ago=8)  # s1 +5, b1 -5
    trade(m["s2"], m["s1"], 3, instrument=month, days_ago=6)  # s1 +2, s2 +3
    trade(m["b1"], m["s2"], 3, instrument=month, days_ago=3)  # s2 0, b1 -2: OI moves down
    trade(m["b1"], m["s1"], 2, instrument=month, days_ago=3)  # s1 and b1 trade back and forth the same day
    trade(m["s1"], m["b1"], 2, instrument=month, days_ago=3)
    trade(m["b3"], m["s3"], 4, instrument=ended, days_ago=9)  # counts until its delivery ended
    trade(m["s3"], m["b3"], 1, instrument=ended, days_ago=7)
    trade(m["b2"], m["b3"], 1, instrument=month)  # today: never aggregated
    queries = [{"resolution": "day", "range": "month", "gpu_class": ""},
               {"resolution": "week", "range": "month", "gpu_class": "H100"},
               {"resolution": "day", "range": "month", "gpu_class": "A100"}]
    before = [activity.activity_rows(query) for query in queries]
    tables_before = [observer(query) for query in OBSERVER_QUERIES]
    interest = {row["period_start"]: row["open_interest_gpuh"] for row in before[0]}
    # By hand, with the fixture's b2 buying 1 from s1 on days -8, -4 and 0. The month future's longs:
    # -8: s1 4, b2 1 (5); -6: s1 1, s2 3, b2 1 (5); -4: s2 3, b2 2 (5); -3: b2 2 (b1 bought back 3; s1 and
    # b1 traded 2 back and forth); 0: b2 4 (4). The ended future: -9: b3 4; -7: b3 3; its delivery ended
    # at the midnight that ends day -6, so at the end of day -6 it counts no more.
    e, h = ended.hours, month.hours
    expected = {-10: 0, -9: 4 * e, -8: 4 * e + 5 * h, -7: 3 * e + 5 * h, -6: 5 * h, -5: 5 * h, -4: 5 * h,
                -3: 2 * h, -2: 2 * h, -1: 2 * h, 0: 4 * h}
    assert {d: interest[today() + timedelta(days=d)] for d in expected} == expected
    assert aggregates_compute_due(now=timezone.now()) == 9
    assert FuturesFlowDay.objects.filter(date=today() - timedelta(days=3)).exists()
    assert [activity.activity_rows(query) for query in queries] == before
    assert [observer(query) for query in OBSERVER_QUERIES] == tables_before
    # And they are what is read: changed by hand, the aggregates move the figures.
    FuturesFlowDay.objects.filter(date=today() - timedelta(days=9), organisation=m["b3"]).update(quantity=10)
    moved = {row["period_start"]: row["open_interest_gpuh"] for row in activity.activity_rows(queries[0])}
    assert moved[today() - timedelta(days=9)] == 10 * e
    ActivityDay.objects.filter(side="buy", segment="intraday", organisation=m["s1"]).update(gpuh=0)
    ActivityDay.objects.filter(side="buy", segment="dayahead", organisation=m["s1"]).update(gpuh=0)
    assert observer(OBSERVER_QUERIES[0]) != tables_before[0]


def test_the_futures_flows_of_a_day_by_hand_and_the_migration_backfills_them(market):
    m = market
    month = future()
    trade(m["s1"], m["b1"], 5, instrument=month, days_ago=2)
    trade(m["b1"], m["s1"], 5, instrument=month, days_ago=2)  # nets to nothing for both
    trade(m["s2"], m["b1"], 3, instrument=month, days_ago=2)
    trade(m["s2"], m["b2"], 1, instrument=month, days_ago=2)
    day = today() - timedelta(days=2)
    assert aggregate_day(day, now=timezone.now())
    flows = {(f.organisation_id, f.quantity) for f in FuturesFlowDay.objects.filter(date=day)}
    assert flows == {(m["s2"].pk, 4), (m["b1"].pk, -3), (m["b2"].pk, -1)}
    # Days aggregated before the table existed get their flows from the migration.
    aggregates_compute_due(now=timezone.now())
    written = sorted(FuturesFlowDay.objects.values_list("date", "instrument_id", "organisation_id", "quantity"))
    FuturesFlowDay.objects.all().delete()
    importlib.import_module("market.migrations.0015_futures_flows").backfill(apps, None)
    assert sorted(FuturesFlowDay.objects.values_list("date", "instrument_id", "organisation_id", "quantity")) \
        == written and written


def test_the_beat_writes_the_aggregates_every_15_minutes():
    entry = celery_app.conf.beat_schedule["market-trade-aggregates"]
    assert entry["task"] == "market.trade_aggregates"
    assert entry["schedule"].minute == {5, 20, 35, 50}
