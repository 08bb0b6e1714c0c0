"""The public dashboard pages (issue 9, item 5): the entry page and the results
page of one auction day, for anyone without a login, with the hourly table,
the chart data (the API's payloads, in json_script), the curves of a chosen
hour, the indicative prices before clearing, the 23- and 25-hour days, and
no member data. The charts themselves are drawn in a browser:
tests/browser/test_dayahead_dashboard.py."""

import json
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import KycCase
from market import calendar
from market.models import DayAheadBid, GpuClass
from tests.factories import (
    DayAheadAuctionFactory,
    DayAheadIndicativeFactory,
    GpuClassFactory,
    MembershipFactory,
    OrganisationFactory,
    cleared_auction,
)

pytestmark = pytest.mark.django_db

SPRING = date(2026, 3, 29)
AUTUMN = date(2026, 10, 25)


@pytest.fixture
def h100() -> GpuClass:
    return GpuClassFactory(code="H100")


@pytest.fixture
def visitor() -> Client:
    return Client()


def page(visitor: Client, day: date, **query: str) -> str:
    response = visitor.get(f"/dashboard/dayahead/{day.isoformat()}/", query)
    assert response.status_code == 200
    return response.content.decode()


def json_data(html: str, element_id: str):  # type: ignore[no-untyped-def]
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert found, element_id
    return json.loads(found.group(1))


def table_rows(html: str) -> list[str]:
    return re.findall(r'<tr data-hour="([0-9AB]+)"', html)


def test_the_results_of_the_25_hour_day(visitor, h100):
    cleared_auction(day=AUTUMN, gpu_class=h100)

    html = page(visitor, AUTUMN, gpu_class="H100", zone="DE")

    rows = table_rows(html)
    assert len(rows) == 25 and rows[1:5] == ["01", "02A", "02B", "03"]
    assert "als 02A (Sommerzeit) und 02B (Winterzeit)" in html
    row_02b = re.search(r'<tr data-hour="02B".*?</tr>', html, re.S)
    assert row_02b
    assert "02:00–03:00" in row_02b.group(0) and "UTC+1" in row_02b.group(0)  # the second 02:00, winter time
    assert "10,75" in row_02b.group(0) and ">23<" in row_02b.group(0)  # price, German; volume
    # The chart data is the API's answer.
    api = visitor.get(f"/api/v1/dayahead/{AUTUMN}/results/", {"gpu_class": "H100", "zone": "DE"}).json()
    assert json_data(html, "dayahead-hours") == api["hours"]
    # The curves of the hour with the largest volume (the last: 20 + position GPUs).
    curves = json_data(html, "dayahead-curves-data")
    assert curves["hour"] == "23" and curves["volume"] == 44 and curves["price"] == "16.00"
    assert 'id="dayahead-chart"' in html and 'id="dayahead-curves"' in html
    assert "Räumungspunkt: 44 GPUs zu 16,00 EUR/GPUh." in html
    assert "Mittel aus 25 Stundenpreisen" in html and "13,00" in html  # mean of 10.00 ... 16.00
    assert "Stunde 23" in html  # the highest price's hour
    # Open data links.
    assert f'href="/api/v1/dayahead/{AUTUMN}/results/?gpu_class=H100&amp;zone=DE"' in html
    assert f'href="/api/v1/dayahead/{AUTUMN}/results/?gpu_class=H100&amp;zone=DE&amp;format=csv"' in html


def test_the_23_hour_day_has_no_hour_02(visitor, h100):
    cleared_auction(day=SPRING, gpu_class=h100, prices={"04": None})

    html = page(visitor, SPRING)  # class and zone default to H100 and DE

    rows = table_rows(html)
    assert len(rows) == 23 and "02" not in rows and rows[2] == "03"
    assert "Die Stunde von 02:00 bis 03:00 entfällt" in html
    row_04 = re.search(r'<tr data-hour="04".*?</tr>', html, re.S)
    assert row_04 and 'title="Keine Gebote in dieser Stunde">–<' in row_04.group(0)
    assert json_data(html, "dayahead-hours")[3] == {"hour": "04", "price": None, "volume": 0, "buy_volume": 0,
                                                    "sell_volume": 0,
                                                    "delivery_start": "2026-03-29T04:00:00+02:00"}


