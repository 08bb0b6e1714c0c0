"""The trading API (contract "Orders", "Market data", "Account: positions"):
/api/v1/orders/, /orders/{id}/, /orders/batch/, /trades/, /positions/ and the
public /instruments/{symbol}/book/ and /trades/.

Actors and money as in orders_world; fees maker 0.005, taker 0.015 EUR/GPUh.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from accounts import services as account_services
from market.models import InstrumentStatus, Order
from tests.factories import TEST_PASSWORD, OpenInstrumentFactory
from tests.market.orders_world import CASH, D, World, books_balance, make_world, money, written

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"
BATCH = "/api/v1/orders/batch/"
ORDER_FIELDS = {"id", "client_order_id", "instrument", "side", "type", "price", "quantity", "filled_quantity",
                "remaining_quantity", "average_price", "status", "created_at", "fills"}


@pytest.fixture
def world() -> World:
    return make_world()


def client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client


def place(user, world: World, **body):  # type: ignore[no-untyped-def]
    payload = {"instrument": world.instrument.symbol, "quantity": 10, **body}
    return client_for(user).post(ORDERS, payload, format="json")


def refused(response, status: int, code: str, before) -> dict:  # type: ignore[no-untyped-def]
    """The contract's error shape, the status of the code, and nothing written."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "detail", "fields"}
    assert body["code"] == code
    assert written() == before
    books_balance()
    return body


# --- POST /orders/ ---------------------------------------------------------------------------


def test_submit_answers_201_with_the_order_in_the_contract_shape(world):
    response = place(world.charlie, world, side="buy", type="limit", price="12.30", time_in_force="GTC",
                     client_order_id="algo-1")

    assert response.status_code == 201, response.content
    body = response.json()
    assert ORDER_FIELDS <= set(body)
    assert {key: body[key] for key in ORDER_FIELDS - {"id", "created_at"}} == {
        "client_order_id": "algo-1", "instrument": world.instrument.symbol, "side": "buy", "type": "limit",
        "price": "12.30", "quantity": 10, "filled_quantity": 0, "remaining_quantity": 10, "average_price": None,
        "status": "open", "fills": [],
    }
    assert body["created_at"].endswith(("+01:00", "+02:00"))
    account = client_for(world.charlie).get("/api/v1/account/").json()
    assert (account["cash_available"], account["cash_reserved"]) == ("9876.70", "123.30")


def test_a_crossing_order_answers_its_fills_and_average_price(world):
    place(world.alice, world, side="sell", price="12.00", quantity=3)
    place(world.dora, world, side="sell", price="12.10", quantity=5)

    body = place(world.charlie, world, side="buy", price="12.50", quantity=6).json()

    assert (body["status"], body["filled_quantity"], body["remaining_quantity"]) == ("filled", 6, 0)
    assert [(f["price"], f["quantity"], f["liquidity"]) for f in body["fills"]] == [
        ("12.00", 3, "taker"), ("12.10", 3, "taker")]
    # (36.00 + 36.30) / 6
    assert body["average_price"] == "12.0500"
    account = client_for(world.charlie).get("/api/v1/account/").json()
    # 72.30 paid, and 0.11 held for the month's fees (0.090 exact: 0.09 + VAT 0.02).
    assert account["cash_available"] == str(CASH - D("72.41"))
    assert account["settlement_pending"] == "72.30"


def test_reusing_a_client_order_id_answers_200_with_the_existing_order(world):
    first = place(world.charlie, world, side="buy", price="12.30", client_order_id="algo-1")
    before = written()

    again = place(world.charlie, world, side="buy", price="12.40", quantity=1, client_order_id="algo-1")

    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["price"] == "12.30"
    assert written() == before


