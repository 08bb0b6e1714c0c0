"""Concurrent futures orders at the margin limit (issue 10, item 3), with a
control twin, and two runs of each daily job at once changing the ledger once:
real threads against PostgreSQL, as in tests/market/test_orders_concurrency.py.

One member holds margin for exactly ten one-GPU orders (left over from ten
orders it cancelled) and only the cash their fees need. Twenty orders arrive
at once, each in its own future, so no instrument lock serialises them. The
margin already held is what they race for: each order alone is covered by
it, so only the organisation's lock keeps a second order from counting the
same margin again (the ledger's guard cannot: no cash moves)."""

import time
from collections import Counter
from decimal import Decimal

import pytest

from clearing.models import Account, JournalEntry
from clearing.reconcile import reconcile
from clearing.services import ledger_accounts
from market.models import RESTING_STATUSES, Instrument, Order
from market.services import futures
from market.services import orders as services
from market.services.orders import order_cancel, order_submit
from tests.concurrency import run_at_once
from tests.factories import GpuClassFactory
from tests.market.test_dayahead_service import balance, member
from tests.market.test_futures_day import MON, at, trade, world  # noqa: F401 - world is a fixture
from tests.market.test_futures_expiry import future

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

D = Decimal
THREADS = 20
HELD_FOR = 10
IM_ONE = D("267.84")  # 0.15 x 2.40 x 744 (one GPU of January)
FEE_ONE = D("1.78")  # the most the futures fee of one GPU-month of January can be


@pytest.fixture
def margin_race(monkeypatch):
    """Twenty Januaries (one per GPU class), a member holding the margin of
    ten orders and cash for twenty orders' fees, and a pause between reading
    the requirement and acting on it, in the real test and the twin alike."""
    january = future("M2027-01")
    instruments = [january]
    for i in range(1, THREADS):
        instrument = Instrument.objects.get(pk=january.pk)
        instrument.pk, instrument.symbol = None, f"G{i:02d}.DE.M2027-01"
        instrument.gpu_class = GpuClassFactory(code=f"G{i:02d}")
        instrument.save()
        instruments.append(instrument)
    organisation, trader = member("Hedge Race GmbH", cash=str(HELD_FOR * IM_ONE + THREADS * FEE_ONE))
    placed = [order_submit(user=trader, instrument=instruments[i], side="buy", price=D("2.40"), quantity=1,
                           now=at(MON, 9)).order for i in range(HELD_FOR)]
    for order in placed:
        order_cancel(user=trader, order_id=order.pk, now=at(MON, 9, 1))
    assert balance(organisation, Account.Kind.MARGIN) == HELD_FOR * IM_ONE
    assert balance(organisation, Account.Kind.CASH_AVAILABLE) == THREADS * FEE_ONE

    real = futures.requirement_for

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        required = real(*args, **kwargs)
        time.sleep(0.05)
        return required

    monkeypatch.setattr(futures, "requirement_for", slow)
    return organisation, trader, instruments


def buy_all(trader, instruments) -> Counter[str]:  # type: ignore[no-untyped-def]
    def work(i: int) -> str:
        order_submit(user=trader, instrument=instruments[i], side="buy", price=D("2.40"), quantity=1,
                     now=at(MON, 10))
        return "accepted"

    return run_at_once(THREADS, work)


def test_twenty_orders_on_margin_for_ten_exactly_ten_are_accepted(margin_race):
    organisation, trader, instruments = margin_race

    outcomes = buy_all(trader, instruments)

    assert outcomes == Counter({"accepted": HELD_FOR, "insufficient_funds": THREADS - HELD_FOR})
    assert Order.objects.filter(organisation=organisation, status__in=RESTING_STATUSES).count() == HELD_FOR
    # The margin held covers them all; only their fees came out of cash.
    assert balance(organisation, Account.Kind.MARGIN) == HELD_FOR * IM_ONE
    assert balance(organisation, Account.Kind.CASH_AVAILABLE) == (THREADS - HELD_FOR) * FEE_ONE
    assert futures.requirement_for(organisation.pk) == HELD_FOR * IM_ONE
    assert reconcile() == []


def test_control_twin_without_the_organisation_lock_the_same_margin_is_counted_twice(margin_race, monkeypatch):
    organisation, trader, instruments = margin_race
    monkeypatch.setattr(services, "_lock_parties",
                        lambda organisation_ids: ledger_accounts(organisation_ids=organisation_ids))

    outcomes = buy_all(trader, instruments)

    # More orders rest than the margin covers: the race is real.
    assert outcomes["accepted"] > HELD_FOR
    assert futures.requirement_for(organisation.pk) > balance(organisation, Account.Kind.MARGIN)
    assert "margin_covers_requirement" in {breach.check for breach in reconcile()}


def test_two_runs_of_each_daily_job_at_once_change_the_ledger_once(world):  # noqa: F811 - the fixture
    m, a, b = world["m"], world["a"], world["b"]
    trade(m, a, b, "2.40", 10, at(MON, 17, 10))

    prices = run_at_once(2, lambda i: str(futures.settlement_prices_compute(day=MON, now=at(MON, 17, 30))))
    margins = run_at_once(2, lambda i: str(futures.variation_margin_run(day=MON, now=at(MON, 18, 15))))

    assert prices == Counter({"1": 1, "0": 1}) and margins == Counter({"2": 1, "0": 1})
    # The first day's DSP is the trade's price, so no variation margin: one initial-margin entry per member.
    assert Counter(JournalEntry.objects.exclude(kind=JournalEntry.Kind.DEPOSIT).values_list("kind", flat=True)) \
        == Counter({JournalEntry.Kind.MARGIN: 2})
    # Margin 0.15 x 2.40 x 10 x 744 = 2,678.40, held once (as in the sequential test of the day).
    assert balance(a[0], Account.Kind.MARGIN) == D("2678.40")
    assert [breach.check for breach in reconcile()] == []
