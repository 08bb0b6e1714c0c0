"""GET /api/v1/account/ for the signed-in member."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from clearing.services import cash_reserve
from tests.clearing.conftest import deposit, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.clearing.urls")]

URL = "/api/v1/account/"


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def test_a_member_sees_its_organisations_balances_as_decimal_strings(api, alice, alice_org, operator):
    deposit(operator, alice_org, "1000000.00")
    cash_reserve(organisation=alice_org, amount=Decimal("25.20"), reference="order:1")
    api.force_authenticate(alice)

    response = api.get(URL)

    assert response.status_code == 200
    assert response.json() == {
        "organisation": alice_org.pk,
        "cash_available": "999974.80",
        "cash_reserved": "25.20",
        "settlement_pending": "0.00",
        "margin": "0.00",
        "currency": "EUR",
        "credits_available": "0.00",
        "credits_expiring": [],
    }


def test_a_colleague_sees_the_same_account_and_another_member_only_its_own(api, alice_org, bob, charlie,
                                                                           charlie_org, operator):
    deposit(operator, alice_org, "10.00")
    api.force_authenticate(bob)
    assert api.get(URL).json()["cash_available"] == "10.00"

    api.force_authenticate(charlie)
    body = api.get(URL).json()
    assert body["organisation"] == charlie_org.pk
    assert body["cash_available"] == "0.00"  # no account opened yet reads as zero


def test_a_user_without_an_organisation_is_not_permitted(api):
    api.force_authenticate(make_user("loner@clearing.test"))

    response = api.get(URL)

    assert response.status_code == 403
    assert response.json()["code"] == "not_permitted"
    assert response.json()["detail"]


def test_anonymous_callers_must_authenticate(api):
    response = api.get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_the_account_is_read_only(api, alice):
    api.force_authenticate(alice)
    assert api.post(URL, {}, format="json").status_code == 405
