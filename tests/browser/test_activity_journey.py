"""The policy indicators in Chromium (issue 11, tests): an anonymous visitor
opens market activity, supply concentration and regions, switches
resolution, range, class and language, and downloads a CSV that is the
chart's data; an observer (a ministry) logs in and opens the observers'
aggregates; every page at 1280 px and at 390 px phone width, without
horizontal scrolling and without a CSP violation."""

import csv
import io
import json
import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Shots
from tests.browser.test_csp_pages import Watched
from tests.factories import (
    TEST_PASSWORD,
    GpuClassFactory,
    MembershipFactory,
    ObserverFactory,
    SiteCapacityFactory,
    SiteFactory,
    UserFactory,
)
from tests.market.test_activity import big, future, hour_instrument, sme, startup, ticket, trade

pytestmark = pytest.mark.django_db(transaction=True)


def market():  # type: ignore[no-untyped-def]
    """Three weeks of trading among twelve members, sites in three states."""
    from tests.market.trading_setup import ensure_zones

    ensure_zones("DE", "DE-BY")
    h100 = GpuClassFactory(code="H100")
    GpuClassFactory(code="A100", name="NVIDIA A100", memory_gb=80)
    sellers = [big("Rechenwerk Süd AG"), big("Nordlicht Compute AG"), sme("Kleinrechner GmbH"),
               sme("Elbe Cloud GmbH"), sme("Isar Rechenzentrum GmbH"), big("Rheinwerk Hosting AG")]
    buyers = [startup("Lernkurve GmbH"), startup("Tensorhaus GmbH"), startup("Datenstrom GmbH"),
              big("Versicherung AG"), big("Autobau AG"), big("Pharmaforschung AG")]
    hour = hour_instrument()
    month = future()
    for day in range(21):
        for n, seller in enumerate(sellers):
            buyer = buyers[(day + n) % 6]
            trade(buyer, seller, 5 + (day * 3 + n * 7) % 20, instrument=hour, auction=bool(n % 2), days_ago=day,
                  price=str(Decimal("2.10") + Decimal(n) / 10))
        if day % 5 == 0:
            trade(buyers[day % 6], sellers[day % 3], 2, instrument=month, days_ago=day)
    for n, seller in enumerate(sellers[:3]):
        site = SiteFactory(organisation=seller, state="DE-BY")
        SiteCapacityFactory(site=site, gpu_class=h100, gpus=120 + 40 * n)
        ticket(site, buyers[n], 4 + n, 3, f"{30 + 5 * n}.00")
    for n, seller in enumerate([sellers[0], sellers[1], sellers[3]]):
        SiteCapacityFactory(site=SiteFactory(organisation=seller, state="DE-HE"), gpu_class=h100, gpus=80 + 10 * n)
    SiteCapacityFactory(site=SiteFactory(organisation=sellers[3], state="DE-BE"), gpu_class=h100, gpus=64)
    return sellers + buyers


