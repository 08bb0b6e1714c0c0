"""Issue 8, item 5, in real Chromium against daphne (HTTP + WebSockets): a
trader who owns a market maker mass-cancels in one hour on the trading
screen, then everything on the open-orders page, engages the kill switch
(the order form then says why it takes nothing) and lifts it, and reads the
order events, with the CSV download. Then the same controls on a phone at
390 px. (The grid, book click, cost preview and fill notification of the
same journey are tests/browser/test_markets_journey.py.)

Screenshots at 1440 and 390 px under test-artifacts/test_controls_journey*/."""

import csv
import io
from decimal import Decimal

import pytest
from django.conf import global_settings
from playwright.sync_api import Page, expect

from clearing.services import cash_deposit_book
from market.models import KillSwitch, Order, Side
from market.services.orders import order_submit
from tests.browser.conftest import Shots
from tests.browser.test_markets_journey import PASSWORD, organisation, sign_in, two_open_hours
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal
MAKER = "quotes@taktgeber.example"


def settled(page: Page) -> Page:
    """Wait until the page's first refresh of its lists (when its private
    stream opens, static/js/notify.js) has come back: a list swapped while a
    click's request is on its way would drop that request's answer."""
    page.wait_for_load_state("networkidle")
    return page


def accept_confirmations(page: Page) -> None:
    """hx-confirm asks with the browser's confirm(); the trader says yes."""
    page.on("dialog", lambda dialog: dialog.accept())


def test_controls_journey(new_page, asgi_live_server, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    first, second = two_open_hours()
    operator = UserFactory(email="betrieb@rechenboerse.example", is_staff=True)
    maker_org, maker = organisation("Taktgeber Markets GmbH", MAKER)
    cash_deposit_book(operator=operator, organisation=maker_org, amount=D("25000.00"), bank_reference="TEST-MAKER")
    quotes = [order_submit(user=maker, instrument=first, side=Side.BUY, quantity=4, price=D("2.10")).order,
              order_submit(user=maker, instrument=first, side=Side.BUY, quantity=6, price=D("2.05")).order,
              order_submit(user=maker, instrument=second, side=Side.BUY, quantity=3, price=D("2.20")).order]
    assert PASSWORD  # the demo password of the markets journey logs in here too

    desk = new_page(asgi_live_server.url, width=1440, height=1000)
    accept_confirmations(desk)
    shots = Shots(desk, "test_controls_journey")
    sign_in(desk, MAKER)

    # 1. The trading screen of the first hour: two bids, cancelled at once.
    desk.goto(f"/markets/{first.symbol}/")
    settled(desk)
    own = desk.locator("#open-orders")
    expect(own.locator("tbody tr")).to_have_count(2)
    shots("trading-screen-two-bids")
    own.get_by_role("button", name="Alle in diesem Instrument löschen").click()
    expect(own).to_contain_text("2 Orders sind gelöscht.")
    expect(own).to_contain_text("Keine offenen Orders in diesem Instrument.")
    shots("trading-screen-cancelled-in-instrument")
    assert Order.objects.get(pk=quotes[2].pk).status == "open"  # the other hour's bid stays

    # 2. The open orders page: the rest, everything at once.
    desk.goto("/markets/orders/")
    settled(desk)
    expect(desk.locator("#all-orders tbody tr")).to_have_count(1)
    desk.get_by_test_id("cancel-all").click()
    expect(desk.locator("#messages")).to_contain_text("1 Order ist gelöscht.")
    expect(desk.locator("#all-orders")).to_contain_text("Keine offenen Orders.")
    shots("open-orders-all-cancelled")

    # 3. The kill switch: on, the order form refuses, off again.
    order_submit(user=maker, instrument=second, side=Side.BUY, quantity=2, price=D("2.15"))
    desk.goto("/markets/orders/")
    desk.locator("#kill-switch-reason").fill("Quote-Algorithmus prüfen")
    desk.get_by_test_id("kill-switch-engage").click()
    expect(desk.get_by_test_id("kill-switch")).to_contain_text("Quote-Algorithmus prüfen")
    expect(desk.locator("#messages")).to_contain_text("1 Order ist gelöscht.")
    assert not Order.objects.filter(organisation=maker_org, status__in=["open", "partially_filled"]).exists()
    shots("kill-switch-on")
    desk.goto(f"/markets/{second.symbol}/")
    expect(desk.locator("main")).to_contain_text("Der Not-Aus Ihrer Organisation ist ausgelöst")
    shots("order-form-refused-by-kill-switch")
    desk.goto("/markets/orders/")
    desk.get_by_test_id("kill-switch-lift").click()
    expect(desk.locator("#messages")).to_contain_text("Der Not-Aus ist aufgehoben")
    assert KillSwitch.objects.get().lifted_by == maker

    # 4. The order events, newest first, and the same as CSV.
    desk.get_by_role("link", name="Order-Ereignisse").click()
    rows = desk.get_by_test_id("events-table").locator("tbody tr")
    expect(rows).to_have_count(8)  # 4 orders: each submitted and cancelled
    expect(rows.first).to_contain_text("Vom Not-Aus Ihrer Organisation gestrichen.")
    expect(rows.last).to_contain_text("Eingereicht")
    shots("order-events")
    with desk.expect_download() as download:
        desk.get_by_test_id("events-csv").click()
    content = download.value.path().read_text(encoding="utf-8")
    table = list(csv.DictReader(io.StringIO(content)))
    assert [row["kind"] for row in table].count("cancelled") == 4
    assert {row["reason"] for row in table if row["kind"] == "cancelled"} == {"cancelled_by_member", "kill_switch"}

    # 5. The same on a phone.
    order_submit(user=maker, instrument=first, side=Side.BUY, quantity=1, price=D("2.00"))
    phone = new_page(asgi_live_server.url, width=390, height=844, mobile=True)
    accept_confirmations(phone)
    sign_in(phone, MAKER)
    phone.goto(f"/markets/{first.symbol}/")
    settled(phone)
    button = phone.get_by_role("button", name="Alle in diesem Instrument löschen")
    button.scroll_into_view_if_needed()
    shots("phone-trading-screen", phone, full_page=False)
    button.click()
    expect(phone.locator("#open-orders")).to_contain_text("1 Order ist gelöscht.")
    phone.goto("/markets/orders/")
    shots("phone-open-orders", phone)
    phone.goto("/markets/events/")
    expect(phone.get_by_test_id("events-table").locator("tbody tr")).to_have_count(10)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shots("phone-order-events", phone, full_page=False)
