"""Trader controls (issue 8, item 5): order events, mass cancel, owners'
cancel, the kill switch (market.services.orders, market.services.controls).
Actors: tests/market/orders_world.py (Alice owns and trades, Bob trades in
Alice's organisation, Vera views; Charlie buys for his own)."""

from datetime import timedelta

import pytest
from django.db import InternalError, connection, transaction
from django.db.utils import DatabaseError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditLog
from market.models import ImmutableRowError, KillSwitch, Order, OrderEvent, Trade
from market.services import controls
from market.services.orders import (
    order_amend,
    order_cancel,
    order_submit,
    orders_cancel_all,
    orders_expire,
    orders_submit_batch,
)
from tests.factories import MembershipFactory, OpenInstrumentFactory, UserFactory, delivery_hour
from tests.market.orders_world import CASH, D, World, books_balance, make_world, money

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return make_world()


def submit(world: World, user, side: str, price: str, quantity: int = 5, instrument=None, **kwargs):  # type: ignore[no-untyped-def]
    return order_submit(user=user, instrument=instrument or world.instrument, side=side, price=D(price),
                        quantity=quantity, **kwargs).order


def events(order: Order) -> list[tuple]:
    return list(OrderEvent.objects.filter(order=order).order_by("id").values_list(
        "kind", "status", "filled_quantity", "actor__email", "trade_id", "fill_quantity", "reason"))


def second_instrument(world: World):  # type: ignore[no-untyped-def]
    return OpenInstrumentFactory(gpu_class=world.instrument.gpu_class, hour=delivery_hour(1, "15"))


# --- order events ------------------------------------------------------------------------------


def test_submit_fill_amend_cancel_and_expiry_each_write_an_event_with_time_actor_and_state(world):
    resting = submit(world, world.alice, "sell", "12.00", quantity=10)
    taker = submit(world, world.charlie, "buy", "12.00", quantity=4, time_in_force="IOC")
    trade = Trade.objects.get()

    assert events(resting)[0] == ("submitted", "open", 0, "alice@orders.test", None, None, "")
    # The resting side's fill is the exchange's doing; the taker's is Charlie's.
    assert events(resting)[1] == ("filled", "partially_filled", 4, None, trade.pk, 4, "")
    assert events(taker) == [("submitted", "open", 0, "charlie@orders.test", None, None, ""),
                             ("filled", "filled", 4, "charlie@orders.test", trade.pk, 4, "")]

    order_amend(user=world.bob, order_id=resting.pk, quantity=8)
    order_cancel(user=world.bob, order_id=resting.pk)
    assert events(resting)[2:] == [("amended", "partially_filled", 4, "bob@orders.test", None, None, ""),
                                   ("cancelled", "cancelled", 4, "bob@orders.test", None, None,
                                    "cancelled_by_member")]
    amended = OrderEvent.objects.filter(order=resting, kind="amended").get()
    assert (amended.quantity, amended.price, amended.organisation_id) == (8, D("12.00"), world.org_a.pk)

    now = timezone.now()
    gtd = submit(world, world.charlie, "buy", "11.00", time_in_force="GTD", expires_at=now + timedelta(minutes=5))
    orders_expire(now=now + timedelta(minutes=5))
    assert events(gtd)[-1] == ("expired", "expired", 0, None, None, None, "expired")
    books_balance()


def test_an_ioc_remainder_is_cancelled_by_the_exchange(world):
    submit(world, world.alice, "sell", "12.00", quantity=3)
    taker = submit(world, world.charlie, "buy", "12.00", quantity=5, time_in_force="IOC")

    assert [row[:4] for row in events(taker)] == [("submitted", "open", 0, "charlie@orders.test"),
                                                  ("filled", "partially_filled", 3, "charlie@orders.test"),
                                                  ("cancelled", "cancelled", 3, None)]
    assert events(taker)[-1][-1] == "ioc_remainder"


def test_a_batch_writes_all_its_events_with_one_insert(world):
    submit(world, world.alice, "sell", "12.00", quantity=3)
    submit(world, world.dora, "sell", "12.10", quantity=3)
    other = second_instrument(world)
    orders = [{"instrument": world.instrument, "side": "buy", "price": D("12.10"), "quantity": 5},
              {"instrument": other, "side": "buy", "price": D("10.00"), "quantity": 2},
              {"instrument": world.instrument, "side": "buy", "price": D("11.00"), "quantity": 1}]

    with CaptureQueriesContext(connection) as queries:
        orders_submit_batch(user=world.charlie, orders=orders)

    inserts = [q["sql"] for q in queries.captured_queries if 'INSERT INTO "market_orderevent"' in q["sql"]]
    assert len(inserts) == 1
    # 3 submits, 2 fills on each side.
    assert OrderEvent.objects.filter(organisation=world.org_c).count() == 5
    assert OrderEvent.objects.filter(kind="filled").count() == 4


def test_order_events_are_immutable(world):
    submit(world, world.alice, "sell", "12.00")
    event = OrderEvent.objects.get()

    with pytest.raises(ImmutableRowError):
        event.save()
    with pytest.raises(ImmutableRowError):
        event.delete()
    with pytest.raises(ImmutableRowError):
        OrderEvent.objects.update(quantity=1)
    with pytest.raises(ImmutableRowError):
        OrderEvent.objects.all().delete()
    # And the database refuses it whatever code asks (PostgreSQL trigger).
    for sql in ("UPDATE market_orderevent SET quantity = 1", "DELETE FROM market_orderevent"):
        with pytest.raises((InternalError, DatabaseError)), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert OrderEvent.objects.get().quantity == 5