def no_scroll(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def check_map(page: Page, measure: str) -> None:
    """The tile map is drawn with the page's figures for ``measure``: one
    labelled tile per state at its place, grey (no colour) where the table has –."""
    expect(page.locator("#regions-map svg.main-svg").first).to_be_visible()
    drawn = page.evaluate("() => { const d = document.getElementById('regions-map').data;"
                          " return {z: d[0].z, text: d[1].text}; }")
    tiles = json.loads(page.locator("#regions-map-data").text_content() or "{}")["tiles"]
    assert len(tiles) == 16 and len(drawn["text"]) == 16
    cells = {row["code"]: row for row in page.locator("[data-testid=indicator-table] tbody tr").evaluate_all(
        "rows => rows.map(r => ({code: r.dataset.state,"
        " cells: [...r.querySelectorAll('td')].map(c => c.textContent.trim())}))")}
    column = {"capacity_gpus": 1, "volume_gpuh": 2, "average_price": 3}[measure]
    for tile in tiles:
        value = tile["values"][measure]
        assert drawn["z"][tile["row"]][tile["col"]] == (None if value is None else float(value)), tile["state"]
        assert tile["text"][measure] == cells[tile["state"]]["cells"][column], tile["state"]
        assert f"<b>{tile['code']}</b>" in drawn["text"][tiles.index(tile)]
    for code in ("BY", "HE", "BE", "SH"):
        expect(page.locator("#regions-map")).to_contain_text(code)


def choose(page: Page, **values: str) -> None:
    form = page.locator("form.indicator-filter")
    for name, value in values.items():
        form.locator(f"select[name={name}]").select_option(value)
    form.locator("button[type=submit]").click()


def test_a_visitor_reads_and_downloads_the_indicators_and_an_observer_sees_the_aggregates(
        new_page, live_server, request):
    members = market()
    page = new_page(live_server.url)
    watch = Watched(page)
    shots = Shots(page, request.node.name)

    # 1. Market activity: weekly by default, then daily over the last month.
    page.goto("/dashboard/activity/")
    expect(page.locator("h1")).to_have_text("Marktaktivität")
    expect(page.locator("#activity-volume svg.main-svg").first).to_be_visible()
    shots("activity-weekly")
    choose(page, resolution="day", range="month")
    expect(page).to_have_url(re.compile("resolution=day"))
    expect(page.locator("#activity-shares svg.main-svg").first).to_be_visible()
    expect(page.locator("#activity-shares")).to_contain_text("Start-ups, gekauft")
    table = page.locator("[data-testid=indicator-table] tbody tr")
    expect(table).to_have_count(31)
    shots("activity-daily")

    # 2. The CSV is the chart's data.
    chart = json.loads(page.locator("#indicator-data").text_content() or "[]")
    with page.expect_download() as download:
        page.locator("[data-testid=csv-link]").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert rows == [{k: "" if v is None else str(v) for k, v in row.items()} for row in chart]
    assert any(int(row["volume_total_gpuh"]) > 0 for row in rows)

    # 3. Supply concentration: H100 has a chart with the thresholds; A100 has no trade yet.
    page.goto("/dashboard/concentration/")
    expect(page.locator("#concentration-hhi svg.main-svg").first).to_be_visible()
    expect(page.locator("#concentration-hhi")).to_contain_text("1.500")
    shots("concentration-h100")
    page.get_by_role("link", name="Methodik (Version 1)").click()
    expect(page).to_have_url(re.compile("/dashboard/methodology/concentration/v1/$"))
    expect(page.locator("main")).to_contain_text("HHI = 10 000 × Σ")
    expect(page.locator("main")).to_contain_text("3.800")
    shots("concentration-methodology")
    page.go_back()
    choose(page, gpu_class="A100", range="year")
    expect(page.locator("[data-testid=empty-note]")).to_contain_text("noch kein Spot-Geschäft")
    shots("concentration-a100-empty")

    # 4. Regions: Bavaria and Hesse shown, Berlin (one provider) withheld; the tile map beside the table.
    page.goto("/dashboard/regions/")
    expect(page.locator("#regions-bars svg.main-svg").first).to_be_visible()
    berlin = page.locator("[data-testid=indicator-table] tbody tr", has_text="Berlin")
    expect(berlin).to_contain_text("weniger als 3 Anbieter")
    check_map(page, "capacity_gpus")
    shots("regions")
    page.locator("[data-measure=average_price]").click()
    expect(page.locator("[data-measure=average_price]")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#regions-map .colorbar")).to_contain_text("Durchschnittspreis")
    check_map(page, "average_price")
    shots("regions-map-price")

    # 5. In English.
    page.locator(".lang-switch button[value=en]").click()
    expect(page.locator("h1")).to_have_text("Regions")
    expect(page.locator("[data-testid=indicator-table] tbody tr", has_text="Berlin")).to_contain_text(
        "fewer than 3 providers")
    shots("regions-english")
    page.locator(".lang-switch button[value=de]").click()
    expect(page.locator("h1")).to_have_text("Regionen")

    # 6. No member is named anywhere.
    for path in ("/dashboard/activity/", "/dashboard/concentration/", "/dashboard/regions/"):
        page.goto(path)
        content = page.content()
        assert not [m.legal_name for m in members if m.legal_name in content]

    # 7. On a phone.
    phone = new_page(live_server.url, width=390, height=844, mobile=True)
    phone_watch = Watched(phone)
    phone_shots = Shots(phone, request.node.name + "_phone")
    for path, chart_id, step in (("/dashboard/activity/", "#activity-volume", "activity"),
                                 ("/dashboard/concentration/", "#concentration-hhi", "concentration"),
                                 ("/dashboard/regions/", "#regions-bars", "regions")):
        phone.goto(path)
        expect(phone.locator(f"{chart_id} svg.main-svg").first).to_be_visible()
        no_scroll(phone)
        phone_shots(step, full_page=False)
        phone_shots(step + "-whole")
    # The map on the phone: all sixteen tiles inside the screen's width, the volume measure chosen.
    phone.goto("/dashboard/regions/")
    phone.locator("[data-measure=volume_gpuh]").click()
    check_map(phone, "volume_gpuh")
    box = phone.locator("#regions-map").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    phone.locator("#regions-map").scroll_into_view_if_needed()
    phone_shots("regions-map", full_page=False)

    # 8. A ministry observer logs in and opens the aggregates.
    viewer = UserFactory(email="referentin@bmds.example")
    MembershipFactory(user=viewer, organisation=ObserverFactory(legal_name="Bundesministerium Test",
                                                                kyc__status="approved"),
                      is_trader=False, is_viewer=True)
    observer = new_page(live_server.url)
    observer_watch = Watched(observer)
    observer.goto("/dashboard/observer/")
    observer.locator("input[name=login]").fill(viewer.email)
    observer.locator("input[name=password]").fill(TEST_PASSWORD)
    observer.locator("main form button[type=submit]").click()
    expect(observer.locator("h1")).to_have_text("Aggregate für Beobachter")
    expect(observer.locator("#states-title")).to_be_visible()
    expect(observer.locator("[data-testid=open-states-table]")).to_be_visible()
    expect(observer.locator("[data-testid=open-empty-note]")).to_be_visible()  # the journey's market has no open order
    bavaria = observer.locator("tr", has_text="Bayern").first
    expect(bavaria).to_be_visible()
    content = observer.content()
    assert not [m.legal_name for m in members if m.legal_name in content]
    Shots(observer, request.node.name + "_observer")("observer")
    with observer.expect_download() as download:
        observer.locator("[data-testid=observer-csv]").click()
    assert open(download.value.path(), encoding="utf-8").readline().startswith("state,name,buyers")
    observer_phone = new_page(live_server.url, width=390, height=844, mobile=True)
    observer_phone.context.add_cookies(observer.context.cookies())
    observer_phone.goto("/dashboard/observer/")
    expect(observer_phone.locator("h1")).to_have_text("Aggregate für Beobachter")
    no_scroll(observer_phone)
    Shots(observer_phone, request.node.name + "_observer_phone")("observer", full_page=False)

    # A member is refused the observers' page.
    member_user = UserFactory(email="mitglied@example.com")
    MembershipFactory(user=member_user, organisation=members[0])
    member_page = new_page(live_server.url)
    member_page.goto("/accounts/login/")
    member_page.locator("input[name=login]").fill(member_user.email)
    member_page.locator("input[name=password]").fill(TEST_PASSWORD)
    member_page.locator("main form button[type=submit]").click()
    answer = member_page.goto("/dashboard/observer/")
    assert answer is not None and answer.status == 403
    assert watch.problems == [] and phone_watch.problems == [] and observer_watch.problems == []
