"""The electricity, capacity-signal and revenue pages and their open data
(issue 11): anonymous visitors see the charts' rows, which are exactly what
the CSV and JSON downloads serve; empty data is explained; bad parameters
fall back on the pages and answer 400 on the API; the operator's SMARD
import in the admin is all or nothing, with the error at the field."""

import csv
import io
import json
import re
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from clearing.models import Account, JournalEntry
from clearing.services.ledger import house_account, ledger_post
from market import calendar
from market.models import DeliveryZone, GpuClass, IndexValue, PowerPrice
from market.power import mean as power_mean
from market.services.power import power_prices_import
from tests.factories import GpuClassFactory, OrganisationFactory, SiteCapacityFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db

END = date(2026, 11, 30)
HEADER = "Datum von;Datum bis;Deutschland/Luxemburg [€/MWh] Originalauflösungen\n"


def smard(days: dict[date, str]) -> str:
    lines = [HEADER]
    for day, price in days.items():
        for hour in calendar.day_hours(day):
            start = hour.start.astimezone(calendar.BERLIN)
            end = hour.end.astimezone(calendar.BERLIN)
            lines.append(f"{start:%d.%m.%Y %H:%M};{end:%d.%m.%Y %H:%M};{price}\n")
    return "".join(lines)


def base_index(gpu_class: GpuClass, day: date, value: str) -> None:
    zone = DeliveryZone.objects.get_or_create(code="DE", defaults={"name": "DE"})[0]  # a flush may have emptied it
    IndexValue.objects.create(kind="base", date=day, gpu_class=gpu_class, zone=zone,
                              value=D(value), volume=100, inputs={}, sha256="0" * 64, methodology_version="v1",
                              computed_at=timezone.now())


@pytest.fixture
def h100() -> GpuClass:
    gpu_class = GpuClassFactory(code="H100")
    GpuClass.objects.filter(pk=gpu_class.pk).update(power_draw_kw=D("1.275"))
    return gpu_class


@pytest.fixture
def market(h100: GpuClass) -> GpuClass:
    """25 days of Base index and electricity prices up to END; three providers with H100 at PUE 1.25."""
    for n in range(25):
        day = END - timedelta(days=n)
        base_index(h100, day, f"{D('2.00') + D(n % 5) / 10:.2f}")
    power_prices_import(text=smard({END - timedelta(days=n): f"{60 + 3 * (n % 7)},00" for n in range(25)}),
                        operator=None)
    for _ in range(3):
        SiteCapacityFactory(site=SiteFactory(pue=D("1.25")), gpu_class=h100, gpus=100)
    return h100


def script_data(html: str, element_id: str):  # type: ignore[no-untyped-def]
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert found, element_id
    return json.loads(found.group(1))


def cell(value: object) -> str:
    """A value as the CSV writes it: empty for null, true/false for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def same_everywhere(client: Client, html: str, slug: str, query: str) -> list[dict[str, object]]:
    """The chart's json_script rows == the JSON download == the CSV download."""
    chart = script_data(html, f"{slug}-data")
    shown = query.replace("&", "&amp;")
    csv_link = f"/api/v1/open-data/{slug}/?{shown}&amp;format=csv" if query else f"/api/v1/open-data/{slug}/?format=csv"
    assert csv_link in html
    api = client.get(f"/api/v1/open-data/{slug}/?{query}")
    assert api.status_code == 200
    assert api.json()["rows"] == chart
    table = list(csv.DictReader(io.StringIO(client.get(f"/api/v1/open-data/{slug}/?{query}&format=csv")
                                            .content.decode())))
    assert table == [{key: cell(value) for key, value in row.items()} for row in chart]
    return chart


def test_electricity_page_draws_what_the_downloads_serve(market):
    client = Client()
    query = f"gpu_class=H100&start={END - timedelta(days=9)}&end={END}"
    response = client.get(f"/dashboard/electricity/?{query}")
    assert response.status_code == 200
    html = response.content.decode()
    both = same_everywhere(client, html, "compute-and-power", query)
    spread = same_everywhere(client, html, "spark-spread", query)
    assert len(both) == len(spread) == 10
    last = spread[-1]
    # END: n = 0 -> Base 2.00, power 60,00 EUR/MWh; 1.275 kW x 1.25 x 60 / 1000 = 0.095625 -> 0.0956
    assert (last["date"], last["compute_base"], last["power_price"]) == ("2026-11-30", "2.00", "60.00")
    assert (last["pue"], last["pue_source"], last["electricity_cost"], last["spark_spread"]) == (
        "1.2500", "sites", "0.0956", "1.9044")
    assert both[-1]["correlation_30d"] is not None  # 25 common days
    assert "/dashboard/methodology/electricity/" in html
    for site in ("Rechenzentrum",):
        assert site not in html  # no member's site or name