def test_the_curves_of_a_chosen_hour_and_the_htmx_partial(visitor, h100):
    cleared_auction(day=AUTUMN, gpu_class=h100)

    html = page(visitor, AUTUMN, gpu_class="H100", zone="DE", hour="02A")
    partial = visitor.get(f"/dashboard/dayahead/{AUTUMN}/", {"gpu_class": "H100", "zone": "DE", "hour": "02B"},
                          HTTP_HX_REQUEST="true", HTTP_HX_TARGET="curves").content.decode()

    assert json_data(html, "dayahead-curves-data")["hour"] == "02A"
    assert f'href="/api/v1/dayahead/{AUTUMN}/curves/?gpu_class=H100&amp;zone=DE&amp;hour=02B"' in partial
    assert '<option value="02A" selected>' in html
    assert '<tr data-hour="02A" class="is-chosen">' in html
    assert "<html" not in partial and partial.lstrip().startswith('<section class="card dayahead-curves-card"')
    curves = json_data(partial, "dayahead-curves-data")
    assert curves["hour"] == "02B" and curves["delivery_start"] == "2026-10-25T02:00:00+01:00"
    assert curves["buy_curve"] == [["12.75", 11], ["10.75", 23], ["9.75", 28]]


def test_before_clearing_the_page_shows_the_indicative_prices(visitor, h100):
    day = timezone.now().astimezone(calendar.BERLIN).date() + timedelta(days=3)
    auction = DayAheadAuctionFactory(delivery_date=day, gpu_class=h100)

    without = page(visitor, day)
    DayAheadIndicativeFactory(auction=auction)
    html = page(visitor, day)

    assert "Noch nicht geräumt" in without and "Noch keine indikativen Preise" in without
    gate = calendar.dayahead_gate_closure(day).astimezone(calendar.BERLIN)
    assert f"Gebotsschluss ist am {gate:%d.%m.%Y} 12:00" in without
    assert "Indikative Preise" in html and "Unverbindlich" in html
    assert json_data(html, "dayahead-hours")[1] == {"hour": "01", "price": "9.60", "volume": 10}
    assert "9,60" in html and len(table_rows(html)) == len(calendar.day_hours(day))
    assert "data-indicative" in html
    assert 'id="dayahead-curves"' not in html and "dayahead-curves-data" not in html  # no curves before clearing


def test_a_day_whose_book_is_not_open_yet_and_a_day_without_bids(visitor, h100):
    far = timezone.now().astimezone(calendar.BERLIN).date() + timedelta(days=30)

    later = page(visitor, far)
    nobody = page(visitor, AUTUMN, gpu_class="H100", zone="DE-BY")

    assert "Orderbuch noch nicht offen" in later
    assert "Niemand hat an diesem Tag für H100 in der Zone DE-BY geboten" in nobody
    assert "dayahead-hours" not in nobody


def test_previous_and_next_day_keep_the_class_and_zone(visitor, h100):
    GpuClassFactory(code="B200")

    html = page(visitor, AUTUMN, gpu_class="B200", zone="DE-BY")

    assert 'href="/dashboard/dayahead/2026-10-24/?gpu_class=B200&amp;zone=DE-BY" rel="prev"' in html
    assert 'href="/dashboard/dayahead/2026-10-26/?gpu_class=B200&amp;zone=DE-BY" rel="next"' in html
    assert '<option value="B200" selected>' in html


def test_an_unknown_class_falls_back_and_a_bad_day_is_not_found(visitor, h100):
    html = page(visitor, AUTUMN, gpu_class="Z999", zone="nowhere")

    assert '<option value="H100" selected>' in html and '<option value="DE" selected>' in html
    for text in ("2026-02-30", "20261025", "1999-01-01"):
        assert visitor.get(f"/dashboard/dayahead/{text}/").status_code == 404


def test_english_numbers_and_words(visitor, h100):
    cleared_auction(day=AUTUMN, gpu_class=h100)
    visitor.cookies["django_language"] = "en"

    html = page(visitor, AUTUMN)

    assert "Hourly results" in html and "Clearing point: 44 GPUs at 16.00 EUR/GPUh." in html
    assert json_data(html, "dayahead-i18n")["buy"] == "Buy curve"


def test_the_page_has_no_inline_script(visitor, h100):
    cleared_auction(day=AUTUMN, gpu_class=h100)

    response = visitor.get(f"/dashboard/dayahead/{AUTUMN}/")
    html = response.content.decode()

    assert "script-src 'self'" in response["Content-Security-Policy"]
    scripts = re.findall(r"<script\b[^>]*>", html)
    inline = [tag for tag in scripts if "src=" not in tag and 'type="application/json"' not in tag]
    assert inline == []
    assert "/static/js/dayahead.js" in html and "/static/vendor/plotly.min.js" in html


# --- the entry page ---------------------------------------------------------------------------