def test_every_contract_error_code_is_answered_in_the_error_shape_and_changes_nothing(world):
    halted = OpenInstrumentFactory(zone_code="DE-BW", status=InstrumentStatus.HALTED)
    closed = OpenInstrumentFactory(zone_code="DE-BE", status=InstrumentStatus.CLOSED)
    before = written()

    body = refused(place(world.charlie, world, side="buy", quantity="ten"), 400, "invalid", before)
    assert "quantity" in body["fields"]
    body = refused(place(world.charlie, world, side="buy"), 400, "invalid", before)
    # German is the site's default language; the msgid is "A limit order needs a price."
    assert body["fields"] == {"price": ["Eine Limit-Order braucht einen Preis."]}
    english = client_for(world.charlie)
    english.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    answer = english.post(ORDERS, {"instrument": world.instrument.symbol, "side": "buy", "quantity": 1},
                          format="json")
    assert answer.json()["fields"] == {"price": ["A limit order needs a price."]}
    body = refused(place(world.charlie, world, side="buy", price="1", instrument="H100.DE.1999-01-01T00"),
                   400, "invalid", before)
    assert "instrument" in body["fields"]
    refused(place(world.charlie, world, side="buy", price="12.345"), 400, "tick_size", before)
    refused(place(world.charlie, world, side="buy", price="250.00"), 400, "price_out_of_bounds", before)
    refused(place(world.charlie, world, side="buy", price="12.00", instrument=closed.symbol), 409,
            "instrument_closed", before)
    refused(place(world.charlie, world, side="buy", price="12.00", instrument=halted.symbol), 409,
            "market_halted", before)
    refused(place(world.charlie, world, side="buy", price="200.00", quantity=50), 409, "insufficient_funds", before)
    refused(place(world.charlie, world, side="sell", price="12.00", quantity=1), 409, "insufficient_capacity",
            before)
    refused(place(world.kai, world, side="buy", price="12.00"), 403, "kyc_not_approved", before)
    refused(place(world.vera, world, side="buy", price="12.00"), 403, "not_permitted", before)
    refused(APIClient().post(ORDERS, {}, format="json"), 401, "not_authenticated", before)

    place(world.alice, world, side="sell", price="12.00", quantity=2)
    before = written()
    refused(place(world.charlie, world, side="buy", price="12.00", quantity=3, time_in_force="FOK"), 409,
            "fok_not_fillable", before)
    refused(place(world.charlie, world, side="buy", price="12.00", quantity=1, post_only=True), 409,
            "post_only_would_trade", before)
    assert money(world.org_c)["cash_available"] == CASH


def test_ioc_and_market_remainders_are_created_and_cancelled(world):
    place(world.alice, world, side="sell", price="12.00", quantity=2)

    ioc = place(world.charlie, world, side="buy", price="12.00", quantity=5, time_in_force="IOC")
    market = place(world.charlie, world, side="buy", type="market", quantity=1)

    assert ioc.status_code == 201
    assert (ioc.json()["status"], ioc.json()["filled_quantity"], ioc.json()["reason"]) == (
        "cancelled", 2, "ioc_remainder")
    assert (market.json()["status"], market.json()["reason"]) == ("cancelled", "market_remainder")
    # Last trade 12.00: the protection price is 18.00.
    assert market.json()["price"] == "18.00"


def test_gtd_orders_carry_their_expiry(world):
    expires = (world.instrument.closes_at - timedelta(minutes=5)).isoformat()

    body = place(world.charlie, world, side="buy", price="12.00", time_in_force="GTD", expires_at=expires).json()

    assert body["time_in_force"] == "GTD"
    assert body["expires_at"] is not None


# --- GET, PATCH, DELETE /orders/{id}/ ---------------------------------------------------------


def test_list_and_detail_show_only_my_organisations_orders(world):
    mine = place(world.charlie, world, side="buy", price="12.00").json()
    place(world.alice, world, side="sell", price="13.00", quantity=1)
    place(world.charlie, world, side="buy", price="11.00", quantity=1, time_in_force="IOC")

    listed = client_for(world.charlie).get(ORDERS)
    assert listed.status_code == 200
    assert listed["X-Total-Count"] == "2"
    assert {row["side"] for row in listed.json()} == {"buy"}
    resting = client_for(world.charlie).get(ORDERS, {"status": "open,partially_filled"}).json()
    assert [row["id"] for row in resting] == [mine["id"]]
    assert client_for(world.charlie).get(ORDERS, {"instrument": "H100.DE.1999-01-01T00"}).json() == []
    assert client_for(world.charlie).get(ORDERS, {"status": "sleeping"}).status_code == 400
    detail = client_for(world.charlie).get(f"{ORDERS}{mine['id']}/")
    assert detail.json() == mine
    # Bob is in Alice's organisation: the same orders as Alice, none of Charlie's.
    assert client_for(world.bob).get(ORDERS)["X-Total-Count"] == "1"


