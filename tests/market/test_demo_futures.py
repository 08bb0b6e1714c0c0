"""seed_demo's futures (issue 10): the makers quote the main classes'
listed futures over the last business days through the services, each day
is settled and margined as a real one, the board and the public forward
curve have prices, and a second run adds nothing."""

from datetime import date, time
from decimal import Decimal

import pytest
from django.utils import timezone

from clearing.models import Account
from clearing.reconcile import reconcile
from market import calendar
from market.demo import MAIN_CLASSES, REFERENCE_PRICES
from market.demo_futures import DAYS, past_business_days, reference, seed_futures
from market.models import FuturesJob, FuturesJobRun, GpuClass, Instrument, Segment, SettlementPrice, Trade
from market.selectors.futures import futures_board
from market.services import futures
from tests.market.test_demo_market import private_storage, seed  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_past_business_days_skip_weekends_holidays_and_a_day_before_its_settlement():
    # Monday 28 December 2026, 12:00: Monday's prices are not out yet, the 24th to 27th are holidays
    # (24th, 25th, 26th) or a weekend; so the last three are the 21st, 22nd and 23rd.
    assert past_business_days(calendar.local_time(date(2026, 12, 28), time(12, 0)), 3) == [
        date(2026, 12, 21), date(2026, 12, 22), date(2026, 12, 23)]
    # At 17:30 Monday's prices are out.
    assert past_business_days(calendar.local_time(date(2026, 12, 28), time(17, 30)), 1) == [date(2026, 12, 28)]


def test_the_demo_term_structure_rises_a_little_per_month_of_lead():
    h100 = GpuClass(code="H100")
    january = Instrument(symbol="H100.DE.M2027-01", gpu_class=h100,
                         delivery_start=calendar.local_midnight(date(2027, 1, 1)))
    year = Instrument(symbol="H100.DE.Y2028", gpu_class=h100, delivery_start=calendar.local_midnight(date(2028, 1, 1)))
    # 2.40 x (1 + 0.004 x months of lead ± 0.01 noise): 1 month -> 2.39..2.43; 13 months -> 2.50..2.55.
    assert REFERENCE_PRICES["H100"] == Decimal("2.40")
    assert Decimal("2.39") <= reference(january, date(2026, 12, 7)) <= Decimal("2.43")
    assert Decimal("2.50") <= reference(year, date(2026, 12, 7)) <= Decimal("2.55")


def test_the_makers_quote_and_each_day_is_settled_and_margined(private_storage):  # noqa: F811
    output = seed("--history-days", "0")
    days = past_business_days(timezone.now(), DAYS)
    assert f"futures quoted and settled on {DAYS} business days" in output
    assert set(FuturesJobRun.objects.filter(kind=FuturesJob.VARIATION_MARGIN).values_list("date", flat=True)) \
        == set(days)
    listed = Instrument.objects.filter(segment=Segment.FUTURES, gpu_class__code__in=MAIN_CLASSES,
                                       closes_at__gt=timezone.now())
    last = days[-1]
    priced = SettlementPrice.objects.filter(date=last, instrument__in=listed)
    assert priced.count() == listed.filter(opens_at__lte=futures.dsp_instant(last)).count() > 0
    # Each day each class's front month trades in the settlement window (quotes that move may cross as well).
    window = {(t.executed_at.astimezone(calendar.BERLIN).date(), t.instrument.gpu_class.code)
              for t in Trade.objects.filter(instrument__segment=Segment.FUTURES).select_related("instrument__gpu_class")
              if t.executed_at.astimezone(calendar.BERLIN).time() == time(17, 10)}
    assert window == {(day, code) for day in days for code in MAIN_CLASSES}
    board = futures_board(gpu_class="H100", now=timezone.now())
    assert board and all(row.bid is not None and row.ask is not None and row.bid < row.ask for row in board)
    assert any(row.change is not None for row in board)  # a change against the day before
    # Each maker's margin account holds what the last run required (the orders entered since count too).
    for organisation_id in Account.objects.filter(kind=Account.Kind.MARGIN).exclude(balance=0) \
            .values_list("organisation_id", flat=True):
        assert futures.requirement_for(organisation_id) > 0
    assert reconcile() == []
    assert seed_futures() == 0  # idempotent
