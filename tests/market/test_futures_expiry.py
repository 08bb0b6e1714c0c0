"""Futures expiry (issue 10, item 5): cascading and the final settlement of a
month against its base index, hand-computed to the cent."""

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from clearing.models import Account
from clearing.reconcile import reconcile
from market import calendar
from market.models import (
    AuctionStatus,
    DayAheadAuction,
    DayAheadHour,
    DeliveryZone,
    Instrument,
    InstrumentStatus,
    Position,
    PositionTransfer,
    Segment,
    SettlementPrice,
)
from market.services import futures
from tests.factories import GpuClassFactory
from tests.market.test_dayahead_service import balance, member
from tests.market.test_futures_day import at, run_day, trade
from tests.market.trading_setup import ensure_zones

pytestmark = pytest.mark.django_db

D = Decimal


def future(code: str) -> Instrument:
    ensure_zones("DE")
    gpu_class = GpuClassFactory(code="H100")
    period = calendar.parse_period(code)
    start, end = calendar.period_interval(period)
    return Instrument.objects.create(
        symbol=f"H100.DE.{code}", segment=Segment.FUTURES, gpu_class=gpu_class,
        zone=DeliveryZone.objects.get(code="DE"), period=code, delivery_start=start, delivery_end=end,
        hours=calendar.period_hours(period), min_price=D("0.00"), max_price=D("200.00"), lead_time_minutes=0,
        opens_at=datetime(2026, 6, 1, tzinfo=calendar.BERLIN), closes_at=start, status=InstrumentStatus.OPEN)


def expire(day: date) -> dict[str, int]:
    return futures.futures_expire(day=day, now=at(day, 18, 30))


def test_a_quarter_cascades_into_its_months_at_its_price(db):
    last = date(2027, 3, 31)  # Wednesday, the last session before Q2027-2 delivers
    q2 = future("Q2027-2")
    april, may, june = future("M2027-04"), future("M2027-05"), future("M2027-06")
    a, b, c, d = (member(name) for name in ("Anna Hedge GmbH", "Berta Supply GmbH", "Carl GmbH", "Dora GmbH"))
    assert futures.last_trading_day(q2) == last
    trade(q2, a, b, "2.40", 10, at(last, 17, 10))
    for month, price in ((april, "2.50"), (may, "2.30"), (june, "2.40")):
        trade(month, c, d, price, 1, at(last, 17, 15))
    run_day(last)
    before = balance(a[0], Account.Kind.CASH_AVAILABLE) + balance(a[0], Account.Kind.MARGIN)
    assert expire(last) == {"cascaded": 1, "settled": 0}
    # A is long 10 of each month, entered at the quarter's 2.40 and marked at once to the
    # months' prices: April +0.10 x 10 x 720 = 720.00, May -0.10 x 10 x 744 = -744.00, June 0.
    after = balance(a[0], Account.Kind.CASH_AVAILABLE) + balance(a[0], Account.Kind.MARGIN)
    assert after - before == D("-24.00")
    positions = dict(Position.objects.filter(organisation=a[0]).values_list("instrument__period", "quantity"))
    assert positions == {"Q2027-2": 0, "M2027-04": 10, "M2027-05": 10, "M2027-06": 10}
    assert dict(Position.objects.filter(organisation=b[0]).values_list("instrument__period", "quantity")) == {
        "Q2027-2": 0, "M2027-04": -10, "M2027-05": -10, "M2027-06": -10}
    assert PositionTransfer.objects.filter(kind="cascade").count() == 8
    assert Instrument.objects.get(pk=q2.pk).status == InstrumentStatus.SETTLED
    assert expire(last) == {}  # once
    assert reconcile() == []
    # The next day marks the months from where the cascade left them (April delivers from
    # that day: it waits, at its last mark, for its final settlement).
    nxt = futures.next_business_day(last)
    trade(may, c, d, "2.35", 1, at(nxt, 17, 15))
    run_day(nxt)
    from market.models import VariationMargin

    assert VariationMargin.objects.get(organisation=a[0], instrument=may, date=nxt).amount == D("372.00")
    assert VariationMargin.objects.get(organisation=a[0], instrument=april, date=nxt).amount == D("0.00")
    assert reconcile() == []


