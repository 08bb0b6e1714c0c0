"""GET /api/v1/instruments/ and /api/v1/instruments/{symbol}/ (public reference data)."""

from datetime import UTC, datetime

import pytest
from drf_spectacular.generators import SchemaGenerator

from market import services
from market.models import GpuClass, Instrument, InstrumentStatus

pytestmark = pytest.mark.django_db

CONTRACT_FIELDS = {"symbol", "segment", "gpu_class", "zone", "delivery_start", "delivery_end", "hours",
                   "tick_size", "lot_size", "min_price", "max_price", "status"}
LIST_URL = "/api/v1/instruments/"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_class(code: str) -> GpuClass:
    return GpuClass.objects.create(code=code, name=f"NVIDIA {code}", memory_gb=80, interconnect="NVLink",
                                   min_benchmark_value=700, min_benchmark_unit="TFLOPS",
                                   delivery_standard="bare_metal")


@pytest.fixture
def catalogue():
    """H100 and L40S listed on 2026-10-24 12:00 CEST and opened; today's 13:00 hour closed."""
    make_class("H100")
    make_class("L40S")
    now = utc(2026, 10, 24, 10)
    services.instruments_list_upcoming(now=now)
    services.instruments_open_close(now=now)
    services.instruments_open_close(now=utc(2026, 10, 24, 10, 30))  # closes hour 13 (11:00Z - 30 min)


def symbols(response):
    return {row["symbol"] for row in response.json()}


def test_list_is_public_and_a_plain_list_in_the_contract_shape(client, catalogue):
    response = client.get(LIST_URL, {"segment": "futures", "gpu_class": "H100"})

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 12
    month = next(row for row in body if row["symbol"] == "H100.DE.M2026-11")
    assert CONTRACT_FIELDS <= set(month)
    assert month == {
        "symbol": "H100.DE.M2026-11", "segment": "futures", "gpu_class": "H100", "zone": "DE",
        "delivery_start": "2026-11-01T00:00:00+01:00", "delivery_end": "2026-12-01T00:00:00+01:00",
        "hours": 720, "tick_size": "0.01", "lot_size": 1, "min_price": "0.00", "max_price": "200.00",
        "status": "open",
        "period": "M2026-11", "opens_at": "2026-05-01T00:00:00+02:00", "closes_at": "2026-11-01T00:00:00+01:00",
    }
    assert response["X-Total-Count"] == "12"


def test_list_defaults_to_the_live_catalogue(client, catalogue):
    response = client.get(LIST_URL, {"gpu_class": "H100", "zone": "DE", "segment": "intraday"})

    assert response.status_code == 200
    statuses = {row["status"] for row in response.json()}
    assert statuses <= {"scheduled", "open", "halted"}
    assert "H100.DE.2026-10-24T13" not in symbols(response)  # closed
    assert "H100.DE.2026-10-24T14" in symbols(response)
    # today's hours 14..23 and the 25 hours of the change day
    assert len(response.json()) == 10 + 25
    starts = [row["delivery_start"] for row in response.json()]
    assert starts[0] == "2026-10-24T14:00:00+02:00"


def test_list_filters(client, catalogue):
    closed = client.get(LIST_URL, {"status": "closed"})
    assert symbols(closed) == {f"{cls}.{zone}.2026-10-24T13" for cls in ("H100", "L40S")
                               for zone in ("DE", "DE-BB", "DE-BE", "DE-BW", "DE-BY", "DE-HB", "DE-HE",
                                            "DE-HH", "DE-MV", "DE-NI", "DE-NW", "DE-RP", "DE-SH", "DE-SL",
                                            "DE-SN", "DE-ST", "DE-TH")}

    by_zone = client.get(LIST_URL, {"zone": "DE-BY", "gpu_class": "L40S"}).json()
    assert by_zone and {(r["zone"], r["gpu_class"], r["segment"]) for r in by_zone} == {("DE-BY", "L40S", "intraday")}

    scheduled = client.get(LIST_URL, {"status": "scheduled", "segment": "intraday"}).json()
    assert len(scheduled) == 2 * 17 * 25  # the change day opens at 15:00 today
    assert client.get(LIST_URL, {"segment": "dayahead"}).json() == []
    assert client.get(LIST_URL, {"gpu_class": "B200"}).json() == []

    one_day = client.get(LIST_URL, {"delivery_date": "2026-10-25", "gpu_class": "H100", "zone": "DE"}).json()
    assert [r["symbol"][-3:] for r in one_day[:5]] == ["T00", "T01", "02A", "02B", "T03"]
    assert len(one_day) == 25


def test_list_rejects_unknown_filter_values_in_the_error_shape(client, catalogue):
    response = client.get(LIST_URL, {"segment": "spot", "status": "gone"})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {"segment", "status"}
    assert body["detail"]


def test_detail_of_the_repeated_hours_carries_their_offsets(client, catalogue):
    a = client.get("/api/v1/instruments/H100.DE-BY.2026-10-25T02A/")
    b = client.get("/api/v1/instruments/H100.DE-BY.2026-10-25T02B/")

    assert a.status_code == b.status_code == 200
    assert (a.json()["delivery_start"], a.json()["delivery_end"]) == (
        "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00")
    assert (b.json()["delivery_start"], b.json()["delivery_end"]) == (
        "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00")
    assert b.json()["closes_at"] == "2026-10-25T02:30:00+02:00"
    assert b.json()["hours"] == 1
    assert CONTRACT_FIELDS <= set(b.json())


def test_detail_answers_closed_instruments_too(client, catalogue):
    response = client.get("/api/v1/instruments/H100.DE.2026-10-24T13/")

    assert response.status_code == 200
    assert response.json()["status"] == InstrumentStatus.CLOSED


@pytest.mark.parametrize("symbol", ["H100.DE.2030-01-01T01", "H100.DE.2026-03-29T02", "nonsense"])
def test_detail_of_an_unknown_symbol_is_404_in_the_error_shape(client, catalogue, symbol):
    response = client.get(f"/api/v1/instruments/{symbol}/")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": response.json()["detail"], "fields": {}}
    assert response.json()["detail"]


def test_list_is_capped_and_reports_the_total(client, catalogue, monkeypatch):
    monkeypatch.setattr("market.api.MAX_LIST", 7)

    response = client.get(LIST_URL)

    assert len(response.json()) == 7
    assert int(response["X-Total-Count"]) == Instrument.objects.exclude(status="closed").count()


def test_the_openapi_schema_documents_both_endpoints():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    listing = schema["paths"]["/api/v1/instruments/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"segment", "gpu_class", "zone", "status"}
    assert "security" not in listing  # public: no authentication documented
    detail = schema["paths"]["/api/v1/instruments/{symbol}/"]["get"]
    assert {"200", "404"} <= set(detail["responses"])
    fields = schema["components"]["schemas"]["Instrument"]["properties"]
    assert CONTRACT_FIELDS <= set(fields)