def test_the_entry_page_shows_the_latest_results_per_class_and_zone(visitor, h100):
    cleared_auction(day=AUTUMN, gpu_class=h100)
    cleared_auction(day=AUTUMN - timedelta(days=1), gpu_class=h100)  # older: not shown
    cleared_auction(day=SPRING, gpu_class=GpuClassFactory(code="H200"), zone_code="DE-BY")

    response = visitor.get("/dashboard/")

    assert response.status_code == 200
    html = response.content.decode()
    latest = re.search(r'<table class="table" data-testid="latest-results">.*?</table>', html, re.S)
    assert latest
    rows = re.findall(r'<th scope="row" class="nowrap"><a href="([^"]+)">([^<]+)</a></th>\s*<td[^>]*>([^<]+)</td>',
                      latest.group(0))
    assert rows == [("/dashboard/dayahead/2026-10-25/?gpu_class=H100&amp;zone=DE", "H100 · DE", "25.10.2026"),
                    ("/dashboard/dayahead/2026-03-29/?gpu_class=H200&amp;zone=DE-BY", "H200 · DE-BY", "29.03.2026")]
    assert "13,00" in latest.group(0)  # the day's mean price: 10.00 ... 16.00
    assert '<a href="/dashboard/" aria-current="page">Dashboards</a>' in html


def auction_days(html: str) -> list[str]:
    return re.findall(r'<article class="card auction-day".*?</article>', html, re.S)


def test_the_entry_page_shows_tomorrows_auction_with_its_indicative_prices(visitor, h100, monkeypatch):
    morning = datetime(2026, 12, 3, 10, tzinfo=calendar.BERLIN)
    tomorrow = DayAheadAuctionFactory(delivery_date=date(2026, 12, 4), gpu_class=h100)
    DayAheadIndicativeFactory(auction=tomorrow, computed_at=morning - timedelta(minutes=3))
    monkeypatch.setattr(timezone, "now", lambda: morning)

    cards = auction_days(visitor.get("/dashboard/").content.decode())

    assert len(cards) == 1  # before 12:00 tomorrow's book is the open one
    assert "Lieferung am Freitag, 04.12.2026" in cards[0] and "Orderbuch offen" in cards[0]
    assert "Gebotsschluss: 03.12.2026 12:00" in cards[0]
    assert "10,65" in cards[0] and "09:57" in cards[0]  # mean of 9.50 ... 11.80; computed at
    assert 'href="/dashboard/dayahead/2026-12-04/?gpu_class=H100&amp;zone=DE"' in cards[0]


def test_after_gate_closure_the_entry_page_shows_the_next_open_auction_too(visitor, h100, monkeypatch):
    afternoon = datetime(2026, 12, 3, 14, tzinfo=calendar.BERLIN)
    cleared_auction(day=date(2026, 12, 4), gpu_class=h100)
    monkeypatch.setattr(timezone, "now", lambda: afternoon)

    cards = auction_days(visitor.get("/dashboard/").content.decode())

    assert len(cards) == 2
    assert "Geräumt" in cards[0] and "Die Ergebnisse sind veröffentlicht." in cards[0]
    assert 'href="/dashboard/dayahead/2026-12-04/?gpu_class=H100&amp;zone=DE">H100 · DE</a>' in cards[0]
    assert "Lieferung am Samstag, 05.12.2026" in cards[1] and "Noch keine indikativen Preise." in cards[1]


def test_no_member_data_on_the_pages(visitor, h100):
    auction = cleared_auction(day=AUTUMN, gpu_class=h100)
    organisation = OrganisationFactory(legal_name="Geheimrechen Bieter GmbH", kyc__status=KycCase.Status.APPROVED)
    member = MembershipFactory(organisation=organisation, user__email="verdeckter-bieter@example.com")
    DayAheadBid.objects.create(auction=auction, organisation=organisation, placed_by=member.user, kind="curve",
                               side="buy", hour="14", hours=1, sequence=1, fee_rate=Decimal("0.0100"))

    for html in (page(visitor, AUTUMN), visitor.get("/dashboard/").content.decode()):
        assert "Geheimrechen" not in html and "verdeckter-bieter" not in html


def test_the_entry_page_links_the_indicators_and_shows_the_observers_card_to_observers_only(visitor, h100):
    from tests.factories import MembershipFactory, OrganisationFactory

    cards = re.search(r'data-testid="indicator-cards">(.*?)</section>', visitor.get("/dashboard/").content.decode(),
                      re.S)
    assert cards
    links = re.findall(r'<a href="([^"]+)">', cards.group(1))
    assert links == ["/dashboard/activity/", "/dashboard/concentration/", "/dashboard/regions/"]
    ministry = MembershipFactory(organisation=OrganisationFactory(kind="observer")).user
    observer = Client()
    observer.force_login(ministry)
    assert '<a href="/dashboard/observer/">' in observer.get("/dashboard/").content.decode()
