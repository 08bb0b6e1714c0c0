"""Withdrawals under four eyes (docs/architecture.md, "Fees, funds and
withdrawals"): Alice owns Alice Compute GmbH and asks for cash out; Otto and
Olga are operators; Bob trades for Alice but owns nothing; Charlie's
organisation must see none of it. Amounts by hand."""

import time
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from accounts.models import AuditLog, Organisation, User
from clearing.models import Account, JournalEntry, WithdrawalRequest
from clearing.selectors import account_summary, house_balances, trial_balance, unbalanced_entries, unreconciled_accounts
from clearing.services import (
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_reject,
    withdrawal_request,
)
from clearing.services.cash import payout_change_approve, payout_change_request
from exchange.errors import ExchangeError
from tests.clearing.conftest import deposit, make_organisation, make_user
from tests.concurrency import run_at_once
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory

D = Decimal
IBAN = "DE89 3704 0044 0532 0130 00"


def make_owner(email: str, organisation: Organisation) -> User:
    user = UserFactory(email=email)
    MembershipFactory(user=user, organisation=organisation, is_owner=True)
    return user


@pytest.fixture(autouse=True)
def english():
    # Refusals are asserted by their English msgids; German is the default language.
    with translation.override("en"):
        yield


@pytest.fixture
def otto(db) -> User:
    return make_user("otto@clearing.test", staff=True)


@pytest.fixture
def olga(db) -> User:
    return make_user("olga@clearing.test", staff=True)


@pytest.fixture
def owner(alice_org) -> User:
    return make_owner("alice.owner@clearing.test", alice_org)


def verify_payout_account(organisation: Organisation, iban: str = IBAN) -> None:
    """Two operators of their own (not Otto or Olga) put a payout account in force."""
    first = User.objects.filter(email="payout.first@clearing.test").first() or make_user(
        "payout.first@clearing.test", staff=True)
    second = User.objects.filter(email="payout.second@clearing.test").first() or make_user(
        "payout.second@clearing.test", staff=True)
    change = payout_change_request(user=first, organisation=organisation, iban=iban,
                                   holder_name=organisation.legal_name)
    payout_change_approve(operator=second, change=change)


@pytest.fixture
def funded(alice_org, otto):
    deposit(otto, alice_org, "1000.00")
    verify_payout_account(alice_org)
    return alice_org


def balances(organisation: Organisation) -> dict[str, Decimal]:
    return dict(Account.objects.filter(organisation=organisation).values_list("kind", "balance"))


def bank() -> Decimal:
    return house_balances()["bank"]  # house accounts: the sum of their lines


def written() -> tuple[int, int, int, int]:
    return (WithdrawalRequest.objects.count(), JournalEntry.objects.count(), AuditLog.objects.count(),
            WithdrawalRequest.objects.exclude(status="requested").count())


def books_balance() -> None:
    assert trial_balance() == 0
    assert not unbalanced_entries().exists()
    assert not unreconciled_accounts().exists()


def refused(code: str, call, **kwargs) -> ExchangeError:  # type: ignore[no-untyped-def]
    before = written()
    with pytest.raises(ExchangeError) as caught:
        call(**kwargs)
    assert caught.value.code == code, caught.value
    assert written() == before
    books_balance()
    return caught.value


# --- request ------------------------------------------------------------------------------


def test_a_request_moves_the_amount_from_available_to_pending(funded, owner):
    request = withdrawal_request(user=owner, amount=D("300.00"))

    assert (request.status, request.amount, request.iban, request.requested_by) == (
        "requested", D("300.00"), "DE89370400440532013000", owner)
    assert balances(funded)["cash_available"] == D("700.00")
    assert balances(funded)["withdrawal_pending"] == D("300.00")
    assert bank() == D("-1000.00")  # nothing has left the bank yet
    assert sorted((line.account.kind, line.amount) for line in request.hold_entry.lines.all()) == [
        ("cash_available", D("-300.00")), ("withdrawal_pending", D("300.00"))]
    assert request.hold_entry.reference == f"withdrawal:{request.pk}"
    # The API's summary keeps its four keys.
    assert set(account_summary(organisation=funded)) == {"cash_available", "cash_reserved",
                                                         "settlement_pending", "margin"}
    audit = AuditLog.objects.get(action="withdrawal_request")
    assert (audit.actor, audit.object_id, audit.after["amount"]) == (owner, str(request.pk), "300.00")
    books_balance()


def test_without_a_verified_payout_account_nothing_is_paid_out(alice_org, otto, owner):
    deposit(otto, alice_org, "1000.00")
    error = refused("invalid", withdrawal_request, user=owner, amount=D("10.00"))
    assert set(error.fields) == {"payout_account"} and "no verified payout account" in error.fields[
        "payout_account"][0]
    # A change that only one operator approved is not in force either.
    change = payout_change_request(user=owner, iban=IBAN, holder_name="Alice Compute GmbH")
    payout_change_approve(operator=otto, change=change)
    refused("invalid", withdrawal_request, user=owner, amount=D("10.00"))
    error = refused("invalid", withdrawal_request, user=owner, amount=D("0.001"))
    assert set(error.fields) == {"amount"}