def test_csv_and_json_are_the_same_rows(market, client):
    query = f"gpu_class=H100&start={END - timedelta(days=2)}&end={END}"
    rows = client.get(f"/api/v1/open-data/compute-and-power/?{query}").json()["rows"]
    table = list(csv.DictReader(io.StringIO(client.get(
        f"/api/v1/open-data/compute-and-power/?{query}&format=csv").content.decode())))
    assert table == [{key: cell(value) for key, value in row.items()} for row in rows]


def hours_at(day: date, prices: dict[str, str], default: str, *, demo: tuple[str, ...] = ()) -> list[PowerPrice]:
    """PowerPrice rows for each delivery hour of ``day`` (by label: "02A", "14"), ``default`` where not given."""
    return [PowerPrice(hour_start=hour.start, price=D(prices.get(hour.label, default)), is_demo=hour.label in demo,
                       imported_at=timezone.now()) for hour in calendar.day_hours(day)]


def power_days_in_python(start: date, end: date) -> dict[date, tuple[D, int, bool]]:
    """How the daily rows were computed before the database summed them: every hour read, grouped by Berlin day."""
    grouped: dict[date, list[PowerPrice]] = {}
    for row in PowerPrice.objects.filter(hour_start__gte=calendar.local_midnight(start),
                                         hour_start__lt=calendar.local_midnight(end + timedelta(days=1))):
        grouped.setdefault(row.hour_start.astimezone(calendar.BERLIN).date(), []).append(row)
    return {day: (power_mean([row.price for row in rows]), len(rows), any(row.is_demo for row in rows))
            for day, rows in grouped.items()}


def test_daily_power_prices_summed_by_the_database_equal_the_hand_computed_means(h100):
    from market.selectors.power import power_days

    PowerPrice.objects.bulk_create([
        # 23 hours (clocks go forward): 22 x 40.00 + 63.00 = 943.00 / 23 = 41.00
        *hours_at(date(2026, 3, 29), {"14": "63.00"}, "40.00"),
        # 25 hours (clocks go back; 02A and 02B): 24 x 50.00 + 75.00 = 1275.00 / 25 = 51.00; one demo hour
        *hours_at(date(2026, 10, 25), {"02B": "75.00"}, "50.00", demo=("02B",)),
        # a tie: 23 x 10.00 + 10.12 = 240.12 / 24 = 10.005 -> 10.01 (half up)
        *hours_at(date(2026, 11, 2), {"23": "10.12"}, "10.00"),
        # a negative tie: -0.12 / 24 = -0.005 -> -0.01 (half up: away from zero)
        *hours_at(date(2026, 11, 3), {"00": "-0.12"}, "0.00"),
        # the first hour of the next day only (00:00 Berlin = 23:00 UTC the day before): 1 hour of 99.99
        *hours_at(date(2026, 11, 4), {}, "99.99")[:1],
    ])
    days = power_days(date(2026, 3, 1), date(2026, 11, 30))
    found = {day: (row.price, row.hours, row.is_demo) for day, row in days.items()}
    assert found == {
        date(2026, 3, 29): (D("41.00"), 23, False),
        date(2026, 10, 25): (D("51.00"), 25, True),
        date(2026, 11, 2): (D("10.01"), 24, False),
        date(2026, 11, 3): (D("-0.01"), 24, False),
        date(2026, 11, 4): (D("99.99"), 1, False),
    }
    assert found == power_days_in_python(date(2026, 3, 1), date(2026, 11, 30))
    # The day's bounds are Berlin midnights: 2026-11-04 is outside a range ending 2026-11-03.
    assert date(2026, 11, 4) not in power_days(date(2026, 11, 3), date(2026, 11, 3))


DST_END = date(2026, 10, 25)  # 25 hours: 02A (CEST, 00:00 UTC) and 02B (CET, 01:00 UTC)


