"""Issue 9, items 1 and 5, in real Chromium against daphne (HTTP and
WebSockets): a start-up's trader enters a buy curve for one hour in the
curve editor (the curve drawn, the reservation previewed) and a block (a
mistake first, shown at its field, nothing saved); a provider enters a sell
curve and copies it to three more hours; the auction runs at gate closure;
and the start-up's open page hears the result on its private stream and
shows the accepted quantities. The same page on a phone.

The views run on the real clock, so the delivery day is the day after
tomorrow (its book is open whatever the time of day) and the auction is run
by the test with ``now`` at that day's gate closure. The run publishes the
result to the daphne child's channel layer: the child here has a Redis
prefix the test knows.

Screenshots at 1280 and 390 px under test-artifacts/test_dayahead_journey*/."""

import copy
import datetime
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.conf import global_settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import KycCase, Organisation, User
from clearing.services import cash_deposit_book
from market import calendar
from market.models import BidStatus, DayAheadBid, EnergySource, Site, SiteCapacity
from market.services.dayahead import auctions_clear_due
from tests.browser.conftest import AsgiLiveServer, Shots, live_server_env, spawn_daphne, stop_daphne
from tests.browser.conftest import sign_in as browser_sign_in
from tests.factories import GpuClassFactory, MembershipFactory, OrganisationFactory, UserFactory
from tests.market.trading_setup import ensure_zones

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "Rechenzeit-fuer-alle-2026"
STARTUP = "handel@tensorwerk.example"
PROVIDER = "auktion@rechenzentrum-franken.example"


@pytest.fixture(scope="module")
def dayahead_server(django_db_setup: None) -> Iterator[tuple[AsgiLiveServer, str]]:
    """daphne as ``asgi_live_server`` starts it, with a Redis prefix this test knows."""
    from django.conf import settings

    prefix = f"{settings.REDIS_PREFIX}-dayahead-{uuid.uuid4().hex[:8]}"
    process, server = spawn_daphne(live_server_env(DEBUG="1", REDIS_PREFIX=prefix))
    try:
        yield server, prefix
    finally:
        stop_daphne(process)


def organisation(name: str, email: str, *, founded_days_ago: int, **roles: bool) -> tuple[Organisation, User]:
    org = OrganisationFactory(legal_name=name, kyc__status=KycCase.Status.APPROVED,
                              founding_date=timezone.now().date() - datetime.timedelta(days=founded_days_ago))
    user = UserFactory(email=email, password=PASSWORD)
    MembershipFactory(user=user, organisation=org, is_owner=True, is_trader=True, **roles)
    return org, user


def sign_in(page: Page, email: str) -> None:
    browser_sign_in(page, email, PASSWORD)


def fill_steps(page: Page, steps: list[tuple[str, str]]) -> None:
    """Make the editor's table hold exactly these rows."""
    editor = page.locator("#curve-form")
    rows = editor.locator("tr[data-step]")
    while rows.count() < len(steps):
        editor.locator("[data-add-step]").click()
    while rows.count() > len(steps):
        rows.last.locator("[data-remove-step]").click()
    for row, (price, quantity) in zip(rows.all(), steps, strict=True):
        row.locator("input[name=step_price]").fill(price)
        row.locator("input[name=step_quantity]").fill(quantity)


# htmx reports a preview request it aborted for a newer one (hx-sync="this:replace", typing on) as an
# error; that is the intended behaviour. Failed answers still show (htmx:responseError).
EXPECTED = ("htmx:sendAbort", "htmx:afterRequest")


