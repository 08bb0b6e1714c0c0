"""GET /api/v1/index/ (JSON and CSV) and /api/v1/index/{date}/: public, the
contract's shape, the range, bad input in the error shape, a 25-hour day,
and the fingerprint recomputed from the API's answers alone."""

import csv
import hashlib
import io
import json
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.throttling import AnonRateThrottle

from market import calendar
from market.models import DeliveryZone, GpuClass
from market.services.indices import VWAP_GRACE, index_compute_day
from tests.factories import (
    ClearedAuctionFactory,
    GpuClassFactory,
    HourInstrumentFactory,
    auction_hour_results,
    trade_row,
)

pytestmark = pytest.mark.django_db

LIST = "/api/v1/index/"
CONTRACT_FIELDS = {"date", "base", "peak", "intraday_vwap", "volume", "fingerprint"}
SATURDAY, AUTUMN, MONDAY = date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26)


def publish(day: date, gpu_class: GpuClass, prices: dict[str, str], *, zone: str = "DE",
            trades: tuple[tuple[str, str, int], ...] = ()) -> None:
    auction = ClearedAuctionFactory(delivery_date=day, gpu_class=gpu_class, zone_code=zone)
    auction_hour_results(auction, prices, volume=3)
    for label, price, quantity in trades:
        instrument = HourInstrumentFactory(gpu_class=gpu_class, zone_code=zone,
                                           hour=calendar.delivery_hour(day, label))
        trade_row(instrument=instrument, price=price, quantity=quantity)
    after_close = calendar.day_hours(day)[-1].start + VWAP_GRACE
    index_compute_day(day=day, gpu_class_id=gpu_class.pk, zone_id=DeliveryZone.objects.get(code=zone).pk,
                      now=after_close)


@pytest.fixture
def history():
    """H100 in DE over a Saturday, the 25-hour Sunday and a Monday; L40S and DE-BY beside them."""
    h100 = GpuClassFactory(code="H100")
    l40s = GpuClassFactory(code="L40S")
    every = {hour.label: "2.00" for hour in calendar.day_hours(SATURDAY)}
    publish(SATURDAY, h100, every)
    autumn = {hour.label: {"02A": "12.00", "02B": "13.00"}.get(hour.label, "10.00")
              for hour in calendar.day_hours(AUTUMN)}
    publish(AUTUMN, h100, autumn, trades=(("02A", "4.00", 1), ("02B", "5.00", 3)))
    monday = {hour.label: ("3.00" if 8 <= int(hour.label) < 20 else "1.00") for hour in calendar.day_hours(MONDAY)}
    publish(MONDAY, h100, monday, trades=(("10", "2.50", 2),))
    publish(MONDAY, l40s, {"10": "0.80"})
    publish(MONDAY, h100, {"10": "9.99"}, zone="DE-BY")
    return h100


def get_list(client, **params):  # type: ignore[no-untyped-def]
    return client.get(LIST, {"gpu_class": "H100", "zone": "DE", "from": "2026-10-01", "to": "2026-10-31", **params})


def test_the_list_is_public_and_in_the_contract_shape(client, history):
    response = get_list(client)

    assert response.status_code == 200
    rows = response.json()
    assert [row["date"] for row in rows] == ["2026-10-24", "2026-10-25", "2026-10-26"]
    assert all(CONTRACT_FIELDS <= set(row) for row in rows)
    saturday, autumn, monday = rows
    assert saturday | {"fingerprint": None} == {
        "date": "2026-10-24", "base": "2.00", "peak": None, "intraday_vwap": None, "volume": 72,
        "fingerprint": None, "intraday_volume": 0, "is_demo": False, "methodology_version": "v1"}
    assert (monday["base"], monday["peak"], monday["intraday_vwap"]) == ("2.00", "3.00", "2.50")
    assert (monday["volume"], monday["intraday_volume"]) == (72, 2)
    assert len({row["fingerprint"] for row in rows}) == 3
    assert 'rel="license"' in response["Link"] and "creativecommons.org/licenses/by/4.0" in response["Link"]


def test_the_25_hour_day_in_the_api(client, history):
    autumn = get_list(client, **{"from": "2026-10-25", "to": "2026-10-25"}).json()

    assert autumn == [autumn[0] | {"base": "10.20", "peak": None, "intraday_vwap": "4.75", "volume": 75}]
    detail = client.get(f"{LIST}2026-10-25/", {"gpu_class": "H100"}).json()
    base = detail["values"][0]
    assert [hour["hour"] for hour in base["document"]["hours"]][:5] == ["00", "01", "02A", "02B", "03"]
    assert len(base["document"]["hours"]) == 25