def test_a_year_cascades_into_its_four_quarters(db):
    last = date(2026, 12, 30)  # 31 December is an exchange holiday
    year = future("Y2027")
    quarters = [future(f"Q2027-{n}") for n in (1, 2, 3, 4)]
    a, b = member("Anna Hedge GmbH"), member("Berta Supply GmbH")
    trade(year, a, b, "2.40", 2, at(last, 17, 10))
    run_day(last)
    expire(last)
    got = dict(Position.objects.filter(organisation=a[0]).values_list("instrument__period", "quantity"))
    assert got == {"Y2027": 0, **{q.period: 2 for q in quarters}}
    # No quarter had its own price that day: each is marked at the year's 2.40, no cash moves.
    assert sum(h for h in (q.hours for q in quarters)) == year.hours
    assert reconcile() == []


def clear_month(month: Instrument, prices: list[str]) -> None:
    """Cleared auctions of every day of the month with hourly prices taken in turn from ``prices``."""
    day = timezone_date(month.delivery_start)
    end = timezone_date(month.delivery_end)
    n = 0
    while day < end:
        auction = DayAheadAuction.objects.create(
            delivery_date=day, gpu_class=month.gpu_class, zone=month.zone,
            book_opens_at=calendar.dayahead_book_opens(day), gate_closure=calendar.dayahead_gate_closure(day),
            status=AuctionStatus.CLEARED, cleared_at=calendar.dayahead_gate_closure(day), method="curves")
        DayAheadHour.objects.bulk_create([
            DayAheadHour(auction=auction, hour=h.label, position=i, delivery_start=h.start,
                         price=D(prices[(n + i) % len(prices)]), volume=1, buy_volume=1, sell_volume=1)
            for i, h in enumerate(calendar.day_hours(day))])
        n += len(calendar.day_hours(day))
        day += timedelta(days=1)


def timezone_date(instant: datetime) -> date:
    return instant.astimezone(calendar.BERLIN).date()


def test_a_month_settles_in_cash_against_its_base_index_and_releases_the_margin(db):
    buy_day = date(2026, 12, 7)
    january = future("M2027-01")
    a, b = member("Anna Hedge GmbH"), member("Berta Supply GmbH")
    trade(january, a, b, "2.40", 10, at(buy_day, 17, 10))
    run_day(buy_day)
    assert balance(a[0], Account.Kind.MARGIN) == D("2678.40")
    # January's hourly day-ahead prices alternate 2.40 / 2.60: the base index is 2.50.
    clear_month(january, ["2.40", "2.60"])
    assert futures.final_settlement_price(january) == D("2.50")
    settle_day = date(2027, 2, 1)
    # Between its last session and the final settlement the position keeps its margin.
    futures.settlement_prices_compute(day=settle_day, now=at(settle_day, 17, 30))
    futures.variation_margin_run(day=settle_day, now=at(settle_day, 18, 15))
    assert balance(a[0], Account.Kind.MARGIN) == D("2678.40")
    assert expire(settle_day) == {"cascaded": 0, "settled": 1}
    # (2.50 - 2.40) x 10 x 744 = 744.00 to A, from B.
    final = SettlementPrice.objects.get(instrument=january, source="final")
    assert final.price == D("2.50")
    assert Position.objects.get(organisation=a[0], instrument=january).quantity == 0
    day_after = futures.next_business_day(settle_day)
    futures.settlement_prices_compute(day=day_after, now=at(day_after, 17, 30))
    futures.variation_margin_run(day=day_after, now=at(day_after, 18, 15))
    assert balance(a[0], Account.Kind.MARGIN) == 0 and balance(b[0], Account.Kind.MARGIN) == 0
    assert balance(a[0], Account.Kind.CASH_AVAILABLE) == D("10744.00")
    assert balance(b[0], Account.Kind.CASH_AVAILABLE) == D("9256.00")
    assert reconcile() == []


def test_a_month_waits_for_its_whole_index(db):
    january = future("M2027-01")
    clear_month(january, ["2.40"])
    DayAheadAuction.objects.filter(delivery_date=date(2027, 1, 31)).update(status=AuctionStatus.OPEN)
    assert futures.final_settlement_price(january) is None
