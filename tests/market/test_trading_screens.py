"""The trading screens: markets overview, trading screen (order entry,
own open orders with cancel and amend, own fills), portfolio, trading area.

Alice's organisation sells, Charlie's buys; Bob trades in Alice's
organisation; Charlie must never see (or touch) Alice's orders."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import KycCase, User
from clearing import fees
from market import calendar
from market.models import Instrument, Order, OrderStatus, Side
from market.services.orders import order_submit
from tests.factories import (
    GpuClassFactory,
    HourInstrumentFactory,
    MembershipFactory,
    OrganisationFactory,
    UserFactory,
    delivery_hour,
)
from tests.market.trading_setup import TradingWorld, ensure_zones, trading_world

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


def instrument_of(code: str, label: str, zone_code: str = "DE", days_ahead: int = 1) -> Instrument:
    ensure_zones(zone_code)
    return HourInstrumentFactory(gpu_class=GpuClassFactory(code=code), zone_code=zone_code,
                                 hour=delivery_hour(days_ahead, label), opens_at=timezone.now() - timedelta(hours=1))


def resting(instrument: Instrument, user: User, side: str, price: str, quantity: int = 1) -> Order:
    """A resting order written straight into the book (the overview only reads it)."""
    return Order.objects.create(instrument=instrument, organisation=user.membership.organisation, placed_by=user,
                                side=side, price=D(price), quantity=quantity, priority=Order.objects.count() + 1)


def grid_cell(html: str, symbol: str) -> dict[str, str]:
    """The text of each field of the grid cell of ``symbol`` (tags stripped)."""
    cell = re.search(rf'<td class="cell[^"]*" data-symbol="{re.escape(symbol)}">(.*?)</td>', html, re.S)
    assert cell, f"no cell for {symbol}"
    fields = re.findall(r'data-field="(\w+)">(.*?)(?=<span[^>]*data-field=|<span class="cell-meta|</a>)', cell.group(1),
                        re.S)
    return {name: " ".join(re.sub(r"<[^>]+>", " ", text).split()) for name, text in fields}


def grid_hours(html: str) -> list[str]:
    """The rows' delivery hours, top to bottom."""
    return re.findall(r'<th scope="row" class="hour-col nowrap">\s*<span class="hour">([\d:]+)</span>', html)


def grid_classes(html: str) -> list[str]:
    return re.findall(r'<th scope="col" class="class-col">(.*?)</th>', html)


def test_grid_cell_shows_bid_ask_last_high_low_and_volume_in_german_format(world: TradingWorld) -> None:
    sell(world, 2, "2.50")
    sell(world, 2, "2.60")
    sell(world, 10, "2.75")
    buy(world, 4, "2.60")  # trades 2 at 2.50, then 2 at 2.60
    buy(world, 2, "2.40")  # rests as the best bid
    html = client_for(world.charlie).get(reverse("market_overview")).content.decode()
    assert grid_cell(html, world.instrument.symbol) == {
        "bid": "Geld 2,40", "ask": "Brief 2,75", "last": "L 2,60", "range": "H/T 2,60/2,50", "volume": "Vol 4",
    }
    assert grid_classes(html) == ["H100"] and grid_hours(html) == ["14:00"]


def test_grid_hides_empty_instruments_unless_asked_and_keeps_to_its_zone(world: TradingWorld) -> None:
    a100_15 = instrument_of("A100", "15")
    h100_16 = instrument_of("H100", "16")
    in_bavaria = instrument_of("H100", "14", zone_code="DE-BY")
    resting(a100_15, world.charlie, Side.BUY, "1.90")
    resting(in_bavaria, world.charlie, Side.BUY, "2.10")
    client = client_for(world.charlie)

    html = client.get(reverse("market_overview")).content.decode()  # zone DE, the first day with hours
    assert a100_15.symbol in html
    for hidden in (world.instrument, h100_16, in_bavaria):
        assert hidden.symbol not in html
    # A100 has the only quote: the empty H100 column and the empty hours are left out.
    assert grid_classes(html) == ["A100"] and grid_hours(html) == ["15:00"]
    assert "3 handelbare Instrumente, 2 ohne Orders oder Geschäfte ausgeblendet." in html

    everything = client.get(reverse("market_overview"), {"show_empty": "on"}).content.decode()
    assert grid_classes(everything) == ["A100", "H100"] and grid_hours(everything) == ["14:00", "15:00", "16:00"]
    assert grid_cell(everything, h100_16.symbol)["bid"] == "Geld –"
    assert in_bavaria.symbol not in everything

    bavaria = client.get(reverse("market_overview"), {"zone": "DE-BY"}, **HTMX)
    html = bavaria.content.decode()
    assert "<html" not in html and 'id="overview-grid"' in html  # htmx: the grid only
    assert grid_cell(html, in_bavaria.symbol)["bid"] == "Geld 2,10"
    assert a100_15.symbol not in html