def test_the_range_filter_takes_both_ends_and_other_series_stay_apart(client, history):
    assert [row["date"] for row in get_list(client, **{"from": "2026-10-25", "to": "2026-10-26"}).json()] \
        == ["2026-10-25", "2026-10-26"]
    assert get_list(client, **{"from": "2026-10-27"}).json() == []
    assert [row["base"] for row in get_list(client, gpu_class="L40S").json()] == ["0.80"]
    assert [row["base"] for row in get_list(client, zone="DE-BY").json()] == ["9.99"]


def test_without_dates_the_last_year_up_to_tomorrow(client):
    h100 = GpuClassFactory(code="H100")
    today = timezone.now().astimezone(calendar.BERLIN).date()
    for day in (today - timedelta(days=400), today - timedelta(days=10), today + timedelta(days=1)):
        publish(day, h100, {"10": "1.00"})

    dates = [row["date"] for row in client.get(LIST, {"gpu_class": "H100"}).json()]

    assert dates == [(today - timedelta(days=10)).isoformat(), (today + timedelta(days=1)).isoformat()]


def test_csv_gives_the_same_columns_and_rows(client, history):
    as_json = get_list(client).json()

    response = get_list(client, format="csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="index-H100-DE-2026-10-01-2026-10-31.csv"'
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8"))))
    assert lines[0] == list(as_json[0])
    assert CONTRACT_FIELDS <= set(lines[0])
    expected = [["" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
                 for value in row.values()] for row in as_json]
    assert lines[1:] == expected
    assert response.content.endswith(b"\r\n")


@pytest.mark.parametrize(("params", "field"), [
    ({"gpu_class": ""}, "gpu_class"),
    ({"gpu_class": "Z999"}, "gpu_class"),
    ({"zone": "DE-XX"}, "zone"),
    ({"from": "2026-13-01"}, "from"),
    ({"from": "20260101"}, "from"),
    ({"to": "yesterday"}, "to"),
    ({"from": "1999-12-31"}, "from"),
    ({"from": "2026-10-27", "to": "2026-10-26"}, "to"),
    ({"from": "2000-01-01", "to": "2026-01-01"}, "to"),
    ({"methodology_version": "v0"}, "methodology_version"),
])
def test_bad_input_is_invalid_at_the_field(client, history, params, field):
    response = get_list(client, **params)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {field}
    assert body["detail"]


def test_an_error_is_json_even_when_csv_was_asked_for(client, history):
    response = get_list(client, format="csv", to="31.10.2026")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["fields"] == {"to": ["Geben Sie ein Datum als JJJJ-MM-TT an."]}


def test_the_day_detail_answers_404_for_a_day_without_values_and_400_for_a_bad_date(client, history):
    missing = client.get(f"{LIST}2026-10-23/", {"gpu_class": "H100"})
    bad = client.get(f"{LIST}2026-02-30/", {"gpu_class": "H100"})

    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (bad.status_code, set(bad.json()["fields"])) == (400, {"date"})


def test_the_fingerprint_is_recomputed_from_the_api_output_alone(client, history):
    """What the methodology page tells anyone to do, with nothing but the two answers."""
    rows = get_list(client).json()
    checked = 0
    for row in rows:
        day = client.get(f"{LIST}{row['date']}/", {"gpu_class": "H100", "zone": "DE"}).json()
        assert day["fingerprint"] == row["fingerprint"]
        hashes = ""
        for value in day["values"]:
            document = value["document"]
            canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == value["sha256"]
            if document["index"] in ("base", "peak"):
                prices = [Decimal(hour["price"]) for hour in document["hours"] if hour["price"] is not None]
                exact = sum(prices) / len(prices) if prices else None
            else:
                quantity = sum(hour["quantity"] for hour in document["hours"])
                exact = (sum(Decimal(hour["notional"]) for hour in document["hours"]) / quantity) if quantity else None
            recomputed = None if exact is None else str(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
            assert recomputed == value["value"] == row[document["index"]]
            hashes += value["sha256"]
            checked += 1
        assert [value["index"] for value in day["values"]] == ["base", "peak", "intraday_vwap"]
        assert hashlib.sha256(hashes.encode("ascii")).hexdigest() == row["fingerprint"]
    assert checked == 9


def test_anonymous_requests_are_throttled_like_the_other_public_endpoints(client, history, monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"user": "100/min", "anon": "2/min"})

    answers = [get_list(client).status_code for _ in range(3)]

    assert answers == [200, 200, 429]


def test_the_openapi_schema_documents_both_endpoints():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    listing = schema["paths"]["/api/v1/index/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"gpu_class", "zone", "from", "to", "format"}
    assert "security" not in listing
    assert set(listing["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert set(listing["responses"]["400"]["content"]) == {"application/json"}
    assert CONTRACT_FIELDS <= set(schema["components"]["schemas"]["IndexDay"]["properties"])
    detail = schema["paths"]["/api/v1/index/{date}/"]["get"]
    assert {"200", "400", "404"} <= set(detail["responses"])
    assert "document" in schema["components"]["schemas"]["PublishedValue"]["properties"]