def base_index_with_hours(gpu_class: GpuClass, day: date, prices: dict[str, str | None], default: str) -> None:
    """A Base index whose document lists the day's hourly clearing prices (as the index job writes it)."""
    zone = DeliveryZone.objects.get_or_create(code="DE", defaults={"name": "DE"})[0]
    hours = [{"hour": hour.label, "price": prices.get(hour.label, default), "volume": 10}
             for hour in calendar.day_hours(day)]
    value = power_mean([D(hour["price"]) for hour in hours if hour["price"] is not None])
    IndexValue.objects.create(kind="base", date=day, gpu_class=gpu_class, zone=zone, value=value, volume=250,
                              inputs={"index": "base", "hours": hours}, sha256="0" * 64, methodology_version="v1",
                              computed_at=timezone.now())


def test_hourly_spark_spread_by_hand(market, client):
    """By hour: each hour's compute price (from the Base index's document) minus the class's power draw x the
    sites' mean PUE x that hour's electricity price, on the 25-hour day the clocks go back."""
    base_index_with_hours(market, DST_END, {"02B": "2.10", "14": "3.05", "03": None}, "2.40")
    PowerPrice.objects.bulk_create(hours_at(DST_END, {"02B": "-5.00", "14": "120.50"}, "80.00", demo=("23",)))
    query = f"gpu_class=H100&start={DST_END}&end={DST_END}&resolution=hour"
    html = client.get(f"/dashboard/electricity/?{query}").content.decode()
    both = same_everywhere(client, html, "compute-and-power", query)
    spread = same_everywhere(client, html, "spark-spread", query)
    assert len(both) == 25 and len(spread) == 24  # 03:00 has no compute price
    by_hour = {row["hour_berlin"]: row for row in spread}
    # 1.275 kW x 1.25 x 80.00 / 1000 = 0.1275; 2.40 - 0.1275 = 2.2725
    assert by_hour["2026-10-25T00:00:00+02:00"]["electricity_cost"] == "0.1275"
    assert by_hour["2026-10-25T00:00:00+02:00"]["spark_spread"] == "2.2725"
    # 14:00 CET = 13:00 UTC: 1.59375 x 120.50 / 1000 = 0.192046875 -> 0.1920; 3.05 - 0.1920 = 2.8580
    row = by_hour["2026-10-25T14:00:00+01:00"]
    assert (row["date"], row["hour_utc"], row["compute_base"], row["power_price"]) == (
        "2026-10-25", "2026-10-25T13:00:00+00:00", "3.05", "120.50")
    assert (row["pue"], row["pue_source"], row["electricity_cost"], row["spark_spread"]) == (
        "1.2500", "sites", "0.1920", "2.8580")
    # The second 02:00 (CET, 01:00 UTC), a negative price: 1.59375 x -5.00 / 1000 = -0.00796875 -> -0.0080;
    # 2.10 - (-0.0080) = 2.1080. The first 02:00 (CEST, 00:00 UTC) is an ordinary hour.
    second = by_hour["2026-10-25T02:00:00+01:00"]
    assert (second["hour_utc"], second["electricity_cost"], second["spark_spread"]) == (
        "2026-10-25T01:00:00+00:00", "-0.0080", "2.1080")
    assert by_hour["2026-10-25T02:00:00+02:00"]["hour_utc"] == "2026-10-25T00:00:00+00:00"
    assert [row["is_demo"] for row in spread].count(True) == 1  # 23:00's electricity price
    three = next(row for row in both if row["hour_berlin"] == "2026-10-25T03:00:00+01:00")
    assert (three["compute_base"], three["power_price"], three["power_hours"], three["correlation_30d"]) == (
        None, "80.00", 1, None)
    assert "Hour (Europe/Berlin)" in html or "Stunde (Europe/Berlin)" in html
    assert 'id="correlation-chart"' not in html  # a figure of the daily series


def test_by_day_the_hour_columns_are_empty(market, client):
    rows = client.get(f"/api/v1/open-data/spark-spread/?start={END}&end={END}").json()["rows"]
    assert (rows[0]["date"], rows[0]["hour_utc"], rows[0]["hour_berlin"]) == ("2026-11-30", None, None)
    header = client.get(f"/api/v1/open-data/spark-spread/?start={END}&end={END}&format=csv").content.decode()
    assert header.startswith("date,hour_utc,hour_berlin,compute_base,power_price,")


