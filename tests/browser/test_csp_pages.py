"""Hardening (issue 7, item 10): under the Content-Security-Policy the pages
still work in real Chromium, with no violation on the console: the Swagger UI,
the Django admin, the trading screen (htmx, Plotly) and an invoice."""

from collections.abc import Iterator

import pytest
from django.test import Client
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from accounts.models import User
from tests.factories import OpenInstrumentFactory
from tests.market.orders_world import make_world

pytestmark = pytest.mark.django_db(transaction=True)


class Watched:
    def __init__(self, page: Page):
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        # Every violation, reported or not, also fires this DOM event.
        page.add_init_script("""document.addEventListener('securitypolicyviolation', (e) =>
            console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));""")

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or "CSP violation" in text or "Refused to" in text:
            self.problems.append(text)


@pytest.fixture
def watched(browser: Browser, live_server) -> Iterator[tuple[Page, Watched]]:  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=live_server.url, locale="de-DE", timezone_id="Europe/Berlin")
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page, Watched(page)
    context.close()


def _log_in(page: Page, live_server, user: User) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                               "url": live_server.url}])


def test_the_swagger_ui_renders_under_the_policy(watched):
    page, watch = watched
    response = page.goto("/api/docs/")

    assert "script-src 'self' 'nonce-" in response.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Rechenbörse API")
    expect(page.locator(".opblock").first).to_be_visible()
    assert watch.problems == []


def test_the_admin_works_under_the_policy(watched, live_server):
    page, watch = watched
    instrument = OpenInstrumentFactory()
    _log_in(page, live_server, User.objects.create_superuser(email="root@csp.test", password="x" * 12))

    page.goto("/admin/")
    expect(page.locator("#site-name")).to_be_visible()
    page.goto("/admin/market/instrument/")
    expect(page.locator("#result_list")).to_contain_text(instrument.symbol)
    page.locator("#action-toggle").check()  # the changelist's JavaScript runs
    expect(page.locator(".action-counter")).to_contain_text("1")
    page.goto(f"/admin/market/instrument/{instrument.pk}/change/")
    expect(page.locator("#content-main form")).to_be_visible()

    assert watch.problems == []


def test_the_trading_screen_and_its_chart_work_under_the_policy(watched, live_server):
    page, watch = watched
    world = make_world()
    _log_in(page, live_server, world.charlie)

    page.goto(f"/markets/{world.instrument.symbol}/")
    page.wait_for_function("() => window.htmx !== undefined && window.Plotly !== undefined")
    page.wait_for_timeout(500)  # the chart draws after load

    # (The WebSockets cannot connect to this WSGI server; a failed connection is no CSP message.)
    assert watch.problems == []
