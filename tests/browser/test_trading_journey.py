"""Issue 3's journey in real Chromium against daphne (HTTP + WebSockets): a
provider offers GPU capacity on the trading screen, a start-up buys part of it
on its own trading screen, and both screens follow live, without a reload:
the book ladder, the trade tape and each member's own orders and fills.

Two browser contexts, one per member, on ``asgi_live_server`` (see
conftest.py); the market is made through the services, as the listing job
and the operators would make it."""

import datetime
import re
from decimal import Decimal

import pytest
from django.conf import global_settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import KycCase, Organisation
from clearing.services import cash_deposit_book
from market import calendar
from market.models import EnergySource, Instrument, InstrumentStatus, Site, SiteCapacity
from market.services import instruments_list_upcoming, instruments_open_close
from tests.browser.conftest import Shots
from tests.browser.conftest import sign_in as browser_sign_in
from tests.factories import GpuClassFactory, MembershipFactory, OrganisationFactory, UserFactory
from tests.market.trading_setup import ensure_zones

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "Rechenzeit-fuer-alle-2026"
PROVIDER = "handel@rechenzentrum-franken.example"
STARTUP = "gruenderin@tensorwerk.example"


def listed_instrument() -> Instrument:
    """List today's and tomorrow's hours as the job does and open them; the
    first H100 hour in zone DE that trades for at least another 20 minutes."""
    now = timezone.now()
    ensure_zones(*calendar.ZONE_CODES)
    GpuClassFactory(code="H100", name="NVIDIA H100 SXM 80 GB")
    instruments_list_upcoming(now=now)
    instruments_open_close(now=now)
    return (Instrument.objects.filter(status=InstrumentStatus.OPEN, gpu_class__code="H100", zone__code="DE",
                                      closes_at__gt=now + datetime.timedelta(minutes=20))
            .order_by("delivery_start").first())


def member(email: str, organisation: Organisation, **roles: bool) -> None:
    user = UserFactory(email=email, password=PASSWORD)
    MembershipFactory(user=user, organisation=organisation, is_owner=True, is_trader=True, **roles)


def sign_in(page: Page, email: str) -> None:
    browser_sign_in(page, email, PASSWORD)


def place_order(page: Page, side: str, price: str, quantity: str) -> None:
    form = page.locator("#order-form")
    form.locator(f"label.side-option-{side}").click()
    form.locator("input[name=price]").fill(price)
    form.locator("input[name=quantity]").fill(quantity)
    form.locator("button[type=submit]").click()
    expect(page.locator("#order-entry .alert-success")).to_be_visible()