def test_hourly_resolution_is_limited_to_31_days(market, client):
    api = "/api/v1/open-data/compute-and-power/"
    ok = client.get(api, {"resolution": "hour", "start": END - timedelta(days=30), "end": END})
    assert ok.status_code == 200
    assert len(ok.json()["rows"]) == 25 * 24  # the 25 days with electricity prices, 24 hours each
    long = client.get(api, {"resolution": "hour", "start": END - timedelta(days=31), "end": END})
    assert long.status_code == 400
    assert list(long.json()["fields"]) == ["start"]
    assert "31" in long.json()["fields"]["start"][0]
    assert set(client.get(api, {"resolution": "minute"}).json()["fields"]) == {"resolution"}
    # By hour without a start: the 7 days ending on the end.
    week = client.get(api, {"resolution": "hour", "end": END}).json()["rows"]
    assert (week[0]["date"], week[-1]["date"], len(week)) == (str(END - timedelta(days=6)), str(END), 7 * 24)
    # A page cuts a long period by hour to the 31 days ending on its end, and says so.
    html = client.get("/dashboard/electricity/", {"resolution": "hour", "start": END - timedelta(days=179),
                                                  "end": END}).content.decode()
    assert 'data-testid="hours-shortened"' in html
    assert f"start={END - timedelta(days=30)}&amp;end={END}&amp;resolution=hour&amp;format=csv" in html


def test_fewer_than_three_providers_use_the_reference_pue(h100, client):
    SiteCapacityFactory(site=SiteFactory(pue=D("1.10")), gpu_class=h100, gpus=100)
    base_index(h100, END, "2.00")
    power_prices_import(text=smard({END: "100,00"}), operator=None)
    rows = client.get(f"/api/v1/open-data/spark-spread/?start={END}&end={END}").json()["rows"]
    # 1.275 x 1.50 x 100 / 1000 = 0.19125 -> 0.1913
    assert (rows[0]["pue"], rows[0]["pue_source"], rows[0]["electricity_cost"]) == ("1.50", "reference", "0.1913")


def test_empty_pages_explain_what_will_appear(h100):
    client = Client()
    html = client.get("/dashboard/electricity/").content.decode()
    assert 'data-testid="no-power"' in html and 'data-testid="no-spread"' in html
    assert 'data-testid="no-signal"' in client.get("/dashboard/capacity-signal/").content.decode()
    assert 'data-testid="no-revenue"' in client.get("/dashboard/revenue/").content.decode()


def test_bad_parameters_fall_back_on_pages_and_answer_400_on_the_api(h100, client):
    for path in ("/dashboard/electricity/", "/dashboard/capacity-signal/"):
        assert client.get(path, {"gpu_class": "NOPE", "start": "2026-13-45", "end": "x"}).status_code == 200
    bad = client.get("/api/v1/open-data/spark-spread/?gpu_class=NOPE&start=2026-13-45")
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"gpu_class", "start"}
    assert client.get("/api/v1/open-data/capacity-signal/?start=2020-01-01&end=2026-01-01").status_code == 400


def test_capacity_signal_spot_price_from_the_base_index(market, client):
    query = f"gpu_class=H100&start={END}&end={END}"
    html = client.get(f"/dashboard/capacity-signal/?{query}").content.decode()
    (row,) = same_everywhere(client, html, "capacity-signal", query)
    # 25 days of 2.00, 2.10, 2.20, 2.30, 2.40 repeating: the 25 days of the 30 average 2.20
    assert (row["spot_price"], row["spot_days"], row["forward_price"], row["signal"]) == ("2.20", 25, None, None)


