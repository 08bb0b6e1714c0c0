"""Real parallel order requests against PostgreSQL, each with a control twin.

Every race runs twice: through the service as it is, and through the same
service with one protection taken out (a module-level seam of
market.services.orders replaced by the naive version). The twin shows the
race happening, so the service passing is not luck. Where a twin needs a
wider window to lose reliably, the real test gets the same delay.
"""

import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from accounts.models import Organisation
from clearing.models import Account
from clearing.selectors import account_summary
from clearing.services import ledger_accounts
from exchange.errors import ExchangeError
from market.models import RESTING_STATUSES, Instrument, Order, Trade
from market.services import capacity
from market.services import orders as services
from market.services.orders import order_submit
from tests.concurrency import BalanceWatcher, run_at_once
from tests.factories import (
    GpuClassFactory,
    OpenInstrumentFactory,
    SiteCapacityFactory,
    SiteFactory,
    TraderFactory,
    delivery_hour,
    deposit,
)
from tests.market.orders_world import books_balance

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

D = Decimal
THREADS = 20
# 17 zones: DE and the 16 states; with a second hour, enough instruments for a thread each.
ZONES = ["DE", "DE-BW", "DE-BY", "DE-BE", "DE-BB", "DE-HB", "DE-HH", "DE-HE", "DE-MV", "DE-NI", "DE-NW", "DE-RP",
         "DE-SL", "DE-SN", "DE-ST", "DE-SH", "DE-TH"]


# --- (a) cash: 20 buys, money for 10 --------------------------------------------------------

# Each buy: 10 GPUs at 10.00 for one hour reserves 100.00 + 10 x 0.03 = 100.30.
RESERVATION = D("100.30")


@pytest.fixture
def cash_race():
    """One organisation with cash for exactly 10 buys, and one instrument per
    thread, so the instrument locks do not serialise the buys: only the
    ledger's conditional update stands between them and an overdraft."""
    gpu_class = GpuClassFactory(code="H100")
    instruments = [OpenInstrumentFactory(gpu_class=gpu_class, zone_code=ZONES[i % len(ZONES)],
                                         hour=delivery_hour(1, "14" if i < len(ZONES) else "15"))
                   for i in range(THREADS)]
    trader = TraderFactory().user
    organisation = trader.membership.organisation
    deposit(organisation, 10 * RESERVATION)
    return trader, organisation, instruments


def buy_all(trader, instruments) -> Counter[str]:  # type: ignore[no-untyped-def]
    def work(i: int) -> str:
        order_submit(user=trader, instrument=instruments[i], side="buy", price=D("10.00"), quantity=10)
        return "accepted"

    return run_at_once(THREADS, work)


def test_a_twenty_buys_with_cash_for_ten_exactly_ten_are_accepted(cash_race):
    trader, organisation, instruments = cash_race
    available = Account.objects.get(organisation=organisation, kind="cash_available")

    with BalanceWatcher(available.pk) as watcher:
        outcomes = buy_all(trader, instruments)

    assert outcomes == Counter({"accepted": 10, "insufficient_funds": 10})
    assert account_summary(organisation=organisation)["cash_available"] == D("0.00")
    assert account_summary(organisation=organisation)["cash_reserved"] == 10 * RESERVATION
    assert Order.objects.filter(organisation=organisation, status="open").count() == 10
    assert Order.objects.count() == 10  # the refused ones left no order behind
    assert watcher.seen and min(watcher.seen) >= 0
    books_balance()


def naive_reserve(changes: object, *, organisation: Organisation, amount: Decimal, reference: str,
                  actor: object) -> None:
    """The bug the ledger's conditional update prevents: read the balance,
    check it, write the result back. The sleep widens the window between
    read and write so the race shows on every run."""
    available = Account.objects.get(organisation=organisation, kind="cash_available")
    if available.balance < amount:
        raise ExchangeError("insufficient_funds", "Not enough cash available.")
    time.sleep(0.05)
    Account.objects.filter(pk=available.pk).update(balance=available.balance - amount)
    Account.objects.filter(organisation=organisation, kind="cash_reserved").update(balance=F("balance") + amount)


