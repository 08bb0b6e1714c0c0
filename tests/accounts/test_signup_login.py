"""Sign-up and log-in through allauth, with the project's settings:
e-mail login, mandatory verification, no account enumeration."""

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from accounts.models import User
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a long new passphrase 42"


def test_a_newcomer_signs_up_and_gets_a_verification_mail(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "neu@example.com", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get(email="neu@example.com")
    assert not EmailAddress.objects.get(user=user).verified
    assert mail.outbox[0].to == ["neu@example.com"]
    # Not logged in before the address is confirmed.
    assert "_auth_user_id" not in client.session


def test_signing_up_with_a_taken_address_creates_nothing_and_tells_its_owner(client, alice):
    users, addresses = User.objects.count(), EmailAddress.objects.count()

    response = client.post(
        reverse("account_signup"),
        {"email": "ALICE@example.com", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    # ACCOUNT_PREVENT_ENUMERATION: the page looks like any sign-up (nobody
    # learns that the address has an account); the clear message goes to
    # the address's owner, by e-mail.
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert (User.objects.count(), EmailAddress.objects.count()) == (users, addresses)
    assert not User.objects.get(email="alice@example.com").check_password(NEW_PASSWORD)
    assert [message.to for message in mail.outbox] == [["alice@example.com"]]
    # "An account using that address already exists", with the reset link.
    assert reverse("account_reset_password") in mail.outbox[0].body
    assert "_auth_user_id" not in client.session


def test_signing_up_with_mismatching_passwords_shows_the_error_and_creates_nothing(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "neu@example.com", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["password2"]
    assert not User.objects.filter(email="neu@example.com").exists()


def test_logging_in_before_verifying_the_address_does_not_log_in(client):
    UserFactory(email="unverified@example.com", verified=False)

    response = client.post(reverse("account_login"), {"login": "unverified@example.com", "password": TEST_PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session
    # allauth sends the verification mail again.
    assert mail.outbox[-1].to == ["unverified@example.com"]


def test_a_verified_member_logs_in_with_e_mail_and_password(client, alice):
    response = client.post(reverse("account_login"), {"login": "alice@example.com", "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_a_wrong_password_does_not_log_in(client, alice):
    response = client.post(reverse("account_login"), {"login": "alice@example.com", "password": "wrong password"})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session