def watch(page: Page) -> list[str]:
    """Script errors and policy violations of the page (the CSP allows no inline script)."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" and not message.text.startswith(EXPECTED) else None)
    return problems


def no_sideways_scroll(page: Page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_dayahead_journey(new_page, dayahead_server, settings) -> None:  # type: ignore[no-untyped-def]
    server, prefix = dayahead_server
    # The daphne child checks passwords with the project's hashers, not the suite's MD5.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    ensure_zones("DE", "DE-BY")
    h100 = GpuClassFactory(code="H100", name="NVIDIA H100 SXM 80 GB")
    day = timezone.now().astimezone(calendar.BERLIN).date() + datetime.timedelta(days=2)
    operator = UserFactory(email="betrieb@rechenboerse.example", is_staff=True)
    startup_org, startup = organisation("Tensorwerk Leipzig GmbH", STARTUP, founded_days_ago=400)
    provider_org, provider = organisation("Rechenzentrum Franken GmbH", PROVIDER, founded_days_ago=4000,
                                          is_provider=True)
    site = Site.objects.create(organisation=provider_org, name="Nürnberg-Hafen", state=Organisation.State.BY,
                               energy_source=EnergySource.RENEWABLE, pue=Decimal("1.18"))
    SiteCapacity.objects.create(site=site, gpu_class=h100, gpus=64)
    cash_deposit_book(operator=operator, organisation=startup_org, amount=Decimal("25000.00"),
                      bank_reference="TEST-START")

    # 1. The start-up's trader opens the auction from the menu and picks the day after tomorrow.
    desk = new_page(server.url, width=1280, height=900)
    problems = watch(desk)
    shots = Shots(desk, "test_dayahead_journey")
    sign_in(desk, STARTUP)
    desk.locator(".main-nav").get_by_role("link", name="Day-Ahead").click()
    expect(desk.get_by_role("heading", level=1)).to_have_text("Day-Ahead-Auktion")
    # The choice submits itself from a deferred script: a change made before it ran would be lost.
    desk.wait_for_load_state("load")
    # The page opens on the next auction's day: tomorrow until today's gate closure, then the day after.
    choice = desk.locator("select[name=delivery_date]")
    if choice.input_value() != day.isoformat():
        choice.select_option(day.isoformat())
        expect(desk).to_have_url(re.compile(rf"delivery_date={day.isoformat()}"))
    expect(desk.locator("[data-dayahead]")).to_have_attribute("data-delivery-date", day.isoformat())
    expect(desk.locator("[data-testid=dayahead-state]")).to_have_text("Offen für Gebote")
    expect(desk.locator("[data-testid=dayahead-countdown]")).to_contain_text("Stunde")
    assert problems == []
    # The private stream: the first connection of a fresh server can take a few seconds.
    expect(desk.locator("#dayahead-status [data-live]")).to_have_class("live is-live", timeout=20_000)

    # 2. A buy curve for 14:00-15:00, drawn as it is typed, with the reservation computed by the server.
    editor = desk.locator("#curve-form")
    editor.locator("select[name=hour]").select_option("14")
    fill_steps(desk, [("15,00", "30"), ("11,50", "20")])
    expect(desk.locator("#curve-chart .scatterlayer .trace")).to_have_count(1)
    expect(desk.locator("#curve-preview [data-cost=reserved]")).to_have_text("681,00 EUR")
    shots("curve-editor")
    editor.get_by_role("button", name="Kurve abgeben").click()
    expect(desk.locator("#curve-editor .alert-success")).to_contain_text("eingegangen")
    expect(desk.locator("#curve-editor .alert-success")).to_contain_text("681,00 EUR")
    expect(desk.locator("#dayahead-bids tbody tr")).to_have_count(1)
    curve = DayAheadBid.objects.get(organisation=startup_org, kind="curve")
    assert curve.reserved_amount == Decimal("681.00")

    # 3. A block 09:00-12:00: first with a price off the tick, refused at the field; then right.
    block = desk.locator("#block-form")
    block.locator("select[name=first_hour]").select_option("09")
    block.locator("select[name=last_hour]").select_option("11")
    block.locator("input[name=price]").fill("12,345")
    block.locator("input[name=quantity]").fill("5")
    block.get_by_role("button", name="Block abgeben").click()
    price_field = desk.locator("#block-form .field", has=desk.locator("input[name=price]"))
    expect(price_field.locator(".field-error")).to_contain_text("0,01")
    assert not DayAheadBid.objects.filter(kind="block").exists()
    shots("block-error-at-the-field")
    desk.locator("#block-form input[name=price]").fill("12,00")
    expect(desk.locator("#block-preview [data-cost=reserved]")).to_have_text("180,20 EUR")
    desk.locator("#block-form").get_by_role("button", name="Block abgeben").click()
    expect(desk.locator("#block-editor .alert-success")).to_contain_text("eingegangen")
    expect(desk.locator("#dayahead-bids tbody tr")).to_have_count(2)
    shots("curve-and-block-entered")

    # ... the same page on a phone, before the auction.
    phone = new_page(server.url, width=390, height=844, mobile=True)
    phone_shots = Shots(phone, "test_dayahead_journey_phone")
    sign_in(phone, STARTUP)
    phone.goto(f"/trading/dayahead/?delivery_date={day.isoformat()}&gpu_class=H100&zone=DE&hour=14")
    expect(phone.locator("#curve-form tr[data-step]")).to_have_count(2)  # the hour's curve, to be changed
    expect(phone.locator("#curve-chart .scatterlayer .trace")).to_have_count(1)
    phone_shots("top", full_page=False)
    phone.locator("#curve-form").scroll_into_view_if_needed()
    phone_shots("curve-editor", full_page=False)
    phone.locator("#block-form").scroll_into_view_if_needed()
    phone_shots("block-form", full_page=False)
    phone.locator("#dayahead-bids").scroll_into_view_if_needed()
    phone_shots("bids", full_page=False)
    no_sideways_scroll(phone, 390)

    # 4. The provider offers 30 at 10,00 and 20 at 12,00 in hour 14, then 10 at 10,00 in 09, 10 and 11:
    # choosing an hour without a curve keeps the steps typed.
    seller = new_page(server.url, width=1280, height=900)
    seller_shots = Shots(seller, "test_dayahead_journey_provider")
    sign_in(seller, PROVIDER)
    seller.goto(f"/trading/dayahead/?delivery_date={day.isoformat()}&gpu_class=H100&zone=DE")
    offer = seller.locator("#curve-form")
    offer.locator("label.side-option-sell").click()
    offer.locator("select[name=hour]").select_option("14")
    fill_steps(seller, [("10,00", "30"), ("12,00", "20")])
    expect(seller.locator("#curve-preview [data-cost=reserved]")).to_have_text("0,00 EUR")
    offer.get_by_role("button", name="Kurve abgeben").click()
    expect(seller.locator("#curve-editor .alert-success")).to_be_visible()
    fill_steps(seller, [("10,00", "10")])
    for hour in ("09", "10", "11"):
        seller.locator("#curve-form select[name=hour]").select_option(hour)
        expect(seller.locator("#curve-form [data-hour-note]")).to_contain_text("noch keine Kurve")
        expect(seller.locator("#curve-form input[name=step_price]")).to_have_value("10,00")
        seller.locator("#curve-form").get_by_role("button", name="Kurve abgeben").click()
        expect(seller.locator("#dayahead-bids tbody tr")).to_have_count(2 + int(hour) - 9)
    seller_shots("sell-curves")
    assert DayAheadBid.objects.filter(organisation=provider_org, status=BidStatus.ACTIVE).count() == 4

    # 5. Gate closure: the auction runs; its result reaches the start-up's open page over /ws/private/.
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["prefix"] = f"{prefix}:asgi"
    settings.CHANNEL_LAYERS = layers  # publish where the daphne child listens
    assert auctions_clear_due(now=calendar.dayahead_gate_closure(day)) == 1
    notice = desk.locator("#dayahead-live-notice .alert-success")
    expect(notice).to_contain_text("Die Auktion H100 · DE ist geräumt")
    curve_row = desk.locator(f"#dayahead-bid-{curve.pk}")
    # Hour 14 clears 30 GPUs at the midpoint of [11,50; 12,00]; the block gets 5 GPUs in each of its hours.
    expect(curve_row.locator("[data-accepted-quantity='14']")).to_have_text("30")
    expect(curve_row).to_contain_text("11,75")
    block_bid = DayAheadBid.objects.get(organisation=startup_org, kind="block")
    expect(desk.locator(f"#dayahead-bid-{block_bid.pk} [data-accepted-quantity='09']")).to_have_text("5")
    expect(desk.locator(f"#dayahead-bid-{block_bid.pk}")).to_contain_text("in jeder Stunde")
    shots("accepted-quantities")

    # ... and after a reload, the auction is shown cleared, without forms.
    notice.get_by_role("link", name="Seite neu laden").click()
    expect(desk.locator("[data-testid=dayahead-state]")).to_have_text("Geräumt")
    expect(desk.locator("#curve-form")).to_have_count(0)
    shots("cleared")
    phone.reload()
    expect(phone.locator(f"#dayahead-bid-{curve.pk} [data-accepted-quantity='14']")).to_have_text("30")
    phone.locator("#dayahead-bids").scroll_into_view_if_needed()
    phone_shots("accepted-quantities", full_page=False)
    no_sideways_scroll(phone, 390)

    # 6. The public results page of that auction, without a login: prices and curves, drawn.
    public = desk.context.browser.new_context(base_url=desk.url.split("/trading/")[0]).new_page()
    public.goto(f"/dashboard/dayahead/{day.isoformat()}/?gpu_class=H100&zone=DE&hour=14")
    expect(public.locator("#dayahead-chart svg.main-svg").first).to_be_visible()
    expect(public.locator("#dayahead-curves svg.main-svg").first).to_be_visible()
    expect(public.locator('tr[data-hour="14"]')).to_contain_text("11,75")
    expect(public.locator("[data-testid=clearing-point]")).to_contain_text("30 GPUs zu 11,75 EUR/GPUh")
    assert "Tensorwerk" not in public.content() and "Franken" not in public.content()  # no member identity
    public.close()
    assert problems == [], problems  # no script error, no policy violation all along
