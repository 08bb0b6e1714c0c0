"""Issue 12's journey in real Chromium: a start-up applies for credits on its
/incentives/ screen, an operator approves the application in admin, and the
start-up's next purchase is paid from the credit, as its portfolio and its
statement show.

Hand-computed: the start-up buys 2 H100 GPU-hours at the provider's 10.00 as
the taker (0.015 EUR/GPUh). Its order reserves 10.00 x 2 + 2 x 0.03 = 20.06,
all of it credit; the trade's value 20.00 and the fee held 0.03 + VAT 0.01 =
0.04 are spent from it (20.04), the 0.02 left goes back to credits:
500.00 - 20.04 = 479.96 of credit, and the 25,000.00 of cash is untouched.
"""

import datetime
from decimal import Decimal

import pytest
from django.conf import global_settings
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import KycCase, Organisation
from clearing.models import Account
from clearing.services import cash_deposit_book
from incentives.models import Application, Programme
from incentives.services import programme_open, start_financing_book
from market.models import EnergySource, Site, SiteCapacity, Trade
from market.services.orders import order_submit
from tests.browser.conftest import Shots
from tests.browser.conftest import sign_in as browser_sign_in
from tests.browser.test_trading_journey import PASSWORD, listed_instrument, member
from tests.factories import OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

STARTUP = "gruenderin@tensorwerk.example"
PROVIDER = "handel@rechenzentrum-franken.example"
OPERATOR = "foerderung@rechenboerse.example"


def test_a_startup_applies_an_operator_approves_and_the_next_purchase_uses_the_credit(
        new_page, asgi_live_server, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    instrument = listed_instrument()
    assert instrument is not None
    operator = UserFactory(email=OPERATOR, password=PASSWORD, is_staff=True, is_superuser=True)

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

    # The fund holds the state's start financing; a programme takes 10,000.00 of it.
    start_financing_book(operator=operator, amount=Decimal("50000.00"), repayment_share=Decimal("0.5"),
                         reason="Startfinanzierung des Landes")
    today = timezone.localdate()
    programme = programme_open(operator=operator, programme=Programme.objects.create(
        name="Gründungsrechnen 2026", budget=Decimal("10000.00"), starts_on=today - datetime.timedelta(days=1),
        ends_on=today + datetime.timedelta(days=90), max_age_years=5, sme_only=True, states=[],
        first_time_buyers_only=False, max_grant=Decimal("2000.00"), matching_ratio=None,
        credit_validity_months=6))
    # The provider offers 8 GPUs at 10.00.
    provider_user = provider_org.memberships.get().user
    order_submit(user=provider_user, instrument=instrument, side="sell", quantity=8, price=Decimal("10.00"))

    startup = new_page(asgi_live_server.url)
    shots = Shots(startup, "test_incentives_journey")

    # 1. The start-up finds the programme, sees that it is eligible, and applies with a short plan.
    browser_sign_in(startup, STARTUP, PASSWORD)
    startup.goto("/incentives/")
    card = startup.locator("article", has_text="Gründungsrechnen 2026").first
    expect(card).to_be_visible()
    card.locator("textarea[name$='-plan']").fill("Feinabstimmung eines Sprachmodells für Verwaltungstexte.")
    card.locator("input[name$='-amount']").fill("500")
    shots("startup-applies")
    card.get_by_role("button", name="Beantragen").click()
    expect(startup.get_by_text("Eingereicht").first).to_be_visible()
    application = Application.objects.get(organisation=startup_org, programme=programme)
    assert (application.status, application.requested_amount) == ("submitted", Decimal("500.00"))
    shots("startup-applied")

    # 2. An operator approves it in admin (below the four-eyes threshold: one approval grants).
    admin = new_page(asgi_live_server.url)
    admin_shots = Shots(admin, "test_incentives_journey_admin")
    admin.goto("/admin/login/?next=/admin/incentives/application/")
    admin.locator("input[name=username]").fill(OPERATOR)
    admin.locator("input[name=password]").fill(PASSWORD)
    admin.locator("input[type=submit]").click()
    expect(admin.locator("#result_list")).to_be_visible()
    admin.locator(f"input.action-select[value='{application.pk}']").check()
    admin.locator("select[name=action]").select_option("approve_selected")
    admin.locator("input[name=amount]").fill("500.00")
    admin_shots("operator-approves")
    admin.locator("button[name=index]").click()
    expect(admin.locator(".messagelist .success")).to_contain_text(f"#{application.pk}")
    admin_shots("operator-approved")
    application.refresh_from_db()
    assert (application.status, application.decided_amount) == ("approved", Decimal("500.00"))

    # 3. The start-up sees its credit next to its cash.
    startup.goto("/portfolio/")
    expect(startup.locator("[data-testid=credits] .stat-value")).to_contain_text("500,00")
    shots("portfolio-with-credit")

    # 4. Its next purchase: 2 GPUs at 10.00 on the trading screen, paid from the credit.
    startup.goto(f"/markets/{instrument.symbol}/")
    form = startup.locator("#order-form")
    form.locator("label.side-option-buy").click()
    form.locator("input[name=price]").fill("10.00")
    form.locator("input[name=quantity]").fill("2")
    form.locator("button[type=submit]").click()
    expect(startup.locator("#order-entry .alert-success")).to_be_visible()
    trade = Trade.objects.get(buyer=startup_org)
    assert (trade.price, trade.quantity) == (Decimal("10.00"), 2)
    shots("startup-bought")

    startup.goto("/portfolio/")
    expect(startup.locator("[data-testid=credits] .stat-value")).to_contain_text("479,96")
    expect(startup.locator(".account-tiles")).to_contain_text("25.000,00")
    shots("portfolio-after-purchase")
    balances = dict(Account.objects.filter(organisation=startup_org).values_list("kind", "balance"))
    assert balances["credits"] == Decimal("479.96")
    assert balances["cash_available"] == Decimal("25000.00")
    assert balances["settlement_pending"] == Decimal("20.00")

    # 5. The statement shows the purchase paid from the credits account.
    startup.goto("/statements/")
    expect(startup.get_by_text("Förderguthaben").first).to_be_visible()
    expect(startup.locator("body")).to_contain_text("-20,06")
    shots("statement")
