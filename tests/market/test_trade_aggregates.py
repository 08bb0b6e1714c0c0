"""Daily trade aggregates (issue 11, "Speed"): a day that has ended is
written once into ActivityDay and SellerDay, and the market-activity and
supply-concentration indicators give exactly the same rows whether they read
those aggregates or every trade (today is always read from the trades)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from exchange.celery import app as celery_app
from market.models import ActivityDay, AggregateDay, SellerDay
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


def test_the_beat_writes_the_aggregates_every_15_minutes():
    entry = celery_app.conf.beat_schedule["market-trade-aggregates"]
    assert entry["task"] == "market.trade_aggregates"
    assert entry["schedule"].minute == {5, 20, 35, 50}