# --- mass cancel and owners' cancel --------------------------------------------------------------


def test_mass_cancel_cancels_every_members_resting_orders_of_the_organisation_and_nothing_else(world):
    other = second_instrument(world)
    by_alice = submit(world, world.alice, "sell", "13.00")
    by_bob = submit(world, world.bob, "sell", "14.00", instrument=other)
    charlies = submit(world, world.charlie, "buy", "11.00")

    cancelled = orders_cancel_all(user=world.bob)

    assert sorted(order.pk for order in cancelled) == sorted([by_alice.pk, by_bob.pk])
    assert {order.status for order in Order.objects.filter(organisation=world.org_a)} == {"cancelled"}
    charlies.refresh_from_db()
    assert charlies.status == "open"
    assert events(by_alice)[-1] == ("cancelled", "cancelled", 0, "bob@orders.test", None, None,
                                    "cancelled_by_member")
    assert orders_cancel_all(user=world.bob) == []
    books_balance()


def test_mass_cancel_in_one_instrument_releases_the_reservations(world):
    other = second_instrument(world)
    here = [submit(world, world.charlie, "buy", "10.00"), submit(world, world.charlie, "buy", "10.50")]
    there = submit(world, world.charlie, "buy", "11.00", instrument=other)

    cancelled = orders_cancel_all(user=world.charlie, instrument=world.instrument)

    assert sorted(order.pk for order in cancelled) == sorted(order.pk for order in here)
    there.refresh_from_db()
    assert there.status == "open"
    # Only the order in the other instrument still holds cash: 11.00 x 5 + 5 x 0.03.
    assert money(world.org_c)["cash_reserved"] == D("55.15")
    assert money(world.org_c)["cash_available"] == CASH - D("55.15")
    books_balance()


def test_owners_without_the_trader_role_may_cancel_viewers_may_not(world):
    otto = UserFactory(email="otto@orders.test")
    MembershipFactory(user=otto, organisation=world.org_a, is_owner=True, is_trader=False)
    order = submit(world, world.bob, "sell", "13.00")
    another = submit(world, world.bob, "sell", "13.50")

    assert order_cancel(user=otto, order_id=order.pk).status == "cancelled"
    with pytest.raises(Exception) as refused:
        order_submit(user=otto, instrument=world.instrument, side="sell", price=D("13.00"), quantity=1)
    assert refused.value.code == "not_permitted"
    with pytest.raises(Exception) as refused:
        orders_cancel_all(user=world.vera)
    assert refused.value.code == "not_permitted"
    assert [o.pk for o in orders_cancel_all(user=otto)] == [another.pk]


# --- kill switch ---------------------------------------------------------------------------------


def test_the_kill_switch_cancels_everything_and_refuses_orders_and_amends_until_lifted(world):
    other = second_instrument(world)
    resting = [submit(world, world.alice, "sell", "13.00"), submit(world, world.bob, "sell", "14.00",
                                                                    instrument=other)]
    charlies = submit(world, world.charlie, "buy", "11.00")

    cancelled = controls.kill_switch_engage(user=world.alice, reason="runaway algorithm")

    assert sorted(o.pk for o in cancelled) == sorted(o.pk for o in resting)
    assert not Order.objects.filter(organisation=world.org_a, status__in=["open", "partially_filled"]).exists()
    assert {row[-1] for o in resting for row in events(o)[-1:]} == {"kill_switch"}
    for call in (lambda: submit(world, world.bob, "sell", "13.00"),
                 lambda: orders_submit_batch(user=world.bob, orders=[
                     {"instrument": world.instrument, "side": "sell", "price": D("13.00"), "quantity": 1}])[0]):
        try:
            outcome = call()
        except Exception as error:  # noqa: BLE001
            outcome = error
        assert getattr(outcome, "code", None) == "trading_stopped", outcome
        assert outcome.status == 403
    # Other members trade on.
    assert submit(world, world.charlie, "buy", "11.50").status == "open"
    charlies.refresh_from_db()
    assert charlies.status == "open"

    controls.kill_switch_lift(user=world.alice)
    assert submit(world, world.bob, "sell", "13.00").status == "open"
    switch = KillSwitch.objects.get()
    assert (switch.engaged_by, switch.lifted_by, switch.reason) == (world.alice, world.alice, "runaway algorithm")
    assert list(AuditLog.objects.filter(organisation=world.org_a).order_by("pk").values_list("action", flat=True)
                ) == ["kill_switch_engaged", "kill_switch_lifted"]
    books_balance()


def test_an_amend_is_refused_while_the_kill_switch_is_on(world):
    order = submit(world, world.charlie, "buy", "11.00")
    controls._engage_tx(organisation=world.org_c, user=world.charlie, reason="")  # engaged, not yet swept

    with pytest.raises(Exception) as refused:
        order_amend(user=world.charlie, order_id=order.pk, quantity=2)
    assert refused.value.code == "trading_stopped"
    assert order_cancel(user=world.charlie, order_id=order.pk).status == "cancelled"


def test_only_owners_use_the_kill_switch(world):
    with pytest.raises(Exception) as refused:
        controls.kill_switch_engage(user=world.bob)
    assert refused.value.code == "not_permitted"
    with pytest.raises(Exception) as refused:
        controls.kill_switch_lift(user=world.alice)
    assert refused.value.code == "not_found"
    assert not KillSwitch.objects.exists()


def test_engaging_twice_keeps_one_engaged_switch(world):
    controls.kill_switch_engage(user=world.alice)
    controls.kill_switch_engage(user=world.alice)

    assert KillSwitch.objects.filter(lifted_at__isnull=True).count() == 1