def test_a_control_twin_a_naive_reservation_accepts_more_buys_than_the_cash_covers(cash_race, monkeypatch):
    trader, organisation, instruments = cash_race
    monkeypatch.setattr(services, "_reserve_cash", naive_reserve)
    # The organisation lock alone would already serialise one member's buys:
    # take it out too, so only the ledger's conditional update is missing.
    monkeypatch.setattr(services, "_lock_parties",
                        lambda organisation_ids: ledger_accounts(organisation_ids=organisation_ids))

    outcomes = buy_all(trader, instruments)

    # More orders believe they hold cash than there is cash: the race is real.
    assert outcomes["accepted"] > 10
    promised = Order.objects.filter(organisation=organisation).aggregate(total=Sum("reserved_amount"))["total"]
    assert promised > 10 * RESERVATION


# --- (b) one resting order, many takers ------------------------------------------------------

RESTING_QUANTITY = 10


@pytest.fixture
def crossing_race():
    """A resting sell of 10 GPUs and 20 buyers (5 organisations) who each want 3 of them at once."""
    gpu_class = GpuClassFactory(code="H100")
    instrument = OpenInstrumentFactory(gpu_class=gpu_class)
    seller = TraderFactory(is_provider=True).user
    SiteCapacityFactory(site=SiteFactory(organisation=seller.membership.organisation), gpu_class=gpu_class, gpus=100)
    resting = order_submit(user=seller, instrument=instrument, side="sell", price=D("12.00"),
                           quantity=RESTING_QUANTITY).order
    buyers = [TraderFactory().user for _ in range(5)]
    for buyer in buyers:
        deposit(buyer.membership.organisation, "1000.00")
    return instrument, resting, buyers


@pytest.fixture
def wide_window(monkeypatch) -> Iterator[list[int]]:
    """Sleep after loading the crossing orders, in the real test and the twin
    alike; record how much each match hands out of the resting orders."""
    planned: list[int] = []
    real_load, real_apply = services._load_crossing, services._apply_match

    def slow_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        orders = real_load(*args, **kwargs)
        time.sleep(0.05)
        return orders

    def recording_apply(changes, taker, result, resting):  # type: ignore[no-untyped-def]
        planned.append(sum(fill.quantity for fill in result.fills))
        return real_apply(changes, taker, result, resting)

    monkeypatch.setattr(services, "_load_crossing", slow_load)
    monkeypatch.setattr(services, "_apply_match", recording_apply)
    yield planned


def take_all(instrument, buyers) -> Counter[str]:  # type: ignore[no-untyped-def]
    def work(i: int) -> str:
        result = order_submit(user=buyers[i % len(buyers)], instrument=instrument, side="buy", price=D("12.00"),
                              quantity=3, time_in_force="IOC")
        return f"filled {result.order.filled_quantity}"

    return run_at_once(THREADS, work)


def test_b_parallel_crossing_orders_never_fill_a_resting_order_twice(crossing_race, wide_window):
    instrument, resting, buyers = crossing_race

    outcomes = take_all(instrument, buyers)

    # 3 + 3 + 3 + 1: the resting order's 10 GPUs went exactly once; everyone else found nothing.
    assert outcomes == Counter({"filled 3": 3, "filled 1": 1, "filled 0": 16})
    assert sum(wide_window) == RESTING_QUANTITY
    resting.refresh_from_db()
    assert (resting.status, resting.filled_quantity) == ("filled", RESTING_QUANTITY)
    assert Trade.objects.filter(sell_order=resting).aggregate(total=Sum("quantity"))["total"] == RESTING_QUANTITY
    bought = Order.objects.filter(side="buy").aggregate(total=Sum("filled_quantity"))["total"]
    assert bought == RESTING_QUANTITY
    instrument.refresh_from_db()
    # One book update per order that traded, each numbered once: 1 (the sell) + 4.
    assert instrument.book_sequence == 5
    books_balance()


def unlocked_instrument(instrument_id: int) -> Instrument:
    """The twin's instrument "lock": a plain read."""
    return Instrument.objects.get(pk=instrument_id)


def test_b_control_twin_without_the_instrument_lock_the_same_order_is_handed_out_again(
        crossing_race, wide_window, monkeypatch):
    instrument, resting, buyers = crossing_race
    monkeypatch.setattr(services, "_lock_instrument", unlocked_instrument)

    outcomes = take_all(instrument, buyers)

    # Matching saw stale books and handed out far more than the 10 GPUs that rest...
    assert sum(wide_window) > RESTING_QUANTITY
    # ...and only the database's last line of defence, the check constraint
    # filled_quantity <= quantity, stopped the overfills from committing: those
    # requests fail instead of trading correctly.
    assert sum(n for outcome, n in outcomes.items() if outcome.startswith("IntegrityError")) >= 1
    resting.refresh_from_db()
    assert resting.filled_quantity <= RESTING_QUANTITY


