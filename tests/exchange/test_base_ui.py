"""The site layout: navigation by role, language switch, messages, error pages,
allauth's pages in our layout, and front-end assets served without a CDN."""

import json
import re
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.views.defaults import server_error

from exchange.views import next_day_ahead_auction

pytestmark = pytest.mark.django_db

ADMIN_LINK = 'href="/admin/"'


def make_user(email: str = "alice@example.com", **extra):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user(email=email, password="a-long-test-password", **extra)


def nav(html: str) -> str:
    match = re.search(r'<nav class="main-nav".*?</nav>', html, re.S)
    assert match, "no main navigation"
    return match.group(0)


def test_the_landing_page_and_healthz_render(client):
    landing = client.get(reverse("home"))
    health = client.get(reverse("healthz"))

    assert landing.status_code == 200
    assert "<h1" in landing.content.decode() and "Rechenbörse</h1>" in landing.content.decode()
    assert health["Content-Type"] == "application/json"
    assert set(health.json()["checks"]) >= {"database", "channel_layer", "celery"}


def test_an_anonymous_visitor_can_sign_in_or_up_but_sees_no_operations_link(client):
    html = client.get(reverse("home")).content.decode()

    assert f'href="{reverse("account_login")}"' in html
    assert f'href="{reverse("account_signup")}"' in html
    assert ADMIN_LINK not in html
    links = nav(html)
    assert ">API-Doku<" in links
    assert '<a href="/dashboard/">Dashboards</a>' in links  # public: linked for everyone
    assert 'class="brand" href="/"' in html or 'href="/" class="brand"' in html  # the wordmark links home
    assert ">Handel<" not in links and ">Organisation<" not in links


def test_a_staff_user_sees_the_operations_link(client):
    client.force_login(make_user("operator@example.com", is_staff=True))

    links = nav(client.get(reverse("home")).content.decode())

    assert f'<a href="{reverse("admin:index")}">Betrieb</a>' in links


def test_a_signed_in_user_signs_out_with_a_csrf_protected_post(client):
    client.force_login(make_user())

    html = client.get(reverse("home")).content.decode()

    form = re.search(rf'<form action="{reverse("account_logout")}" method="post">(.*?)</form>', html, re.S)
    assert form, "no sign-out form"
    assert 'name="csrfmiddlewaretoken"' in form.group(1)
    assert ">Abmelden</button>" in form.group(1)
    assert ">Anmelden<" not in html
    assert ADMIN_LINK not in html
    assert ">Organisation<" in nav(html)


def test_signing_out_shows_alices_message_in_the_messages_area(client):
    client.force_login(make_user())

    response = client.post(reverse("account_logout"), follow=True)

    messages = re.search(r'<div id="messages".*?</div>\s*</div>', response.content.decode(), re.S)
    assert messages and "Sie haben sich abgemeldet." in messages.group(0)
    assert 'class="alert alert-' in messages.group(0)


MEMBER = SimpleNamespace(organisation=SimpleNamespace(legal_name="Rechenwerk Alpha GmbH"))


@pytest.mark.parametrize(
    ("roles", "shown", "hidden"),
    [
        ({"current_membership": MEMBER, "can_trade": True}, ["Handel", "Organisation"], ["Betrieb"]),
        # KYC still pending: the trading area is shown, it explains what is missing.
        ({"current_membership": MEMBER, "can_trade": False}, ["Handel", "Organisation"], ["Betrieb"]),
        # Observers read the markets, never trade, and hold no accounts.
        ({"current_membership": MEMBER, "is_observer": True}, ["Märkte", "Organisation", "API-Doku"],
         ["Handel", "Portfolio", "Kontoauszüge", "Betrieb"]),
        ({"current_membership": None, "is_operator": True}, ["Betrieb", "Organisation"], ["Handel"]),
        ({"current_membership": None}, ["Organisation", "API-Doku"], ["Handel", "Märkte", "Betrieb"]),
    ],
)
def test_the_navigation_follows_the_roles(rf, roles, shown, hidden):
    request = rf.get("/")
    request.user = make_user()
    context = {"current_membership": None, "can_trade": False, "is_operator": False, "is_observer": False, **roles}

    links = nav(render_to_string("base.html", context, request=request))

    for label in shown:
        assert f">{label}<" in links, label
    for label in hidden:
        assert f">{label}<" not in links, label


def test_the_header_names_the_members_organisation(rf):
    request = rf.get("/")
    request.user = make_user()

    html = render_to_string("base.html", {"current_membership": MEMBER, "can_trade": True}, request=request)

    assert "Rechenwerk Alpha GmbH" in html
    assert "alice@example.com" in html


def test_the_language_switch_is_a_csrf_protected_post_to_set_language(client):
    html = client.get(reverse("home")).content.decode()

    form = re.search(r'<form class="lang-switch" action="([^"]+)" method="post".*?</form>', html, re.S)
    assert form and form.group(1) == reverse("set_language")
    assert 'name="csrfmiddlewaretoken"' in form.group(0)
    assert 'name="language" value="de"' in form.group(0) and 'name="language" value="en"' in form.group(0)


