"""Actors of the programme tests: two operators, Alice's young start-up in
Berlin (Bob on her team), Charlie's old company, and a funded fund."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Organisation
from incentives.models import Programme
from incentives.services import start_financing_book
from tests.clearing.conftest import make_user
from tests.factories import OrganisationFactory

D = Decimal


def make_startup(name: str, **changes: object) -> Organisation:
    values = {"founding_date": timezone.localdate() - datetime.timedelta(days=400), "state": "DE-BE",
              "kyc__status": "approved", **changes}
    return OrganisationFactory(legal_name=name, **values)


def fund(operator, amount: str = "100000.00") -> None:
    start_financing_book(operator=operator, amount=D(amount), repayment_share=D("0.5"), reason="Bescheid 2026")


def make_programme(**changes: object) -> Programme:
    today = timezone.localdate()
    values = {"name": "Gründungsrechnen 2026", "budget": D("50000.00"), "starts_on": today - datetime.timedelta(days=1),
              "ends_on": today + datetime.timedelta(days=90), "max_age_years": 5, "sme_only": True, "states": [],
              "first_time_buyers_only": False, "max_grant": D("20000.00"), "matching_ratio": None,
              "credit_validity_months": 6, **changes}
    return Programme.objects.create(**values)


@pytest.fixture
def operator(db):
    return make_user("operator@incentives.test", staff=True)


@pytest.fixture
def operator2(db):
    return make_user("operator2@incentives.test", staff=True)


@pytest.fixture
def alice_org(db):
    return make_startup("Alice KI GmbH")


@pytest.fixture
def alice(alice_org):
    return make_user("alice@incentives.test", organisation=alice_org)


@pytest.fixture
def bob(alice_org):
    return make_user("bob@incentives.test", organisation=alice_org)


@pytest.fixture
def charlie_org(db):
    return OrganisationFactory(legal_name="Charlie Altbau AG", kyc__status="approved")


@pytest.fixture
def charlie(charlie_org):
    return make_user("charlie@incentives.test", organisation=charlie_org)
