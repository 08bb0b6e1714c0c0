"""E-mail links use the running server's address (issue 8, item 6): during a
request the address the reader reached (as allauth's own links do), outside
a request SITE_URL, which `make run` sets to its port."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts import services
from exchange.site import absolute_url

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-long-new-password-42"


def links(body: str) -> list[str]:
    return re.findall(r"https?://[^\s>]+", body)


def test_the_apps_own_mail_links_to_the_server_the_request_reached(client, alice, django_capture_on_commit_callbacks):
    client.force_login(alice)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("invitation_create"), {"email": "erin@example.com", "roles": ["trader"]},
                    HTTP_HOST="localhost:8104")

    [link] = links(mail.outbox[-1].body)
    assert link.startswith("http://localhost:8104/organisation/invitation/")


def test_allauths_verification_mail_links_to_the_same_server(client):
    client.post(reverse("account_signup"),
                {"email": "neu@example.com", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
                HTTP_HOST="127.0.0.1:8104")

    assert any(link.startswith("http://127.0.0.1:8104/accounts/confirm-email/") for link in links(mail.outbox[-1].body))


def test_outside_a_request_the_links_use_site_url(settings, alice, django_capture_on_commit_callbacks):
    settings.SITE_URL = "http://127.0.0.1:8123/"

    with django_capture_on_commit_callbacks(execute=True):
        services.membership_invite(inviter=alice, email="erin@example.com", is_trader=True)

    [link] = links(mail.outbox[-1].body)
    assert link.startswith("http://127.0.0.1:8123/organisation/invitation/")
    assert absolute_url("/admin/") == "http://127.0.0.1:8123/admin/"


def test_a_host_the_site_does_not_serve_gets_no_mail(client, alice, django_capture_on_commit_callbacks):
    client.force_login(alice)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("invitation_create"), {"email": "erin@example.com", "roles": ["trader"]},
                               HTTP_HOST="attacker.example")

    assert response.status_code == 400  # ALLOWED_HOSTS: nobody can make the exchange mail their address
    assert mail.outbox == []
