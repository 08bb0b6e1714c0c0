"""The kill switch against orders in flight, on PostgreSQL, with its control twin.

Eleven orders of one organisation arrive over a second, each in its own
instrument, while an owner engages the kill switch. Each order waits a
different time between locking its instrument and locking the organisation
(the widened window), so some reach the organisation before the switch and
some after. When the switch has returned, none of the organisation's orders
may rest: those that came first are swept, those that came later refused.

The twin reads the switch before the organisation lock (as a check in the
trading gate would): orders that read "off" before the switch was engaged
and commit after its sweep stay in the book.
"""

import threading
import time
from collections import Counter

import pytest

from market.models import RESTING_STATUSES, Order
from market.services import controls
from market.services import orders as services
from market.services.orders import order_submit
from tests.concurrency import run_at_once
from tests.factories import GpuClassFactory, OpenInstrumentFactory, TraderFactory, delivery_hour, deposit
from tests.market.orders_world import D, books_balance

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

ORDERS = 11
ZONES = ["DE", "DE-BW", "DE-BY", "DE-BE", "DE-BB", "DE-HB", "DE-HH", "DE-HE", "DE-MV", "DE-NI", "DE-NW"]
SWITCH_AT = 0.3  # seconds after the start; order i waits 0.1 x (i + 1) before the organisation lock


@pytest.fixture
def race(monkeypatch):  # type: ignore[no-untyped-def]
    gpu_class = GpuClassFactory(code="H100")
    instruments = [OpenInstrumentFactory(gpu_class=gpu_class, zone_code=zone, hour=delivery_hour(1, "14"))
                   for zone in ZONES]
    owner = TraderFactory(is_owner=True).user
    organisation = owner.membership.organisation
    deposit(organisation, "10000.00")
    delays: dict[int, float] = {}
    real_lock = services._lock_parties

    def slow_lock(organisation_ids):  # type: ignore[no-untyped-def]
        time.sleep(delays.get(threading.get_ident(), 0))
        return real_lock(organisation_ids)

    monkeypatch.setattr(services, "_lock_parties", slow_lock)
    return owner, organisation, instruments, delays


def run(owner, instruments, delays) -> Counter[str]:  # type: ignore[no-untyped-def]
    def work(i: int) -> str:
        if i == ORDERS:
            time.sleep(SWITCH_AT)
            controls.kill_switch_engage(user=owner)
            return "switched"
        delays[threading.get_ident()] = 0.1 * (i + 1)
        order_submit(user=owner, instrument=instruments[i], side="buy", price=D("10.00"), quantity=1)
        return "accepted"

    return run_at_once(ORDERS + 1, work)


def test_after_the_kill_switch_returns_no_order_of_the_organisation_rests(race):
    owner, organisation, instruments, delays = race

    outcomes = run(owner, instruments, delays)

    assert outcomes["switched"] == 1
    assert outcomes["accepted"] >= 1 and outcomes["trading_stopped"] >= 1, outcomes
    assert outcomes["accepted"] + outcomes["trading_stopped"] == ORDERS, outcomes
    assert not Order.objects.filter(organisation=organisation, status__in=RESTING_STATUSES).exists()
    # Every accepted order was swept by the switch.
    assert Order.objects.filter(organisation=organisation, reason="kill_switch").count() == outcomes["accepted"]
    books_balance()


def test_control_twin_a_switch_read_before_the_organisation_lock_lets_orders_rest(race, monkeypatch):
    owner, organisation, instruments, delays = race
    real_stopped = services._stopped
    slow_lock = services._lock_parties

    def check_early_then_lock(organisation_ids):  # type: ignore[no-untyped-def]
        if delays.get(threading.get_ident()):  # an order thread: the naive check, before the wait and the lock
            error = real_stopped(owner.membership.organisation_id)
            if error is not None:
                raise error
        return slow_lock(organisation_ids)

    monkeypatch.setattr(services, "_lock_parties", check_early_then_lock)
    monkeypatch.setattr(services, "_check_not_stopped", lambda organisation_id: None)

    outcomes = run(owner, instruments, delays)

    assert outcomes["switched"] == 1
    assert Order.objects.filter(organisation=organisation, status__in=RESTING_STATUSES).exists(), outcomes
