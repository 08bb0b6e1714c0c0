"""Credits after the grant (issue 12 part 3; docs/incentives.md, "Expiry"):
unused credit returns to the fund, spent FIFO from the earliest-expiring
grant, once even when the job runs twice; credits are never cash."""

import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Membership
from clearing.models import Account, JournalEntry
from clearing.selectors import house_balances
from clearing.services.cash import withdrawal_request
from clearing.services.ledger import house_account, ledger_accounts, ledger_post
from exchange.errors import ExchangeError
from incentives.models import CreditGrant
from incentives.selectors import credits_summary
from incentives.services import application_approve, application_submit, credits_expire, programme_open
from incentives.tasks import expire_credits
from tests.clearing.test_withdrawals import verify_payout_account
from tests.incentives.conftest import fund, make_programme

pytestmark = pytest.mark.django_db

D = Decimal
NOW = timezone.now()


def grant(operator, user, programme, amount: str, expires_in_days: int) -> CreditGrant:
    application = application_submit(user=user, programme=programme, plan="Rechnen", amount=D(amount))
    application_approve(operator=operator, application=application)
    row = CreditGrant.objects.get(application=application)
    CreditGrant.objects.filter(pk=row.pk).update(expires_at=NOW + datetime.timedelta(days=expires_in_days))
    row.refresh_from_db()
    return row


def spend(organisation, amount: str) -> None:
    """Credits spent on a purchase, as the order path (the lead's part) will book it."""
    book = ledger_accounts(organisation_ids=[organisation.pk])
    ledger_post(kind=JournalEntry.Kind.TRADE, reference="test-spend",
                lines=[(book.member(organisation.pk, Account.Kind.CREDITS), -D(amount)),
                       (house_account(Account.Kind.CCP), D(amount))])


def move_to_reserved(organisation, amount: str) -> None:
    book = ledger_accounts(organisation_ids=[organisation.pk])
    ledger_post(kind=JournalEntry.Kind.RESERVE, reference="test-reserve",
                lines=[(book.member(organisation.pk, Account.Kind.CREDITS), -D(amount)),
                       (book.member(organisation.pk, Account.Kind.CREDITS_RESERVED), D(amount))])


def balance(organisation, kind=Account.Kind.CREDITS) -> Decimal:
    return Account.objects.filter(organisation=organisation, kind=kind).values_list(
        "balance", flat=True).first() or D("0.00")


def fund_balance() -> Decimal:
    return house_balances([Account.Kind.INCENTIVE_FUND])[Account.Kind.INCENTIVE_FUND]


@pytest.fixture
def programme(operator):
    fund(operator, "10000.00")
    return programme_open(operator=operator, programme=make_programme(budget=D("5000.00")))


def test_fifo_the_earlier_grant_is_spent_first_and_its_rest_returns(programme, operator, alice, alice_org):
    early = grant(operator, alice, programme, "1000.00", 10)
    late = grant(operator, alice, programme, "1000.00", 40)
    spend(alice_org, "300.00")  # from the early grant: 700.00 of it unused
    assert fund_balance() == D("5000.00")

    assert credits_expire(now=NOW + datetime.timedelta(days=11)) == 1
    early.refresh_from_db()
    assert early.expired_amount == D("700.00")
    assert early.expiry_entry.reference == f"credit-expiry:{early.pk}"
    assert sorted((line.account.kind, line.amount) for line in early.expiry_entry.lines.all()) == [
        ("credits", D("-700.00")), ("incentive_fund", D("700.00"))]
    assert balance(alice_org) == D("1000.00") and fund_balance() == D("5700.00")
    # Run again: nothing twice.
    assert credits_expire(now=NOW + datetime.timedelta(days=11)) == 0
    assert fund_balance() == D("5700.00")
    summary = {row.grant.pk: (row.used, row.expired, row.left) for row in credits_summary(alice_org).grants}
    assert summary == {early.pk: (D("300.00"), D("700.00"), D("0.00")),
                       late.pk: (D("0.00"), D("0.00"), D("1000.00"))}

    spend(alice_org, "250.00")  # now from the late grant
    assert credits_expire(now=NOW + datetime.timedelta(days=41)) == 1
    late.refresh_from_db()
    assert late.expired_amount == D("750.00") and balance(alice_org) == D("0.00")
    assert fund_balance() == D("6450.00")


def test_a_spend_beyond_the_first_grant_eats_into_the_second(programme, operator, alice, alice_org):
    early = grant(operator, alice, programme, "1000.00", 10)
    late = grant(operator, alice, programme, "1000.00", 40)
    spend(alice_org, "1200.00")
    assert credits_expire(now=NOW + datetime.timedelta(days=11)) == 0
    early.refresh_from_db()
    assert early.expired_amount == D("0.00")  # all of it spent
    credits_expire(now=NOW + datetime.timedelta(days=41))
    late.refresh_from_db()
    assert late.expired_amount == D("800.00") and balance(alice_org) == D("0.00")