def test_the_request_pays_to_the_verified_account_and_approval_checks_it_is_still_in_force(funded, owner, otto,
                                                                                           olga):
    request = withdrawal_request(user=owner, amount=D("10.00"))
    assert (request.iban, request.holder_name) == ("DE89370400440532013000", "Alice Compute GmbH")
    # The account changes before the approval: the money does not go to either without a new request.
    verify_payout_account(funded, iban="DE02 1203 0000 0000 2020 51")
    refused("conflict", withdrawal_approve, operator=olga, request=request)
    assert WithdrawalRequest.objects.get(pk=request.pk).status == "requested"
    withdrawal_reject(operator=olga, request=request, reason="Payout account changed")
    again = withdrawal_request(user=owner, amount=D("10.00"))
    assert withdrawal_approve(operator=olga, request=again).status == "approved"
    assert again.iban == "DE02120300000000202051"


def test_more_than_available_is_insufficient_funds_and_nothing_is_written(funded, owner):
    error = refused("insufficient_funds", withdrawal_request, user=owner, amount=D("1000.01"))
    assert set(error.fields) == {"amount"}
    assert balances(funded)["cash_available"] == D("1000.00")


def test_only_owners_of_approved_members_may_request(funded, owner, bob, charlie):
    refused("not_permitted", withdrawal_request, user=bob, amount=D("1.00"))
    draft = OrganisationFactory(legal_name="Draft GmbH")
    refused("kyc_not_approved", withdrawal_request, user=make_owner("d@clearing.test", draft), amount=D("1.00"))
    # An operator may not enter it on an owner's behalf unless staff.
    refused("not_permitted", withdrawal_request, user=owner, amount=D("1.00"), entered_by=bob)


# --- four eyes ----------------------------------------------------------------------------


def test_a_second_operator_approves_and_the_money_leaves_the_bank(funded, owner, otto, olga):
    request = withdrawal_request(user=owner, amount=D("300.00"), entered_by=otto)

    approved = withdrawal_approve(operator=olga, request=request)

    assert (approved.status, approved.decided_by) == ("approved", olga)
    assert approved.decided_at is not None
    assert (balances(funded)["cash_available"], balances(funded)["withdrawal_pending"]) == (D("700.00"), D("0.00"))
    assert bank() == D("-700.00")  # 1000 in, 300 out
    assert sorted((line.account.kind, line.amount) for line in approved.entry.lines.all()) == [
        ("bank", D("300.00")), ("withdrawal_pending", D("-300.00"))]
    assert AuditLog.objects.get(action="withdrawal_approve").actor == olga
    books_balance()


def test_the_operator_who_entered_it_is_refused_with_a_clear_error_and_nothing_written(funded, owner, otto):
    request = withdrawal_request(user=owner, amount=D("300.00"), entered_by=otto)

    error = refused("not_permitted", withdrawal_approve, operator=otto, request=request)

    assert "second operator" in error.detail
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.entry) == ("requested", None, None)
    assert balances(funded)["withdrawal_pending"] == D("300.00")


def test_the_requester_and_members_of_the_organisation_may_not_approve(funded, otto, alice_org):
    staff_owner = make_owner("staff.owner@clearing.test", alice_org)
    staff_owner.is_staff = True
    staff_owner.save()
    request = withdrawal_request(user=staff_owner, amount=D("10.00"))
    assert "yourself" in refused("not_permitted", withdrawal_approve, operator=staff_owner, request=request).detail

    colleague = make_owner("staff.colleague@clearing.test", alice_org)
    colleague.is_staff = True
    colleague.save()
    assert "member" in refused("not_permitted", withdrawal_approve, operator=colleague, request=request).detail
    # A member who is no operator may not decide at all.
    refused("not_permitted", withdrawal_reject, operator=make_owner("x@clearing.test", alice_org),
            request=request, reason="no")
    withdrawal_approve(operator=otto, request=request)


def test_a_rejection_returns_the_cash_and_needs_a_reason(funded, owner, otto):
    request = withdrawal_request(user=owner, amount=D("250.50"))
    error = refused("invalid", withdrawal_reject, operator=otto, request=request, reason="  ")
    assert set(error.fields) == {"reason"}

    rejected = withdrawal_reject(operator=otto, request=request, reason="IBAN not in the member's name")

    assert (rejected.status, rejected.reason, rejected.decided_by) == (
        "rejected", "IBAN not in the member's name", otto)
    assert balances(funded)["cash_available"] == D("1000.00")
    assert balances(funded)["withdrawal_pending"] == D("0.00")
    assert bank() == D("-1000.00")
    assert AuditLog.objects.get(action="withdrawal_reject").reason == "IBAN not in the member's name"
    # Decided once: a later approval is a conflict and writes nothing.
    refused("conflict", withdrawal_approve, operator=otto, request=rejected)
    books_balance()


def test_an_owner_cancels_an_open_request(funded, owner, bob):
    request = withdrawal_request(user=owner, amount=D("10.00"))
    refused("not_permitted", withdrawal_cancel, user=bob, request=request)

    cancelled = withdrawal_cancel(user=owner, request=request)

    assert cancelled.status == "cancelled"
    assert balances(funded)["cash_available"] == D("1000.00")
    refused("conflict", withdrawal_cancel, user=owner, request=request)


