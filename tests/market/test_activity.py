"""The policy indicators' pages and open datasets (issue 11): market
activity, supply concentration, regions, their methodology pages, and the
observers' page; hand-computed figures, suppression, CSV == JSON == chart
data, no member identity in any public response, and the observer page's
permissions."""

import csv
import io
import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import KycCase, Organisation
from clearing.models import DeliveryTicket
from market import calendar, indicators
from market.models import Instrument, InstrumentStatus, OrderStatus, Segment, Side, Trade
from market.selectors import activity
from tests.factories import (
    BuyOrderRowFactory,
    DayAheadAuctionFactory,
    GpuClassFactory,
    HourInstrumentFactory,
    MembershipFactory,
    ObserverFactory,
    OrganisationFactory,
    SiteCapacityFactory,
    SiteFactory,
    UserFactory,
    delivery_hour,
)

pytestmark = pytest.mark.django_db

APPROVED = KycCase.Status.APPROVED


def org(name, **fields):  # type: ignore[no-untyped-def]
    return OrganisationFactory(legal_name=name, kyc__status=APPROVED, **fields)


def sme(name):  # type: ignore[no-untyped-def]
    return org(name, employees_band="10-49", turnover_band="le10m", founding_date=timezone.localdate() - timedelta(
        days=20 * 365))


def big(name):  # type: ignore[no-untyped-def]
    return org(name, employees_band="250+", turnover_band="gt50m", founding_date=timezone.localdate() - timedelta(
        days=20 * 365))


def startup(name):  # type: ignore[no-untyped-def]
    return org(name, employees_band="lt10", turnover_band="le2m", founding_date=timezone.localdate() - timedelta(
        days=365))


def hour_instrument(zone="DE", code="H100"):  # type: ignore[no-untyped-def]
    return HourInstrumentFactory(gpu_class=GpuClassFactory(code=code), zone_code=zone, hour=delivery_hour(1, "14"))


