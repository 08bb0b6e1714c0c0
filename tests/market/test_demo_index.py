"""The demo index history (market/demo_index.py): a year for every active
class in DE and two states, plausible (generations, weekends, trend),
deterministic, idempotent, marked as demo everywhere, never mixed into a
day that has real values."""

import hashlib
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from statistics import mean

import pytest
from django.core.management import call_command
from django.db import transaction

from market import indices as ix
from market.demo_index import HISTORY_DAYS, seed_index_history
from market.models import DeliveryZone, GpuClass, IndexValue
from market.services.indices import index_compute_day
from tests.factories import ClearedAuctionFactory, GpuClassFactory, auction_hour_results

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)
LAST = date(2026, 12, 1)  # the day before yesterday
FIRST = LAST - timedelta(days=HISTORY_DAYS - 1)


class Rollback(Exception):
    pass


@pytest.fixture
def classes() -> list[GpuClass]:
    made = [GpuClassFactory(code=code) for code in ("A100", "H100", "B200")]
    GpuClassFactory(code="V100", active=False)
    return made


def base_values(code: str, zone: str = "DE") -> dict[date, Decimal]:
    return dict(IndexValue.objects.filter(kind="base", gpu_class__code=code, zone__code=zone)
                .values_list("date", "value"))


def test_a_year_for_every_active_class_in_three_zones_and_a_second_run_adds_nothing(classes):
    added = seed_index_history(now=NOW)

    assert added == HISTORY_DAYS * 3 * 3 * 3
    assert IndexValue.objects.count() == added
    assert seed_index_history(now=NOW) == 0
    dates = IndexValue.objects.values_list("date", flat=True)
    assert (min(dates), max(dates)) == (FIRST, LAST)
    assert set(IndexValue.objects.values_list("zone__code", flat=True)) == {"DE", "DE-BY", "DE-NW"}
    assert not IndexValue.objects.filter(gpu_class__code="V100").exists()
    # A day later, one more day.
    assert seed_index_history(now=NOW + timedelta(days=1)) == 3 * 3 * 3


def test_every_value_is_marked_demo_and_checks_out_like_a_real_one(classes):
    seed_index_history(now=NOW)

    assert not IndexValue.objects.filter(is_demo=False).exists()
    for value in IndexValue.objects.filter(gpu_class__code="H100", zone__code="DE-BY", date__gte=LAST - timedelta(6)):
        assert value.inputs["demo"] is True
        assert hashlib.sha256(ix.canonical_json(value.inputs)).hexdigest() == value.sha256
        assert ix.value_from_document(value.inputs) == value.value
        assert value.volume == value.inputs["volume"]


def test_the_history_is_plausible(classes):
    seed_index_history(now=NOW)
    a100, h100, b200 = base_values("A100"), base_values("H100"), base_values("B200")

    # Older generations are cheaper, and the newest day meets the demo market's reference prices.
    assert mean(a100.values()) < mean(h100.values()) < mean(b200.values())
    assert abs(h100[LAST] - Decimal("2.40")) < Decimal("0.40")
    # Prices fell over the year, the oldest generation the most.
    first_month = [value for day, value in a100.items() if day < FIRST + timedelta(days=30)]
    last_month = [value for day, value in a100.items() if day > LAST - timedelta(days=30)]
    assert mean(first_month) > mean(last_month) * Decimal("1.12")
    # Weekends are cheaper, and have no Peak.
    weekdays = [value for day, value in h100.items() if day.weekday() < 5]
    weekends = [value for day, value in h100.items() if day.weekday() >= 5]
    assert mean(weekends) < mean(weekdays)
    peaks = IndexValue.objects.filter(kind="peak", gpu_class__code="H100", zone__code="DE")
    assert all((peak.value is None) == (peak.date.weekday() >= 5) for peak in peaks)
    # The states are dearer than DE, and some of their hours had no bids.
    assert mean(base_values("H100", "DE-BY").values()) > mean(h100.values())
    state_hours = [hour for value in IndexValue.objects.filter(kind="base", zone__code="DE-NW")
                   for hour in value.inputs["hours"]]
    assert any(hour["price"] is None for hour in state_hours)
    # Intraday VWAP near the day's auction prices.
    vwap = IndexValue.objects.get(kind="intraday_vwap", gpu_class__code="H100", zone__code="DE", date=LAST)
    assert abs(vwap.value - h100[LAST]) < Decimal("0.5")


def test_it_is_deterministic(classes):
    with pytest.raises(Rollback), transaction.atomic():
        seed_index_history(now=NOW)
        first = set(IndexValue.objects.values_list("sha256", flat=True))
        raise Rollback
    assert not IndexValue.objects.exists()

    seed_index_history(now=NOW)

    assert set(IndexValue.objects.values_list("sha256", flat=True)) == first


def test_a_day_with_a_real_value_gets_no_demo_values(classes):
    h100 = GpuClass.objects.get(code="H100")
    real_day = LAST - timedelta(days=3)
    auction = ClearedAuctionFactory(delivery_date=real_day, gpu_class=h100)
    auction_hour_results(auction, {"10": "2.22"})
    index_compute_day(day=real_day, gpu_class_id=h100.pk, zone_id=DeliveryZone.objects.get(code="DE").pk,
                      now=datetime(2026, 11, 27, 12, tzinfo=UTC))  # before trading closed: Base and Peak only

    seed_index_history(now=NOW)

    day = IndexValue.objects.filter(date=real_day, gpu_class=h100, zone__code="DE")
    assert sorted(day.values_list("kind", "is_demo")) == [("base", False), ("peak", False)]
    assert IndexValue.objects.filter(date=real_day, gpu_class=h100, zone__code="DE-BY", is_demo=True).count() == 3


def test_the_api_marks_demo_values(client, classes):
    seed_index_history(now=NOW)

    rows = client.get("/api/v1/index/", {"gpu_class": "B200", "zone": "DE-NW", "from": "2026-11-01",
                                         "to": "2026-12-31"}).json()

    assert len(rows) == 31
    assert all(row["is_demo"] is True for row in rows)


def test_seed_demo_adds_the_history_once(settings, tmp_path):
    storages = {alias: {**conf} for alias, conf in settings.STORAGES.items()}
    storages["default"] = {**storages["default"], "OPTIONS": {**storages["default"]["OPTIONS"], "location": tmp_path}}
    settings.STORAGES = storages
    first, second = io.StringIO(), io.StringIO()

    call_command("seed_demo", "--no-trading", stdout=first)
    call_command("seed_demo", "--no-trading", stdout=second)

    assert f"Index history: {HISTORY_DAYS * 5 * 3 * 3} demo values added" in first.getvalue()
    assert "Index history: 0 demo values added" in second.getvalue()
    assert set(IndexValue.objects.values_list("gpu_class__code", flat=True)) == {"A100", "B200", "H100", "H200",
                                                                                  "L40S"}
    assert not IndexValue.objects.filter(is_demo=False).exists()