def ask_levels(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("#book tbody[data-side=asks] tr.level-ask")


def ask_quantity(page: Page):  # type: ignore[no-untyped-def]
    """The GPUs offered at the (only) ask level."""
    return ask_levels(page).locator("td").nth(1)


def test_provider_offers_capacity_and_a_startup_buys_it_live(new_page, asgi_live_server, settings) -> None:  # type: ignore[no-untyped-def]
    # The daphne child checks passwords with the project's hashers, not the suite's MD5.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    instrument = listed_instrument()
    assert instrument is not None
    operator = UserFactory(email="betrieb@rechenboerse.example", is_staff=True)

    provider_org = OrganisationFactory(legal_name="Rechenzentrum Franken GmbH", state=Organisation.State.BY,
                                       kyc__status=KycCase.Status.APPROVED)
    member(PROVIDER, provider_org, is_provider=True)
    site = Site.objects.create(organisation=provider_org, name="Nürnberg-Hafen", state=Organisation.State.BY,
                               energy_source=EnergySource.RENEWABLE, pue=Decimal("1.18"))
    SiteCapacity.objects.create(site=site, gpu_class=instrument.gpu_class, gpus=64)

    startup_org = OrganisationFactory(
        legal_name="Tensorwerk Leipzig GmbH", state=Organisation.State.SN, city="Leipzig",
        founding_date=timezone.now().date() - datetime.timedelta(days=400), kyc__status=KycCase.Status.APPROVED)
    member(STARTUP, startup_org)
    cash_deposit_book(operator=operator, organisation=startup_org, amount=Decimal("25000.00"),
                      bank_reference="TENSORWERK-2026-001")

    url = f"/markets/{instrument.symbol}/"
    provider = new_page(asgi_live_server.url)
    startup = new_page(asgi_live_server.url)
    shots = Shots(provider, "test_trading_journey")

    # 1. The provider finds the hour on the markets overview and opens its trading screen.
    sign_in(provider, PROVIDER)
    day = instrument.delivery_start.astimezone(calendar.BERLIN).date()
    provider.goto(f"/markets/?delivery_date={day.isoformat()}")
    provider.locator("select[name=zone]").select_option("DE-BY")
    expect(provider).to_have_url(re.compile(r"zone=DE-BY"))  # the choices swap the grid (htmx) and keep the URL
    # Nothing is quoted yet: the grid hides the empty instruments until asked.
    expect(provider.locator("#overview-grid td.cell")).to_have_count(0)
    provider.locator("select[name=zone]").select_option("DE")
    provider.get_by_label("Leere Instrumente zeigen").check()
    expect(provider).to_have_url(re.compile(r"zone=DE&.*show_empty=on"))
    expect(provider.locator(f'#overview-grid td[data-symbol="{instrument.symbol}"]')).to_be_visible()
    shots("provider-markets")
    provider.locator(f'#overview-grid td[data-symbol="{instrument.symbol}"] a[href="{url}"]').click()
    expect(provider.get_by_role("heading", level=1)).to_have_text(instrument.symbol)
    expect(provider.locator("#book [data-live]")).to_have_class("live is-live")
    shots("provider-trading-screen-empty")

    # 2. The start-up opens the same screen; both stay on it from here on.
    sign_in(startup, STARTUP)
    startup.goto(url)
    expect(startup.locator("#book [data-live]")).to_have_class("live is-live")
    expect(startup.locator("#tape [data-live]")).to_have_class("live is-live")
    for page in (provider, startup):
        page.evaluate("window.journeyMarker = 'no reload'")
    shots("startup-trading-screen-empty", startup)

    # 3. The provider offers 10 GPUs at 2,50 EUR/GPUh ...
    place_order(provider, "sell", "2,50", "10")
    expect(provider.locator("#open-orders tbody tr")).to_have_count(1)
    expect(provider.locator("#open-orders tbody tr")).to_contain_text("2,50")
    shots("provider-offer-placed")
    # ... and the start-up's ladder shows the offer at once.
    expect(ask_levels(startup)).to_have_count(1)
    expect(ask_levels(startup)).to_contain_text("2,50")
    expect(ask_quantity(startup)).to_have_text("10")
    expect(startup.locator('[data-stat="ask"]').first).to_have_text("2,50")
    shots("startup-sees-offer", startup)

    # 4. A typo first: the price off the tick comes back at the price field.
    startup.locator("#order-form input[name=price]").fill("2,505")
    startup.locator("#order-form input[name=quantity]").fill("4")
    startup.locator("#order-form button[type=submit]").click()
    price_field = startup.locator("#order-form .field.has-error", has=startup.locator("input[name=price]"))
    expect(price_field.locator(".field-error")).to_be_visible()
    shots("startup-price-error-at-field", startup)

    # 5. The start-up buys 4 GPUs of it.
    place_order(startup, "buy", "2,50", "4")
    expect(startup.locator("#fills tbody tr.fill")).to_have_count(1)
    expect(startup.locator("#fills tbody tr.fill")).to_contain_text("4")
    expect(startup.locator("#trades tbody tr.trade").first).to_contain_text("2,50")
    expect(ask_quantity(startup)).to_have_text("6")
    expect(startup.locator('[data-stat="last"]').first).to_have_text("2,50")
    shots("startup-bought", startup)

    # 6. The provider's screen follows: tape, ladder, own order and own fill.
    expect(provider.locator("#trades tbody tr.trade").first).to_contain_text("2,50")
    expect(ask_quantity(provider)).to_have_text("6")
    expect(provider.locator("#fills tbody tr.fill")).to_have_count(1)
    expect(provider.locator("#fills tbody tr.fill")).to_contain_text("4")
    expect(provider.locator("#open-orders tbody tr td").nth(5)).to_have_text("6")
    expect(provider.locator("#price-chart .scatterlayer .point")).to_have_count(1)
    shots("provider-sold")

    # 7. The provider lowers the rest of the offer to 5 GPUs; the start-up sees it.
    provider.locator("#open-orders").get_by_role("button", name="Ändern").click()
    provider.locator("#open-orders tr.is-editing input[name=quantity]").fill("5")
    shots("provider-amending")
    provider.locator("#open-orders tr.is-editing button[type=submit]").click()
    expect(provider.locator("#open-orders tbody tr td").nth(3)).to_have_text("5")
    expect(ask_quantity(startup)).to_have_text("1")
    shots("startup-sees-amended-offer", startup)

    for page in (provider, startup):
        assert page.evaluate("window.journeyMarker") == "no reload"

    # 8. How the provider's ladder handles a gap in the book sequence (the
    # server repairs gaps itself; this is the client's own check): messages
    # handed to trading.js as the ws extension would, with a recording socket.
    result = provider.evaluate("""() => {
      const book = document.getElementById("book");
      const sent = [];
      const socketWrapper = { send: (text) => sent.push(JSON.parse(text)) };
      const feed = (message) => book.dispatchEvent(new CustomEvent("htmx:wsBeforeMessage",
        { bubbles: true, cancelable: true, detail: { message: JSON.stringify(message), socketWrapper } }));
      const prices = () => Array.from(book.querySelectorAll("tr.level:not(.level-empty) .price"), td => td.textContent);
      const sequence = parseInt(book.dataset.sequence, 10);
      feed({ type: "update", sequence: sequence + 2, bids: [["2.10", 9]], asks: [] });
      const afterGap = { sent: sent.slice(), prices: prices() };
      feed({ type: "snapshot", sequence: 100, bids: [["2.40", 3]], asks: [["2.50", 1]], depth: 50 });
      const afterSnapshot = prices();
      feed({ type: "update", sequence: 101, bids: [["2.40", 0], ["2.45", 2]], asks: [] });
      feed({ type: "update", sequence: 101, bids: [["2.30", 5]], asks: [] });
      return { afterGap, afterSnapshot, afterUpdate: prices(), sequence: book.dataset.sequence };
    }""")
    assert result["afterGap"] == {"sent": [{"type": "snapshot"}], "prices": ["2,50"]}
    assert result["afterSnapshot"] == ["2,50", "2,40"]
    assert result["afterUpdate"] == ["2,50", "2,45"]  # the repeated 101 was dropped
    assert result["sequence"] == "101"

    # 9. The start-up's portfolio: the position and the money.
    startup.goto("/portfolio/")
    expect(startup.locator("main")).to_contain_text(instrument.symbol)
    shots("startup-portfolio", startup)

    # 10. On a phone: the screen as it scrolls, then the markets and the portfolio.
    phone = new_page(asgi_live_server.url, width=390, height=844, mobile=True)
    sign_in(phone, STARTUP)
    phone.goto(url)
    expect(phone.locator("#book [data-live]")).to_have_class("live is-live")
    expect(ask_levels(phone)).to_contain_text("2,50")
    shots("phone-trading-screen", phone, full_page=False)
    for part in ("#order-entry", "#tape", "#fills"):
        phone.locator(part).scroll_into_view_if_needed()
        shots(f"phone-trading-screen-{part[1:]}", phone, full_page=False)
    phone.goto(f"/markets/?zone=DE&delivery_date={day.isoformat()}")
    phone.locator("#overview-grid").scroll_into_view_if_needed()
    shots("phone-markets", phone, full_page=False)
    phone.goto("/portfolio/")
    shots("phone-portfolio", phone)