def future(code="H100"):  # type: ignore[no-untyped-def]
    start = calendar.local_midnight(timezone.localdate().replace(day=1) + timedelta(days=400))
    start = calendar.local_midnight(start.astimezone(calendar.BERLIN).date().replace(day=1))
    end = calendar.local_midnight((start.astimezone(calendar.BERLIN).date() + timedelta(days=32)).replace(day=1))
    hours = int((end - start).total_seconds() // 3600)
    symbol = f"{code}.DE.M{start.astimezone(calendar.BERLIN):%Y-%m}"
    return Instrument.objects.get_or_create(symbol=symbol, defaults={
        "segment": Segment.FUTURES, "gpu_class": GpuClassFactory(code=code), "zone_id": hour_instrument().zone_id,
        "period": symbol.split(".")[-1], "delivery_start": start, "delivery_end": end, "hours": hours,
        "min_price": Decimal("0"), "max_price": Decimal("200"), "opens_at": timezone.now() - timedelta(days=400),
        "closes_at": start, "status": InstrumentStatus.OPEN})[0]


def trade(buyer, seller, quantity, *, instrument=None, auction=False, days_ago=0, price="2.00"):  # type: ignore[no-untyped-def]
    instrument = instrument or hour_instrument()
    at = timezone.now() - timedelta(days=days_ago)
    orders = {"buy_order": None, "sell_order": None}
    found = None
    if auction:
        found = DayAheadAuctionFactory(gpu_class=instrument.gpu_class, zone_code=instrument.zone.code)
    else:
        user = UserFactory()
        for side, organisation in (("buy", buyer), ("sell", seller)):
            orders[f"{side}_order"] = BuyOrderRowFactory(
                instrument=instrument, organisation=organisation, placed_by=user, side=side, price=Decimal(price),
                quantity=quantity, filled_quantity=quantity, status=OrderStatus.FILLED, reserved_amount=Decimal(0))
    return Trade.objects.create(instrument=instrument, auction=found, buyer=buyer, seller=seller,
                                price=Decimal(price), quantity=quantity, aggressor="" if auction else Side.BUY,
                                buyer_fee=Decimal(0), seller_fee=Decimal(0), executed_at=at, **orders)


def today():  # type: ignore[no-untyped-def]
    return timezone.now().astimezone(calendar.BERLIN).date()


def row_of(rows, day):  # type: ignore[no-untyped-def]
    (found,) = [row for row in rows if row["period_start"] == day]
    return found


# --- market activity ---------------------------------------------------------------------------


def test_activity_by_hand_volumes_open_interest_members_and_shares():
    s1, s2, s3 = sme("Alpha GmbH"), sme("Beta GmbH"), sme("Gamma GmbH")
    b1, b2, b3 = big("Delta AG"), big("Epsilon AG"), big("Zeta AG")
    hour = hour_instrument()
    # Buyers: three SMEs 10 + 20 + 30, three large 40 + 50 + 50 (intraday and day-ahead, 1 h each).
    trade(s1, b1, 10, instrument=hour)
    trade(s2, b2, 20, instrument=hour)
    trade(s3, b3, 30, instrument=hour, auction=True)
    trade(b1, s1, 40, instrument=hour, auction=True)
    trade(b2, s2, 50, instrument=hour)
    trade(b3, s3, 50, instrument=hour)
    # Futures: s1 buys 2 from b1, then b2 buys 1 from s1: longs s1 1, b2 1 -> open interest 2 x hours.
    month = future()
    trade(s1, b1, 2, instrument=month)
    trade(b2, s1, 1, instrument=month)
    rows = activity.activity_rows({"resolution": "day", "range": "month", "gpu_class": ""})
    assert len(rows) == 31 and rows[-1]["period_start"] == today()
    day = row_of(rows, today())
    assert day["volume_intraday_gpuh"] == 10 + 20 + 50 + 50
    assert day["volume_dayahead_gpuh"] == 30 + 40
    assert day["volume_futures_gpuh"] == 3 * month.hours
    assert day["volume_total_gpuh"] == 200 + 3 * month.hours
    assert day["open_interest_gpuh"] == 2 * month.hours
    assert day["active_buyers"] == 6 and day["active_sellers"] == 6
    # SMEs bought 10 + 20 + 30 + 2 x hours (s1's future) of 200 + 3 x hours.
    bought = Decimal(60 + 2 * month.hours) / Decimal(200 + 3 * month.hours)
    assert day["sme_buy_share"] == bought.quantize(Decimal("0.0001"))
    sold = Decimal(40 + 50 + 50 + month.hours) / Decimal(200 + 3 * month.hours)
    assert day["sme_sell_share"] == sold.quantize(Decimal("0.0001"))
    # No start-up among them: share 0 (nobody revealed).
    assert day["startup_buy_share"] == Decimal("0.0000")
    earlier = row_of(rows, today() - timedelta(days=3))
    assert earlier["volume_total_gpuh"] == 0 and earlier["sme_buy_share"] is None
    # The futures position stays open on later days.
    assert earlier["open_interest_gpuh"] == 0


def test_a_share_of_two_start_ups_is_withheld():
    a, b = startup("Neu A GmbH"), startup("Neu B GmbH")
    others = [big(f"Gross {n} AG") for n in range(3)]
    trade(a, others[0], 5)
    trade(b, others[1], 5)
    trade(others[2], others[0], 5)
    day = row_of(activity.activity_rows({"resolution": "week", "range": "month", "gpu_class": ""}),
                 indicators.period_start(today(), "week"))
    assert day["active_buyers"] == 3
    assert day["startup_buy_share"] is None  # two start-ups
    assert day["sme_buy_share"] is None  # start-ups are SMEs too: two of them


# --- concentration ------------------------------------------------------------------------------


def test_hhi_per_period_50_30_20_and_two_sellers_withheld():
    buyer = big("Käufer AG")
    s1, s2, s3 = big("V1 AG"), big("V2 AG"), big("V3 AG")
    trade(buyer, s1, 50)
    trade(buyer, s2, 30, auction=True)
    trade(buyer, s3, 20)
    trade(buyer, s1, 60, days_ago=1)
    trade(buyer, s2, 40, days_ago=1)
    trade(buyer, s3, 99, instrument=future())  # futures are not supply
    rows = activity.concentration_rows({"gpu_class": "H100", "zone": "DE", "resolution": "day", "range": "month"})
    now = row_of(rows, today())
    assert (now["sellers"], now["volume_gpuh"], now["hhi"], now["band"]) == (3, 100, Decimal("3800"),
                                                                                indicators.HIGH)
    before = row_of(rows, today() - timedelta(days=1))
    assert before["sellers"] == 2 and before["hhi"] is None and before["band"] == ""
    other_zone = activity.concentration_rows({"gpu_class": "H100", "zone": "DE-BY", "resolution": "day",
                                              "range": "month"})
    assert all(row["volume_gpuh"] == 0 for row in other_zone)


# --- regions ------------------------------------------------------------------------------------


def ticket(site, buyer, gpus, hours, value):  # type: ignore[no-untyped-def]
    instrument = hour_instrument()
    sold = trade(buyer, site.organisation, gpus, instrument=instrument)
    start = timezone.now() - timedelta(days=1)
    return DeliveryTicket.objects.create(
        trade=sold, seller=site.organisation, seller_site=site, buyer=buyer, gpu_class=instrument.gpu_class,
        zone=instrument.zone, delivery_start=start, delivery_end=start + timedelta(hours=hours), gpus=gpus,
        value=Decimal(value), buyer_fee=Decimal(0), seller_fee=Decimal(0))


def test_regions_capacity_volume_price_and_withheld_states():
    h100 = GpuClassFactory(code="H100")
    buyer = big("Abnehmer AG")
    bavaria = [SiteFactory(organisation=big(f"Bayern {n} AG"), state="DE-BY") for n in range(3)]
    for n, site in enumerate(bavaria):
        SiteCapacityFactory(site=site, gpu_class=h100, gpus=100 * (n + 1))
    ticket(bavaria[0], buyer, 10, 2, "50.00")  # 20 GPUh
    ticket(bavaria[1], buyer, 5, 4, "41.00")  # 20 GPUh
    ticket(bavaria[2], buyer, 1, 10, "30.00")  # 10 GPUh
    hessen = [SiteFactory(organisation=big(f"Hessen {n} AG"), state="DE-HE") for n in range(3)]
    for site in hessen:
        SiteCapacityFactory(site=site, gpu_class=h100, gpus=50)
    ticket(hessen[0], buyer, 4, 1, "9.00")  # one seller: volume withheld
    berlin = SiteFactory(organisation=big("Berlin AG"), state="DE-BE")
    SiteCapacityFactory(site=berlin, gpu_class=h100, gpus=70)  # one provider: withheld
    nrw = [SiteFactory(organisation=big(f"NRW {n} AG"), state="DE-NW") for n in range(4)]
    for site in nrw:
        SiteCapacityFactory(site=site, gpu_class=h100, gpus=10)  # smallest shown capacity: secondary
    for site in nrw[:3]:
        ticket(site, buyer, 1, 1, "2.00")  # smallest shown volume: secondary for Hesse's
    rows = {row["state"]: row for row in activity.regions_rows({"gpu_class": "", "range": "month"})}
    assert len(rows) == 16
    assert rows["DE-BY"] == {"state": "DE-BY", "state_name": rows["DE-BY"]["state_name"], "providers": 3,
                             "capacity_gpus": 600, "volume_gpuh": 50, "average_price": Decimal("2.42"),
                             "suppressed": ""}  # 121.00 / 50
    assert rows["DE-HE"]["capacity_gpus"] == 150 and rows["DE-HE"]["volume_gpuh"] is None
    assert rows["DE-HE"]["suppressed"] == activity.FEWER_SELLERS
    assert rows["DE-BE"]["capacity_gpus"] is None and rows["DE-BE"]["providers"] is None
    assert rows["DE-BE"]["suppressed"] == activity.FEWER_PROVIDERS
    # Berlin alone withheld would follow from the national total: the smallest other (NRW, 40) goes too.
    assert rows["DE-NW"]["capacity_gpus"] is None and rows["DE-NW"]["suppressed"] == activity.PROTECTS_ANOTHER
    assert rows["DE-NW"]["volume_gpuh"] is None
    assert rows["DE-SL"] == {"state": "DE-SL", "state_name": "Saarland", "providers": 0, "capacity_gpus": 0,
                             "volume_gpuh": 0, "average_price": None, "suppressed": ""}


# --- pages and open data: one set of rows ---------------------------------------------------------


def chart_data(html: str) -> list[dict]:
    found = re.search(r'<script id="indicator-data" type="application/json">(.*?)</script>', html, re.S)
    assert found, "the page has no chart data"
    return json.loads(found.group(1))


def download_links(html: str) -> tuple[str, str]:
    csv_url = re.search(r'href="([^"]+)" data-testid="csv-link"', html).group(1).replace("&amp;", "&")
    json_url = re.search(r'href="([^"]+)" data-testid="json-link"', html).group(1).replace("&amp;", "&")
    return csv_url, json_url


@pytest.mark.parametrize(("path", "query"), [
    ("/dashboard/activity/", "?resolution=day&range=month&gpu_class=H100"),
    ("/dashboard/concentration/", "?resolution=week&range=quarter&gpu_class=H100&zone=DE"),
    ("/dashboard/regions/", "?range=year"),
])
def test_csv_equals_json_equals_the_chart_data(client, path, query):
    buyer, sellers = big("K AG"), [big(f"S{n} AG") for n in range(3)]
    for n, seller in enumerate(sellers):
        trade(buyer, seller, 10 * (n + 1))
    for n in range(3):
        SiteCapacityFactory(site=SiteFactory(organisation=sellers[n], state="DE-BY"),
                            gpu_class=GpuClassFactory(code="H100"), gpus=10)
    html = client.get(path + query).content.decode()
    data = chart_data(html)
    csv_url, json_url = download_links(html)
    for name, value in [part.split("=") for part in query[1:].split("&")]:
        assert f"{name}={value}" in json_url and f"{name}={value}" in csv_url
    answer = client.get(json_url).json()
    assert answer["rows"] == data and data
    table = list(csv.DictReader(io.StringIO(client.get(csv_url).content.decode())))
    assert table == [{key: "" if value is None else str(value) for key, value in row.items()} for row in data]


def test_bad_parameters_fall_back_on_pages_and_answer_400_on_the_api(client):
    GpuClassFactory(code="H100")
    for path in ("/dashboard/activity/", "/dashboard/concentration/", "/dashboard/regions/"):
        page = client.get(path + "?resolution=fortnight&range=ever&gpu_class=Z9&zone=XX")
        assert page.status_code == 200
        assert 'value="quarter" selected' in page.content.decode()
    bad = client.get("/api/v1/open-data/supply-concentration/?zone=XX&resolution=hour")
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"zone", "resolution"}


