"""Owners invite colleagues; the invitee accepts while logged in with the
invited address."""

import datetime
import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.authentication import hash_token
from accounts.models import AuditLog, Invitation, Membership
from exchange.errors import ExchangeError
from tests.factories import MembershipFactory, ObserverFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def erin(db):
    return UserFactory(email="erin@example.com", full_name="Erin")


def token_from_mail() -> str:
    match = re.search(r"/organisation/invitation/([\w-]+)/", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


def test_alice_invites_erin_by_e_mail_and_erin_joins(client, alice, org_a, erin, django_capture_on_commit_callbacks):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("invitation_create"), {"email": "Erin@Example.com", "roles": ["trader", "provider"]}
        )
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.email == "erin@example.com"
    assert invitation.roles == ["trader", "provider"]
    assert invitation.expires_at - invitation.created_at == datetime.timedelta(days=7)
    assert mail.outbox[0].to == ["erin@example.com"]
    token = token_from_mail()
    # Only the hash is kept.
    assert invitation.token_hash == hash_token(token)
    assert token not in str(Invitation.objects.values_list().get())

    client.force_login(erin)
    page = client.get(reverse("invitation_accept", args=[token]))
    assert page.status_code == 200
    assert org_a.legal_name in page.content.decode()
    response = client.post(reverse("invitation_accept", args=[token]))

    assert response.status_code == 302
    membership = Membership.objects.get(user=erin)
    assert membership.organisation == org_a
    assert membership.roles == ["trader", "provider"]
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    assert AuditLog.objects.filter(action="membership.join", actor=erin, organisation=org_a).exists()


def test_the_invitee_must_be_logged_in(client, alice, erin):
    _invitation, token = services.membership_invite(inviter=alice, email=erin.email, is_trader=True)
    response = client.get(reverse("invitation_accept", args=[token]))
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_charlie_cannot_accept_an_invitation_sent_to_erin(client, alice, charlie, erin):
    _invitation, token = services.membership_invite(inviter=alice, email=erin.email, is_trader=True)
    client.force_login(charlie)

    response = client.post(reverse("invitation_accept", args=[token]))

    assert response.status_code == 403
    assert Membership.objects.filter(user=charlie).get().organisation != _invitation.organisation
    _invitation.refresh_from_db()
    assert _invitation.accepted_at is None


def test_someone_without_organisation_with_another_address_cannot_accept(alice, erin):
    stranger = UserFactory(email="mallory@example.com")
    _invitation, token = services.membership_invite(inviter=alice, email=erin.email, is_viewer=True)
    with pytest.raises(ExchangeError) as refused:
        services.invitation_accept(user=stranger, token=token)
    assert refused.value.code == "not_permitted"
    assert not Membership.objects.filter(user=stranger).exists()


def test_an_invitation_expires_after_seven_days(alice, erin):
    invitation, token = services.membership_invite(inviter=alice, email=erin.email, is_trader=True)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    with pytest.raises(ExchangeError) as refused:
        services.invitation_accept(user=erin, token=token)
    assert refused.value.code == "invalid"
    assert not Membership.objects.filter(user=erin).exists()


def test_an_invitation_is_used_once(alice, erin):
    _invitation, token = services.membership_invite(inviter=alice, email=erin.email, is_trader=True)
    services.invitation_accept(user=erin, token=token)
    with pytest.raises(ExchangeError) as refused:
        services.invitation_accept(user=erin, token=token)
    assert refused.value.code == "invalid"


def test_a_made_up_token_is_404(client, erin):
    client.force_login(erin)
    assert client.get(reverse("invitation_accept", args=["made-up"])).status_code == 404
    with pytest.raises(ExchangeError) as refused:
        services.invitation_accept(user=erin, token="made-up")
    assert refused.value.code == "not_found"


def test_bob_who_is_no_owner_cannot_invite(client, bob, erin):
    with pytest.raises(ExchangeError) as refused:
        services.membership_invite(inviter=bob, email=erin.email, is_trader=True)
    assert refused.value.code == "not_permitted"
    client.force_login(bob)
    response = client.post(reverse("invitation_create"), {"email": erin.email, "roles": ["trader"]})
    assert response.status_code == 403
    assert Invitation.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "field"),
    [({"email": "erin@example.com", "roles": []}, "roles"),
     ({"email": "charlie@example.com", "roles": ["trader"]}, "email"),
     ({"email": "not-an-address", "roles": ["trader"]}, "email")],
)
def test_bad_invitations_show_at_the_field_and_write_nothing(client, alice, charlie, erin, data, field):
    client.force_login(alice)
    response = client.post(reverse("invitation_create"), data)
    assert response.status_code == 400
    assert field in response.context["invite_form"].errors
    assert Invitation.objects.count() == 0
    assert len(mail.outbox) == 0


def test_an_open_invitation_is_not_sent_twice(alice, erin):
    services.membership_invite(inviter=alice, email=erin.email, is_trader=True)
    with pytest.raises(ExchangeError) as refused:
        services.membership_invite(inviter=alice, email=erin.email, is_trader=True)
    assert refused.value.fields["email"]
    assert Invitation.objects.count() == 1


def test_an_observer_organisation_invites_viewers_only(erin):
    ministry = ObserverFactory(kyc__status="approved")
    owner = MembershipFactory(organisation=ministry, is_owner=True, is_trader=False).user
    with pytest.raises(ExchangeError) as refused:
        services.membership_invite(inviter=owner, email=erin.email, is_trader=True)
    assert "roles" in refused.value.fields
    invitation, _token = services.membership_invite(inviter=owner, email=erin.email, is_viewer=True)
    assert invitation.roles == ["viewer"]


def test_the_invitation_mail_names_organisation_roles_and_link_in_german(alice, org_a, erin,
                                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.membership_invite(inviter=alice, email=erin.email, is_trader=True, is_viewer=True)
    message = mail.outbox[0]
    assert org_a.legal_name in message.subject
    assert "Händler, Betrachter" in message.body
    assert "http://" in message.body and "/organisation/invitation/" in message.body
