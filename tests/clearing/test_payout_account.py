"""Issue 7 item 10: an organisation's payout account changes only when two
operators agree (docs/architecture.md, "Settlement policy and payout
accounts"). Alice owns Alice Compute GmbH; Otto, Olga and Oskar are
operators; Bob is on Alice's team without owning it; Charlie's organisation
must see none of it."""

import pytest
from django.urls import reverse
from django.utils import translation

from accounts.models import AuditLog
from clearing.models import PayoutAccount, PayoutAccountChange
from clearing.services.cash import (
    payout_change_approve,
    payout_change_cancel,
    payout_change_reject,
    payout_change_request,
)
from exchange.errors import ExchangeError
from tests.clearing.conftest import make_user
from tests.factories import MembershipFactory, UserFactory

IBAN = "DE89 3704 0044 0532 0130 00"
OTHER = "DE02 1203 0000 0000 2020 51"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def owner(alice_org):  # type: ignore[no-untyped-def]
    user = UserFactory(email="owner@payout.test")
    MembershipFactory(user=user, organisation=alice_org, is_owner=True)
    return user


@pytest.fixture
def otto(db):  # type: ignore[no-untyped-def]
    return make_user("otto@payout.test", staff=True)


@pytest.fixture
def olga(db):  # type: ignore[no-untyped-def]
    return make_user("olga@payout.test", staff=True)


def refused(code: str, call, **kwargs) -> ExchangeError:  # type: ignore[no-untyped-def]
    before = (PayoutAccount.objects.count(), list(PayoutAccountChange.objects.values_list("status", flat=True)),
              AuditLog.objects.count())
    with pytest.raises(ExchangeError) as caught:
        call(**kwargs)
    assert caught.value.code == code, caught.value
    after = (PayoutAccount.objects.count(), list(PayoutAccountChange.objects.values_list("status", flat=True)),
             AuditLog.objects.count())
    assert after == before
    return caught.value


def test_a_members_change_needs_two_different_operators(alice_org, owner, otto, olga, bob):
    change = payout_change_request(user=owner, iban=IBAN, holder_name="  Alice   Compute GmbH ")
    assert (change.status, change.iban, change.holder_name) == ("requested", "DE89370400440532013000",
                                                               "Alice Compute GmbH")
    refused("not_permitted", payout_change_approve, operator=owner, change=change)  # no operator
    first = payout_change_approve(operator=otto, change=change)
    assert (first.status, first.first_approved_by) == ("first_approved", otto)
    assert not PayoutAccount.objects.exists()  # one operator is not enough
    error = refused("not_permitted", payout_change_approve, operator=otto, change=first)
    assert "second operator" in error.detail
    done = payout_change_approve(operator=olga, change=first)
    assert (done.status, done.decided_by) == ("approved", olga)
    account = PayoutAccount.objects.get(organisation=alice_org)
    assert (account.iban, account.holder_name, account.change_id) == ("DE89370400440532013000",
                                                                     "Alice Compute GmbH", change.pk)
    assert list(AuditLog.objects.filter(object_id=str(change.pk)).order_by("pk").values_list("action", flat=True)) \
        == ["payout_change_request", "payout_change_first_approve", "payout_change_approve"]
    refused("conflict", payout_change_approve, operator=make_user("oskar@payout.test", staff=True), change=done)


def test_an_operator_entering_a_change_counts_as_the_first(alice_org, owner, otto, olga):
    entered = payout_change_request(user=otto, organisation=alice_org, iban=OTHER, holder_name="Alice Compute GmbH")
    assert (entered.status, entered.first_approved_by, entered.requested_by) == ("first_approved", otto, otto)
    refused("not_permitted", payout_change_approve, operator=otto, change=entered)
    payout_change_approve(operator=olga, change=entered)
    assert PayoutAccount.objects.get(organisation=alice_org).iban == "DE02120300000000202051"