def test_reserved_credit_stays_until_released_and_a_later_run_catches_it(programme, operator, alice, alice_org):
    only = grant(operator, alice, programme, "1000.00", 10)
    move_to_reserved(alice_org, "800.00")  # a resting buy order holds 800.00
    credits_expire(now=NOW + datetime.timedelta(days=11))
    only.refresh_from_db()
    assert only.expired_amount == D("200.00") and balance(alice_org) == D("0.00")
    assert balance(alice_org, Account.Kind.CREDITS_RESERVED) == D("800.00")
    # The order is cancelled: the reservation comes back, the next run returns it.
    book = ledger_accounts(organisation_ids=[alice_org.pk])
    ledger_post(kind=JournalEntry.Kind.RELEASE, reference="test-release",
                lines=[(book.member(alice_org.pk, Account.Kind.CREDITS_RESERVED), D("-800.00")),
                       (book.member(alice_org.pk, Account.Kind.CREDITS), D("800.00"))])
    assert credits_expire(now=NOW + datetime.timedelta(days=12)) == 1
    only.refresh_from_db()
    assert only.expired_amount == D("1000.00") and balance(alice_org) == D("0.00")
    assert fund_balance() == D("6000.00")


def test_the_task_and_the_command_run_the_same_service(programme, operator, alice, alice_org, capsys):
    grant(operator, alice, programme, "500.00", -1)
    assert expire_credits.apply().get() == {"expired": 1}
    call_command("expire_credits")
    assert "expired: 0" in capsys.readouterr().out
    assert fund_balance() == D("5500.00")


def test_credits_cannot_be_withdrawn(programme, operator, alice, alice_org):
    Membership.objects.filter(user=alice).update(is_owner=True)
    grant(operator, alice, programme, "1000.00", 30)
    verify_payout_account(alice_org)
    with pytest.raises(ExchangeError) as error:
        withdrawal_request(user=alice, amount=D("0.01"))
    assert error.value.code == "insufficient_funds"
    assert balance(alice_org) == D("1000.00")
    assert balance(alice_org, Account.Kind.CASH_AVAILABLE) == D("0.00")


def test_the_demo_programme_is_open_funded_and_idempotent(operator, alice_org):
    from incentives.demo import DEMO_BUDGET, seed_incentives
    from incentives.models import Programme
    from incentives.selectors import programme_eligibility

    programme = seed_incentives(operator=operator)
    assert programme.status == Programme.Status.OPEN and programme.budget == DEMO_BUDGET
    assert house_balances([Account.Kind.PROGRAMME_BUDGETS])[Account.Kind.PROGRAMME_BUDGETS] == DEMO_BUDGET
    assert seed_incentives(operator=operator).pk == programme.pk
    assert Programme.objects.count() == 1
    assert programme_eligibility(programme, alice_org) == []


def test_the_account_api_shows_credits_and_their_expiry(programme, operator, alice, alice_org, client):
    early = grant(operator, alice, programme, "1000.00", 10)
    late = grant(operator, alice, programme, "500.00", 40)
    spend(alice_org, "300.00")
    move_to_reserved(alice_org, "100.00")
    client.force_login(alice)

    body = client.get("/api/v1/account/").json()

    # 1,500.00 granted - 300.00 spent - 100.00 reserved; spending is FIFO, so the early grant has 700.00 left.
    assert body["credits_available"] == "1100.00"
    # (the 100.00 reserved by an open order is still the early grant's, unused)
    assert [(row["amount"], datetime.datetime.fromisoformat(row["expires_at"])) for row in body["credits_expiring"]] \
        == [("700.00", early.expires_at), ("500.00", late.expires_at)]
    assert body["cash_available"] == "0.00"  # credits are not cash


def test_the_portfolio_shows_credits_and_their_expiry_next_to_cash(programme, operator, alice, alice_org, client):
    early = grant(operator, alice, programme, "1000.00", 10)
    spend(alice_org, "250.00")
    client.force_login(alice)

    html = client.get("/portfolio/").content.decode()

    assert 'data-testid="credits"' in html and "Förderguthaben" in html
    day = timezone.localtime(early.expires_at).strftime("%d.%m.%Y")
    assert f"750,00 EUR verfallen am {day}." in html


def test_the_revenue_page_shows_the_credits_granted_and_used(programme, operator, alice, alice_org, client):
    grant(operator, alice, programme, "1000.00", 10)
    spend(alice_org, "250.00")

    html = client.get("/dashboard/revenue/").content.decode()

    assert 'data-testid="credits-granted">1.000,00' in html
    assert "An 1 Start-up, davon 250,00 EUR genutzt." in html
    assert alice_org.legal_name not in html
