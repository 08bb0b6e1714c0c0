"""The landing page shows what can be used today, and each announced segment
or feature appears when it is built (issue 8, item 6): intraday trading, the
day-ahead auction (issue 9: its auction takes bids) and futures (issue 10:
the order service takes futures orders) are open; the dashboards and
incentive programmes are linked once their pages exist."""

import re

import pytest
from django.urls import reverse

from exchange.errors import ExchangeError
from market.models import SEGMENTS_IN_SERVICE, Instrument, Segment
from market.services.orders import _check_segment

pytestmark = pytest.mark.django_db


def card(html: str, segment: str) -> str:
    found = re.search(rf'<article class="card feature" id="segment-{segment}">.*?</article>', html, re.S)
    assert found, segment
    return found.group(0)


def schedule(html: str) -> str:
    found = re.search(r'<aside class="schedule".*?</aside>', html, re.S)
    assert found
    return found.group(0)


def test_today_intraday_the_auction_and_futures_are_open(client):
    html = client.get(reverse("home")).content.decode()

    intraday = card(html, "intraday")
    assert "Heute geöffnet" in intraday
    assert f'href="{reverse("market_overview")}"' in intraday
    dayahead = card(html, "dayahead")
    assert "Heute geöffnet" in dayahead
    assert f'href="{reverse("market_dayahead")}"' in dayahead
    futures = card(html, "futures")
    assert "Heute geöffnet" in futures
    assert f'href="{reverse("futures_board")}"' in futures
    times = schedule(html)
    assert "Intraday-Handel" in times
    assert "Gebotsschluss" in times  # the next gate closure can be booked
    assert "Futures-Handel" in times
    assert "In Vorbereitung" not in times
    # The public dashboards exist (market.views.dashboard): linked, and said to need no account.
    assert 'href="/dashboard/"' in html
    assert "Die öffentlichen Preis-Dashboards sind ohne Konto zugänglich." in html


def test_the_page_and_the_order_service_agree_on_which_segments_trade():
    """Futures appear only when the order service takes futures orders: when
    the futures issue opens the gate, this fails until SEGMENTS_IN_SERVICE
    (and with it the landing page) says so too."""
    for segment in (Segment.INTRADAY, Segment.FUTURES):
        try:
            _check_segment(Instrument(segment=segment))
            takes_orders = True
        except ExchangeError:
            takes_orders = False
        assert takes_orders == (segment in SEGMENTS_IN_SERVICE), segment
    # The day-ahead segment takes no orders: its auction takes bids (market.services.dayahead).
    assert Segment.DAYAHEAD in SEGMENTS_IN_SERVICE


def test_a_segment_in_service_is_shown_as_open(client, monkeypatch):
    monkeypatch.setattr("exchange.views.SEGMENTS_IN_SERVICE", frozenset(Segment))

    html = client.get(reverse("home")).content.decode()

    for segment in ("intraday", "dayahead", "futures"):
        assert "Heute geöffnet" in card(html, segment)
    times = schedule(html)
    assert "Gebotsschluss" in times and "Futures-Handel" in times
    assert "In Vorbereitung" not in times


@pytest.mark.urls("tests.exchange.urls_with_dashboards")
def test_dashboards_and_incentives_are_linked_once_they_exist(client):
    html = client.get(reverse("home")).content.decode()

    nav = re.search(r'<nav class="main-nav".*?</nav>', html, re.S)
    assert nav and 'href="/dashboard/"' in nav.group(0)
    assert html.count('href="/dashboard/"') >= 3  # the menu, the footer, the transparency section
    assert 'href="/incentives/"' in html
    assert "Schon heute öffentlich und ohne Konto" not in html
