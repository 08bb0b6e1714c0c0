"""seed_demo's demo bids for the next open day-ahead auction: entered
through the services, idempotent, reconciled, and the auction clears."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clearing.reconcile import reconcile
from market import calendar
from market.demo_dayahead import next_open_day, seed_dayahead_bids, seed_dayahead_results
from market.models import AuctionStatus, BidStatus, DayAheadAuction, DayAheadBid, DayAheadHour, Trade
from market.services import dayahead
from tests.market.test_demo_market import private_storage, seed  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_the_makers_bid_for_the_next_open_auction_and_it_clears(private_storage):  # noqa: F811
    output = seed("--history-days", "0")
    now = timezone.now()
    day = next_open_day(now)
    hours = len(calendar.day_hours(day))
    assert f"{2 * hours + 2} day-ahead bids entered" in output
    assert DayAheadBid.objects.filter(status=BidStatus.ACTIVE, auction__delivery_date=day).count() == 2 * hours + 2
    assert seed_dayahead_bids() == 0  # idempotent
    assert reconcile() == []

    # The last two days whose gate has closed were bid and cleared as they would have been.
    assert "2 past day-ahead auctions cleared" in output
    for past in (day - timedelta(days=1), day - timedelta(days=2)):
        closed = DayAheadAuction.objects.get(delivery_date=past)
        assert closed.status == AuctionStatus.CLEARED
        assert closed.cleared_at == calendar.dayahead_gate_closure(past)
        assert DayAheadHour.objects.filter(auction=closed).exclude(price=None).count() == len(calendar.day_hours(past))
        assert Trade.objects.filter(auction=closed).exists()
    assert seed_dayahead_results() == 0  # idempotent

    auction = DayAheadAuction.objects.get(delivery_date=day)
    assert dayahead.dayahead_indicative_run(now=calendar.dayahead_gate_closure(day) - calendar.HOUR) == 1
    assert dayahead.auctions_clear_due(now=calendar.dayahead_gate_closure(day)) == 1
    auction.refresh_from_db()
    assert auction.status == AuctionStatus.CLEARED
    prices = DayAheadHour.objects.filter(auction=auction).exclude(price=None)
    assert prices.count() == hours and all(h.volume > 0 for h in prices)
    assert Trade.objects.filter(auction=auction).exists()
    assert reconcile() == []
