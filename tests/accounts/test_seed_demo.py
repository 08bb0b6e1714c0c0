"""manage.py seed_demo: idempotent demo members whose logins work."""

import io

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.management import call_command
from django.urls import reverse
from stdnum.de import vat

from accounts.demo import DEFAULT_PASSWORD, DEMO_USERS
from accounts.models import AuditLog, KycCase, KycDocument, Membership, Organisation, User
from accounts.services import trading_gate
from exchange.errors import ExchangeError

pytestmark = pytest.mark.django_db

MODELS = (User, Organisation, Membership, KycCase, KycDocument, EmailAddress, AuditLog, Authenticator)


def seed() -> str:
    # The members only: the market makers' trading has its own tests
    # (tests/market/test_demo_market.py).
    out = io.StringIO()
    call_command("seed_demo", "--no-trading", stdout=out)
    return out.getvalue()


def snapshot():
    return {model.__name__: sorted(model.objects.values_list("pk", flat=True)) for model in MODELS}


def test_seeding_twice_gives_the_same_rows(private_storage):
    output = seed()
    first = snapshot()
    seed()
    assert snapshot() == first
    assert len(first["User"]) == 9
    assert len(first["Organisation"]) == 8
    assert "startup@demo.example" in output


def test_every_demo_login_works(client, private_storage):
    seed()
    for spec in DEMO_USERS:
        assert client.login(email=spec.email, password=DEFAULT_PASSWORD), spec.email
        client.logout()
        response = client.post(reverse("account_login"), {"login": spec.email, "password": DEFAULT_PASSWORD})
        assert response.status_code == 302, spec.email
        assert client.session["_auth_user_id"] == str(User.objects.get(email=spec.email).pk)
        client.logout()


def test_a_second_run_resets_the_passwords_to_demo_password(private_storage, monkeypatch):
    seed()
    user = User.objects.get(email="startup@demo.example")
    user.set_password("changed by someone")
    user.save()
    Authenticator.objects.create(user=user, type="totp", data={"secret": "JBSWY3DPEHPK3PXP"})

    monkeypatch.setenv("DEMO_PASSWORD", "another-demo-password")
    seed()

    user.refresh_from_db()
    assert user.check_password("another-demo-password")
    assert not Authenticator.objects.filter(user=user).exists()


def test_the_demo_roles_and_kyc_states(private_storage):
    seed()

    def user(email):
        return User.objects.get(email=email)

    for email in ("startup@demo.example", "startup2@demo.example"):
        membership = trading_gate(user=user(email))
        assert membership.organisation.is_startup()
        assert membership.organisation.is_sme()
    for email, state in (("provider@demo.example", "DE-BY"), ("provider2@demo.example", "DE-NW")):
        membership = trading_gate(user=user(email), role="provider")
        assert (membership.is_owner, membership.is_trader, membership.organisation.state) == (True, True, state)

    ministry = Membership.objects.get(user=user("ministry@demo.example"))
    assert ministry.organisation.legal_name == "Bundesministerium für Digitales und Staatsmodernisierung"
    assert ministry.organisation.is_observer
    assert ministry.organisation.kyc.status == KycCase.Status.APPROVED
    with pytest.raises(ExchangeError) as refused:
        trading_gate(user=user("ministry@demo.example"))
    assert refused.value.code == "not_permitted"

    operator = user("operator@demo.example")
    assert (operator.is_staff, operator.is_superuser) == (True, True)
    assert not Membership.objects.filter(user=operator).exists()

    pending = Membership.objects.get(user=user("pending@demo.example"))
    assert pending.is_owner
    assert pending.organisation.kyc.status == KycCase.Status.SUBMITTED
    assert set(pending.organisation.kyc.documents.values_list("kind", flat=True)) == set(KycDocument.REQUIRED_KINDS)
    with pytest.raises(ExchangeError) as refused:
        trading_gate(user=user("pending@demo.example"))
    assert refused.value.code == "kyc_not_approved"

    assert EmailAddress.objects.filter(verified=True).count() == 9
    for organisation in Organisation.objects.exclude(vat_id=""):
        assert vat.is_valid(organisation.vat_id), organisation.vat_id
        organisation.full_clean()
