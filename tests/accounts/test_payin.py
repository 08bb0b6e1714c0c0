"""issue 8 item 2: a newly approved member is told how to pay in (the
clearing house's bank details and its own payment reference), in the
approval e-mail and on its pages; nobody else sees its reference."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts import services
from accounts.models import KycCase
from clearing.payin import organisation_id_from_reference, payin_instructions, payment_reference
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db

BANK = {"holder": "Rechenbörse Clearing GmbH", "iban": "DE89370400440532013000", "bic": "COBADEFFXXX",
        "bank": "Commerzbank", "demo_data": False}


def submit(organisation):
    KycCase.objects.update_or_create(organisation=organisation, defaults={"status": KycCase.Status.SUBMITTED})


@pytest.fixture
def approved_by_mail(alice, org_a, operator, settings, django_capture_on_commit_callbacks):
    settings.CLEARING_BANK = BANK
    submit(org_a)
    with django_capture_on_commit_callbacks(execute=True):
        services.kyc_decide(operator=operator, case=KycCase.objects.get(organisation=org_a), decision="approve")
    return mail.outbox


def test_the_reference_carries_a_check_digit_and_names_the_organisation(org_a, org_c):
    reference = payment_reference(org_a)

    assert reference.startswith("RBE-") and len(reference) == len("RBE-000000-0")
    assert organisation_id_from_reference(reference) == org_a.pk
    assert organisation_id_from_reference(reference.replace("-", " ").lower()) == org_a.pk
    assert payment_reference(org_c) != reference
    broken = reference[:-1] + str((int(reference[-1]) + 1) % 10)
    assert organisation_id_from_reference(broken) is None
    assert organisation_id_from_reference("DEMO-1") is None


def test_the_approval_mail_gives_the_bank_details_and_the_reference(approved_by_mail, org_a):
    (message,) = approved_by_mail
    body = message.body

    assert "DE89 3704 0044 0532 0130 00" in body
    assert "COBADEFFXXX" in body and "Commerzbank" in body and "Rechenbörse Clearing GmbH" in body
    assert payment_reference(org_a) in body
    assert "Demo" not in body


def test_a_rejection_mail_has_no_bank_details(alice, org_a, operator, django_capture_on_commit_callbacks):
    submit(org_a)
    with django_capture_on_commit_callbacks(execute=True):
        services.kyc_decide(operator=operator, case=KycCase.objects.get(organisation=org_a), decision="reject",
                            reason="Kein deutsches Register.")

    assert "IBAN" not in mail.outbox[0].body
    assert payment_reference(org_a) not in mail.outbox[0].body


def test_members_see_how_to_pay_in_on_their_pages_and_others_do_not(
        client, approved_by_mail, alice, bob, org_a, charlie, org_c):
    reference = payment_reference(org_a)
    for user in (alice, bob):
        client.force_login(user)
        for page in ("organisation_detail", "withdrawals"):
            body = client.get(reverse(page)).content.decode()
            assert reference in body, (user, page)
            assert "DE89 3704 0044 0532 0130 00" in body
    # Charlie's organisation, not yet approved, is shown no bank details at all ...
    client.force_login(charlie)
    body = client.get(reverse("organisation_detail")).content.decode()
    assert reference not in body and "DE89 3704" not in body
    # ... and once approved, its own reference, never Alice's.
    KycCase.objects.update_or_create(organisation=org_c, defaults={"status": KycCase.Status.APPROVED})
    for page in ("organisation_detail", "withdrawals"):
        body = client.get(reverse(page)).content.decode()
        assert payment_reference(org_c) in body and reference not in body


def test_no_instructions_before_approval_or_for_an_observer(org_a, settings):
    settings.CLEARING_BANK = BANK
    assert payin_instructions(org_a) is None  # KYC still a draft
    observer = OrganisationFactory(legal_name="Ministerium", kind="observer")
    KycCase.objects.update_or_create(organisation=observer, defaults={"status": KycCase.Status.APPROVED})
    assert payin_instructions(observer) is None


def test_demo_bank_details_are_marked_as_demo_data(client, org_a, settings):
    settings.CLEARING_BANK = {**BANK, "demo_data": True}
    KycCase.objects.update_or_create(organisation=org_a, defaults={"status": KycCase.Status.APPROVED})
    owner = UserFactory(email="owner@payin.test")
    MembershipFactory(user=owner, organisation=org_a, is_owner=True)
    client.force_login(owner)

    body = client.get(reverse("organisation_detail")).content.decode()

    assert payin_instructions(org_a).demo_data
    assert "Demo-Daten" in body
