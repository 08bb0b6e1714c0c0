"""trading_gate: the one answer to "may this user trade?", the trading
page that asks it, and the navigation context built on it."""

import pytest
from django.test import RequestFactory
from django.urls import reverse

from accounts.context_processors import membership as membership_context
from accounts.services import may, trading_gate
from exchange.errors import ExchangeError
from tests.accounts.helpers import approve
from tests.factories import MembershipFactory, ObserverFactory, OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db


def refusal(user, role="trader") -> str:
    with pytest.raises(ExchangeError) as refused:
        trading_gate(user=user, role=role)
    return refused.value.code


def test_no_membership_is_not_permitted():
    assert refusal(UserFactory()) == "not_permitted"


def test_an_anonymous_visitor_is_not_permitted():
    from django.contrib.auth.models import AnonymousUser

    assert refusal(AnonymousUser()) == "not_permitted"


@pytest.mark.parametrize("status", ["draft", "submitted", "needs_info", "rejected"])
def test_a_trader_whose_kyc_is_not_approved_gets_kyc_not_approved(status):
    trader = MembershipFactory(organisation=OrganisationFactory(kyc__status=status), is_trader=True).user
    assert refusal(trader) == "kyc_not_approved"


def test_an_approved_trader_may_trade():
    membership = MembershipFactory(organisation=OrganisationFactory(kyc__status="approved"), is_trader=True)
    assert trading_gate(user=membership.user) == membership
    assert may(membership.user)


def test_an_observer_may_never_trade_even_with_the_role_and_approved_kyc():
    ministry = ObserverFactory(kyc__status="approved")
    official = MembershipFactory(organisation=ministry, is_viewer=True, is_trader=True).user
    assert refusal(official) == "not_permitted"
    assert refusal(official, "provider") == "not_permitted"


def test_a_viewer_of_an_approved_member_is_not_permitted():
    viewer = MembershipFactory(organisation=OrganisationFactory(kyc__status="approved"), is_viewer=True,
                               is_trader=False).user
    assert refusal(viewer) == "not_permitted"


def test_the_provider_role_is_checked_for_provider_acts():
    organisation = OrganisationFactory(kyc__status="approved")
    trader = MembershipFactory(organisation=organisation, is_trader=True, is_provider=False).user
    provider = MembershipFactory(organisation=organisation, is_trader=False, is_provider=True).user
    assert refusal(trader, "provider") == "not_permitted"
    assert trading_gate(user=provider, role="provider").user == provider
    assert refusal(provider, "trader") == "not_permitted"


def test_role_checks_come_before_kyc():
    # An unapproved viewer learns about the role, not about the KYC state.
    viewer = MembershipFactory(organisation=OrganisationFactory(kyc__status="draft"), is_viewer=True,
                               is_trader=False).user
    assert refusal(viewer) == "not_permitted"


def test_an_unknown_role_is_a_programming_error():
    with pytest.raises(ValueError):
        trading_gate(user=UserFactory(), role="operator")  # type: ignore[arg-type]


# --- the trading page ------------------------------------------------------------------------------


def test_an_approved_trader_enters_the_trading_area(client, alice, org_a):
    approve(org_a)
    client.force_login(alice)
    response = client.get(reverse("trading_home"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Handelsbereich" in page
    assert org_a.legal_name in page


def test_a_trader_with_pending_kyc_is_told_so_and_led_to_the_organisation_page(client, alice):
    client.force_login(alice)
    response = client.get(reverse("trading_home"))
    assert response.status_code == 403
    assert response.context["refusal"].code == "kyc_not_approved"
    assert reverse("organisation_detail") in response.content.decode()


def test_an_observer_is_told_they_may_not_trade(client):
    official = MembershipFactory(organisation=ObserverFactory(kyc__status="approved"), is_viewer=True,
                                 is_trader=False).user
    client.force_login(official)
    response = client.get(reverse("trading_home"))
    assert response.status_code == 403
    assert response.context["refusal"].code == "not_permitted"


def test_the_trading_area_needs_a_login(client):
    response = client.get(reverse("trading_home"))
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


# --- navigation context -----------------------------------------------------------------------------


def context_for(user):
    request = RequestFactory().get("/")
    request.user = user
    return membership_context(request)


def test_the_context_takes_at_most_one_query(django_assert_max_num_queries, alice, org_a):
    approve(org_a)
    user = type(alice).objects.get(pk=alice.pk)
    with django_assert_max_num_queries(1):
        context = context_for(user)
    assert context["current_membership"].organisation == org_a
    assert context["can_trade"] is True
    assert (context["is_owner"], context["is_operator"], context["is_observer"], context["is_provider"]) == (
        True, False, False, False)


def test_the_context_for_an_observer_and_an_operator(django_assert_num_queries, operator):
    official = MembershipFactory(organisation=ObserverFactory(kyc__status="approved"), is_viewer=True,
                                 is_trader=False).user
    context = context_for(official)
    assert (context["is_observer"], context["can_trade"]) == (True, False)

    context = context_for(operator)
    assert (context["is_operator"], context["current_membership"], context["can_trade"]) == (True, None, False)


def test_the_context_for_a_visitor_takes_no_query(django_assert_num_queries):
    from django.contrib.auth.models import AnonymousUser

    with django_assert_num_queries(0):
        context = context_for(AnonymousUser())
    assert context["current_membership"] is None
    assert context["can_trade"] is False
