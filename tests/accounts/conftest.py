"""Actors of the accounts tests (healthchecks style): Alice owns
organisation A, Bob trades in Alice's organisation, Charlie owns another
organisation and must see none of Alice's things; Olga is an operator."""

from pathlib import Path

import pytest

from accounts.models import Organisation, User
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory


@pytest.fixture
def private_storage(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """KYC documents go to pytest's tmp_path instead of var/private."""
    storages = {alias: {**conf} for alias, conf in settings.STORAGES.items()}
    storages["default"] = {**storages["default"], "OPTIONS": {**storages["default"]["OPTIONS"], "location": tmp_path}}
    settings.STORAGES = storages
    return tmp_path


@pytest.fixture
def org_a(db: None) -> Organisation:
    return OrganisationFactory(legal_name="Alice Rechenwerk GmbH")


@pytest.fixture
def org_c(db: None) -> Organisation:
    return OrganisationFactory(legal_name="Charlie Cloud AG")


@pytest.fixture
def alice(org_a: Organisation) -> User:
    user = UserFactory(email="alice@example.com", full_name="Alice")
    MembershipFactory(user=user, organisation=org_a, is_owner=True, is_trader=True)
    return user


@pytest.fixture
def bob(org_a: Organisation, alice: User) -> User:
    user = UserFactory(email="bob@example.com", full_name="Bob")
    MembershipFactory(user=user, organisation=org_a, is_owner=False, is_trader=True)
    return user


@pytest.fixture
def charlie(org_c: Organisation) -> User:
    user = UserFactory(email="charlie@example.com", full_name="Charlie")
    MembershipFactory(user=user, organisation=org_c, is_owner=True, is_trader=True)
    return user


@pytest.fixture
def operator(db: None) -> User:
    return UserFactory(email="olga@operator.example", full_name="Olga", is_staff=True)
