"""POST/DELETE /api/v1/auth/token/ and GET /api/v1/me/."""

import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.urls import reverse

from accounts.authentication import hash_token
from accounts.models import ApiToken
from tests.accounts.helpers import approve
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token/"


def login(client, email, password=TEST_PASSWORD, otp=None, **headers):
    data = {"email": email, "password": password} if otp is None else {"email": email, "password": password, "otp": otp}
    return client.post(TOKEN_URL, data, content_type="application/json", **headers)


def assert_error_shape(response, status, code):
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"code", "detail", "fields"}
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["fields"], dict)
    return body


def current_totp(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def test_the_url_is_the_contracts():
    assert reverse("api_auth_token") == TOKEN_URL


def test_a_member_gets_a_token_and_only_its_hash_is_stored(client, alice):
    response = login(client, "alice@example.com")

    assert response.status_code == 201
    key = response.json()["token"]
    assert key.startswith("rb_") and len(key) > 40
    token = ApiToken.objects.get(user=alice)
    assert token.key_hash == hash_token(key)
    assert token.prefix == key[:10]
    assert key not in str(ApiToken.objects.values_list().get())


def test_the_token_authenticates_api_requests(client, alice, org_a):
    approve(org_a)
    key = login(client, "alice@example.com").json()["token"]

    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}")

    assert response.status_code == 200
    assert response.json() == {
        "email": "alice@example.com",
        "organisation": org_a.legal_name,
        "roles": ["owner", "trader"],
        "kyc_status": "approved",
        "may_trade": True,
    }


def test_me_for_a_member_whose_kyc_is_pending_and_for_someone_without_organisation(client, bob):
    client.force_login(bob)
    body = client.get("/api/v1/me/").json()
    assert (body["roles"], body["kyc_status"], body["may_trade"]) == (["trader"], "draft", False)

    client.force_login(UserFactory(email="solo@example.com"))
    body = client.get("/api/v1/me/").json()
    assert (body["organisation"], body["roles"], body["kyc_status"], body["may_trade"]) == (None, [], None, False)


def test_me_needs_authentication(client):
    assert_error_shape(client.get("/api/v1/me/"), 401, "not_authenticated")


def test_a_wrong_password_is_401_in_the_contracts_shape_and_creates_nothing(client, alice):
    body = assert_error_shape(login(client, "alice@example.com", "not the password"), 401, "authentication_failed")
    assert body["fields"] == {}
    assert ApiToken.objects.count() == 0


def test_an_unknown_address_is_refused_like_a_wrong_password(client, alice):
    wrong_password = login(client, "alice@example.com", "not the password").json()
    unknown = login(client, "nobody@example.com").json()
    assert unknown == wrong_password


def test_missing_fields_are_400_invalid_with_the_fields_named(client):
    body = assert_error_shape(client.post(TOKEN_URL, {}, content_type="application/json"), 400, "invalid")
    assert set(body["fields"]) == {"email", "password"}


def test_an_inactive_user_is_refused(client):
    UserFactory(email="gone@example.com", is_active=False)
    assert_error_shape(login(client, "gone@example.com"), 401, "authentication_failed")
    assert ApiToken.objects.count() == 0


def test_an_unverified_address_is_refused_as_the_web_login_would(client, settings):
    UserFactory(email="unverified@example.com", verified=False)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = login(client, "unverified@example.com")
    body = assert_error_shape(response, 401, "authentication_failed")
    assert body["detail"].startswith("Verify your e-mail address")
    assert ApiToken.objects.count() == 0


@pytest.fixture
def totp_secret(alice):
    secret = generate_totp_secret()
    TOTP.activate(alice, secret)
    return secret


def test_with_mfa_on_the_otp_is_required(client, totp_secret):
    body = assert_error_shape(login(client, "alice@example.com"), 401, "otp_required")
    assert "otp" in body["fields"]
    assert ApiToken.objects.count() == 0


def test_with_mfa_on_a_wrong_otp_is_refused(client, totp_secret):
    wrong = f"{(int(current_totp(totp_secret)) + 1) % 1_000_000:06d}"
    assert_error_shape(login(client, "alice@example.com", otp=wrong), 401, "authentication_failed")
    assert ApiToken.objects.count() == 0


def test_with_mfa_on_the_current_totp_code_gets_a_token_once(client, alice, totp_secret):
    code = current_totp(totp_secret)
    response = login(client, "alice@example.com", otp=code)
    assert response.status_code == 201
    assert Authenticator.objects.get(user=alice, type="totp").last_used_at is not None
    # The same code can't be replayed.
    assert_error_shape(login(client, "alice@example.com", otp=code), 401, "authentication_failed")


def test_with_mfa_on_a_recovery_code_works_once(client, alice, totp_secret):
    codes = RecoveryCodes.activate(alice).get_unused_codes()
    assert login(client, "alice@example.com", otp=codes[0]).status_code == 201
    assert_error_shape(login(client, "alice@example.com", otp=codes[0]), 401, "authentication_failed")


def test_revoking_the_token_makes_it_useless(client, alice):
    key = login(client, "alice@example.com").json()["token"]
    other_key = login(client, "alice@example.com").json()["token"]

    response = client.delete(TOKEN_URL, HTTP_AUTHORIZATION=f"Token {key}")

    assert response.status_code == 204
    assert not ApiToken.objects.filter(key_hash=hash_token(key)).exists()
    assert_error_shape(client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}"), 401, "authentication_failed")
    assert_error_shape(client.delete(TOKEN_URL, HTTP_AUTHORIZATION=f"Token {key}"), 401, "authentication_failed")
    # Only that token: the other client of Alice's goes on working.
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {other_key}").status_code == 200


def test_revoking_needs_a_token(client, alice):
    client.force_login(alice)
    assert_error_shape(client.delete(TOKEN_URL), 401, "not_authenticated")


def test_the_token_endpoint_is_throttled(client, alice, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"},
    }
    for _attempt in range(3):
        assert login(client, "alice@example.com", "guess").status_code == 401

    response = login(client, "alice@example.com")  # even the right password waits now

    assert_error_shape(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert ApiToken.objects.count() == 0


def test_the_schema_documents_the_token_endpoint_and_the_scheme(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/auth/token/"]["post"]
    assert set(operation["responses"]) >= {"201", "400", "401", "429"}
    assert "delete" in schema["paths"]["/api/v1/auth/token/"]
    assert schema["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"
    error = schema["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"code", "detail", "fields"}
    assert "/api/v1/me/" in schema["paths"]
