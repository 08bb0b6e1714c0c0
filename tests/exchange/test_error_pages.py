"""`make run` shows the exchange's own 404 and 500 pages, in German and in
English, never Django's debug pages (issue 8, item 6): DEBUG is off unless
asked for, and the static files are still served."""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from django.test import Client

from tests.browser.conftest import AsgiLiveServer, live_server_env, spawn_daphne, stop_daphne

DEBUG_PAGE_MARKS = ("Traceback", "Using the URLconf", "You’re seeing this error because you have DEBUG = True")


@pytest.fixture(scope="module")
def make_run_server(django_db_setup: None) -> Iterator[AsgiLiveServer]:
    """daphne as `make run` starts it: no DEBUG in the environment."""
    env = live_server_env(ROOT_URLCONF="tests.exchange.urls_failing")
    env.pop("DEBUG", None)
    process, server = spawn_daphne(env)
    try:
        yield server
    finally:
        stop_daphne(process)


def fetch(url: str, language: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url)  # noqa: S310 - our own test server
    if language:
        request.add_header("Cookie", f"django_language={language}")
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:  # noqa: S310
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.mark.parametrize(
    ("language", "not_found", "failed"),
    [("de", "Seite nicht gefunden", "Serverfehler"), ("en", "Page not found", "Server error")],
)
def test_make_run_answers_with_the_exchanges_own_error_pages(make_run_server, language, not_found, failed):
    status, _type, html = fetch(f"{make_run_server.url}/gibt-es-nicht/", language)
    assert status == 404
    assert f'<html lang="{language}">' in html and not_found in html
    assert 'class="site-header"' in html  # the site's layout
    assert not any(mark in html for mark in DEBUG_PAGE_MARKS), html[:500]

    status, _type, html = fetch(f"{make_run_server.url}/fails/", language)
    assert status == 500
    assert f'<html lang="{language}">' in html and failed in html
    assert not any(mark in html for mark in DEBUG_PAGE_MARKS), html[:500]


def test_make_run_serves_the_static_files_and_api_errors_keep_their_shape(make_run_server):
    status, content_type, css = fetch(f"{make_run_server.url}/static/css/app.css")
    assert status == 200 and content_type.startswith("text/css") and ".site-header" in css

    status, content_type, body = fetch(f"{make_run_server.url}/api/v1/fails/")
    assert status == 500 and content_type == "application/json"
    assert json.loads(body) == {"code": "server_error", "detail": json.loads(body)["detail"], "fields": {}}
    assert json.loads(body)["detail"]

    status, content_type, body = fetch(f"{make_run_server.url}/api/v1/nothing-here/")
    assert status == 404 and json.loads(body)["code"] == "not_found"


@pytest.mark.urls("tests.exchange.urls_failing")
def test_the_500_page_follows_the_chosen_language(settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.cookies["django_language"] = "en"

    response = client.get("/fails/")

    assert response.status_code == 500
    assert "Something went wrong on our side." in response.content.decode()