def test_another_organisations_order_is_404_never_403(world):
    order = place(world.charlie, world, side="buy", price="12.00").json()
    url = f"{ORDERS}{order['id']}/"
    before = written()

    for response in (client_for(world.alice).get(url), client_for(world.alice).patch(url, {"quantity": 1},
                                                                                       format="json"),
                     client_for(world.alice).delete(url), client_for(world.alice).get(f"{ORDERS}999999/")):
        refused(response, 404, "not_found", before)
    assert Order.objects.get(pk=order["id"]).status == "open"


def test_patch_amends_and_delete_cancels_releasing_the_reservation(world):
    order = place(world.charlie, world, side="buy", price="12.00", quantity=5).json()
    url = f"{ORDERS}{order['id']}/"

    amended = client_for(world.charlie).patch(url, {"quantity": 3, "price": "12.50"}, format="json")
    assert amended.status_code == 200, amended.content
    assert (amended.json()["quantity"], amended.json()["price"]) == (3, "12.50")
    assert money(world.org_c)["cash_reserved"] == D("37.59")  # 12.50 x 3 + 3 x 0.03
    refused(client_for(world.charlie).patch(url, {}, format="json"), 400, "invalid", written())

    cancelled = client_for(world.charlie).delete(url)
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["remaining_quantity"]) == ("cancelled", 0)
    assert money(world.org_c)["cash_available"] == CASH
    assert money(world.org_c)["cash_reserved"] == D("0.00")
    refused(client_for(world.charlie).delete(url), 409, "order_not_open", written())


def test_a_viewer_sees_orders_but_may_not_cancel(world):
    order = place(world.alice, world, side="sell", price="12.00", quantity=1).json()

    assert client_for(world.vera).get(f"{ORDERS}{order['id']}/").status_code == 200
    refused(client_for(world.vera).delete(f"{ORDERS}{order['id']}/"), 403, "not_permitted", written())


# --- POST /orders/batch/ ---------------------------------------------------------------------


def test_batch_answers_one_result_per_order_in_order(world):
    symbol = world.instrument.symbol
    place(world.charlie, world, side="buy", price="11.00", quantity=1, client_order_id="old")
    before = written()

    response = client_for(world.charlie).post(BATCH, {"orders": [
        {"instrument": symbol, "side": "buy", "price": "12.00", "quantity": 1},
        {"instrument": symbol, "side": "buy", "price": "12.005", "quantity": 1},
        {"instrument": symbol, "side": "buy", "quantity": "x"},
        {"instrument": symbol, "side": "buy", "price": "11.00", "quantity": 1, "client_order_id": "old"},
        {"instrument": "NOPE", "side": "buy", "price": "11.00", "quantity": 1},
        {"instrument": symbol, "side": "buy", "price": "12.10", "quantity": 2},
    ]}, format="json")

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status_code"] for r in results] == [201, 400, 400, 200, 400, 201]
    assert [r.get("code") for r in results] == [None, "tick_size", "invalid", None, "invalid", None]
    assert set(results[1]) == {"code", "detail", "fields", "status_code"}
    assert ORDER_FIELDS <= set(results[0])
    assert results[3]["client_order_id"] == "old"
    assert written()[0] == before[0] + 2


def test_batch_refusals_of_the_whole_request(world):
    order = {"instrument": world.instrument.symbol, "side": "buy", "price": "1.00", "quantity": 1}
    before = written()

    refused(client_for(world.charlie).post(BATCH, {"orders": [order] * 101}, format="json"), 400, "invalid", before)
    refused(client_for(world.charlie).post(BATCH, {"orders": []}, format="json"), 400, "invalid", before)
    refused(client_for(world.kai).post(BATCH, {"orders": [order]}, format="json"), 403, "kyc_not_approved", before)


def test_batch_items_each_get_the_status_of_their_own_error(world):
    place(world.alice, world, side="sell", price="12.00", quantity=1)
    response = client_for(world.charlie).post(BATCH, {"orders": [
        {"instrument": world.instrument.symbol, "side": "buy", "price": "12.00", "quantity": 2,
         "time_in_force": "FOK"},
        {"instrument": world.instrument.symbol, "side": "buy", "price": "200.00", "quantity": 100},
    ]}, format="json")

    assert [(r["code"], r["status_code"]) for r in response.json()["results"]] == [
        ("fok_not_fillable", 409), ("insufficient_funds", 409)]


# --- GET /trades/ and /positions/ ------------------------------------------------------------