def test_empty_pages_say_what_will_appear(client):
    GpuClassFactory(code="H100")
    for path in ("/dashboard/activity/", "/dashboard/concentration/", "/dashboard/regions/"):
        html = client.get(path).content.decode()
        assert 'data-testid="empty-note"' in html
        assert "indicator-chart" not in html.split('data-testid="empty-note"')[0].split("</form>")[-1]


def test_the_datasets_are_listed_with_their_methodology(client):
    listing = {d["slug"]: d for d in client.get("/api/v1/open-data/").json()["datasets"]}
    assert not [slug for slug in listing if "observer" in slug]  # the observers' aggregates are not open data
    for slug, indicator in (("market-activity", "activity"), ("supply-concentration", "concentration"),
                            ("regions", "regions")):
        assert listing[slug]["methodology_url"].endswith(f"/dashboard/methodology/{indicator}/v1/")
        assert listing[slug]["methodology_version"] == "1"
        page = client.get(f"/dashboard/methodology/{indicator}/", follow=True)
        assert page.status_code == 200 and page.redirect_chain[-1][0].endswith(f"/{indicator}/v1/")
    assert client.get("/dashboard/methodology/concentration/v9/").status_code == 404
    text = client.get("/dashboard/methodology/concentration/v1/").content.decode()
    assert "3.800" in text or "3,800" in text
    assert "1.500" in text and "2.500" in text


