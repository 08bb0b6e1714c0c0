"""Issue 2's journey in real Chromium: a start-up signs up, verifies its
e-mail, registers its organisation, uploads its KYC documents and submits
them; an operator approves in Django admin; the member reaches trading."""

import re

import pytest
from django.core import mail
from playwright.sync_api import Browser, expect

from accounts.models import KycCase, Organisation
from tests.factories import PDF_BYTES, PNG_BYTES, UserFactory, valid_vat_id

pytestmark = pytest.mark.django_db(transaction=True)

FOUNDER = "gruenderin@tensorwerk.example"
PASSWORD = "Rechenzeit-fuer-alle-2026"


def test_startup_onboarding_until_it_may_trade(page, shots, browser: Browser, live_server, settings, tmp_path):
    private = {**settings.STORAGES["default"], "OPTIONS": {"location": tmp_path, "base_url": None}}
    settings.STORAGES = {**settings.STORAGES, "default": private}

    # 1. Sign up.
    page.goto("/accounts/signup/")
    page.locator("input[name=email]").fill(FOUNDER)
    page.locator("input[name=password1]").fill(PASSWORD)
    page.locator("input[name=password2]").fill(PASSWORD)
    shots("signup-form")
    page.locator("main form button[type=submit]").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("E-Mail")
    shots("verification-sent")

    # 2. Verify the e-mail address with the link from the outbox.
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [FOUNDER]
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    page.goto(link.group(0))
    shots("confirm-email")
    page.locator("main form button[type=submit]").click()
    expect(page.locator("body")).to_contain_text(FOUNDER)  # signed in: the header shows who
    shots("email-confirmed")

    # 3. Register the organisation with its KYC data.
    page.goto("/organisation/new/")
    page.locator("input[name=legal_name]").fill("Tensorwerk Leipzig GmbH")
    page.locator("input[name=legal_form]").fill("GmbH")
    page.locator("input[name=register_court]").fill("Amtsgericht Leipzig")
    page.locator("select[name=register_type]").select_option("HRB")
    page.locator("input[name=register_number]").fill("41234")
    page.locator("input[name=vat_id]").fill(valid_vat_id())
    page.locator("input[name=street]").fill("Karl-Liebknecht-Straße 12")
    page.locator("input[name=postal_code]").fill("04107")
    page.locator("input[name=city]").fill("Leipzig")
    page.locator("select[name=state]").select_option("DE-SN")
    page.locator("input[name=founding_date]").fill("2024-03-01")
    page.locator("select[name=employees_band]").select_option(index=1)
    page.locator("select[name=turnover_band]").select_option(index=1)
    shots("organisation-form")
    page.get_by_role("button", name="Organisation registrieren").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tensorwerk Leipzig GmbH")
    shots("organisation-created")
    organisation = Organisation.objects.get(legal_name="Tensorwerk Leipzig GmbH")
    assert organisation.is_startup() and organisation.is_sme()

    # 4. Upload the register extract and the representative's ID, then submit.
    for kind, name, mime, content in [
        ("register_extract", "handelsregisterauszug.pdf", "application/pdf", PDF_BYTES),
        ("representative_id", "personalausweis.png", "image/png", PNG_BYTES),
    ]:
        page.locator("select[name=kind]").select_option(kind)
        page.locator("input[name=file]").set_input_files({"name": name, "mimeType": mime, "buffer": content})
        page.get_by_role("button", name="Dokument hochladen").click()
        expect(page.locator("main")).to_contain_text(name)
    shots("documents-uploaded")
    page.get_by_role("button", name="Zur Prüfung einreichen").click()
    expect(page.locator("main")).to_contain_text("eingereicht")
    shots("kyc-submitted")
    assert organisation.kyc.status == KycCase.Status.SUBMITTED

    # Not approved yet: the trading area explains why.
    page.goto("/trading/")
    expect(page.locator("main")).to_contain_text("KYC")
    shots("trading-refused-before-approval")

    # 5. An operator approves in Django admin (a browser session of their own).
    UserFactory(email="pruefer@rechenboerse.example", is_staff=True, is_superuser=True)
    operator_context = browser.new_context(base_url=live_server.url, locale="de-DE", timezone_id="Europe/Berlin")
    admin = operator_context.new_page()
    admin.goto("/admin/login/")
    admin.locator("input[name=username]").fill("pruefer@rechenboerse.example")
    admin.locator("input[name=password]").fill("correct horse battery staple")
    admin.locator("input[type=submit]").click()
    admin.goto("/admin/accounts/kyccase/?status__exact=submitted")
    admin.get_by_role("link", name=re.compile("Tensorwerk Leipzig")).first.click()
    shots("admin-kyc-case", admin)
    admin.get_by_role("link", name="Freigeben").first.click()
    admin.get_by_label("Freigeben").check()
    shots("admin-decide", admin)
    admin.locator("form input[type=submit], form button[type=submit]").last.click()
    expect(admin.locator(".messagelist")).to_contain_text("Tensorwerk Leipzig GmbH")
    shots("admin-approved", admin)
    operator_context.close()

    organisation.kyc.refresh_from_db()
    assert organisation.kyc.status == KycCase.Status.APPROVED
    assert any(FOUNDER in message.to for message in mail.outbox[1:])  # the decision was e-mailed

    # 6. The member now reaches the trading area.
    page.goto("/trading/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Handelsbereich")
    expect(page.locator("main")).to_contain_text("Tensorwerk Leipzig GmbH")
    shots("trading-area")
