"""The trading screens: markets overview, trading screen (order entry,
own open orders with cancel and amend, own fills), portfolio, trading area.

Alice's organisation sells, Charlie's buys; Bob trades in Alice's
organisation; Charlie must never see (or touch) Alice's orders."""

import re
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts.models import KycCase, User
from market.models import Order, OrderStatus, Side
from market.services.orders import order_submit
from tests.factories import GpuClassFactory, MembershipFactory, OrganisationFactory, UserFactory
from tests.market.trading_setup import TradingWorld, open_instrument, trading_world

pytestmark = pytest.mark.django_db

D = Decimal
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def world() -> TradingWorld:
    return trading_world()


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def english_client(user: User) -> Client:
    """The service's messages are matched in English (decimal point in the inputs, too)."""
    client = client_for(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def sell(world: TradingWorld, quantity: int = 10, price: str = "2.50", user: User | None = None) -> Order:
    return order_submit(user=user or world.alice, instrument=world.instrument, side=Side.SELL, quantity=quantity,
                        price=D(price)).order


def buy(world: TradingWorld, quantity: int = 4, price: str = "2.50") -> Order:
    return order_submit(user=world.charlie, instrument=world.instrument, side=Side.BUY, quantity=quantity,
                        price=D(price)).order


def field_errors(html: str, name: str) -> list[str]:
    """The error texts shown in the form field holding the input ``name``."""
    for block in html.split('<div class="field')[1:]:
        if f'name="{name}"' in block:
            return re.findall(r'<p class="field-error">(.*?)</p>', block, re.S)
    return []


def order_form(**values: str) -> dict[str, str]:
    return {"side": "buy", "type": "limit", "price": "2,50", "quantity": "4", "time_in_force": "GTC", **values}


# --- markets overview -------------------------------------------------------------------


def test_overview_shows_bid_ask_last_and_volume_in_german_format(world: TradingWorld) -> None:
    sell(world, 10, "2.55")
    sell(world, 3, "2.50")
    buy(world, 3, "2.50")  # trades 3 at 2.50
    buy(world, 2, "2.40")  # rests as the best bid
    html = client_for(world.charlie).get(reverse("market_overview")).content.decode()
    link = f'<a class="instrument-link" href="/markets/{world.instrument.symbol}/"'
    row = re.search(rf"<tr>\s*<td class=\"nowrap\">{re.escape(link)}.*?</tr>", html, re.S)
    assert row, html
    cells = re.findall(r'<td class="num[^"]*">(.*?)</td>', row.group(0))
    assert cells == ["2,40", "2,55", "2,50", "3"]


def test_overview_filters_and_answers_htmx_with_the_table_only(world: TradingWorld) -> None:
    other = open_instrument(label="15", zone_code="DE-BY")
    a100 = open_instrument(label="16")
    a100.gpu_class = GpuClassFactory(code="A100")
    a100.symbol = a100.symbol.replace("H100", "A100")
    a100.save()
    client = client_for(world.charlie)

    everything = client.get(reverse("market_overview")).content.decode()
    assert all(i.symbol in everything for i in (world.instrument, other, a100))
    filtered = client.get(reverse("market_overview"), {"gpu_class": "H100", "zone": "DE-BY"}, **HTMX)
    html = filtered.content.decode()
    assert other.symbol in html
    assert world.instrument.symbol not in html and a100.symbol not in html
    assert "<html" not in html and 'id="overview-table"' in html

    none_active = client.get(reverse("market_overview"), {"active": "on"}).content.decode()
    assert world.instrument.symbol not in none_active
    sell(world)
    active = client.get(reverse("market_overview"), {"active": "on"}).content.decode()
    assert world.instrument.symbol in active and other.symbol not in active


def test_screens_need_a_login(world: TradingWorld) -> None:
    anonymous = Client()
    for url in (reverse("market_overview"), reverse("market_instrument", args=[world.instrument.symbol]),
                reverse("portfolio")):
        response = anonymous.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- trading screen ---------------------------------------------------------------------


def test_trading_screen_shows_the_book_and_the_live_streams(world: TradingWorld) -> None:
    sell(world, 10, "2.60")
    sell(world, 4, "2.50")
    symbol = world.instrument.symbol
    response = client_for(world.charlie).get(reverse("market_instrument", args=[symbol]))
    html = response.content.decode()
    assert response.status_code == 200
    asks = re.search(r'<tbody data-side="asks">(.*?)</tbody>', html, re.S).group(1)
    # Highest ask first, the best ask next to the spread; padded to 10 rows.
    assert re.findall(r'<td class="num price">(.*?)</td>', asks) == ["2,60", "2,50"]
    assert asks.count("<tr") == 10
    assert f'ws-connect="/ws/book/{symbol}/"' in html
    assert f'ws-connect="/ws/trades/{symbol}/"' in html
    assert 'ws-connect="/ws/private/"' in html
    assert "vendor/plotly.min.js" in html and "js/trading.js" in html
    assert 'id="order-form"' in html


def test_unknown_instrument_is_404(world: TradingWorld) -> None:
    assert client_for(world.charlie).get("/markets/H100.DE.1999-01-01T00/").status_code == 404


def test_looking_needs_no_trading_gate_but_order_entry_does(world: TradingWorld) -> None:
    pending = OrganisationFactory(kyc__status=KycCase.Status.SUBMITTED)
    dora = UserFactory(email="dora@example.com")
    MembershipFactory(user=dora, organisation=pending, is_trader=True)
    client = client_for(dora)
    url = reverse("market_instrument", args=[world.instrument.symbol])

    html = client.get(url).content.decode()
    assert 'id="order-form"' not in html
    assert "KYC" in html
    assert 'ws-connect="/ws/private/"' in html  # her own (empty) orders are still hers to see

    response = client.post(reverse("market_order_submit", args=[world.instrument.symbol]), order_form(), **HTMX)
    assert response.status_code == 200
    assert not Order.objects.filter(organisation=pending).exists()


def test_order_entry_with_htmx_places_the_order_and_signals_the_own_parts(world: TradingWorld) -> None:
    sell(world, 10, "2.50")
    response = client_for(world.charlie).post(
        reverse("market_order_submit", args=[world.instrument.symbol]), order_form(price="2,50", quantity="4"),
        **HTMX)
    assert response.status_code == 200
    order = Order.objects.get(organisation=world.org_c)
    assert (order.side, order.price, order.quantity, order.status) == ("buy", D("2.50"), 4, OrderStatus.FILLED)
    assert "rb:orders-changed" in response["HX-Trigger"]
    html = response.content.decode()
    assert 'id="order-form"' in html and "alert-success" in html
    assert "<html" not in html


def test_order_entry_without_javascript_redirects(world: TradingWorld) -> None:
    client = client_for(world.alice)
    response = client.post(reverse("market_order_submit", args=[world.instrument.symbol]),
                           order_form(side="sell", price="3,10", quantity="2"))
    assert response.status_code == 302
    assert response["Location"] == reverse("market_instrument", args=[world.instrument.symbol])
    assert Order.objects.get(organisation=world.org_a).price == D("3.10")


@pytest.mark.parametrize(
    ("values", "field", "code_text"),
    [
        ({"price": "500.00"}, "price", "between"),  # price_out_of_bounds
        ({"price": "2.505"}, "price", "tick"),  # tick_size
        ({"price": "199.00", "quantity": "900000"}, "quantity", "cash"),  # insufficient_funds, names no field
        ({"price": ""}, "price", "price"),  # invalid, names the field
        ({"time_in_force": "GTD"}, "expires_at", "expiry"),
    ],
)
def test_order_service_errors_show_at_the_field(world: TradingWorld, values: dict[str, str], field: str,
                                                code_text: str) -> None:
    response = english_client(world.charlie).post(reverse("market_order_submit", args=[world.instrument.symbol]),
                                                  order_form(**{"price": "2.50", **values}), **HTMX)
    errors = field_errors(response.content.decode(), field)
    assert errors, response.content.decode()
    assert code_text in " ".join(errors).lower()
    assert not Order.objects.exists()


def test_open_orders_are_the_organisations_own(world: TradingWorld) -> None:
    alices = sell(world, 10, "2.70")
    url = reverse("market_open_orders", args=[world.instrument.symbol])
    for colleague in (world.alice, world.bob):
        assert f'id="order-{alices.pk}"' in client_for(colleague).get(url, **HTMX).content.decode()
    charlie = client_for(world.charlie)
    assert f'id="order-{alices.pk}"' not in charlie.get(url, **HTMX).content.decode()
    page = charlie.get(reverse("market_instrument", args=[world.instrument.symbol])).content.decode()
    assert f'id="order-{alices.pk}"' not in page


def test_charlie_cannot_cancel_or_amend_alices_order(world: TradingWorld) -> None:
    alices = sell(world, 10, "2.70")
    charlie = client_for(world.charlie)
    assert charlie.post(reverse("market_order_cancel", args=[alices.pk]), **HTMX).status_code == 404
    assert charlie.get(reverse("market_order_amend", args=[alices.pk]), **HTMX).status_code == 404
    response = charlie.post(reverse("market_order_amend", args=[alices.pk]), {"quantity": "1", "price": "2,70"},
                            **HTMX)
    assert response.status_code == 404
    alices.refresh_from_db()
    assert (alices.status, alices.quantity) == (OrderStatus.OPEN, 10)


def test_cancel_from_the_open_orders(world: TradingWorld) -> None:
    order = sell(world, 10, "2.70")
    response = client_for(world.bob).post(reverse("market_order_cancel", args=[order.pk]), **HTMX)
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#open-orders"
    html = response.content.decode()
    assert 'id="open-orders"' in html and f'id="order-{order.pk}"' not in html
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED


def test_cancelling_twice_says_why(world: TradingWorld) -> None:
    order = sell(world, 10, "2.70")
    client = client_for(world.alice)
    client.post(reverse("market_order_cancel", args=[order.pk]), **HTMX)
    html = client.post(reverse("market_order_cancel", args=[order.pk]), **HTMX).content.decode()
    assert "alert-error" in html


def test_amend_quantity_and_price_from_the_row(world: TradingWorld) -> None:
    order = sell(world, 10, "2.70")
    client = client_for(world.alice)
    url = reverse("market_order_amend", args=[order.pk])
    row = client.get(url, **HTMX).content.decode()
    assert 'class="is-editing"' in row
    assert 'name="quantity" value="10"' in row and 'value="2,70"' in row

    response = client.post(url, {"quantity": "6", "price": "2,70"}, **HTMX)
    assert response["HX-Retarget"] == "#open-orders"
    order.refresh_from_db()
    assert (order.quantity, order.price) == (6, D("2.70"))

    client.post(url, {"quantity": "6", "price": "2,65"}, **HTMX)
    order.refresh_from_db()
    assert order.price == D("2.65")


def test_amend_errors_show_in_the_row(world: TradingWorld) -> None:
    order = sell(world, 10, "2.50")
    buy(world, 4, "2.50")  # 4 of Alice's 10 filled
    client = english_client(world.alice)
    url = reverse("market_order_amend", args=[order.pk])

    below_filled = client.post(url, {"quantity": "4", "price": "2.50"}, **HTMX).content.decode()
    assert 'class="is-editing"' in below_filled
    assert "filled" in " ".join(field_errors(below_filled, "quantity")).lower()

    off_tick = client.post(url, {"quantity": "10", "price": "2.555"}, **HTMX).content.decode()
    assert "tick" in " ".join(field_errors(off_tick, "price")).lower()

    unchanged = client.post(url, {"quantity": "10", "price": "2.50"}, **HTMX).content.decode()
    assert "alert-error" in unchanged
    order.refresh_from_db()
    assert (order.quantity, order.price) == (10, D("2.50"))


def test_fills_show_each_side_its_own_view(world: TradingWorld) -> None:
    sell(world, 10, "2.50")
    buy(world, 4, "2.50")
    url = reverse("market_fills", args=[world.instrument.symbol])
    charlie = client_for(world.charlie).get(url, **HTMX).content.decode()
    alice = client_for(world.alice).get(url, **HTMX).content.decode()
    assert "side-tag-buy" in charlie and "side-tag-sell" not in charlie
    assert "side-tag-sell" in alice and "side-tag-buy" not in alice
    # 4 GPUs x 2.50 x 1 hour
    assert '<td class="num">10,00</td>' in charlie


def test_trades_partial_carries_the_tape_and_the_chart_data(world: TradingWorld) -> None:
    sell(world, 10, "2.50")
    buy(world, 4, "2.50")
    html = client_for(world.charlie).get(reverse("market_trades", args=[world.instrument.symbol]), **HTMX)
    text = html.content.decode()
    assert '<td class="num price">2,50</td>' in text
    assert 'id="trade-data"' in text and '"aggressor": "buy"' in text
    assert 'data-volume-today="4"' in text


# --- portfolio and trading area ---------------------------------------------------------


def test_portfolio_shows_cash_and_positions(world: TradingWorld) -> None:
    sell(world, 10, "2.50")
    buy(world, 4, "2.50")
    html = client_for(world.charlie).get(reverse("portfolio")).content.decode()
    assert f'href="/markets/{world.instrument.symbol}/"' in html
    assert re.search(r'<span class="pos-long">4</span>', html)
    # 100,000.00 - 10.00 traded - the taker fee (0.06 at 0.015 x 4 GPUh, rounded) in German format.
    assert re.search(r"99\.98\d,\d\d <small>EUR</small>", html)

    alice = client_for(world.alice).get(reverse("portfolio")).content.decode()
    assert '<span class="pos-short">-4</span>' in alice


def portfolio_links(user: User) -> list[str]:
    """The hrefs of the portfolio's "delivery and money" links (the header nav has no room for them)."""
    html = client_for(user).get(reverse("portfolio")).content.decode()
    block = re.search(r'<nav class="card portfolio-links".*?</nav>', html, re.S)
    assert block, html
    return re.findall(r'<a href="([^"]+)"', block.group(0))


def test_portfolio_links_to_deliveries_and_statements_and_owners_to_invoices_and_withdrawals(
        world: TradingWorld) -> None:
    owner_links = portfolio_links(world.alice)
    assert owner_links == [reverse("deliveries"), reverse("statements"), reverse("invoices"), reverse("withdrawals")]
    # Bob trades but does not own: invoices are owners' pages (404 for him), and only owners request withdrawals.
    assert portfolio_links(world.bob) == ["/deliveries/", "/statements/"]
    assert client_for(world.bob).get(reverse("invoices")).status_code == 404
    for href in owner_links:
        assert client_for(world.alice).get(href).status_code == 200, href


def test_portfolio_needs_a_member_organisation(db: None) -> None:
    loner = UserFactory(email="loner@example.com")
    assert client_for(loner).get(reverse("portfolio")).status_code == 403


def test_trading_area_and_navigation_lead_to_markets_and_portfolio(world: TradingWorld) -> None:
    html = client_for(world.charlie).get(reverse("trading_home")).content.decode()
    main = html.split('<main id="main"', 1)[1]
    assert 'href="/markets/"' in main and 'href="/portfolio/"' in main
    nav = re.search(r'<nav class="main-nav".*?</nav>', html, re.S).group(0)
    assert 'href="/markets/"' in nav and 'href="/portfolio/"' in nav

    loner_nav = re.search(r'<nav class="main-nav".*?</nav>', client_for(UserFactory()).get("/").content.decode(),
                          re.S).group(0)
    # Without an organisation there is nothing to trade yet: the nav leads to registering one.
    assert 'href="/markets/"' not in loner_nav and 'href="/portfolio/"' not in loner_nav
    assert 'href="/organisation/"' in loner_nav