# --- (c) sells against registered capacity ---------------------------------------------------

CAPACITY = 10
LOT = 3  # 3 sells of 3 fit into 10 GPUs; a fourth does not


@pytest.fixture
def capacity_race(monkeypatch):
    """A provider with 10 H100 in Bavaria; 20 sells of 3 GPUs each, half in
    the DE instrument and half in DE-BY of the same hour: two instrument
    locks, one capacity. capacity_check sleeps after it said yes, in the real
    test and the twin alike, to hold the window open."""
    gpu_class = GpuClassFactory(code="H100")
    hour = delivery_hour(1, "14")
    instruments = [OpenInstrumentFactory(gpu_class=gpu_class, zone_code="DE", hour=hour),
                   OpenInstrumentFactory(gpu_class=gpu_class, zone_code="DE-BY", hour=hour)]
    seller = TraderFactory(is_provider=True).user
    organisation = seller.membership.organisation
    SiteCapacityFactory(site=SiteFactory(organisation=organisation, state=Organisation.State.BY),
                        gpu_class=gpu_class, gpus=CAPACITY)
    real_check = capacity.capacity_check

    def slow_check(**kwargs):  # type: ignore[no-untyped-def]
        real_check(**kwargs)
        time.sleep(0.1)

    monkeypatch.setattr(capacity, "capacity_check", slow_check)
    return seller, organisation, instruments


def sell_all(seller, instruments) -> Counter[str]:  # type: ignore[no-untyped-def]
    def work(i: int) -> str:
        order_submit(user=seller, instrument=instruments[i % 2], side="sell", price=D("12.00"), quantity=LOT)
        return "accepted"

    return run_at_once(THREADS, work)


def offered(organisation: Organisation) -> int:
    return Order.objects.filter(organisation=organisation, side="sell", status__in=RESTING_STATUSES).aggregate(
        total=Sum(F("quantity") - F("filled_quantity")))["total"] or 0


def test_c_parallel_sells_never_exceed_registered_capacity(capacity_race):
    seller, organisation, instruments = capacity_race

    outcomes = sell_all(seller, instruments)

    assert outcomes == Counter({"accepted": 3, "insufficient_capacity": 17})
    assert offered(organisation) == 9 <= CAPACITY


def test_c_control_twin_without_the_organisation_lock_sells_are_over_committed(capacity_race, monkeypatch):
    seller, organisation, instruments = capacity_race
    monkeypatch.setattr(services, "_lock_parties",
                        lambda organisation_ids: ledger_accounts(organisation_ids=organisation_ids))

    outcomes = sell_all(seller, instruments)

    assert outcomes["accepted"] > 3
    assert offered(organisation) > CAPACITY


# --- idempotency under a race ----------------------------------------------------------------


def test_identical_submits_at_once_create_one_order(cash_race):
    trader, organisation, instruments = cash_race

    def work(i: int) -> str:
        # Different instruments: only the unique index can tell the duplicates apart.
        result = order_submit(user=trader, instrument=instruments[i % 4], side="buy", price=D("10.00"), quantity=1,
                              client_order_id="same")
        return "created" if result.created else "existing"

    outcomes = run_at_once(8, work)

    assert outcomes == Counter({"created": 1, "existing": 7})
    assert Order.objects.filter(client_order_id="same").count() == 1
    # Only the winner reserved cash: 10.00 + 0.03.
    assert account_summary(organisation=organisation)["cash_reserved"] == D("10.03")
    books_balance()


def test_unique_client_order_id_is_enforced_by_the_database(cash_race):
    trader, organisation, instruments = cash_race
    order_submit(user=trader, instrument=instruments[0], side="buy", price=D("10.00"), quantity=1,
                 client_order_id="dup")
    first = Order.objects.get()

    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(instrument=instruments[1], organisation=organisation, placed_by=trader,
                             client_order_id="dup", side="buy", price=D("1.00"), quantity=1, priority=1)
    assert Order.objects.get() == first
