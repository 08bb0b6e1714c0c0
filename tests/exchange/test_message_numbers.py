"""Refusals give their amounts, in the reader's number format (issue 8,
item 6): "verfügbar 12,40 EUR, benötigt 15,78 EUR", "0,03 EUR/GPUh"; in
English "available 12.40 EUR". The API keeps its error shape; only the
``detail`` text changes. One helper formats them all (exchange.formats)."""

from decimal import Decimal as D

import pytest
from django.conf import settings
from django.utils import translation
from rest_framework.test import APIClient

from clearing.services import cash_release
from exchange.errors import ExchangeError
from exchange.formats import number
from market.services.orders import order_submit
from tests.market.orders_world import World, make_world

pytestmark = pytest.mark.django_db


def refusal(world: World, **order) -> ExchangeError:  # type: ignore[no-untyped-def]
    with pytest.raises(ExchangeError) as caught:
        order_submit(user=world.charlie, instrument=world.instrument, **order)
    return caught.value


@pytest.mark.parametrize(("language", "money", "count", "rate"),
                         [("de", "1.234,56", "1.000.000", "0,015"), ("en", "1,234.56", "1,000,000", "0.015")])
def test_the_helper_formats_for_the_active_language(language, money, count, rate):
    with translation.override(language):
        assert number(D("1234.56")) == money
        assert number(1_000_000, 0) == count
        assert number(D("0.015"), None) == rate


def test_a_buy_beyond_the_cash_says_what_is_available_and_what_it_needs():
    world = make_world(cash=D("12.40"))

    # 2.60 x 6 GPUs x 1 hour = 15.60, plus the maximum fee 6 x 0.03 = 15.78.
    with translation.override("de"):
        german = refusal(world, side="buy", type="limit", price=D("2.60"), quantity=6)
    with translation.override("en"):
        english = refusal(world, side="buy", type="limit", price=D("2.60"), quantity=6)

    assert german.code == english.code == "insufficient_funds"
    assert german.detail == "Nicht genug verfügbares Guthaben: verfügbar 12,40 EUR, benötigt 15,78 EUR."
    assert english.detail == "Not enough cash available: available 12.40 EUR, needed 15.78 EUR."


def test_large_amounts_get_thousands_separators():
    world = make_world(cash=D("1000.00"))

    with translation.override("de"):
        error = refusal(world, side="buy", type="limit", price=D("12.00"), quantity=100)

    assert error.detail == "Nicht genug verfügbares Guthaben: verfügbar 1.000,00 EUR, benötigt 1.203,00 EUR."


def test_a_release_beyond_the_reservation_names_the_account_and_the_amounts():
    world = make_world()

    with translation.override("de"), pytest.raises(ExchangeError) as caught:
        cash_release(organisation=world.org_c, amount=D("15.72"), reference="order:1")

    assert caught.value.detail == (
        "Der Saldo des Kontos reserviertes Guthaben reicht dafür nicht aus: Saldo 0,00 EUR, benötigt 15,72 EUR.")


def test_price_refusals_use_the_readers_decimal_separator():
    world = make_world()

    with translation.override("de"):
        tick = refusal(world, side="buy", type="limit", price=D("12.345"), quantity=1)
        bounds = refusal(world, side="buy", type="limit", price=D("250.00"), quantity=1)
        floor = order_submit_refusal_for_seller(world, price=D("0.01"))
        quantity = refusal(world, side="buy", type="limit", price=D("1.00"), quantity=2_000_000)

    assert tick.fields == {"price": ["Der Preis muss ein Vielfaches der Tickgröße 0,01 EUR/GPUh sein."]}
    assert "0,00 und 200,00 EUR/GPUh" in bounds.detail
    assert "0,03 EUR/GPUh" in floor.detail
    assert "1.000.000" in quantity.fields["quantity"][0]


def order_submit_refusal_for_seller(world: World, *, price: D) -> ExchangeError:
    with pytest.raises(ExchangeError) as caught:
        order_submit(user=world.alice, instrument=world.instrument, side="sell", type="limit", price=price,
                     quantity=1)
    return caught.value


def test_the_api_keeps_its_error_shape_with_the_new_detail():
    world = make_world(cash=D("12.40"))
    client = APIClient()
    client.force_authenticate(world.charlie)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    answer = client.post("/api/v1/orders/", {"instrument": world.instrument.symbol, "side": "buy", "type": "limit",
                                             "price": "2.60", "quantity": 6, "time_in_force": "GTC"}, format="json")

    assert answer.status_code == 409
    assert answer.json() == {"code": "insufficient_funds", "fields": answer.json()["fields"],
                             "detail": "Not enough cash available: available 12.40 EUR, needed 15.78 EUR."}
