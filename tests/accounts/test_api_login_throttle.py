"""Hardening (issue 7, item 10): POST /api/v1/auth/token/ is throttled per
account (the e-mail, normalised) as well as per IP address."""

import hashlib

import pytest
from django.core.cache import cache

from accounts.models import ApiToken
from tests.accounts.test_api import assert_error_shape, login
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings):  # type: ignore[no-untyped-def]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                   "auth": "100/min", "auth_account": "3/min"},
    }


def test_guesses_from_many_addresses_at_one_account_are_throttled(client, alice, rates):
    spellings = ["alice@example.com", " Alice@Example.com", "ALICE@EXAMPLE.COM "]
    for number, email in enumerate(spellings):
        response = login(client, email, "guess", REMOTE_ADDR=f"198.51.100.{number + 1}")
        assert response.status_code == 401

    response = login(client, "alice@example.com", REMOTE_ADDR="203.0.113.9")  # a new address, the right password

    assert_error_shape(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert ApiToken.objects.count() == 0


def test_another_account_from_the_same_addresses_is_not_held_up(client, alice, rates):
    UserFactory(email="zoe@example.com")
    for number in range(3):
        login(client, "alice@example.com", "guess", REMOTE_ADDR=f"198.51.100.{number + 1}")

    response = login(client, "zoe@example.com", "guess", REMOTE_ADDR="198.51.100.1")

    assert_error_shape(response, 401, "authentication_failed")


def test_the_cache_key_holds_a_hash_not_the_address(client, alice, rates):
    login(client, "Alice@example.com", "guess")
    digest = hashlib.sha256(b"alice@example.com").hexdigest()
    assert cache.get(f"throttle_auth_account_{digest}") is not None
    assert cache.get("throttle_auth_account_alice@example.com") is None


def test_the_per_address_throttle_still_holds(client, alice, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                   "auth": "2/min", "auth_account": "100/min"},
    }
    login(client, "one@example.com", "guess")
    login(client, "two@example.com", "guess")
    assert_error_shape(login(client, "three@example.com", "guess"), 429, "throttled")
