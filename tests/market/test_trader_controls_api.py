"""The trader controls in the API: POST /api/v1/orders/cancel-all/,
/api/v1/kill-switch/ and GET /api/v1/order-events/ (docs/trader-controls.md).
Actors as in orders_world: Alice owns Alice Rechenwerk, Bob trades there,
Vera views; Charlie's organisation must never see Alice's events."""

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from market.models import Order
from market.services.orders import order_submit
from tests.factories import OpenInstrumentFactory, delivery_hour
from tests.market.orders_world import D, World, books_balance, make_world

pytestmark = pytest.mark.django_db

CANCEL_ALL = "/api/v1/orders/cancel-all/"
KILL_SWITCH = "/api/v1/kill-switch/"
EVENTS = "/api/v1/order-events/"


@pytest.fixture
def world() -> World:
    return make_world()


def client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client


def rest(world: World, user, side: str = "sell", price: str = "13.00", instrument=None) -> Order:  # type: ignore[no-untyped-def]
    return order_submit(user=user, instrument=instrument or world.instrument, side=side, price=D(price),
                        quantity=5).order


def test_cancel_all_answers_the_cancelled_orders_in_the_contract_shape(world):
    other = OpenInstrumentFactory(gpu_class=world.instrument.gpu_class, hour=delivery_hour(1, "15"))
    here, there = rest(world, world.alice), rest(world, world.bob, instrument=other)

    response = client_for(world.bob).post(CANCEL_ALL, {"instrument": world.instrument.symbol}, format="json")

    assert response.status_code == 200, response.content
    [order] = response.json()["cancelled"]
    assert (order["id"], order["status"], order["reason"], order["remaining_quantity"]) == (
        here.pk, "cancelled", "cancelled_by_member", 0)
    assert Order.objects.get(pk=there.pk).status == "open"

    everything = client_for(world.bob).post(CANCEL_ALL, {}, format="json")
    assert [o["id"] for o in everything.json()["cancelled"]] == [there.pk]
    assert client_for(world.bob).post(CANCEL_ALL, {}, format="json").json() == {"cancelled": []}
    books_balance()


def test_cancel_all_refuses_an_unknown_instrument_and_viewers(world):
    rest(world, world.alice)

    unknown = client_for(world.alice).post(CANCEL_ALL, {"instrument": "H100.DE.1999-01-01T00"}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "invalid" and "instrument" in unknown.json()["fields"]
    viewer = client_for(world.vera).post(CANCEL_ALL, {}, format="json")
    assert (viewer.status_code, viewer.json()["code"]) == (403, "not_permitted")
    assert Order.objects.get().status == "open"


def test_the_kill_switch_over_the_api(world):
    order = rest(world, world.bob)
    owner = client_for(world.alice)

    assert owner.get(KILL_SWITCH).json() == {"engaged": False, "engaged_at": None, "engaged_by": None, "reason": ""}
    trader = client_for(world.bob).post(KILL_SWITCH, {}, format="json")
    assert (trader.status_code, trader.json()["code"]) == (403, "not_permitted")

    engaged = owner.post(KILL_SWITCH, {"reason": "Algorithmus prüfen"}, format="json")
    assert engaged.status_code == 200, engaged.content
    body = engaged.json()
    assert (body["engaged"], body["engaged_by"], body["reason"], body["cancelled"]) == (
        True, "alice@orders.test", "Algorithmus prüfen", [order.pk])
    assert body["engaged_at"].endswith(("+01:00", "+02:00"))

    stopped = client_for(world.bob).post("/api/v1/orders/", {"instrument": world.instrument.symbol, "side": "sell",
                                                              "price": "13.00", "quantity": 1}, format="json")
    assert stopped.status_code == 403
    assert set(stopped.json()) == {"code", "detail", "fields"} and stopped.json()["code"] == "trading_stopped"

    assert owner.delete(KILL_SWITCH).json()["engaged"] is False
    assert owner.delete(KILL_SWITCH).status_code == 404
    assert client_for(world.bob).post("/api/v1/orders/", {"instrument": world.instrument.symbol, "side": "sell",
                                                           "price": "13.00", "quantity": 1},
                                      format="json").status_code == 201


def test_order_events_list_only_the_organisations_own(world):
    alices = rest(world, world.alice)
    charlies = rest(world, world.charlie, side="buy", price="13.00")  # fills Alice's order

    mine = client_for(world.bob).get(EVENTS).json()
    theirs = client_for(world.charlie).get(EVENTS).json()

    assert [(e["order"], e["kind"]) for e in mine] == [(alices.pk, "filled"), (alices.pk, "submitted")]
    assert [(e["order"], e["kind"]) for e in theirs] == [(charlies.pk, "filled"), (charlies.pk, "submitted")]
    fill = mine[0]
    assert (fill["actor"], fill["status"], fill["fill_price"], fill["fill_quantity"], fill["instrument"]) == (
        None, "filled", "13.00", 5, world.instrument.symbol)
    assert fill["trade_id"] is not None
    assert mine[1]["actor"] == "alice@orders.test"
    assert client_for(world.bob).get(EVENTS, {"order": charlies.pk}).json() == []
    assert len(client_for(world.bob).get(EVENTS, {"limit": 1}).json()) == 1
    assert client_for(world.bob).get(EVENTS, {"before_id": mine[0]["id"]}).json() == mine[1:]
    assert client_for(world.bob).get(EVENTS, {"limit": 0}).status_code == 400


def test_the_schema_describes_the_controls():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    assert "post" in paths[CANCEL_ALL]
    assert {"get", "post", "delete"} <= set(paths[KILL_SWITCH])
    assert "get" in paths[EVENTS]
