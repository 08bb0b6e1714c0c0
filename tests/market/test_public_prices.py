"""The public price pages and their open datasets: hand-computed week and
month means, price per performance and spread through the API; CSV == JSON
== the chart's json_script data; bad parameters fall back on the page and
answer 400 on the API; no member in any response; empty data explained."""

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from market import indices
from market.models import DeliveryZone, GpuClass, IndexValue
from tests.factories import GpuClassFactory
from tests.market.trading_setup import ensure_zones

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _registered():  # type: ignore[no-untyped-def]
    """The datasets are registered once, at import; if that import happened while another test
    had swapped the registry out (test_open_data_registry's fixture), put them back."""
    from market import open_data
    from market.selectors import public_prices

    for dataset in (public_prices.PRICE_HISTORY, public_prices.PRICE_PER_PERFORMANCE,
                    public_prices.GENERATION_SPREAD, public_prices.LATEST_INDICES, public_prices.DAYAHEAD_BASE,
                    public_prices.FORWARD_FRONT):
        open_data._REGISTRY.setdefault(dataset.slug, dataset)

D = Decimal
# Mon 2 Nov .. Tue 10 Nov 2026, H100 (figure 700) and A100 (figure 250) in DE.
H100_BASE = {date(2026, 11, 2): "2.40", date(2026, 11, 3): "2.50", date(2026, 11, 4): "2.61",
             date(2026, 11, 9): "2.10", date(2026, 11, 10): "2.20"}
A100_BASE = {date(2026, 11, 2): "1.35", date(2026, 11, 3): "1.40", date(2026, 11, 9): "1.25"}


def _value(code: str, zone: str, day: date, value: str, kind: str = indices.BASE, demo: bool = False) -> None:
    found = DeliveryZone.objects.get_or_create(code=zone, defaults={"name": zone})[0]  # a flush may have emptied it
    IndexValue.objects.create(kind=kind, date=day, gpu_class=GpuClass.objects.get(code=code),
                              zone=found, value=D(value), volume=100,
                              inputs={}, sha256="0" * 64, methodology_version=indices.METHODOLOGY_VERSION,
                              is_demo=demo, computed_at=datetime(2026, 11, 1, tzinfo=UTC))


@pytest.fixture
def history():  # type: ignore[no-untyped-def]
    ensure_zones("DE", "DE-BY")
    GpuClassFactory(code="H100", min_benchmark_value=D("700"))
    GpuClassFactory(code="A100", min_benchmark_value=D("250"))
    for day, value in H100_BASE.items():
        _value("H100", "DE", day, value)
    for day, value in A100_BASE.items():
        _value("A100", "DE", day, value)
    _value("H100", "DE", date(2026, 11, 10), "2.30", kind=indices.PEAK)


def _api(client, slug, query=""):  # type: ignore[no-untyped-def]
    answer = client.get(f"/api/v1/open-data/{slug}/?{query}")
    assert answer.status_code == 200, answer.content
    download = client.get(f"/api/v1/open-data/{slug}/?{query}&format=csv")
    table = list(csv.DictReader(io.StringIO(download.content.decode())))
    rows = answer.json()["rows"]
    assert table == [{key: "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
                      for key, value in row.items()} for row in rows]
    return rows


def _chart(html: str, element: str) -> list[dict[str, object]]:
    found = re.search(rf'<script id="{element}" type="application/json">(.*?)</script>', html, re.S)
    assert found, element
    return json.loads(found.group(1))


def _href(html: str, testid: str) -> str:
    found = re.search(rf'<a href="([^"]+)" data-testid="{testid}"', html)
    assert found
    return found.group(1).replace("&amp;", "&")


def test_week_and_month_means_are_the_means_of_the_daily_values(client, history):
    end = "end=2026-11-10&range=month&gpu_class=H100,A100&zone=DE&index=base"
    week = _api(client, "price-history", f"{end}&resolution=week")
    # H100 week of 2 Nov: (2.40 + 2.50 + 2.61) / 3 = 2.5033 -> 2.50; week of 9 Nov: (2.10 + 2.20) / 2 = 2.15.
    # A100 week of 2 Nov: (1.35 + 1.40) / 2 = 1.375 -> 1.38 (half up); week of 9 Nov: 1.25.
    assert [(r["period"], r["gpu_class"], r["price"], r["days"]) for r in week] == [
        ("2026-11-02", "A100", "1.38", 2), ("2026-11-02", "H100", "2.50", 3),
        ("2026-11-09", "A100", "1.25", 1), ("2026-11-09", "H100", "2.15", 2)]
    month = _api(client, "price-history", f"{end}&resolution=month")
    # November, H100: 11.81 / 5 = 2.362 -> 2.36; A100: 4.00 / 3 = 1.3333 -> 1.33.
    assert [(r["period"], r["gpu_class"], r["price"]) for r in month] == [
        ("2026-11-01", "A100", "1.33"), ("2026-11-01", "H100", "2.36")]
    peak = _api(client, "price-history", "end=2026-11-10&range=day&gpu_class=H100&index=peak&resolution=day")
    assert [(r["period"], r["price"]) for r in peak] == [("2026-11-10", "2.30")]


