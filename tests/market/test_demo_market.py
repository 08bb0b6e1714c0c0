"""issue 8 item 2: seed_demo gives a living market through the real services
(a week of trades, resting quotes), idempotent and reconciled; the demo
market maker job trades in demo mode only."""

import io
import random
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.demo import demo_organisation
from clearing.models import CashDeposit, DeliveryTicket, FeeAccrual, Invoice, JournalEntry
from clearing.reconcile import reconcile
from exchange.celery import beat_schedule
from market import calendar
from market.demo import MAIN_CLASSES, MAIN_ZONES, MAKERS, market_maker_step
from market.models import RESTING_STATUSES, Instrument, InstrumentStatus, Order, Segment, Side, Trade
from market.tasks import demo_market_maker

pytestmark = pytest.mark.django_db

MODELS = (Order, Trade, DeliveryTicket, JournalEntry, Invoice, CashDeposit, FeeAccrual, Instrument)


@pytest.fixture
def private_storage(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    storages = {alias: {**conf} for alias, conf in settings.STORAGES.items()}
    storages["default"] = {**storages["default"], "OPTIONS": {**storages["default"]["OPTIONS"], "location": tmp_path}}
    settings.STORAGES = storages
    return tmp_path


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def open_main_instruments():
    now = timezone.now()
    return Instrument.objects.filter(segment=Segment.INTRADAY, status=InstrumentStatus.OPEN,
                                     gpu_class__code__in=MAIN_CLASSES,
                                     zone__code__in=MAIN_ZONES, opens_at__lte=now, closes_at__gt=now)


def test_seed_demo_gives_a_week_of_trades_and_quotes_reconciled_and_a_second_run_adds_nothing(private_storage):
    output = seed("--history-days", "2")
    first = counts()
    makers = {key: demo_organisation(key) for key in MAKERS}
    now = timezone.now()

    # History: trades in hours already closed on each of the past days, all between the market makers.
    past = Trade.objects.filter(instrument__closes_at__lte=now)
    days = {trade.instrument.delivery_start.astimezone(calendar.BERLIN).date() for trade in past}
    today = now.astimezone(calendar.BERLIN).date()
    assert {today - timedelta(days=1), today - timedelta(days=2)} <= days
    assert {t.buyer_id for t in Trade.objects.all()} | {t.seller_id for t in Trade.objects.all()} == {
        org.pk for org in makers.values()}
    assert all(t.executed_at < t.instrument.closes_at for t in past)
    # Their deliveries were posted and confirmed in time and are paid out.
    assert DeliveryTicket.objects.filter(trade__in=past, delivery_end__lte=now).exclude(
        status=DeliveryTicket.Status.SETTLED).count() == 0
    assert DeliveryTicket.objects.filter(trade__in=past, access_posted_late=True).count() == 0

    # Every open main hour has a last price, and both sides quoted by both market makers.
    instruments = list(open_main_instruments())
    assert instruments
    for instrument in instruments:
        assert Trade.objects.filter(instrument=instrument).exists(), instrument.symbol
        resting = Order.objects.filter(instrument=instrument, status__in=RESTING_STATUSES)
        for org in makers.values():
            assert set(resting.filter(organisation=org).values_list("side", flat=True)) == {Side.BUY, Side.SELL}
        best_bid = max(resting.filter(side=Side.BUY).values_list("price", flat=True))
        best_ask = min(resting.filter(side=Side.SELL).values_list("price", flat=True))
        assert best_bid < best_ask, instrument.symbol

    assert reconcile() == []
    assert "Market makers:" in output

    again = seed("--history-days", "2")
    assert counts() == first
    assert "0 trades added" in again and "0 quotes added" in again
    assert reconcile() == []


def test_the_market_maker_job_does_nothing_outside_demo_mode(private_storage, settings):
    seed("--no-trading")
    settings.DEMO = False
    before = counts()

    result = demo_market_maker.apply().get()

    assert result["active"] is False
    assert counts() == before
    assert "demo-market-maker" not in beat_schedule(demo=False)


def test_the_market_maker_job_quotes_and_trades_in_demo_mode(private_storage, settings):
    seed("--no-trading")
    settings.DEMO = True
    assert not Order.objects.exists()

    step = market_maker_step(rng=random.Random(8), instruments=2, cross_probability=1.0)

    assert step.active
    assert step.quoted == 2 * 2 * len(MAKERS)  # a bid and an ask by each, in each instrument
    assert step.crossed == 1
    trade = Trade.objects.get()
    assert {trade.buyer_id, trade.seller_id} == {demo_organisation(key).pk for key in MAKERS}
    # The market maker that sold posts the access details at once.
    assert step.access_posted == DeliveryTicket.objects.count() > 0
    assert reconcile() == []

    again = demo_market_maker.apply().get()
    assert again["active"] is True
    assert again["cancelled"] >= 1 or again["quoted"] >= 1
    assert "demo-market-maker" in beat_schedule(demo=True)
    assert reconcile() == []
