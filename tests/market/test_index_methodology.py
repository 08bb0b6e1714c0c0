"""The versioned methodology page of the indices: public, German by
default, its worked example computed by the rules, and its recipe for
recomputing a fingerprint run against the API."""

import hashlib
import html
import io
import json
import re
import urllib.request
from decimal import Decimal

import pytest
from django.urls import reverse

from market import calendar
from market.models import DeliveryZone
from market.services.indices import VWAP_GRACE, index_compute_day
from market.views import methodology
from tests.factories import (
    ClearedAuctionFactory,
    GpuClassFactory,
    HourInstrumentFactory,
    auction_hour_results,
    trade_row,
)

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/methodology/index/v1/"


def test_the_methodology_url_leads_to_the_current_version(client):
    response = client.get("/dashboard/methodology/index/")

    assert response.status_code == 302
    assert response["Location"] == PAGE == reverse("index-methodology-version", kwargs={"version": "v1"})
    assert reverse("index-methodology") == "/dashboard/methodology/index/"


def test_the_page_is_public_and_german_by_default_english_on_request(client):
    german = client.get(PAGE)
    client.cookies["django_language"] = "en"
    english = client.get(PAGE)

    assert german.status_code == english.status_code == 200
    assert "Preisindizes für Rechenkapazität: Methodik" in german.content.decode()
    assert "Compute price indices: methodology" in english.content.decode()
    assert "CC BY 4.0" in german.content.decode()
    assert client.get("/dashboard/methodology/index/v9/").status_code == 404


def test_the_worked_example_is_the_rules_and_hashes_as_written(client):
    example = methodology.worked_example()
    base, peak, vwap = example["steps"]  # type: ignore[misc]

    # Prices of the example by hand: 56.28 / 24 = 2.345 -> 2.35 (half up); peak 31.31 / 12 = 2.609166… -> 2.61;
    # VWAP (5·2.60 + 3·2.64 + 10·2.55 + 4·2.20) / 22 = 55.22 / 22 = 2.51.
    assert (base.total, base.count, base.value, base.more) == (Decimal("56.28"), 24, Decimal("2.35"), "")
    assert (peak.value, peak.more, vwap.value) == (Decimal("2.61"), "…", Decimal("2.51"))
    for step in (base, peak, vwap):
        assert hashlib.sha256(step.json.encode("utf-8")).hexdigest() == step.sha256
        document = json.loads(step.json)
        assert json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == step.json
    assert example["fingerprint"] == hashlib.sha256(
        (base.sha256 + peak.sha256 + vwap.sha256).encode("ascii")).hexdigest()

    page = client.get(PAGE).content.decode()
    assert "2,345" in page and "<strong>2,35</strong>" in page
    assert base.sha256 in page and example["fingerprint"] in page
    assert html.escape(peak.json) in page


def test_the_pages_recipe_checks_the_example_day_published_through_the_service(client, monkeypatch):
    h100 = GpuClassFactory(code=methodology.EXAMPLE_CLASS)
    day = methodology.EXAMPLE_DAY
    auction = ClearedAuctionFactory(delivery_date=day, gpu_class=h100, zone_code=methodology.EXAMPLE_ZONE)
    labels = [hour.label for hour in calendar.day_hours(day)]
    auction_hour_results(auction, dict(zip(labels, methodology.EXAMPLE_PRICES, strict=True)),
                         volumes=dict(zip(labels, methodology.EXAMPLE_VOLUMES, strict=True)))
    for label, price, quantity in methodology.EXAMPLE_TRADES:
        instrument = HourInstrumentFactory(gpu_class=h100, hour=calendar.delivery_hour(day, label))
        trade_row(instrument=instrument, price=price, quantity=quantity)
    index_compute_day(day=day, gpu_class_id=h100.pk, zone_id=DeliveryZone.objects.get(code="DE").pk,
                      now=calendar.day_hours(day)[-1].start + VWAP_GRACE)
    page = client.get(PAGE).content.decode()
    recipe = html.unescape(re.search(r"<pre>(import hashlib.*?)</pre>", page, re.S).group(1))  # type: ignore[union-attr]
    asked = []

    def urlopen(url: str) -> io.BytesIO:
        asked.append(url)
        return io.BytesIO(client.get(url).content)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    namespace: dict[str, object] = {}
    exec(recipe, namespace)  # noqa: S102 (the page's own recipe, run as a reader would)

    assert asked == [f"http://testserver/api/v1/index/{day.isoformat()}/?gpu_class=H100&zone=DE"]
    assert namespace["day"]["fingerprint"] == methodology.worked_example()["fingerprint"]  # type: ignore[index]
