"""Actors of the clearing tests (healthchecks style): Alice's organisation,
Bob on Alice's team, Charlie's organisation that must see none of Alice's
money, and an operator who books deposits. Built from tests/factories.py."""

import itertools
from decimal import Decimal

import pytest

from accounts.models import Organisation, User
from clearing.models import CashDeposit
from clearing.services import cash_deposit_book
from tests.factories import MembershipFactory, ObserverFactory, OrganisationFactory, UserFactory

_serial = itertools.count(1)


def make_organisation(legal_name: str, *, kind: str = Organisation.Kind.MEMBER) -> Organisation:
    if kind == Organisation.Kind.OBSERVER:
        return ObserverFactory(legal_name=legal_name)
    return OrganisationFactory(legal_name=legal_name, kyc__status="approved")


def make_user(email: str, *, organisation: Organisation | None = None, staff: bool = False) -> User:
    user = UserFactory(email=email, is_staff=staff)
    if organisation is not None:
        MembershipFactory(user=user, organisation=organisation)
    return user


def deposit(operator: User, organisation: Organisation, amount: str) -> CashDeposit:
    return cash_deposit_book(
        operator=operator, organisation=organisation, amount=Decimal(amount),
        bank_reference=f"TEST-{next(_serial)}",
    )


@pytest.fixture
def operator(db: None) -> User:
    return make_user("operator@clearing.test", staff=True)


@pytest.fixture
def alice_org(db: None) -> Organisation:
    return make_organisation("Alice Compute GmbH")


@pytest.fixture
def alice(alice_org: Organisation) -> User:
    return make_user("alice@clearing.test", organisation=alice_org)


@pytest.fixture
def bob(alice_org: Organisation) -> User:
    return make_user("bob@clearing.test", organisation=alice_org)


@pytest.fixture
def charlie_org(db: None) -> Organisation:
    return make_organisation("Charlie Cloud AG")


@pytest.fixture
def charlie(charlie_org: Organisation) -> User:
    return make_user("charlie@clearing.test", organisation=charlie_org)
