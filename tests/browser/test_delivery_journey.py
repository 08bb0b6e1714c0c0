"""Issue 4's journey in real Chromium against daphne: a provider posts the
access details of capacity it sold, the start-up that bought it reads them
and confirms the delivery, settlement pays the provider, and the provider's
statement shows the payout (the trade's value less the provider's fee).

Two browser contexts, one per member, on ``asgi_live_server`` (see
conftest.py), set up as the trading journey is. The trade itself is made
through the order service (the trading journey covers the order screens);
settlement runs as the beat job runs it, through ``deliveries_settle``.

The rules checked on the way (docs/architecture.md, "Delivery and settlement",
"Who sees and does what", and "Settlement policy and payout accounts"):
access details are readable by the buyer's members and by operators only;
the seller's members do not see them back after posting, their screen says
when they were posted; the buyer confirms only from delivery start."""

import datetime
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TypeVar

import pytest
from django.conf import global_settings
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from accounts.models import KycCase, Organisation
from clearing.models import DeliveryTicket
from clearing.services import cash_deposit_book, deliveries_settle
from market.calendar import BERLIN
from market.models import EnergySource, Site, SiteCapacity
from tests.browser.conftest import Shots
from tests.browser.test_trading_journey import member, sign_in
from tests.factories import OrganisationFactory, UserFactory, spot_trade
from tests.market.trading_setup import open_instrument

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")

PROVIDER = "lieferung@rechenzentrum-franken.example"
STARTUP = "betrieb@tensorwerk.example"
ENDPOINT = "ssh tensorwerk@gpu-07.nuernberg-hafen.example -p 2222"
INSTRUCTIONS = "Schlüssel: per SFTP hinterlegt unter /keys/tensorwerk.pub\nKnoten gpu-07 bis gpu-13, CUDA 12.4"

# Hand-computed (market rules §3: intraday maker 0.005, taker 0.015 EUR/GPUh
# per side; the provider's resting offer is the maker): 7 GPUs x 2.50 EUR x 1 h.
PRICE = Decimal("2.50")
GPUS = 7
VALUE = Decimal("17.50")  # 2.50 x 7 x 1
# The provider's fee held for the month's invoice: 0.005 x 7 x 1 = 0.035 exact,
# the month so far 0.04 net + 0.01 VAT (0.19 x 0.04 = 0.0076, HALF_UP).
SELLER_FEE = Decimal("0.05")
PAYOUT = Decimal("17.45")  # value less the fee held


def de(amount: Decimal) -> str:
    """An amount as the German screens show it (below 1,000)."""
    return f"{amount:.2f}".replace(".", ",")


def in_thread(work: Callable[[], T]) -> T:
    """Run ``work`` in a fresh thread (with its own database connection, closed after)."""

    def run() -> T:
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def fact(page: Page, term: str) -> Locator:
    """The value of one fact on a delivery ticket's page."""
    return page.locator(".ticket-facts > div").filter(
        has=page.locator("dt", has_text=re.compile(f"^{re.escape(term)}$"))).locator("dd")


def fits(section: Locator) -> bool:
    """The section's table fits its card: no sideways scrolling on a desktop screen."""
    return section.locator(".table-wrap").evaluate("wrap => wrap.scrollWidth <= wrap.clientWidth")


def rows(table: Locator) -> list[list[str]]:
    """The cell texts of a table body's rows, stripped."""
    return [[cell.strip() for cell in row.locator("td").all_inner_texts()] for row in table.locator("tbody tr").all()]