def test_trades_lists_my_fills_from_my_side_only(world):
    place(world.charlie, world, side="buy", price="12.30", quantity=10)
    sold = place(world.alice, world, side="sell", price="12.30", quantity=4).json()

    charlie = client_for(world.charlie).get("/api/v1/trades/").json()
    alice = client_for(world.alice).get("/api/v1/trades/").json()

    assert len(charlie) == len(alice) == 1
    assert charlie[0]["trade_id"] == alice[0]["trade_id"]
    assert {key: charlie[0][key] for key in ("side", "price", "quantity", "liquidity", "fee")} == {
        "side": "buy", "price": "12.30", "quantity": 4, "liquidity": "maker", "fee": "0.02"}
    assert {key: alice[0][key] for key in ("order_id", "side", "liquidity", "fee")} == {
        "order_id": sold["id"], "side": "sell", "liquidity": "taker", "fee": "0.06"}
    assert client_for(world.dora).get("/api/v1/trades/").json() == []


def test_positions_mark_the_net_quantity_to_the_last_trade(world):
    place(world.alice, world, side="sell", price="12.30", quantity=4)
    place(world.charlie, world, side="buy", price="12.30", quantity=4)
    place(world.dora, world, side="sell", price="12.80", quantity=1)
    place(world.bob, world, side="buy", price="12.80", quantity=1)

    charlie = client_for(world.charlie).get("/api/v1/positions/").json()
    alice = client_for(world.alice).get("/api/v1/positions/").json()
    dora = client_for(world.dora).get("/api/v1/positions/").json()

    symbol = world.instrument.symbol
    SPOT = {"settlement_price": None, "variation_margin": None}  # futures fields, null for an hour  # noqa: N806
    # Long 4 at 12.30, last 12.80: (12.80 - 12.30) x 4 x 1 h.
    assert charlie == [{"instrument": symbol, "quantity": 4, "average_price": "12.3000", "unrealised_pnl": "2.00",
                        "last_price": "12.80", **SPOT}]
    # Sold 4 at 12.30, bought 1 back: short 3 at 12.30 marked at 12.80.
    assert alice == [{"instrument": symbol, "quantity": -3, "average_price": "12.3000", "unrealised_pnl": "-1.50",
                      "last_price": "12.80", **SPOT}]
    assert dora == [{"instrument": symbol, "quantity": -1, "average_price": "12.8000", "unrealised_pnl": "0.00",
                     "last_price": "12.80", **SPOT}]


def test_member_reads_need_a_membership(world):
    from tests.factories import UserFactory

    loner = UserFactory()
    for url in (ORDERS, "/api/v1/trades/", "/api/v1/positions/"):
        assert client_for(loner).get(url).json()["code"] == "not_permitted"


# --- public market data ----------------------------------------------------------------------


def test_book_is_public_aggregated_best_first_and_anonymous(world):
    place(world.charlie, world, side="buy", price="12.30", quantity=10)
    place(world.dora, world, side="buy", price="12.30", quantity=5)
    place(world.dora, world, side="buy", price="12.10", quantity=1)
    place(world.alice, world, side="sell", price="12.50", quantity=2)
    place(world.alice, world, side="sell", price="12.40", quantity=3)

    response = APIClient().get(f"/api/v1/instruments/{world.instrument.symbol}/book/")

    assert response.status_code == 200
    assert response.json() == {"instrument": world.instrument.symbol, "sequence": 5,
                               "bids": [["12.30", 15], ["12.10", 1]], "asks": [["12.40", 3], ["12.50", 2]]}
    shallow = APIClient().get(f"/api/v1/instruments/{world.instrument.symbol}/book/", {"depth": 1}).json()
    assert (shallow["bids"], shallow["asks"]) == ([["12.30", 15]], [["12.40", 3]])
    assert APIClient().get(f"/api/v1/instruments/{world.instrument.symbol}/book/",
                           {"depth": 0}).json()["code"] == "invalid"
    assert APIClient().get("/api/v1/instruments/NOPE/book/").status_code == 404


def test_public_trades_carry_no_member_identity(world):
    place(world.charlie, world, side="buy", price="12.30", quantity=10)
    place(world.alice, world, side="sell", price="12.30", quantity=4)
    place(world.dora, world, side="sell", price="12.30", quantity=1)

    response = APIClient().get(f"/api/v1/instruments/{world.instrument.symbol}/trades/")

    assert response.status_code == 200
    trades = response.json()
    assert [(t["price"], t["quantity"], t["aggressor"]) for t in trades] == [("12.30", 1, "sell"),
                                                                             ("12.30", 4, "sell")]
    assert all(set(t) == {"id", "price", "quantity", "executed_at", "aggressor"} for t in trades)
    assert len(APIClient().get(f"/api/v1/instruments/{world.instrument.symbol}/trades/", {"limit": 1}).json()) == 1


