"""An anonymous visitor reads the public price pages in Chromium (issue 11):
the overview, the price history -- two classes, another zone, range and
resolution, German to English -- downloads the CSV the chart plots, and
opens the chip generations; at desktop and phone width, with the chart drawn
and no horizontal scrolling."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from market import indices
from market.models import DeliveryZone, IndexValue
from tests.browser.conftest import Shots
from tests.factories import GpuClassFactory
from tests.market.trading_setup import ensure_zones

pytestmark = pytest.mark.django_db(transaction=True)


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


def _history() -> None:
    ensure_zones("DE", "DE-BY")
    classes = [GpuClassFactory(code="H100", min_benchmark_value=Decimal("700")),
               GpuClassFactory(code="A100", min_benchmark_value=Decimal("250")),
               GpuClassFactory(code="B200", min_benchmark_value=Decimal("1500"))]
    zones = list(DeliveryZone.objects.filter(code__in=["DE", "DE-BY"]))
    base = {"H100": Decimal("2.40"), "A100": Decimal("1.35"), "B200": Decimal("4.90")}
    last = datetime.now(UTC).date() - timedelta(days=1)
    rows = []
    for gpu in classes:
        for zone in zones:
            for back in range(120):
                day = last - timedelta(days=back)
                value = (base[gpu.code] * (1 + Decimal(back) / 400) + (Decimal("0.04") if zone.code == "DE-BY" else 0)
                         + Decimal((back * 7) % 11) / 100).quantize(Decimal("0.01"))
                for kind, extra in ((indices.BASE, 0), (indices.PEAK, Decimal("0.12"))):
                    rows.append(IndexValue(kind=kind, date=day, gpu_class=gpu, zone=zone, value=value + extra,
                                           volume=100, inputs={}, sha256="0" * 64, is_demo=True,
                                           methodology_version=indices.METHODOLOGY_VERSION,
                                           computed_at=datetime.now(UTC)))
    IndexValue.objects.bulk_create(rows)


def _no_sideways_scroll(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def _journey(page: Page, shots: Shots, tmp_path, phone: bool) -> None:  # type: ignore[no-untyped-def]
    page.goto("/dashboard/overview/")
    expect(page.locator("h1")).to_have_text("Preisüberblick")
    expect(page.locator("[data-testid=latest-indices] tbody tr").first).to_contain_text("A100 · DE")
    expect(page.locator("[data-testid=demo-note]")).to_be_visible()
    _no_sideways_scroll(page)
    shots("overview")

    page.locator(".public-nav a", has_text="Preise").click()
    expect(page.locator("h1")).to_have_text("Preisverlauf")
    expect(page.locator("#price-history-chart .main-svg").first).to_be_attached()
    shots("prices-default")

    page.locator("#f-class").select_option(["A100", "H100"])
    page.locator("#f-zone").select_option("DE-BY")
    page.locator("#f-range").select_option("month")
    page.locator("#f-resolution").select_option("week")
    page.locator(".public-filters button[type=submit]").click()
    expect(page.locator("#history-title")).to_have_text("A100, H100 · DE-BY · Base")
    expect(page.locator("#price-history-chart .scatterlayer .trace")).to_have_count(2)
    expect(page.locator("[data-testid=history-table] thead")).to_contain_text("Woche ab")
    _no_sideways_scroll(page)
    shots("prices-two-classes-week")

    page.locator(".lang-switch button[value=en]").click()
    expect(page.locator("h1")).to_have_text("Price history")
    expect(page.locator("#history-title")).to_have_text("A100, H100 · DE-BY · Base")
    with page.expect_download() as download_info:
        page.locator("[data-testid=csv-link]").click()
    path = tmp_path / ("phone.csv" if phone else "desktop.csv")
    download_info.value.save_as(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("period,hour_start_utc,hour_start_berlin,gpu_class,zone,index,price,days,is_demo")
    assert {line.split(",")[3] for line in lines[1:]} == {"A100", "H100"} and len(lines) > 4
    shots("prices-english")

    page.locator(".public-nav a", has_text="Chip generations").click()
    expect(page.locator("h1")).to_have_text("Chip generations")
    expect(page.locator("#perf-chart .scatterlayer .trace")).to_have_count(3)
    expect(page.locator("#spread-chart .main-svg").first).to_be_attached()
    expect(page.locator("#spread-title")).to_have_text("Spread H100 – A100")
    _no_sideways_scroll(page)
    shots("generations")


def test_an_anonymous_visitor_reads_and_downloads_the_prices(new_page, live_server, request, tmp_path):
    _history()
    page = new_page(live_server.url)
    _journey(page, Shots(page, request.node.name + "-desktop"), tmp_path, phone=False)
    phone = new_page(live_server.url, width=390, height=844, mobile=True)
    _journey(phone, Shots(phone, request.node.name + "-phone"), tmp_path, phone=True)
