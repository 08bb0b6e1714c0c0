"""Issue 11 in Chromium: an operator imports a SMARD file in the admin; an
anonymous visitor opens the electricity, capacity-signal and revenue pages,
switches the class and the language, and downloads a CSV; screenshots at
1280 px and at 390 px (phone) land in test-artifacts/."""

from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from market import calendar
from market.models import PowerPrice
from tests.factories import GpuClassFactory, SiteCapacityFactory, SiteFactory, UserFactory
from tests.market.test_power_pages import base_index, base_index_with_hours, smard
from tests.market.trading_setup import ensure_zones

pytestmark = pytest.mark.django_db(transaction=True)


def test_operator_imports_prices_and_a_visitor_reads_the_power_pages(page: Page, shots, tmp_path: Path):
    ensure_zones("DE")  # a transactional test before this one may have flushed the migrations' zones
    h100 = GpuClassFactory(code="H100", power_draw_kw=D("1.275"))
    GpuClassFactory(code="A100", power_draw_kw=D("0.813"))
    today = timezone.now().astimezone(calendar.BERLIN).date()
    for n in range(2):  # the last two days with their hours (the hourly view)
        base_index_with_hours(h100, today - timedelta(days=n), {"18": "2.95", "19": "2.90"},
                              f"{D('2.10') + D(n) / 20:.2f}")
    for n in range(2, 40):
        base_index(h100, today - timedelta(days=n), f"{D('2.10') + D(n % 6) / 20:.2f}")
    for _ in range(3):
        SiteCapacityFactory(site=SiteFactory(pue=D("1.25")), gpu_class=h100, gpus=100)
    operator = UserFactory(email="olga@operator.example", is_staff=True, is_superuser=True)
    operator.set_password("pwr-secret-123")
    operator.save()

    page.goto("/admin/login/?next=/admin/market/powerprice/")
    page.locator("input[name=username]").fill(operator.email)
    page.locator("input[name=password]").fill("pwr-secret-123")
    page.locator("input[type=submit]").click()
    page.get_by_role("link", name="SMARD-CSV importieren").click()
    upload = tmp_path / "Gro_handelspreise_202611.csv"
    upload.write_text(smard({today - timedelta(days=n): f"{70 + 4 * (n % 5)},25" for n in range(40)}),
                      encoding="utf-8")
    page.locator("input[type=file]").set_input_files(str(upload))
    shots("admin-import-form")
    page.locator("input[type=submit]").click()
    expect(page.locator(".messagelist")).to_contain_text("neue Stunden importiert")
    assert PowerPrice.objects.count() >= 40 * 23
    shots("admin-imported")
    page.context.clear_cookies()

    page.goto("/dashboard/electricity/")
    expect(page.locator("#compute-power-chart .main-svg").first).to_be_visible()
    expect(page.locator("#spread-chart .main-svg").first).to_be_visible()
    expect(page.get_by_test_id("latest-spread")).to_contain_text(",")
    shots("electricity-de")
    page.locator("#pwr-class").select_option("A100")
    page.get_by_role("button", name="Anzeigen").click()
    expect(page.get_by_test_id("no-spread")).to_be_visible()  # no A100 index: explained, no empty frame
    shots("electricity-a100-empty")
    page.locator("#pwr-class").select_option("H100")
    page.locator("#pwr-resolution").select_option("hour")
    page.get_by_role("button", name="Anzeigen").click()
    expect(page.get_by_test_id("hours-shortened")).to_be_visible()  # the form held 180 days: the last 31 shown
    expect(page.locator("#spread-chart .main-svg").first).to_be_visible()
    expect(page.locator("#correlation-chart")).to_have_count(0)
    # CSV and JSON
    expect(page.locator("a[href*='/api/v1/open-data/spark-spread/'][href*='resolution=hour']")).to_have_count(2)
    shots("electricity-hourly")
    page.goto("/dashboard/electricity/?gpu_class=H100")
    with page.expect_download() as download:
        page.locator("a[href*='/api/v1/open-data/spark-spread/'][href*='format=csv']").click()
    body = Path(download.value.path()).read_text(encoding="utf-8")
    assert body.startswith("date,hour_utc,hour_berlin,compute_base,power_price,power_draw_kw,pue,pue_source,"
                           "electricity_cost,spark_spread")

    page.goto("/dashboard/capacity-signal/")
    expect(page.get_by_test_id("signal-now")).to_contain_text("Noch kein Signal")
    expect(page.locator("#signal-chart .main-svg").first).to_be_visible()
    shots("capacity-signal-de")
    page.goto("/dashboard/revenue/")
    expect(page.get_by_test_id("no-revenue")).to_be_visible()
    shots("revenue-de")

    page.goto("/dashboard/electricity/")
    page.locator(".lang-switch button[value=en]").first.click()
    expect(page.locator("h1")).to_contain_text("Electricity and compute H100")
    shots("electricity-en")

    page.set_viewport_size({"width": 390, "height": 844})
    for path, step in (("/dashboard/electricity/", "electricity-phone"),
                       ("/dashboard/electricity/?resolution=hour", "electricity-hourly-phone"),
                       ("/dashboard/capacity-signal/", "capacity-signal-phone"),
                       ("/dashboard/revenue/", "revenue-phone")):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
        shots(step)