# --- auth, throttling, schema ----------------------------------------------------------------


def test_an_api_token_places_orders(world):
    issued = account_services.api_token_create(email=world.charlie.email, password=TEST_PASSWORD)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issued.key}")

    response = client.post(ORDERS, {"instrument": world.instrument.symbol, "side": "buy", "price": "12.00",
                                    "quantity": 1}, format="json")

    assert response.status_code == 201


def test_orders_are_throttled_per_user(world, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "2/min", "anon": "100/min"})

    answers = [client_for(world.charlie).get(ORDERS).status_code for _ in range(3)]
    other = client_for(world.dora).get(ORDERS).status_code

    assert answers == [200, 200, 429]
    assert other == 200


def test_schema_describes_the_trading_api():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    paths = schema["paths"]
    for path, methods in {
        "/api/v1/orders/": {"get", "post"},
        "/api/v1/orders/{order_id}/": {"get", "patch", "delete"},
        "/api/v1/orders/batch/": {"post"},
        "/api/v1/trades/": {"get"},
        "/api/v1/positions/": {"get"},
        "/api/v1/instruments/{symbol}/book/": {"get"},
        "/api/v1/instruments/{symbol}/trades/": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    order = schema["components"]["schemas"]["Order"]
    assert ORDER_FIELDS <= set(order["properties"])
    post = paths["/api/v1/orders/"]["post"]["responses"]
    assert {"200", "201", "400", "401", "403", "409", "429"} <= set(post)
    assert post["409"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error"
    batch = paths["/api/v1/orders/batch/"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert batch["$ref"].endswith("/BatchResponseSchema")
    results = schema["components"]["schemas"]["BatchResponseSchema"]["properties"]["results"]
    assert [option["allOf"][0]["$ref"] for option in results["items"]["oneOf"]] == [
        "#/components/schemas/Order", "#/components/schemas/Error"]


def test_decimal_strings_are_accepted_as_numbers_too(world):
    response = place(world.charlie, world, side="buy", price=12.3, quantity=1)

    assert response.status_code == 201
    assert response.json()["price"] == "12.30"
    assert Order.objects.get().price == Decimal("12.30")


def test_the_documented_shapes_are_the_shapes_answered(world):
    from market import api, selectors

    place(world.charlie, world, side="buy", price="12.30", quantity=2)
    place(world.alice, world, side="sell", price="12.30", quantity=1)
    view = selectors.orders_with_fills(Order.objects.all())[0]
    fill = selectors.fills_for(organisation=world.org_c)[0]
    position = selectors.positions_for(organisation=world.org_c)[0]
    snapshot = selectors.book_snapshot(instrument=world.instrument)

    assert set(api.OrderSerializer().fields) == set(selectors.order_payload(view))
    assert set(api.OrderFillSerializer().fields) == set(selectors.order_payload(view)["fills"][0])
    assert set(api.OwnFillSerializer().fields) == set(selectors.fill_payload(fill))
    assert set(api.PositionSerializer().fields) == set(selectors.position_payload(position))
    assert set(api.BookSerializer().fields) == set(selectors.book_payload(symbol="x", snapshot=snapshot))
    assert set(api.PublicTradeSerializer().fields) == set(
        selectors.public_trades(instrument=world.instrument)[0])


def test_operators_see_orders_and_trades_read_only_in_the_admin(world, client):
    from tests.factories import UserFactory

    place(world.charlie, world, side="buy", price="12.30", quantity=2)
    place(world.alice, world, side="sell", price="12.30", quantity=1)
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    order, trade = Order.objects.first(), world.instrument.trades.get()

    for url in ("/admin/market/order/", "/admin/market/trade/", f"/admin/market/order/{order.pk}/change/",
                f"/admin/market/trade/{trade.pk}/change/", "/admin/market/order/?status__exact=filled"):
        assert client.get(url).status_code == 200, url
    assert client.get("/admin/market/order/add/").status_code == 403
    assert client.post(f"/admin/market/order/{order.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Order.objects.count() == 2