def test_operators_who_are_members_and_bad_input_are_refused(alice_org, owner, otto, bob):
    staff_member = make_user("staff.member@payout.test", organisation=alice_org, staff=True)
    refused("not_permitted", payout_change_request, user=staff_member, organisation=alice_org, iban=IBAN,
            holder_name="x")
    refused("not_permitted", payout_change_request, user=bob, iban=IBAN, holder_name="x")  # not an owner
    error = refused("invalid", payout_change_request, user=owner, iban="DE89 3704 0044 0532 0130 01",
                    holder_name=" ")
    assert set(error.fields) == {"iban", "holder_name"}
    change = payout_change_request(user=owner, iban=IBAN, holder_name="Alice Compute GmbH")
    error = refused("conflict", payout_change_request, user=owner, iban=OTHER, holder_name="Alice Compute GmbH")
    assert "already waiting" in error.detail
    refused("not_permitted", payout_change_approve, operator=staff_member, change=change)


def test_reject_and_cancel_close_an_open_change(alice_org, owner, otto, bob):
    change = payout_change_request(user=owner, iban=IBAN, holder_name="Alice Compute GmbH")
    refused("invalid", payout_change_reject, operator=otto, change=change, reason=" ")
    rejected = payout_change_reject(operator=otto, change=change, reason="Holder does not match the register")
    assert (rejected.status, rejected.reason) == ("rejected", "Holder does not match the register")
    again = payout_change_request(user=owner, iban=IBAN, holder_name="Alice Compute GmbH")
    refused("not_permitted", payout_change_cancel, user=bob, change=again)
    assert payout_change_cancel(user=owner, change=again).status == "cancelled"
    refused("conflict", payout_change_cancel, user=owner, change=again)
    assert not PayoutAccount.objects.exists()


def test_the_withdrawals_page_requests_a_payout_account_and_shows_it_once_verified(client, alice_org, owner, otto,
                                                                                   olga, charlie):
    client.force_login(owner)
    url = reverse("withdrawals")
    page = client.get(url).content.decode()
    assert 'class="payout-missing"' in page and 'name="amount"' not in page
    response = client.post(url, {"action": "payout", "iban": "DE00 1234", "holder_name": "Alice Compute GmbH"})
    assert response.status_code == 400 and "iban" in response.context["account_form"].errors
    response = client.post(url, {"action": "payout", "iban": IBAN, "holder_name": "Alice Compute GmbH"})
    assert response.status_code == 302
    change = PayoutAccountChange.objects.get()
    assert 'class="alert alert-info payout-change"' in client.get(url).content.decode()
    payout_change_approve(operator=otto, change=change)
    payout_change_approve(operator=olga, change=change)
    page = client.get(url).content.decode()
    assert "DE89370400440532013000" in page and 'name="amount"' in page
    client.force_login(charlie)
    assert "DE89370400440532013000" not in client.get(url).content.decode()


def test_operators_enter_and_approve_in_the_admin(client, alice_org, otto, olga):
    from django.contrib.admin import helpers

    for operator in (otto, olga):
        operator.is_superuser = True
        operator.save()
    client.force_login(otto)
    added = client.post("/admin/clearing/payoutaccountchange/add/",
                         {"organisation": alice_org.pk, "iban": IBAN, "holder_name": "Alice Compute GmbH"})
    assert added.status_code == 302, added.content.decode()[:2000]
    change = PayoutAccountChange.objects.get()
    assert (change.status, change.first_approved_by) == ("first_approved", otto)
    url = "/admin/clearing/payoutaccountchange/"
    post = {"action": "approve_selected", helpers.ACTION_CHECKBOX_NAME: [change.pk], "index": 0}
    client.post(url, post, follow=True)
    assert PayoutAccountChange.objects.get().status == "first_approved"  # Otto entered it: refused
    client.force_login(olga)
    client.post(url, post, follow=True)
    assert PayoutAccountChange.objects.get().status == "approved"
    assert PayoutAccount.objects.get(organisation=alice_org).iban == "DE89370400440532013000"