def test_no_public_response_names_a_member(client):
    from accounts.demo import DEMO_USERS, seed_accounts

    seed_accounts()
    members = list(Organisation.objects.filter(kind=Organisation.Kind.MEMBER))
    h100 = GpuClassFactory(code="H100")
    for n, seller in enumerate(members[:4]):
        trade(members[-1], seller, 5 + n)
        SiteCapacityFactory(site=SiteFactory(organisation=seller, state="DE-BY"), gpu_class=h100, gpus=10)
    secrets = [o.legal_name for o in Organisation.objects.all()] + [u.email for u in DEMO_USERS]
    secrets += [o.vat_id for o in members if o.vat_id] + [o.register_number for o in members if o.register_number]
    for path in ("/dashboard/activity/", "/dashboard/concentration/", "/dashboard/regions/",
                 "/api/v1/open-data/market-activity/", "/api/v1/open-data/market-activity/?format=csv",
                 "/api/v1/open-data/supply-concentration/", "/api/v1/open-data/regions/?format=csv",
                 "/api/v1/open-data/regions/", "/api/v1/open-data/"):
        body = client.get(path).content.decode()
        for secret in secrets:
            assert secret not in body, (path, secret)
    for slug in ("market-activity", "supply-concentration", "regions"):
        columns = [c["name"] for c in client.get(f"/api/v1/open-data/{slug}/").json()["columns"]]
        assert not [c for c in columns if "id" in c.split("_") or "organisation" in c or "name" == c]