def test_provider_posts_access_startup_confirms_and_the_statement_shows_the_payout(  # type: ignore[no-untyped-def]
        new_page, asgi_live_server, settings) -> None:
    # The daphne child checks passwords with the project's hashers, not the suite's MD5.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    instrument = open_instrument()  # H100, zone DE, tomorrow 14:00-15:00, taking orders now
    operator = UserFactory(email="kasse@rechenboerse.example", is_staff=True)

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
                      bank_reference="TENSORWERK-2026-002")

    provider_user = provider_org.memberships.get().user
    startup_user = startup_org.memberships.get().user
    # In a thread of its own: the order service publishes to the channel layer
    # with async_to_sync, which can't run in this thread (Playwright's loop).
    trade = in_thread(lambda: spot_trade(seller=provider_user, buyer=startup_user, instrument=instrument,
                                         quantity=GPUS, price=PRICE))
    ticket = trade.delivery_tickets.get()  # one site, one ticket
    assert (ticket.seller_site, ticket.gpus, ticket.value, ticket.seller_fee) == (site, GPUS, VALUE, SELLER_FEE)
    detail_url = f"/deliveries/{ticket.pk}/"

    provider = new_page(asgi_live_server.url)
    startup = new_page(asgi_live_server.url)
    shots = Shots(provider, "test_delivery_journey")

    # 1. The provider finds the deliveries through the portfolio (the header nav has no room for them).
    sign_in(provider, PROVIDER)
    provider.goto("/portfolio/")
    links = provider.locator("nav.portfolio-links")
    for name in ("Lieferungen", "Kontoauszüge", "Rechnungen", "Auszahlung beantragen"):  # an owner sees all four
        expect(links.get_by_role("link", name=name)).to_be_visible()
    assert fits(provider.locator("section.positions"))
    shots("provider-portfolio")
    links.get_by_role("link", name="Lieferungen").click()
    expect(provider).to_have_url(f"{asgi_live_server.url}/deliveries/")
    sold = provider.locator("section", has=provider.get_by_role("heading", name="Verkaufte Kapazität"))
    bought = provider.locator("section", has=provider.get_by_role("heading", name="Gekaufte Kapazität"))
    expect(bought).to_contain_text("Noch keine Kapazität gekauft.")
    expect(sold.locator("tbody tr")).to_have_count(1)
    start, end = (moment.astimezone(BERLIN) for moment in (instrument.delivery_start, instrument.delivery_end))
    delivery = f"{start:%d.%m.%Y %H:%M}–{end:%H:%M}"
    assert rows(sold) == [[f"#{ticket.pk}", instrument.symbol, delivery, str(GPUS), de(VALUE),
                           "wartet auf Zugangsdaten", "Zugangsdaten hinterlegen"]]  # the row says what is to do
    assert fits(sold)
    shots("provider-deliveries")

    # 2. The provider opens the ticket and posts the access details in the form.
    sold.get_by_role("link", name="Zugangsdaten hinterlegen").click()
    expect(provider).to_have_url(f"{asgi_live_server.url}{detail_url}")
    expect(provider.get_by_role("heading", level=1)).to_contain_text(f"#{ticket.pk}")
    expect(fact(provider, "Zugangsdaten")).to_have_text("noch nicht hinterlegt")
    expect(fact(provider, "Ihr Entgelt (EUR)")).to_have_text(de(SELLER_FEE))
    expect(provider.get_by_role("button", name="Lieferung bestätigen")).to_have_count(0)  # the buyer's, not ours
    shots("provider-ticket-awaiting-access")
    provider.get_by_label("Zugangsadresse").fill(ENDPOINT)
    provider.get_by_label("Anleitung").fill(INSTRUCTIONS)
    shots("provider-access-filled")
    provider.get_by_role("button", name="Zugangsdaten hinterlegen").click()
    expect(provider.locator("#messages .alert-success")).to_contain_text(
        "Die Zugangsdaten sind für den Käufer hinterlegt.")
    expect(provider.locator("main")).to_contain_text("Zugangsdaten hinterlegt")

    # The documented rule: the seller does not see the details back, only that and when they were posted.
    ticket.refresh_from_db()
    # (A browser submits a textarea's line breaks as CRLF; the view stores them as sent.)
    assert (ticket.status, ticket.access_endpoint, ticket.access_instructions.replace("\r\n", "\n")) == (
        DeliveryTicket.Status.ACCESS_POSTED, ENDPOINT, INSTRUCTIONS)
    posted_at = ticket.access_posted_at.astimezone(BERLIN).strftime("%d.%m.%Y %H:%M")
    expect(fact(provider, "Zugangsdaten")).to_have_text(f"hinterlegt am {posted_at}\nrechtzeitig", use_inner_text=True)
    expect(provider.locator("main")).to_contain_text("deshalb werden sie hier nicht wieder angezeigt")
    html = provider.content()
    assert "gpu-07.nuernberg-hafen" not in html and "tensorwerk.pub" not in html
    expect(provider.get_by_label("Zugangsadresse")).to_be_hidden()  # replacing them is folded away ...
    expect(provider.get_by_label("Zugangsadresse")).to_have_value("")  # ... and starts empty
    expect(provider.get_by_label("Anleitung")).to_have_value("")
    shots("provider-access-posted")

    # 3. The start-up finds the ticket among its bought capacity, with the details posted.
    sign_in(startup, STARTUP)
    startup.goto("/portfolio/")
    startup.locator("nav.portfolio-links").get_by_role("link", name="Lieferungen").click()
    bought = startup.locator("section", has=startup.get_by_role("heading", name="Gekaufte Kapazität"))
    sold = startup.locator("section", has=startup.get_by_role("heading", name="Verkaufte Kapazität"))
    expect(sold).to_contain_text("Noch keine Kapazität verkauft.")
    expect(bought.locator("tbody tr")).to_have_count(1)
    # Before delivery start the list offers to look, not to confirm (confirming starts with delivery).
    assert rows(bought)[0][3:] == [str(GPUS), de(VALUE), "Zugangsdaten hinterlegt", "Ansehen"]
    assert fits(bought)
    shots("startup-deliveries", startup)

    # 4. It opens the ticket and reads the access details ...
    bought.get_by_role("link", name="Ansehen").click()
    access = startup.locator("section", has=startup.get_by_role("heading", name="Zugang zu Ihren GPUs"))
    expect(access).to_contain_text(ENDPOINT)
    expect(access.locator("pre")).to_have_text(INSTRUCTIONS)
    expect(startup.locator("input[name=endpoint]")).to_have_count(0)  # the seller's form is not the buyer's
    shots("startup-ticket-with-access", startup)
    dispute = startup.locator("details.dispute")
    dispute.locator("summary").click()  # the way to dispute is there, folded away
    expect(dispute.get_by_label("Was hat nicht funktioniert?")).to_be_visible()
    shots("startup-dispute-unfolded", startup)
    dispute.locator("summary").click()

    # Before delivery start there is no confirm button yet; the page says from when (issue 7).
    expect(startup.get_by_role("button", name="Lieferung bestätigen")).to_have_count(0)
    expect(startup.locator("p.confirm-later")).to_contain_text("ab ihrem Beginn bestätigen")
    # The clock reaches delivery start (the ticket's start moves to a minute ago) ...
    DeliveryTicket.objects.filter(pk=ticket.pk).update(delivery_start=timezone.now() - datetime.timedelta(minutes=1))
    startup.reload()

    # ... and the start-up confirms the delivery.
    startup.get_by_role("button", name="Lieferung bestätigen").click()
    expect(startup.locator("#messages .alert-success")).to_contain_text("Lieferung bestätigt.")
    expect(startup.locator("main")).to_contain_text("bestätigt")
    expect(startup.get_by_role("button", name="Lieferung bestätigen")).to_have_count(0)
    expect(access).to_contain_text(ENDPOINT)  # the buyer keeps the details
    ticket.refresh_from_db()
    assert ticket.status == DeliveryTicket.Status.CONFIRMED
    shots("startup-confirmed", startup)

    # 5. The provider's ticket says confirmed; the access form is gone, the details still not shown.
    provider.reload()
    expect(provider.locator("main")).to_contain_text("Der Käufer hat die Lieferung bestätigt.")
    expect(provider.locator("input[name=endpoint]")).to_have_count(0)
    assert "gpu-07.nuernberg-hafen" not in provider.content()
    shots("provider-ticket-confirmed")

    # 6. Settlement (the beat job's service) pays on confirmation, exactly once.
    assert deliveries_settle(now=timezone.now()) == 1
    assert deliveries_settle(now=timezone.now()) == 0
    ticket.refresh_from_db()
    assert ticket.status == DeliveryTicket.Status.SETTLED
    day = ticket.settlement_entry.created_at.astimezone(BERLIN).date()  # the statement day of the payout

    # 7. The provider opens its statement of that day from the portfolio and finds the payout.
    provider.goto("/portfolio/")
    expect(provider.locator('.stat-tile:has-text("Verfügbar") .stat-value')).to_contain_text(de(PAYOUT))
    provider.locator("nav.portfolio-links").get_by_role("link", name="Kontoauszüge").click()
    provider.locator("#statement-day").fill(day.isoformat())
    provider.get_by_role("button", name="Anzeigen").click()
    expect(provider).to_have_url(f"{asgi_live_server.url}/statements/{day.isoformat()}/")
    bookings = provider.locator("table.statement-lines")
    payout_lines = sorted(row[1:] for row in rows(bookings) if f"delivery:{ticket.pk}" in row)
    # [kind, reference, memo, account, amount, balance after]: the pending 17.46 (booked at
    # trade) moves to available cash, which holds just the payout.
    assert VALUE - SELLER_FEE == PAYOUT
    assert payout_lines == sorted([
        ["Abwicklung", f"delivery:{ticket.pk}", "", "In Abwicklung", de(-PAYOUT), "0,00"],
        ["Abwicklung", f"delivery:{ticket.pk}", "", "Verfügbares Guthaben", de(PAYOUT), de(PAYOUT)],
    ]), rows(bookings)
    accounts = provider.locator("section", has=provider.get_by_role("heading", name="Konten"))
    cash = accounts.locator("tbody tr", has=provider.get_by_role("rowheader", name="Verfügbares Guthaben"))
    expect(cash.locator("td").last).to_have_text(de(PAYOUT))  # closing balance
    shots("provider-statement-payout")

    # 8. From the statement, an owner goes on to withdraw the money.
    provider.get_by_role("link", name="Auszahlung beantragen").click()
    expect(provider).to_have_url(f"{asgi_live_server.url}/withdrawals/")
    expect(provider.locator("main")).to_contain_text(f"{de(PAYOUT)} EUR")
    shots("provider-withdrawals")

    # 9. The settled ticket, for both; and the start-up's deliveries on a phone.
    provider.goto(detail_url)
    expect(provider.locator("main")).to_contain_text("Diese Lieferung ist abgerechnet")
    statement_link = provider.get_by_role("link", name=f"Die Abrechnung im Kontoauszug vom {day:%d.%m.%Y}")
    expect(statement_link).to_have_attribute("href", f"/statements/{day.isoformat()}/")
    shots("provider-ticket-settled")
    phone = new_page(asgi_live_server.url, width=390, height=844, mobile=True)
    sign_in(phone, STARTUP)
    phone.goto("/deliveries/")
    shots("phone-startup-deliveries", phone)
    phone.goto(detail_url)
    expect(phone.locator("main")).to_contain_text(ENDPOINT)
    shots("phone-startup-ticket", phone)
    phone.goto("/portfolio/")
    shots("phone-startup-portfolio", phone)
