"""Operators book deposits in the admin; the books themselves are read-only there."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import User
from clearing.models import CashDeposit, JournalEntry
from clearing.selectors import account_summary
from tests.clearing.conftest import deposit

pytestmark = pytest.mark.django_db

ADD = "admin:clearing_cashdeposit_add"


@pytest.fixture
def admin_client(client, operator):
    superuser = User.objects.create_superuser(email="root@clearing.test", password="correct horse battery")
    client.force_login(superuser)
    return client


def test_an_operator_books_a_deposit_through_the_form(admin_client, alice_org):
    response = admin_client.post(reverse(ADD), {"organisation": alice_org.pk, "amount": "1500.50",
                                                "bank_reference": "SEPA-77"})

    assert response.status_code == 302
    booked = CashDeposit.objects.get()
    assert (booked.organisation, booked.amount, booked.bank_reference) == (alice_org, Decimal("1500.50"), "SEPA-77")
    assert booked.booked_by.email == "root@clearing.test"
    assert account_summary(organisation=alice_org)["cash_available"] == Decimal("1500.50")


def test_a_duplicate_bank_reference_is_shown_at_its_field_and_nothing_is_written(admin_client, alice_org, operator):
    deposit(operator, alice_org, "10.00")
    existing = CashDeposit.objects.get()
    entries = JournalEntry.objects.count()

    response = admin_client.post(reverse(ADD), {"organisation": alice_org.pk, "amount": "10.00",
                                                "bank_reference": existing.bank_reference})

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.errors) == ["bank_reference"]
    assert CashDeposit.objects.count() == 1
    assert JournalEntry.objects.count() == entries


@pytest.mark.parametrize("amount", ["0", "-5", "1.001", "abc"])
def test_a_bad_amount_is_shown_at_its_field(admin_client, alice_org, amount):
    response = admin_client.post(reverse(ADD), {"organisation": alice_org.pk, "amount": amount,
                                                "bank_reference": "SEPA-1"})
    assert response.status_code == 200
    assert "amount" in response.context["adminform"].form.errors
    assert not JournalEntry.objects.exists()


def test_the_books_can_be_viewed_but_not_changed_or_deleted(admin_client, alice_org, operator):
    booked = deposit(operator, alice_org, "10.00")
    entry = booked.entry

    for name in ("clearing_account_changelist", "clearing_journalentry_changelist", "clearing_cashdeposit_changelist"):
        assert admin_client.get(reverse(f"admin:{name}")).status_code == 200
    account = entry.lines.get(amount__gt=0).account
    assert admin_client.get(reverse("admin:clearing_account_change", args=[account.pk])).status_code == 200
    assert admin_client.get(reverse("admin:clearing_cashdeposit_change", args=[booked.pk])).status_code == 200
    page = admin_client.get(reverse("admin:clearing_journalentry_change", args=[entry.pk]))
    assert page.status_code == 200
    assert b"-10.00" in page.content or b"-10,00" in page.content  # the bank line, shown inline

    assert admin_client.get(reverse("admin:clearing_journalentry_delete", args=[entry.pk])).status_code == 403
    assert admin_client.get(reverse("admin:clearing_cashdeposit_delete", args=[booked.pk])).status_code == 403
    posted = admin_client.post(reverse("admin:clearing_cashdeposit_change", args=[booked.pk]),
                               {"organisation": alice_org.pk, "amount": "99999.00", "bank_reference": "X"})
    assert posted.status_code == 403
    assert admin_client.get(reverse("admin:clearing_journalentry_add")).status_code == 403
    assert admin_client.get(reverse("admin:clearing_account_add")).status_code == 403
    booked.refresh_from_db()
    assert booked.amount == Decimal("10.00")
