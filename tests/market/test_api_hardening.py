"""Hardening of the trading API (issue 7, item 10): what the OpenAPI schema
promises about bounds, "open" as API users mean it, and times that must
carry their offset. Actors as in orders_world."""

import json
from datetime import UTC, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from market import calendar
from tests.market.orders_world import World, make_world, written
from tests.market.test_orders_api import BATCH, ORDERS, client_for, place, refused

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return make_world()


# --- the OpenAPI schema states the bounds -----------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict:
    out = StringIO()
    call_command("spectacular", "--format", "openapi-json", stdout=out)
    return json.loads(out.getvalue())


def _parameter(schema: dict, path: str, name: str) -> dict:
    parameters = schema["paths"][path]["get"]["parameters"]
    return next(p for p in parameters if p["name"] == name)["schema"]


def _component(schema: dict, path: str, method: str) -> dict:
    ref = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_the_schema_bounds_depth_and_every_limit(schema):
    assert _parameter(schema, "/api/v1/instruments/{symbol}/book/", "depth") == {
        "type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert _parameter(schema, "/api/v1/instruments/{symbol}/trades/", "limit") == {
        "type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    for path in ("/api/v1/trades/", "/api/v1/orders/"):
        bounds = _parameter(schema, path, "limit")
        assert (bounds["minimum"], bounds["maximum"]) == (1, 1000), path


def test_the_schema_bounds_the_batch_and_the_quantity(schema):
    orders = _component(schema, BATCH, "post")["properties"]["orders"]
    assert (orders["minItems"], orders["maxItems"]) == (1, 100)
    quantity = _component(schema, ORDERS, "post")["properties"]["quantity"]
    assert (quantity["type"], quantity["minimum"]) == ("integer", 1)
    amend = _component(schema, "/api/v1/orders/{order_id}/", "patch")
    assert amend["properties"]["quantity"]["minimum"] == 1
    assert amend["minProperties"] == 1  # quantity, price or both
    assert set(amend["properties"]) == {"quantity", "price"}


def test_the_api_keeps_the_bounds_the_schema_states(world):
    before = written()
    body = refused(place(world.charlie, world, side="buy", price="12.00", quantity=0), 400, "invalid", before)
    assert list(body["fields"]) == ["quantity"]
    resting = place(world.charlie, world, side="buy", price="12.00", quantity=2).json()
    before = written()
    for amend in ({}, {"quantity": 0}):
        answer = client_for(world.charlie).patch(f"{ORDERS}{resting['id']}/", amend, format="json")
        refused(answer, 400, "invalid", before)
    too_many = {"orders": [{"instrument": world.instrument.symbol, "side": "buy", "price": "12.00",
                            "quantity": 1}] * 101}
    body = refused(client_for(world.charlie).post(BATCH, too_many, format="json"), 400, "invalid", before)
    assert "orders" in body["fields"]
    refused(client_for(world.charlie).post(BATCH, {"orders": []}, format="json"), 400, "invalid", before)


# --- ?status=open ------------------------------------------------------------------------------


def test_status_open_lists_every_resting_order_partially_filled_ones_too(world):
    partial = place(world.charlie, world, side="buy", price="12.00", quantity=5).json()
    place(world.alice, world, side="sell", price="12.00", quantity=2)  # fills 2 of the 5
    untouched = place(world.charlie, world, side="buy", price="11.00", quantity=1).json()
    place(world.charlie, world, side="buy", price="11.00", quantity=1, time_in_force="IOC")  # cancelled
    client = client_for(world.charlie)

    open_orders = client.get(ORDERS, {"status": "open"})
    only_partial = client.get(ORDERS, {"status": "partially_filled"}).json()

    assert [(row["id"], row["status"]) for row in open_orders.json()] == [
        (untouched["id"], "open"), (partial["id"], "partially_filled")]
    assert open_orders["X-Total-Count"] == "2"
    assert [row["id"] for row in only_partial] == [partial["id"]]
    assert [row["id"] for row in client.get(ORDERS, {"status": "open,partially_filled"}).json()] == [
        untouched["id"], partial["id"]]


# --- times carry their offset ---------------------------------------------------------------


def test_an_expiry_without_offset_is_refused_at_the_field(world):
    local = (world.instrument.closes_at - timedelta(minutes=5)).astimezone(calendar.BERLIN)
    before = written()
    naive = local.replace(tzinfo=None).isoformat()

    body = refused(place(world.charlie, world, side="buy", price="12.00", time_in_force="GTD", expires_at=naive),
                   400, "invalid", before)

    assert list(body["fields"]) == ["expires_at"]
    batch = client_for(world.charlie).post(BATCH, {"orders": [
        {"instrument": world.instrument.symbol, "side": "buy", "price": "12.00", "quantity": 1,
         "time_in_force": "GTD", "expires_at": naive}]}, format="json")
    assert batch.status_code == 200
    (result,) = batch.json()["results"]
    assert (result["status_code"], result["code"], list(result["fields"])) == (400, "invalid", ["expires_at"])
    assert written() == before


@pytest.mark.parametrize("offset", ["+01:00", "Z", "+00:00"])
def test_an_expiry_with_an_offset_is_taken(world, offset):
    at = (world.instrument.closes_at - timedelta(minutes=5)).astimezone(UTC)
    text = at.replace(tzinfo=None).isoformat() + offset
    if offset == "+01:00":
        text = (at + timedelta(hours=1)).replace(tzinfo=None).isoformat() + offset

    answer = place(world.charlie, world, side="buy", price="12.00", time_in_force="GTD", expires_at=text)

    assert answer.status_code == 201, answer.content
    assert answer.json()["expires_at"] == at.astimezone(calendar.BERLIN).isoformat()


# --- response shapes are written once (item 11) -------------------------------------------------


def test_the_serializers_the_schema_shows_produce_every_answer(world, monkeypatch):
    from market import serializers as shapes

    used: dict[str, int] = {}
    for name in ("OrderSerializer", "OrderFillSerializer", "OwnFillSerializer", "PositionSerializer",
                 "BookSerializer", "PublicTradeSerializer"):
        cls = getattr(shapes, name)
        original = cls.to_representation

        def spy(self, instance, _original=original, _name=name):  # type: ignore[no-untyped-def]
            used[_name] = used.get(_name, 0) + 1
            return _original(self, instance)

        monkeypatch.setattr(cls, "to_representation", spy)

    place(world.alice, world, side="sell", price="12.00", quantity=2)
    order = place(world.charlie, world, side="buy", price="12.00", quantity=1).json()
    client = client_for(world.charlie)
    symbol = world.instrument.symbol
    answers = {
        "order": order,
        "orders": client.get(ORDERS).json(),
        "fills": client.get("/api/v1/trades/").json(),
        "positions": client.get("/api/v1/positions/").json(),
        "book": client.get(f"/api/v1/instruments/{symbol}/book/").json(),
        "trades": client.get(f"/api/v1/instruments/{symbol}/trades/").json(),
    }

    assert set(used) == {"OrderSerializer", "OrderFillSerializer", "OwnFillSerializer", "PositionSerializer",
                         "BookSerializer", "PublicTradeSerializer"}
    # ... and the shapes on the wire are the contract's, unchanged.
    assert order["fills"] == [{"trade_id": order["fills"][0]["trade_id"], "price": "12.00", "quantity": 1,
                               "liquidity": "taker"}]
    assert order["created_at"].endswith(("+01:00", "+02:00"))
    # The exact fee (issue 7 item 7): at least two places, up to six, no trailing zeros beyond two.
    assert answers["fills"][0]["fee"] == "0.015"
    assert answers["positions"][0] == {"instrument": symbol, "quantity": 1, "average_price": "12.0000",
                                       "unrealised_pnl": "0.00", "last_price": "12.00",
                                       "settlement_price": None, "variation_margin": None}
    assert answers["book"]["asks"] == [["12.00", 1]] and answers["book"]["bids"] == []
    assert set(answers["trades"][0]) == {"id", "price", "quantity", "executed_at", "aggressor"}
    assert answers["trades"][0]["aggressor"] == "buy"