# --- observers ----------------------------------------------------------------------------------


def observer_user():  # type: ignore[no-untyped-def]
    return MembershipFactory(organisation=ObserverFactory(kyc__status=APPROVED), is_trader=False,
                             is_viewer=True).user


def test_the_observer_page_is_for_observers_and_operators_only(client):
    assert client.get("/dashboard/observer/").status_code == 302
    assert "/accounts/login/" in client.get("/dashboard/observer/csv/")["Location"]
    member = MembershipFactory(organisation=org("Mitglied GmbH")).user
    client.force_login(member)
    assert client.get("/dashboard/observer/").status_code == 403
    assert client.get("/dashboard/observer/csv/?table=states").status_code == 403
    client.force_login(observer_user())
    assert client.get("/dashboard/observer/").status_code == 200
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/dashboard/observer/").status_code == 200
    assert client.get("/dashboard/observer/csv/?table=zones").status_code == 200


def test_the_observer_sees_supply_and_demand_by_state_and_size_with_suppression(client):
    buyers = [org(f"Bayer {n} GmbH", state="DE-BY", employees_band="10-49", turnover_band="le10m")
              for n in range(3)]
    lone = org("Saar GmbH", state="DE-SL", employees_band="250+", turnover_band="gt50m")
    sellers = [org(f"Hesse {n} AG", state="DE-HE", employees_band="250+", turnover_band="gt50m") for n in range(3)]
    trade(buyers[0], sellers[0], 10)
    trade(buyers[1], sellers[1], 20)
    trade(buyers[2], sellers[2], 30)
    trade(lone, sellers[0], 7)
    tiny = [org(f"Rhein {n} GmbH", state="DE-NW", employees_band="lt10", turnover_band="le2m") for n in range(3)]
    for buyer in tiny:
        trade(buyer, sellers[1], 1)
    client.force_login(observer_user())
    html = client.get("/dashboard/observer/?range=month").content.decode()
    for o in [*buyers, lone, *sellers]:
        assert o.legal_name not in html
    states = list(csv.DictReader(io.StringIO(
        client.get("/dashboard/observer/csv/?table=states&range=month").content.decode())))
    by_state = {row["state"]: row for row in states}
    assert by_state["DE-BY"]["demand_gpuh"] == "60" and by_state["DE-BY"]["buyers"] == "3"
    assert by_state["DE-HE"]["supply_gpuh"] == "70"
    assert by_state["DE-SL"]["demand_gpuh"] == ""  # one buyer: withheld
    assert by_state["DE-NW"]["demand_gpuh"] == ""  # the smallest other: else Saarland = total - the rest
    assert by_state["DE-HE"]["demand_gpuh"] == "0"  # no buyer there
    sizes = {row["size_class"]: row for row in csv.DictReader(io.StringIO(
        client.get("/dashboard/observer/csv/?table=sizes&range=month").content.decode()))}
    assert sizes["small"]["demand_gpuh"] == "60"
    assert sizes["large"]["demand_gpuh"] == ""  # the Saarland buyer alone
    assert sizes["micro"]["demand_gpuh"] == ""  # and the smallest other with it
    zones = {row["zone"]: row for row in csv.DictReader(io.StringIO(
        client.get("/dashboard/observer/csv/?table=zones&range=month").content.decode()))}
    # Sellers 17 / 23 / 30 of 70: HHI = 10000 x (289 + 529 + 900) / 4900 = 3506.12 -> 3506
    assert zones["DE"]["hhi"] == "3506" and zones["DE"]["sellers"] == "3"