def test_price_per_performance_and_spread_by_hand(client, history):
    query = "end=2026-11-10&range=month&zone=DE&resolution=day"
    rows = _api(client, "price-per-performance", f"{query}&gpu_class=H100,A100")
    by = {(r["period"], r["gpu_class"]): r["price_per_1000_units"] for r in rows}
    assert by[("2026-11-02", "H100")] == "3.43"  # 2.40 x 1000 / 700 = 3.4285...
    assert by[("2026-11-02", "A100")] == "5.40"  # 1.35 x 1000 / 250
    spread = _api(client, "generation-spread", f"{query}&newer=H100&older=A100")
    # Days with both: 2 Nov 3.43 - 5.40; 3 Nov 2.50 -> 3.57, 1.40 -> 5.60; 9 Nov 2.10 -> 3.00, 1.25 -> 5.00.
    assert [(r["period"], r["spread"]) for r in spread] == [
        ("2026-11-02", "-1.97"), ("2026-11-03", "-2.03"), ("2026-11-09", "-2.00")]


def test_the_charts_plot_exactly_the_downloads(client, history):
    page = client.get("/dashboard/prices/?gpu_class=H100&gpu_class=A100&zone=DE&range=month&resolution=week"
                      "&end=2026-11-10")
    html = page.content.decode()
    json_url = _href(html, "json-link")
    assert "gpu_class=H100%2CA100" in json_url and "resolution=week" in json_url
    assert _chart(html, "price-history-data") == client.get(json_url).json()["rows"]
    assert _href(html, "csv-link") == json_url + "&format=csv"
    rows = _api(client, "price-history", json_url.split("?", 1)[1])
    assert _chart(html, "price-history-data") == rows

    page = client.get("/dashboard/generations/?zone=DE&range=month&resolution=day&end=2026-11-10"
                      "&newer=H100&older=A100")
    html = page.content.decode()
    links = re.findall(r'<a href="([^"]+)" data-testid="json-link"', html)
    assert len(links) == 2
    perf, spread = (link.replace("&amp;", "&") for link in links)
    assert _chart(html, "perf-data") == _api(client, "price-per-performance", perf.split("?", 1)[1])
    assert _chart(html, "spread-data") == _api(client, "generation-spread", spread.split("?", 1)[1])


def test_overview_shows_the_latest_values_with_their_change(client, history):
    rows = _api(client, "latest-indices")
    h100 = {r["index"]: r for r in rows if r["gpu_class"] == "H100"}
    assert h100["base"]["date"] == "2026-11-10" and h100["base"]["value"] == "2.20"
    assert h100["base"]["change"] == "0.10"  # 2.20 - 2.10
    assert h100["peak"]["change"] is None  # no Peak on 9 Nov
    today = timezone.now().date()
    _value("H100", "DE", today, "2.00")
    _value("H100", "DE", today - timedelta(days=1), "2.25")
    ahead = _api(client, "dayahead-base")
    assert [(r["gpu_class"], r["base"], r["change"]) for r in ahead] == [("H100", "2.00", "-0.25")]
    html = client.get("/dashboard/overview/").content.decode()
    assert "2,00" in html and "-0,25" in html and "/api/v1/open-data/latest-indices/" in html


def test_bad_parameters_fall_back_on_the_page_and_answer_400_on_the_api(client, history):
    page = client.get("/dashboard/prices/?gpu_class=NOPE&zone=XX&range=ever&resolution=hour&index=mid&end=x")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="json-link"' in html and "range=year" in _href(html, "json-link")
    capped = client.get("/dashboard/prices/?range=all&resolution=hour")
    assert 'data-testid="hour-capped"' in capped.content.decode()
    assert client.get("/dashboard/generations/?newer=X&older=Y&resolution=hour").status_code == 200
    bad = client.get("/api/v1/open-data/price-history/?range=all&resolution=hour&zone=XX")
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"resolution", "zone"} and bad.json()["code"] == "invalid"
    bad = client.get("/api/v1/open-data/generation-spread/?newer=X")
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"newer"}


def test_empty_data_is_explained_and_no_member_appears(client, admin_user):
    ensure_zones("DE")
    GpuClassFactory(code="H100")
    for url in ("/dashboard/overview/", "/dashboard/prices/", "/dashboard/prices/?range=day&resolution=hour",
                "/dashboard/generations/", "/dashboard/methodology/prices/v1/",
                "/dashboard/methodology/price-per-performance/v1/"):
        answer = client.get(url)
        assert answer.status_code == 200, url
        html = answer.content.decode()
        assert "price-chart" not in html or "public-chart" not in html, url  # no empty chart frame
        assert admin_user.email not in html
    assert "empty-note" in client.get("/dashboard/prices/").content.decode()
    assert client.get("/dashboard/methodology/nothing/v1/").status_code == 404


def test_no_member_in_any_public_dataset(client, history):
    from tests.market.test_dayahead_service import member

    organisation, user = member("Geheim Rechnen GmbH")
    for slug in ("latest-indices", "dayahead-base", "forward-front", "price-history", "price-per-performance",
                 "generation-spread"):
        body = client.get(f"/api/v1/open-data/{slug}/?format=csv").content.decode()
        body += client.get(f"/api/v1/open-data/{slug}/").content.decode()
        assert "Geheim" not in body and user.email not in body
    listing = client.get("/api/v1/open-data/").json()
    slugs = {entry["slug"] for entry in listing["datasets"]}
    assert {"price-history", "price-per-performance", "generation-spread", "latest-indices"} <= slugs
    for entry in listing["datasets"]:
        if entry["slug"] in slugs and entry["page_url"].startswith(("/dashboard/prices", "/dashboard/gen")):
            assert client.get(entry["methodology_url"]).status_code == 200