def test_grid_sorts_hours_by_volume_today(world: TradingWorld) -> None:
    later = instrument_of("H100", "17")
    sell(world, 3, "2.50")
    buy(world, 1, "2.50")  # 14:00 trades 1 GPU
    order_submit(user=world.alice, instrument=later, side=Side.SELL, quantity=5, price=D("2.50"))
    order_submit(user=world.charlie, instrument=later, side=Side.BUY, quantity=5, price=D("2.50"))  # 17:00: 5
    a100 = instrument_of("A100", "20")
    resting(a100, world.charlie, Side.BUY, "1.50")  # quoted, never traded
    client = client_for(world.charlie)

    assert grid_hours(client.get(reverse("market_overview")).content.decode()) == ["14:00", "17:00", "20:00"]
    by_volume = client.get(reverse("market_overview"), {"sort": "volume"}).content.decode()
    assert grid_hours(by_volume) == ["17:00", "14:00", "20:00"]
    # By one class's volume: the hours without an A100 instrument go last.
    by_a100 = client.get(reverse("market_overview"), {"sort": "volume-A100"}).content.decode()
    assert grid_hours(by_a100) == ["20:00", "14:00", "17:00"]
    # A sort that is no choice falls back to the delivery hour.
    assert grid_hours(client.get(reverse("market_overview"), {"sort": "price"}).content.decode()) == [
        "14:00", "17:00", "20:00"]


def test_grid_shows_today_and_tomorrow_on_request(world: TradingWorld) -> None:
    sell(world)
    client = client_for(world.charlie)
    tomorrow = world.instrument.delivery_start.astimezone(calendar.BERLIN).date()
    today = tomorrow - timedelta(days=1)
    html = client.get(reverse("market_overview")).content.decode()
    assert world.instrument.symbol in html  # nothing left today: tomorrow is shown
    assert f'<option value="{tomorrow.isoformat()}" selected>' in html
    today_html = client.get(reverse("market_overview"), {"delivery_date": today.isoformat()}).content.decode()
    assert world.instrument.symbol not in today_html


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


# --- cost preview -----------------------------------------------------------------------


def preview(user: User, world: TradingWorld, **values: str) -> str:
    response = client_for(user).get(reverse("market_order_preview", args=[world.instrument.symbol]),
                                    order_form(**values), **HTMX)
    assert response.status_code == 200
    return response.content.decode()


