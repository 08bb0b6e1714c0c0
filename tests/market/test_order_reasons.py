"""A cancelled market order says why (issue 8, item 6): the reason as a
sentence, with the protection price, on the trading screen and in the API's
order view (``reason`` keeps the code, ``reason_detail`` is the sentence)."""

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from market import matching
from market.models import ORDER_REASON_TEXTS, Order
from market.services import orders as services
from tests.market.orders_world import D, World, make_world

pytestmark = pytest.mark.django_db

GERMAN = ("Eine Market-Order ruht nie im Orderbuch: Der Teil, der innerhalb ihres Schutzpreises von 150,00 EUR/GPUh "
          "keine Gegenorder fand, wurde gestrichen.")
ENGLISH = ("A market order never rests in the book: the part that found no counter-order within its protection "
           "price of 150.00 EUR/GPUh was cancelled.")


@pytest.fixture
def world() -> World:
    world = make_world()
    # 2 GPUs offered; a market buy of 5 takes them and its remainder is cancelled. No trade
    # before and no bid: the reference is the bounds' middle, 100.00, +50 % = 150.00.
    services.order_submit(user=world.alice, instrument=world.instrument, side="sell",
                          price=D("50.00"), quantity=2)
    return world


def market_buy(world: World) -> Order:
    order = services.order_submit(user=world.charlie, instrument=world.instrument, side="buy", type="market",
                                  quantity=5).order
    order.refresh_from_db()
    return order


def test_the_order_knows_why_in_the_readers_language(world):
    order = market_buy(world)

    assert (order.status, order.reason, order.filled_quantity) == ("cancelled", "market_remainder", 2)
    with translation.override("de"):
        assert order.reason_text == GERMAN
    with translation.override("en"):
        assert order.reason_text == ENGLISH


def test_the_api_order_view_gives_the_code_and_the_sentence(world):
    order = market_buy(world)
    client = APIClient()
    client.force_authenticate(world.charlie)

    german = client.get(f"/api/v1/orders/{order.pk}/").json()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    english = client.get(f"/api/v1/orders/{order.pk}/").json()

    assert (german["status"], german["reason"], german["reason_detail"]) == ("cancelled", "market_remainder", GERMAN)
    assert english["reason_detail"] == ENGLISH
    listed = client.get("/api/v1/orders/").json()
    assert [row["reason_detail"] for row in listed if row["id"] == order.pk] == [ENGLISH]


def test_the_trading_screen_says_why_after_the_order_is_sent(client, world):
    client.force_login(world.charlie)
    form = {"side": "buy", "type": "market", "quantity": 5, "time_in_force": "GTC"}
    url = reverse("market_order_submit", args=[world.instrument.symbol])

    answer = client.post(url, form, headers={"HX-Request": "true"})

    html = answer.content.decode()
    assert answer.status_code == 200
    assert f'<p class="order-reason">{GERMAN}</p>' in html

    # Without JavaScript: the message after the redirect.
    page = client.post(url, {**form, "quantity": 1}, follow=True).content.decode()
    assert "gestrichen" in page


def test_an_order_that_ended_normally_has_no_reason_text(world):
    order = services.order_submit(user=world.charlie, instrument=world.instrument, side="buy", price=D("50.00"),
                                  quantity=1).order

    assert (order.status, order.reason_text) == ("filled", "")


def test_every_reason_an_order_can_keep_has_a_sentence():
    # quantity_not_above_filled refuses an amend (an error), it is never kept on an order.
    kept = {reason.value for reason in matching.Reason} - {matching.Reason.QUANTITY_NOT_ABOVE_FILLED.value}
    kept |= {services.REASON_CANCELLED, services.REASON_EXPIRED, services.REASON_INSTRUMENT_CLOSED,
             services.REASON_CANNOT_DELIVER}

    assert kept <= set(ORDER_REASON_TEXTS)
    for code in kept:
        assert Order(reason=code, price=D("1.00")).reason_text