def test_revenue_from_the_ledger_with_small_months_suppressed(client):
    def fees(org: int, month: str, amount: str) -> None:
        ledger_post(kind=JournalEntry.Kind.FEE, reference=f"fees:{org}:{month}", memo="test",
                    lines=[(house_account(Account.Kind.BANK), -D(amount)),
                           (house_account(Account.Kind.FEE_REVENUE), D(amount))])

    def sweep(month: str, incentive: str, rnd: str) -> None:
        ledger_post(kind=JournalEntry.Kind.FEE, reference=f"fees-sweep:{month}", memo="test",
                    lines=[(house_account(Account.Kind.FEE_REVENUE), -D(incentive) - D(rnd)),
                           (house_account(Account.Kind.INCENTIVE_FUND), D(incentive)),
                           (house_account(Account.Kind.RND_FUND), D(rnd))])

    # The current month (credits count in the month they were granted), and the next.
    month = timezone.localdate().replace(day=1)
    following = (month + timedelta(days=32)).replace(day=1)
    this, after = f"{month:%Y-%m}", f"{following:%Y-%m}"
    for org in (1, 2, 3):
        fees(org, this, "100.00")
    sweep(this, "30.00", "15.00")
    # A programme opens with 20.00 of the fund and grants a start-up 12.00 of credits (issue 12).
    ledger_post(kind=JournalEntry.Kind.PROGRAMME_BUDGET, reference="programme:1", lines=[
        (house_account(Account.Kind.INCENTIVE_FUND), D("-20.00")),
        (house_account(Account.Kind.PROGRAMME_BUDGETS), D("20.00"))])
    credits = Account.objects.create(organisation=OrganisationFactory(), kind=Account.Kind.CREDITS)
    ledger_post(kind=JournalEntry.Kind.CREDIT_GRANT, reference="credit-grant:1", lines=[
        (house_account(Account.Kind.PROGRAMME_BUDGETS), D("-12.00")), (credits, D("12.00"))])
    fees(1, after, "80.00")  # one member only
    sweep(after, "8.00", "4.00")
    html = client.get("/dashboard/revenue/").content.decode()
    rows = same_everywhere(client, html, "exchange-revenue", "")  # no parameters
    assert rows == [
        {"month": f"{month}", "members": 3, "fee_revenue": "300.00", "to_incentive_fund": "30.00",
         "to_rnd_fund": "15.00", "credits_granted": "12.00", "incentive_fund_balance": "10.00",
         "rnd_fund_balance": "15.00"},
        {"month": f"{following}", "members": None, "fee_revenue": None, "to_incentive_fund": None,
         "to_rnd_fund": None, "credits_granted": None, "incentive_fund_balance": None, "rnd_fund_balance": None}]


def test_methodology_pages_are_versioned(client):
    for indicator in ("electricity", "capacity-signal", "revenue"):
        answer = client.get(f"/dashboard/methodology/{indicator}/")
        assert answer.status_code == 302 and answer["Location"].endswith(f"/dashboard/methodology/{indicator}/v1/")
        assert client.get(answer["Location"]).status_code == 200
    assert client.get("/dashboard/methodology/electricity/v9/").status_code == 404
    assert client.get("/dashboard/methodology/index/").status_code == 302  # the index's own page still wins


def test_the_listing_names_the_four_datasets(client):
    slugs = {entry["slug"]: entry for entry in client.get("/api/v1/open-data/").json()["datasets"]}
    assert {"compute-and-power", "spark-spread", "capacity-signal", "exchange-revenue"} <= set(slugs)
    assert slugs["spark-spread"]["methodology_url"].endswith("/dashboard/methodology/electricity/")


def operator_client() -> Client:
    operator = UserFactory(email="olga@operator.example", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(operator)
    return client


def test_operator_imports_a_smard_file_in_the_admin(h100):
    client = operator_client()
    page = client.get("/admin/market/powerprice/")
    assert "/admin/market/powerprice/import/" in page.content.decode()
    upload = SimpleUploadedFile("smard.csv", smard({END: "85,12"}).encode(), content_type="text/csv")
    answer = client.post("/admin/market/powerprice/import/", {"file": upload}, follow=True)
    assert answer.status_code == 200
    assert PowerPrice.objects.count() == 24
    assert set(PowerPrice.objects.values_list("price", flat=True)) == {D("85.12")}
    # again, one price revised: idempotent per hour
    text = smard({END: "85,12"}).replace("85,12\n", "90,00\n", 1)
    client.post("/admin/market/powerprice/import/", {"file": SimpleUploadedFile("smard.csv", text.encode())})
    assert PowerPrice.objects.count() == 24 and PowerPrice.objects.filter(price=D("90.00")).count() == 1


def test_a_bad_row_imports_nothing_and_names_its_line(h100):
    client = operator_client()
    lines = smard({END: "85,12"}).splitlines(keepends=True)
    lines[3] = lines[3].replace("85,12", "85,1x")  # the fourth line of the file
    text = "".join(lines)
    answer = client.post("/admin/market/powerprice/import/", {"file": SimpleUploadedFile("smard.csv", text.encode())})
    assert answer.status_code == 200
    assert PowerPrice.objects.count() == 0
    errors = answer.context["form"].errors["file"]  # in German, at the field
    assert errors == ["Zeile 4: „85,1x“ ist kein Preis in EUR/MWh (deutsches Format, z. B. 85,12)."]
    assert 'class="errorlist' in answer.content.decode()