def costs(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-cost="(\w+)">(.*?) EUR</dd>', html))


def test_preview_of_a_buy_shows_value_maximum_fee_and_the_reservation(world: TradingWorld) -> None:
    html = preview(world.charlie, world, price="2,50", quantity="4")
    # 4 GPUs x 1 hour x 2.50; fee at most 4 x (0.02 + 0.01 VAT) at the taker rate 0.015.
    assert costs(html) == {"value": "10,00", "fee": "0,12", "reserved": "10,12"}
    # The very functions the order service reserves with.
    assert fees.buy_reservation(D("2.50"), 4, 1, D("0.015")) == D("10.12")
    assert "0,015" in html and "0,005" in html  # the rates the order keeps
    buy(world, 4, "2.50")
    reserved = Order.objects.get(organisation=world.org_c).reserved_amount
    assert reserved == D("10.12")


def test_preview_warns_with_the_amounts_when_cash_is_short(world: TradingWorld) -> None:
    html = preview(world.charlie, world, price="2,50", quantity="50000")
    assert costs(html)["reserved"] == "126.500,00"
    assert "Nicht genug Guthaben: verfügbar 100.000,00 EUR, benötigt 126.500,00 EUR." in html


def test_preview_of_a_sell_shows_the_least_it_receives_and_reserves_no_cash(world: TradingWorld) -> None:
    html = preview(world.alice, world, side="sell", price="3,00", quantity="10")
    assert costs(html) == {"value": "30,00", "fee": "0,30", "proceeds": "29,70"}
    assert "Nicht genug" not in html


def test_preview_of_a_market_order_is_at_its_protection_price(world: TradingWorld) -> None:
    sell(world, 2, "2.50")
    buy(world, 1, "2.50")  # the reference price: the last trade, 2.50
    html = preview(world.charlie, world, type="market", price="", quantity="4")
    assert "3,75" in html  # 2.50 + 50 %
    assert costs(html) == {"value": "15,00", "fee": "0,12", "reserved": "15,12"}


@pytest.mark.parametrize(("values", "note"), [
    ({"quantity": ""}, "Geben Sie die Menge ein"),
    ({"price": ""}, "Geben Sie den Limitpreis ein"),
    ({"price": "2,505"}, "Vielfaches der Tickgröße"),
    ({"price": "250,00"}, "zwischen 0,00 und 200,00"),
    ({"side": "sell", "price": "0,02"}, "mindestens 0,03"),
])
def test_preview_says_what_is_missing(world: TradingWorld, values: dict[str, str], note: str) -> None:
    html = preview(world.charlie, world, **values)
    assert "data-cost=" not in html
    assert note in html


def test_preview_needs_a_login(world: TradingWorld) -> None:
    response = Client().get(reverse("market_order_preview", args=[world.instrument.symbol]), order_form())
    assert response.status_code == 302


def test_the_order_status_box_names_the_order_for_live_updates(world: TradingWorld) -> None:
    response = client_for(world.charlie).post(
        reverse("market_order_submit", args=[world.instrument.symbol]), order_form(price="2,40", quantity="4"),
        **HTMX)
    order = Order.objects.get(organisation=world.org_c)
    html = response.content.decode()
    assert f'data-order-status data-order-id="{order.pk}"' in html
    assert re.search(r'data-order-field="status">offen<', html)
    assert re.search(r'data-order-field="filled">0<', html)
    assert "alert-success order-status" in html


def test_an_order_that_ended_unfilled_is_not_shown_as_a_success(world: TradingWorld) -> None:
    # An IOC buy with nothing to trade against is cancelled at once: a warning, with the reason.
    response = client_for(world.charlie).post(
        reverse("market_order_submit", args=[world.instrument.symbol]),
        order_form(price="2,40", quantity="4", time_in_force="IOC"), **HTMX)
    html = response.content.decode()
    assert "alert-warning order-status" in html and "alert-success order-status" not in html
    assert re.search(r'data-order-field="status">gestrichen<', html)


# --- all open orders ----------------------------------------------------------------------


def test_open_orders_page_lists_the_organisations_orders_in_every_instrument(world: TradingWorld) -> None:
    later = instrument_of("H100", "18")
    mine = [sell(world, 3, "2.70"),
            order_submit(user=world.bob, instrument=later, side=Side.SELL, quantity=2, price=D("2.80")).order]
    charlies = buy(world, 1, "2.10")
    done = sell(world, 1, "2.10")  # trades with Charlie's bid at once: not open
    for user in (world.alice, world.bob):  # colleagues see the organisation's orders
        html = client_for(user).get(reverse("market_orders")).content.decode()
        ids = [int(i) for i in re.findall(r'<tr id="all-order-(\d+)"', html)]
        assert ids == [order.pk for order in mine]  # by delivery hour
        assert world.instrument.symbol in html and later.symbol in html
        assert f'id="all-order-{done.pk}"' not in html
    charlie = client_for(world.charlie).get(reverse("market_orders")).content.decode()
    assert "2,70" not in charlie and "2,80" not in charlie and later.symbol not in charlie
    assert re.findall(r'<tr id="all-order-(\d+)"', charlie) == []  # his bid was filled
    assert Order.objects.get(pk=charlies.pk).status == OrderStatus.FILLED


def test_open_orders_page_cancels_and_answers_the_list(world: TradingWorld) -> None:
    order = sell(world, 3, "2.70")
    keep = sell(world, 2, "2.90")
    client = client_for(world.alice)
    response = client.post(reverse("market_order_cancel", args=[order.pk]), {"back": "orders"}, **HTMX)
    html = response.content.decode()
    assert response["HX-Retarget"] == "#all-orders"
    assert f'id="all-order-{order.pk}"' not in html and f'id="all-order-{keep.pk}"' in html
    assert 'hx-swap-oob="true"' in html and f"Order {order.pk} ist gelöscht." in html
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED

    without_js = client.post(reverse("market_order_cancel", args=[keep.pk]), {"back": "orders"})
    assert without_js.status_code == 302 and without_js["Location"] == reverse("market_orders")


def test_charlie_cannot_cancel_alices_order_from_the_open_orders_page(world: TradingWorld) -> None:
    order = sell(world, 3, "2.70")
    response = client_for(world.charlie).post(reverse("market_order_cancel", args=[order.pk]), {"back": "orders"},
                                              **HTMX)
    assert response.status_code == 404
    assert Order.objects.get(pk=order.pk).status == OrderStatus.OPEN


def test_open_orders_page_for_viewers_observers_and_strangers(world: TradingWorld) -> None:
    sell(world, 3, "2.70")
    viewer = UserFactory(email="vera@example.com")
    MembershipFactory(user=viewer, organisation=world.org_a, is_viewer=True, is_trader=False, is_owner=False)
    html = client_for(viewer).get(reverse("market_orders")).content.decode()
    assert "2,70" in html and "market_order_cancel" not in html and "/cancel/" not in html  # reads, never cancels

    observer = UserFactory(email="olli@ministerium.example")
    MembershipFactory(user=observer, organisation=OrganisationFactory(kind="observer"), is_owner=True)
    assert client_for(observer).get(reverse("market_orders")).status_code == 403
    assert client_for(UserFactory()).get(reverse("market_orders")).status_code == 403
    assert Client().get(reverse("market_orders")).status_code == 302
