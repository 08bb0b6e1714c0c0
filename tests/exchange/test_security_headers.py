"""Hardening (issue 7, item 10): every page sends a Content-Security-Policy
whose script nonce is the one the page's scripts carry, and nothing a
logged-in user is shown may be stored by a cache."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import OpenInstrumentFactory
from tests.market.orders_world import make_world

pytestmark = pytest.mark.django_db


def _policy(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    header = response["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in header.split("; ")}


def test_pages_send_the_policy(client, settings):
    settings.ALLOWED_HOSTS = ["boerse.example"]
    response = client.get("/", HTTP_HOST="boerse.example")

    policy = _policy(response)
    assert policy["default-src"] == "'self'"
    assert re.fullmatch(r"'self' 'nonce-[\w-]{20,}'", policy["script-src"])
    assert policy["connect-src"] == "'self' ws://boerse.example wss://boerse.example"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'self'"
    assert policy["form-action"] == "'self'"
    assert "unsafe-eval" not in response["Content-Security-Policy"]


def test_the_nonce_is_new_for_every_response_and_is_the_one_the_scripts_carry(client):
    first, second = client.get("/"), client.get("/")
    nonce = re.search(r"'nonce-([\w-]+)'", first["Content-Security-Policy"]).group(1)

    assert nonce not in second["Content-Security-Policy"]
    scripts = re.findall(r"<script[^>]*>", first.content.decode())
    assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts if "src=" not in tag)
    assert any(f'nonce="{nonce}"' in tag for tag in scripts)  # htmx's tag carries it too


def test_no_template_has_inline_event_handlers_or_scripts_without_a_nonce():
    roots = [Path(settings.BASE_DIR) / "templates", *Path(settings.BASE_DIR).glob("*/templates")]
    offenders = []
    for root in roots:
        for path in root.rglob("*.html"):
            text = path.read_text()
            if re.search(r"\son[a-z]+\s*=\s*[\"']", text):
                offenders.append(f"{path}: inline event handler")
            for tag in re.findall(r"<script\b[^>]*>", text):
                if "src=" not in tag and "nonce=" not in tag and "application/json" not in tag:
                    offenders.append(f"{path}: {tag}")
    assert offenders == []


PRIVATE_PAGES = ["/trading/", "/portfolio/", "/organisation/", "/statements/", "/deliveries/", "/invoices/",
                 "/withdrawals/", "/provider/", "/admin/"]


def test_private_pages_are_not_stored_by_any_cache(client):
    world = make_world()
    client.force_login(world.alice)
    for path in [*PRIVATE_PAGES, f"/markets/{world.instrument.symbol}/", "/markets/"]:
        response = client.get(path)
        assert response.status_code in (200, 302), path
        cache_control = response.get("Cache-Control", "")
        assert "no-store" in cache_control and "private" in cache_control, (path, cache_control)


def test_api_answers_for_a_member_are_not_stored_either():
    world = make_world()
    token_client = APIClient()
    token_client.force_authenticate(world.alice)
    assert "no-store" in token_client.get("/api/v1/orders/")["Cache-Control"]


def test_public_pages_seen_anonymously_keep_their_caching(client):
    instrument = OpenInstrumentFactory()
    for path in ["/", "/api/docs/", f"/api/v1/instruments/{instrument.symbol}/book/"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "no-store" not in response.get("Cache-Control", ""), path
