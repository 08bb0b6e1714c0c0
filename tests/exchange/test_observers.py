"""Observers (a ministry's staff: read-only, never trading) get no trading
button anywhere and land on what they can use: the markets' prices and
volumes (issue 8, item 6)."""

import re

import pytest
from django.urls import reverse

from tests.factories import TEST_PASSWORD, MembershipFactory, ObserverFactory, OpenInstrumentFactory, TraderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def observer():  # type: ignore[no-untyped-def]
    membership = MembershipFactory(organisation=ObserverFactory(kyc__status="approved"),
                                   is_trader=False, is_viewer=True)
    return membership.user


def log_in(client, user, **extra):  # type: ignore[no-untyped-def]
    return client.post(reverse("account_login"), {"login": user.email, "password": TEST_PASSWORD, **extra})


def trading_buttons(html: str) -> list[str]:
    """Links into the trading area, and the words that invite to trade."""
    found = re.findall(r'href="/trading/[^"]*"', html)
    found += [word for word in ("Handelsbereich", "Zum Handel", ">Handel<") if word in html]
    return found


def test_an_observer_lands_on_the_markets_after_signing_in(client, observer):
    response = log_in(client, observer)

    assert response.status_code == 302
    assert response["Location"] == reverse("market_overview")
    assert client.get(response["Location"]).status_code == 200


def test_a_trader_still_lands_on_the_home_page_and_next_still_wins(client, observer):
    trader = TraderFactory().user

    assert log_in(client, trader)["Location"] == reverse("home")
    client.logout()
    assert log_in(client, observer, next="/organisation/")["Location"] == "/organisation/"


def test_the_home_page_offers_an_observer_the_markets_and_no_trading(client, observer):
    client.force_login(observer)

    html = client.get(reverse("home")).content.decode()

    assert f'<a class="btn btn-primary btn-lg" href="{reverse("market_overview")}">Märkte ansehen</a>' in html
    assert trading_buttons(html) == []


def test_an_instruments_screen_shows_an_observer_no_trading_button(client, observer):
    instrument = OpenInstrumentFactory()
    client.force_login(observer)

    html = client.get(reverse("market_instrument", args=[instrument.symbol])).content.decode()

    assert "Die Ordereingabe steht Ihnen nicht offen." in html  # read-only, and it says why
    assert trading_buttons(html) == []
    assert 'id="order-form"' not in html


def test_the_trading_area_sends_an_observer_to_the_markets(client, observer):
    client.force_login(observer)

    response = client.get(reverse("trading_home"))

    html = response.content.decode()
    assert response.status_code == 403
    assert f'href="{reverse("market_overview")}">Märkte ansehen</a>' in html
    assert 'href="/trading/"' not in html


def test_a_trader_keeps_the_trading_links(client):
    client.force_login(TraderFactory().user)

    html = client.get(reverse("home")).content.decode()

    assert ">Handel<" in html and "Zum Handel" in html
