"""Cancel-on-disconnect on /ws/private/ (docs/trader-controls.md), through
channels' WebsocketCommunicator against the real ASGI application.

Alice opts in on her session; when it ends, the resting orders of Alice
Rechenwerk that Alice placed are cancelled by the exchange. Bob's orders
(her colleague) and Charlie's (another organisation) stay."""

import pytest

from market.models import Order, OrderEvent, Side
from market.services.orders import order_submit
from tests.factories import MembershipFactory, UserFactory
from tests.market.test_consumers import D, api_token, run, session_cookie, socket
from tests.market.trading_setup import TradingWorld, trading_world

pytestmark = pytest.mark.django_db(transaction=True)

ENABLE = {"type": "cancel_on_disconnect", "enabled": True}


@pytest.fixture
def world() -> TradingWorld:
    return trading_world()


def place(world: TradingWorld, user, side: str, price: str) -> Order:  # type: ignore[no-untyped-def]
    return order_submit(user=user, instrument=world.instrument, side=side, quantity=2, price=D(price)).order


def statuses(*orders: Order) -> list[str]:
    return [Order.objects.get(pk=order.pk).status for order in orders]


def test_closing_the_session_cancels_the_users_own_resting_orders_only(world: TradingWorld) -> None:
    alices = [place(world, world.alice, Side.SELL, "3.00"), place(world, world.alice, Side.BUY, "2.00")]
    bobs = place(world, world.bob, Side.SELL, "3.10")
    charlies = place(world, world.charlie, Side.BUY, "2.10")
    cookie = session_cookie(world.alice)

    async def scenario() -> None:
        alice = socket("/ws/private/", headers=cookie)
        assert (await alice.connect())[0]
        await alice.send_json_to(ENABLE)
        assert await alice.receive_json_from() == ENABLE
        await alice.disconnect()

    run(scenario)

    assert statuses(*alices) == ["cancelled", "cancelled"]
    assert statuses(bobs, charlies) == ["open", "open"]
    assert {(o.reason, o.reserved_amount) for o in Order.objects.filter(pk__in=[a.pk for a in alices])} == {
        ("cancel_on_disconnect", D("0.00"))}
    cancelled = OrderEvent.objects.filter(kind="cancelled").values_list("order_id", "actor", "reason")
    assert sorted(cancelled) == sorted((a.pk, None, "cancel_on_disconnect") for a in alices)


def test_without_opting_in_or_after_opting_out_a_disconnect_cancels_nothing(world: TradingWorld) -> None:
    order = place(world, world.alice, Side.SELL, "3.00")
    key = api_token(world.alice)

    async def scenario() -> None:
        plain = socket(f"/ws/private/?token={key}")
        assert (await plain.connect())[0]
        await plain.disconnect()

        changed_mind = socket(f"/ws/private/?token={key}")
        assert (await changed_mind.connect())[0]
        await changed_mind.send_json_to(ENABLE)
        assert await changed_mind.receive_json_from() == ENABLE
        await changed_mind.send_json_to({"type": "cancel_on_disconnect", "enabled": False})
        assert await changed_mind.receive_json_from() == {"type": "cancel_on_disconnect", "enabled": False}
        await changed_mind.disconnect()

    run(scenario)

    assert statuses(order) == ["open"]


def test_a_viewer_may_not_opt_in_and_other_messages_are_refused(world: TradingWorld) -> None:
    viewer = UserFactory(email="vera@example.com")
    MembershipFactory(user=viewer, organisation=world.org_a, is_trader=False, is_viewer=True)
    order = place(world, world.alice, Side.SELL, "3.00")
    cookie = session_cookie(viewer)

    async def scenario() -> None:
        ws = socket("/ws/private/", headers=cookie)
        assert (await ws.connect())[0]
        await ws.send_json_to(ENABLE)
        answer = await ws.receive_json_from()
        assert (answer["type"], answer["code"]) == ("error", "not_permitted")
        await ws.send_json_to({"type": "cancel_on_disconnect", "enabled": "yes"})
        assert (await ws.receive_json_from())["code"] == "invalid"
        await ws.disconnect()

    run(scenario)

    assert statuses(order) == ["open"]
    assert not Order.objects.filter(status="cancelled").exists()
