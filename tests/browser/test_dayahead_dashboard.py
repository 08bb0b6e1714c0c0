"""The public day-ahead results page in real Chromium (issue 9, item 5): the
plotly charts are drawn (price and volume per hour, the aggregated curves of
an hour with the clearing point), the hour picker swaps the curves with
htmx, all under the Content-Security-Policy; on a desktop and on a phone.
Screenshots under test-artifacts/."""

from datetime import date, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from market import calendar
from tests.browser.conftest import Shots
from tests.browser.test_csp_pages import Watched
from tests.factories import DayAheadAuctionFactory, DayAheadIndicativeFactory, GpuClassFactory, cleared_auction
from tests.market.trading_setup import ensure_zones

pytestmark = pytest.mark.django_db(transaction=True)

AUTUMN = date(2026, 10, 25)  # 25 hours


def drawn(page: Page, selector: str) -> None:
    expect(page.locator(f"{selector} svg.main-svg").first).to_be_visible()


def test_the_results_page_draws_the_prices_and_the_curves(new_page, live_server, request):
    ensure_zones("DE", "DE-BY")  # a transactional test before this one may have flushed the migration's
    cleared_auction(day=AUTUMN, gpu_class=GpuClassFactory(code="H100"))
    page = new_page(live_server.url)
    watch = Watched(page)
    shots = Shots(page, request.node.name)

    page.goto(f"/dashboard/dayahead/{AUTUMN}/?gpu_class=H100&zone=DE")

    drawn(page, "#dayahead-chart")
    drawn(page, "#dayahead-curves")
    # 25 hours on the price chart: a bar per hour, 02A and 02B among the ticks.
    expect(page.locator("#dayahead-chart .bars .point")).to_have_count(25)
    ticks = page.locator("#dayahead-chart .xtick text").all_text_contents()
    assert "02A" in ticks and "02B" in ticks
    # The clearing point is marked on the curves: a marker and two dotted lines.
    expect(page.locator("#dayahead-curves .scatterlayer .trace").nth(2).locator(".point")).to_have_count(1)
    expect(page.locator("#dayahead-curves .shapelayer path")).to_have_count(2)
    shots("results")

    page.select_option("#curve-hour", "02B")  # htmx swaps the curves card

    expect(page.locator("#curves-title")).to_contain_text("02B")
    expect(page.locator("[data-testid=clearing-point]")).to_contain_text("23 GPUs zu 10,75 EUR/GPUh")
    drawn(page, "#dayahead-curves")
    expect(page.locator('tr[data-hour="02B"]')).to_have_class("is-chosen")
    assert "hour=02B" in page.url
    shots("hour-02B")

    page.go_back()  # htmx restores the page as it was: the charts are drawn again, once
    expect(page.locator("#curves-title")).to_contain_text("23")
    drawn(page, "#dayahead-curves")
    expect(page.locator("#dayahead-curves .main-svg")).to_have_count(page.locator("#dayahead-chart .main-svg").count())
    page.select_option("#curve-hour", "01")  # the picker still works
    expect(page.locator("#curves-title")).to_contain_text("01")
    page.select_option("#id_zone", "DE-BY")  # the class and zone form submits itself
    expect(page.locator(".dayahead-status")).to_contain_text("Niemand hat an diesem Tag für H100 in der Zone DE-BY")

    page.goto("/dashboard/")
    expect(page.locator("[data-testid=latest-results]")).to_contain_text("H100")
    shots("dashboard")
    assert watch.problems == []


def test_the_results_and_the_indicative_prices_on_a_phone(new_page, live_server, request):
    h100 = GpuClassFactory(code="H100")
    cleared_auction(day=AUTUMN, gpu_class=h100)
    open_day = timezone.now().astimezone(calendar.BERLIN).date() + timedelta(days=4)
    DayAheadIndicativeFactory(auction=DayAheadAuctionFactory(delivery_date=open_day, gpu_class=h100))
    page = new_page(live_server.url, width=390, height=844, mobile=True)
    watch = Watched(page)
    shots = Shots(page, request.node.name)

    page.goto(f"/dashboard/dayahead/{AUTUMN}/")
    drawn(page, "#dayahead-chart")
    drawn(page, "#dayahead-curves")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width  # nothing wider than the phone
    shots("results-phone")

    page.goto(f"/dashboard/dayahead/{open_day}/")
    expect(page.locator("#indicative-title")).to_contain_text("Indikative Preise")
    drawn(page, "#dayahead-chart")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shots("indicative-phone")

    page.goto("/dashboard/")
    expect(page.locator("[data-testid=latest-results]")).to_contain_text("H100")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shots("dashboard-phone")
    assert watch.problems == []