# --- the member screen --------------------------------------------------------------------


def test_the_withdrawals_page_requests_with_errors_at_the_fields(client, funded, owner, charlie):
    client.force_login(owner)
    url = reverse("withdrawals")

    page = client.get(url).content.decode()
    assert "DE89370400440532013000" in page and 'name="iban"' not in page.split('class="payout-request"')[0]
    response = client.post(url, {"amount": "2000.00"})
    assert response.status_code == 400
    assert response.context["form"].errors["amount"]
    assert WithdrawalRequest.objects.count() == 0

    response = client.post(url, {"amount": "123.45", "iban": "DE02 1203 0000 0000 2020 51"})  # ignored
    assert response.status_code == 302
    request = WithdrawalRequest.objects.get()
    assert (request.amount, request.iban) == (D("123.45"), "DE89370400440532013000")
    page = client.get(url).content.decode()
    assert "123,45" in page or "123.45" in page

    client.force_login(charlie)
    assert "123,45" not in client.get(url).content.decode()


# --- concurrency on PostgreSQL ---------------------------------------------------------------


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_requests_of_a_fifth_each_never_overdraw():
    operator = make_user("op.race@clearing.test", staff=True)
    organisation = make_organisation("Race GmbH")
    owner = make_owner("race.owner@clearing.test", organisation)
    deposit(operator, organisation, "1000.00")
    verify_payout_account(organisation)

    def work(_i: int) -> str:
        try:
            withdrawal_request(user=owner, amount=D("200.00"))
        except ExchangeError as error:
            return error.code
        return "ok"

    outcomes = run_at_once(10, work)

    assert outcomes == {"ok": 5, "insufficient_funds": 5}
    assert balances(organisation)["cash_available"] == D("0.00")
    assert balances(organisation)["withdrawal_pending"] == D("1000.00")
    assert WithdrawalRequest.objects.count() == 5
    books_balance()


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_control_twin_a_naive_read_check_write_grants_more_than_there_is():
    """Without the conditional update: each request reads the balance,
    checks it, and writes what it computed. The threads all read 1000.00,
    all pass the check, and more than five are granted."""
    operator = make_user("op.twin@clearing.test", staff=True)
    organisation = make_organisation("Twin GmbH")
    deposit(operator, organisation, "1000.00")
    account = Account.objects.get(organisation=organisation, kind="cash_available")

    def naive(_i: int) -> str:
        balance = Account.objects.get(pk=account.pk).balance
        if balance < D("200.00"):
            return "insufficient_funds"
        time.sleep(0.2)  # the window between the check and the write
        Account.objects.filter(pk=account.pk).update(balance=balance - D("200.00"))
        return "ok"

    outcomes = run_at_once(10, naive)

    granted = outcomes["ok"] * D("200.00")
    assert granted > D("1000.00"), outcomes  # overdrawn: more paid out than there was
    # ... and the balance does not even show it (lost updates).
    assert Account.objects.get(pk=account.pk).balance == D("800.00")


# --- admin ---------------------------------------------------------------------------------


def test_admin_actions_approve_by_a_second_operator_and_refuse_the_one_who_entered_it(client, funded, owner,
                                                                                      otto, olga, settings):
    settings.LANGUAGE_CODE = "en"  # the messages are asserted in English (msgids); German is the default
    otto.is_superuser = olga.is_superuser = True
    otto.save()
    olga.save()
    request = withdrawal_request(user=owner, amount=D("300.00"), entered_by=otto)
    url = reverse("admin:clearing_withdrawalrequest_changelist")
    post = {"action": "approve_selected", helpers_checkbox(): [request.pk], "index": 0, "reason": ""}

    client.force_login(otto)
    page = client.get(reverse("admin:clearing_withdrawalrequest_change", args=[request.pk]))
    assert "a second operator must approve it" in page.content.decode()
    response = client.post(url, post, follow=True)
    assert "not approved: You entered this withdrawal request" in response.content.decode()
    request.refresh_from_db()
    assert request.status == "requested"

    client.force_login(olga)
    response = client.post(url, post, follow=True)
    assert "approved: 300.00 EUR paid out" in response.content.decode()
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("approved", olga)


def test_admin_reject_action_takes_the_reason(client, funded, owner, otto):
    otto.is_superuser = True
    otto.save()
    request = withdrawal_request(user=owner, amount=D("300.00"))
    client.force_login(otto)
    url = reverse("admin:clearing_withdrawalrequest_changelist")
    client.post(url, {"action": "reject_selected", helpers_checkbox(): [request.pk], "index": 0,
                      "reason": "Name does not match"}, follow=True)
    request.refresh_from_db()
    assert (request.status, request.reason) == ("rejected", "Name does not match")
    assert balances(funded)["cash_available"] == D("1000.00")


def helpers_checkbox() -> str:
    from django.contrib.admin import helpers

    return helpers.ACTION_CHECKBOX_NAME