def test_set_language_switches_to_english_and_back(client):
    response = client.post(reverse("set_language"), {"language": "en", "next": "/"})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert response.cookies["django_language"].value == "en"
    assert '<html lang="en">' in client.get("/").content.decode()

    client.post(reverse("set_language"), {"language": "de", "next": "/"})
    assert '<html lang="de">' in client.get("/").content.decode()


def test_an_unknown_page_gets_the_german_404_page(client, settings):
    settings.DEBUG = False

    response = client.get("/gibt-es-nicht/")

    html = response.content.decode()
    assert response.status_code == 404
    assert '<html lang="de">' in html
    assert "Seite nicht gefunden" in html
    assert 'class="site-header"' in html  # the site layout, not Django's bare page


def test_an_unknown_api_url_gets_the_json_error_shape(client, settings):
    settings.DEBUG = False

    response = client.get("/api/v1/xyz/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"
    assert set(response.json()) == {"code", "detail", "fields"}


def test_the_server_error_page_needs_no_context(rf):
    response = server_error(rf.get("/"))

    html = response.content.decode()
    assert response.status_code == 500
    assert "Serverfehler" in html
    assert "{%" not in html and "{{" not in html


def test_a_failed_csrf_check_gets_the_german_page():
    client = Client(enforce_csrf_checks=True)

    response = client.post(reverse("set_language"), {"language": "en"})

    assert response.status_code == 403
    assert "Formular abgelaufen" in response.content.decode()


def test_every_page_loads_htmx_and_htmx_requests_pass_the_csrf_check():
    client = Client(enforce_csrf_checks=True)
    html = client.get(reverse("home")).content.decode()

    assert 'src="/static/django_htmx/htmx-2.min.js"' in html
    assert 'src="/static/django_htmx/ext/hx-ws-2.min.js"' in html
    body = re.search(r"<body hx-headers='(\{.*?\})'>", html)
    assert body, "no hx-headers on <body>"
    headers = json.loads(body.group(1))

    # What htmx sends for an hx-post: the inherited headers plus HX-Request.
    response = client.post(
        reverse("set_language"), {"language": "en", "next": "/"},
        headers={**headers, "HX-Request": "true"},
    )

    assert response.status_code == 302


def test_front_end_assets_are_served_from_static_with_no_cdn(client):
    for asset in ("css/app.css", "vendor/plotly.min.js", "django_htmx/ext/hx-ws-2.min.js", "img/favicon.svg"):
        assert finders.find(asset), asset
    with open(finders.find("vendor/plotly.min.js"), encoding="utf-8") as plotly:
        assert "plotly.js v" in plotly.read(200)

    html = client.get(reverse("home")).content.decode()

    external = re.findall(r'(?:src|href)="(https?:)?//[^"]*"', html)
    assert not external


def test_allauth_pages_use_the_site_layout(client):
    html = client.get(reverse("account_login")).content.decode()

    assert 'class="site-header"' in html
    assert 'class="card auth-card"' in html
    assert re.search(r'<button\s+class="btn btn-primary btn-block"', html)
    assert '<label for="id_password">Passwort</label>' in html


def test_signup_errors_are_shown_at_their_field(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "bob@example.com", "password1": "a-long-test-password", "password2": "another-long-password"},
    )

    html = response.content.decode()
    fields = html.split('<div class="field')[1:]
    password2 = next(field for field in fields if 'name="password2"' in field)
    assert "has-error" in password2
    assert '<p class="field-error">Sie müssen zweimal dasselbe Passwort eingeben.</p>' in password2
    email = next(field for field in fields if 'name="email"' in field)
    assert "has-error" not in email


@pytest.mark.parametrize(
    ("now", "gate", "delivery_day"),
    [
        # 11:59 CET: today's gate is still open, for tomorrow.
        (datetime(2026, 11, 28, 10, 59, tzinfo=UTC), datetime(2026, 11, 28, 11, 0, tzinfo=UTC), date(2026, 11, 29)),
        # 12:00 CET sharp: closed; the next auction is the day after tomorrow's.
        (datetime(2026, 11, 28, 11, 0, tzinfo=UTC), datetime(2026, 11, 29, 11, 0, tzinfo=UTC), date(2026, 11, 30)),
        # Summer time: gate closure 12:00 CEST is 10:00 UTC.
        (datetime(2026, 7, 1, 9, 0, tzinfo=UTC), datetime(2026, 7, 1, 10, 0, tzinfo=UTC), date(2026, 7, 2)),
        # Late evening UTC is already the next day in Berlin.
        (datetime(2026, 7, 1, 22, 30, tzinfo=UTC), datetime(2026, 7, 2, 10, 0, tzinfo=UTC), date(2026, 7, 3)),
    ],
)
def test_the_landing_page_names_the_next_day_ahead_gate_closure(now, gate, delivery_day):
    assert next_day_ahead_auction(now) == (gate, delivery_day)