def test_a_long_range_by_day_shows_the_newest_400_periods_in_the_table_and_all_in_the_chart(client):
    buyer, seller = big("Käufer AG"), big("Verkäufer AG")
    trade(buyer, seller, 3, days_ago=500)
    trade(buyer, seller, 2)
    html = client.get("/dashboard/activity/?range=all&resolution=day").content.decode()
    assert 'data-testid="table-cut"' in html and "die neuesten 400 Zeiträume" in html
    table = re.search(r'data-testid="indicator-table">(.*?)</table>', html, re.S)
    assert table and table.group(1).count('<th scope="row"') == 400
    chart = json.loads(re.search(r'<script id="indicator-data" type="application/json">(.*?)</script>', html,
                                 re.S).group(1))  # type: ignore[union-attr]
    assert len(chart) == 501 and chart[0]["volume_total_gpuh"] == 3


def test_the_regions_map_has_the_tables_figures_on_one_tile_per_state(client):
    from market.views.indicators import MAP_MEASURES, STATE_TILES

    h100 = GpuClassFactory(code="H100")
    buyer = big("Abnehmer AG")
    bavaria = [SiteFactory(organisation=big(f"Bayern {n} AG"), state="DE-BY") for n in range(3)]
    for n, site in enumerate(bavaria):
        SiteCapacityFactory(site=site, gpu_class=h100, gpus=1000 * (n + 1))
        ticket(site, buyer, 10, 2, "50.00")
    hessen = [SiteFactory(organisation=big(f"Hessen {n} AG"), state="DE-HE") for n in range(3)]
    for site in hessen:
        SiteCapacityFactory(site=site, gpu_class=h100, gpus=50)
    # One Berlin provider: withheld; Hesse's capacity, the smallest other, with it.
    SiteCapacityFactory(site=SiteFactory(organisation=big("Berlin AG"), state="DE-BE"), gpu_class=h100, gpus=70)
    response = client.get("/dashboard/regions/?range=month")
    tiles = {tile["state"]: tile for tile in response.context["map"]["tiles"]}
    rows = {row["state"]: row for row in chart_data(response.content.decode())}
    table = {row["code"]: row for row in response.context["table"]}
    # Sixteen equal tiles, one per state, on distinct places of the grid.
    assert set(tiles) == set(rows) == set(table) == set(STATE_TILES) and len(tiles) == 16
    assert len({(tile["row"], tile["col"]) for tile in tiles.values()}) == 16
    assert all(tile["code"] == state[3:] for state, tile in tiles.items())
    columns = {"capacity_gpus": "capacity", "volume_gpuh": "volume", "average_price": "price"}
    for state, tile in tiles.items():
        for measure in MAP_MEASURES:
            # The map's figure is the dataset's (JSON, CSV), and it reads as the table's cell.
            shown = rows[state][measure]
            value = tile["values"][measure]
            assert (str(value) if isinstance(value, Decimal) else value) == shown, (state, measure)
            assert tile["text"][measure] == table[state][columns[measure]], (state, measure)
    assert tiles["DE-BY"]["values"] == {"capacity_gpus": 6000, "volume_gpuh": 60, "average_price": Decimal("2.50")}
    assert tiles["DE-BY"]["text"] == {"capacity_gpus": "6.000", "volume_gpuh": "60", "average_price": "2,50"}
    assert tiles["DE-HE"]["values"]["capacity_gpus"] is None and tiles["DE-HE"]["reason"]
    assert tiles["DE-SL"]["values"] == {"capacity_gpus": 0, "volume_gpuh": 0, "average_price": None}
    assert tiles["DE-BE"]["values"] == {"capacity_gpus": None, "volume_gpuh": None, "average_price": None}
    html = response.content.decode()
    assert 'id="regions-map"' in html and 'id="regions-map-data"' in html
    assert html.index('id="regions-map"') < html.index('data-testid="indicator-table"')  # the table beside the map
