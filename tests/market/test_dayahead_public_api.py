"""The public day-ahead API (issue 9, items 3 and 5): the state of a delivery
day through book opening, gate closure and clearing, the results as JSON and
CSV, the aggregated curves, the indicative results, on the 23- and 25-hour
days, with no member data anywhere. Published rows come from the factories
(the clearing service writes them in production)."""

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.models import KycCase
from market import calendar
from market.models import AuctionStatus, DayAheadBid, DayAheadStep, GpuClass
from market.services import dayahead
from tests.factories import (
    DayAheadAuctionFactory,
    DayAheadIndicativeFactory,
    GpuClassFactory,
    MembershipFactory,
    OrganisationFactory,
    cleared_auction,
)
from tests.market.test_dayahead_service import BIDDING, hand_computed_book, market  # noqa: F401 (a fixture)
from tests.market.test_dayahead_service import DAY as SERVICE_DAY
from tests.market.test_dayahead_service import GATE as SERVICE_GATE

pytestmark = pytest.mark.django_db

SPRING = date(2026, 3, 29)  # 23 hours, no 02
AUTUMN = date(2026, 10, 25)  # 25 hours, 02A and 02B


@pytest.fixture
def h100() -> GpuClass:
    return GpuClassFactory(code="H100")


@pytest.fixture
def api() -> Client:
    return Client()  # anonymous: everything here is public


@pytest.fixture
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    """Set the time the views see: ``clock(datetime)``."""
    def set_to(at: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: at)
    return set_to


def day_url(day: date, tail: str = "") -> str:
    return f"/api/v1/dayahead/{day.isoformat()}/{tail}"


def results(api: Client, day: date, **query: str):  # type: ignore[no-untyped-def]
    return api.get(day_url(day, "results/"), {"gpu_class": "H100", "zone": "DE", **query})


def clear(auction) -> None:  # type: ignore[no-untyped-def]
    auction.status = AuctionStatus.CLEARED
    auction.cleared_at = auction.gate_closure + timedelta(seconds=5)
    auction.save(update_fields=["status", "cleared_at"])


# --- the state of a day ----------------------------------------------------------------------


def test_a_day_goes_from_closed_to_open_to_closed_to_cleared_on_the_spring_day(api, clock, h100):
    opens = calendar.dayahead_book_opens(SPRING)
    gate = calendar.dayahead_gate_closure(SPRING)
    assert opens == datetime(2026, 3, 14, 23, tzinfo=UTC) and gate == datetime(2026, 3, 28, 11, tzinfo=UTC)

    clock(opens - timedelta(seconds=1))
    before = api.get(day_url(SPRING)).json()
    assert before == {"delivery_date": "2026-03-29", "gate_closure": "2026-03-28T12:00:00+01:00",
                      "status": "closed", "book_opens_at": "2026-03-15T00:00:00+01:00", "auctions": []}

    clock(opens)
    assert api.get(day_url(SPRING)).json()["status"] == "open"  # open before anyone bids

    auction = DayAheadAuctionFactory(delivery_date=SPRING, gpu_class=h100)
    clock(gate - timedelta(microseconds=1))
    answer = api.get(day_url(SPRING)).json()
    assert answer["status"] == "open"
    assert answer["auctions"] == [{"gpu_class": "H100", "zone": "DE", "status": "open", "cleared_at": None}]

    clock(gate)
    answer = api.get(day_url(SPRING)).json()
    assert answer["status"] == "closed"
    assert answer["auctions"][0]["status"] == "closed"

    clear(auction)
    clock(gate + timedelta(minutes=1))
    answer = api.get(day_url(SPRING)).json()
    assert answer["status"] == "cleared"
    assert answer["auctions"] == [{"gpu_class": "H100", "zone": "DE", "status": "cleared",
                                   "cleared_at": "2026-03-28T12:00:05+01:00"}]


def test_a_day_is_closed_until_every_auction_of_it_is_cleared(api, clock, h100):
    cleared_auction(day=AUTUMN, gpu_class=h100)
    DayAheadAuctionFactory(delivery_date=AUTUMN, gpu_class=GpuClassFactory(code="H200"), zone_code="DE-BY")
    clock(calendar.dayahead_gate_closure(AUTUMN) + timedelta(minutes=2))

    answer = api.get(day_url(AUTUMN)).json()

    assert answer["status"] == "closed"
    assert answer["gate_closure"] == "2026-10-24T12:00:00+02:00"
    assert [(a["gpu_class"], a["zone"], a["status"]) for a in answer["auctions"]] == [
        ("H100", "DE", "cleared"), ("H200", "DE-BY", "closed")]


def test_a_day_past_gate_closure_without_any_auction_is_cleared(api, clock):
    clock(calendar.dayahead_gate_closure(AUTUMN))

    answer = api.get(day_url(AUTUMN)).json()

    assert answer["status"] == "cleared" and answer["auctions"] == []


def test_a_malformed_day_is_invalid_in_the_contract_shape(api):
    for text in ("2026-02-30", "20261025", "1999-12-31", "tomorrow"):
        answer = api.get(f"/api/v1/dayahead/{text}/")
        assert answer.status_code == 400, text
        assert answer.json()["code"] == "invalid"
        assert set(answer.json()["fields"]) == {"date"}


# --- results ----------------------------------------------------------------------------------


def test_the_results_of_the_23_hour_day(api, h100):
    cleared_auction(day=SPRING, gpu_class=h100, prices={"05": None})

    answer = results(api, SPRING)

    assert answer.status_code == 200
    body = answer.json()
    assert (body["delivery_date"], body["gpu_class"], body["zone"]) == ("2026-03-29", "H100", "DE")
    hours = body["hours"]
    assert len(hours) == 23
    assert [h["hour"] for h in hours[:4]] == ["00", "01", "03", "04"]  # no 02 in spring
    assert hours[0] == {"hour": "00", "price": "10.00", "volume": 20, "buy_volume": 25, "sell_volume": 28,
                        "delivery_start": "2026-03-29T00:00:00+01:00"}
    assert hours[2]["delivery_start"] == "2026-03-29T03:00:00+02:00"  # summer time from 03:00
    five = next(h for h in hours if h["hour"] == "05")
    assert five == {"hour": "05", "price": None, "volume": 0, "buy_volume": 0, "sell_volume": 0,
                    "delivery_start": "2026-03-29T05:00:00+02:00"}  # no bids: no price
    assert hours[-1]["price"] == "15.50"  # 10.00 + 22 × 0.25, two places
    assert body["cleared_at"] == "2026-03-28T12:00:03+01:00"


def test_the_results_of_the_25_hour_day_name_02A_and_02B(api, h100):
    cleared_auction(day=AUTUMN, gpu_class=h100)

    hours = results(api, AUTUMN).json()["hours"]

    assert len(hours) == 25
    assert [h["hour"] for h in hours[1:5]] == ["01", "02A", "02B", "03"]
    assert hours[2]["delivery_start"] == "2026-10-25T02:00:00+02:00"
    assert hours[3]["delivery_start"] == "2026-10-25T02:00:00+01:00"
    assert [h["price"] for h in hours[2:4]] == ["10.50", "10.75"]


def test_the_results_as_csv(api, h100):
    cleared_auction(day=AUTUMN, gpu_class=h100, prices={"23": None})

    answer = results(api, AUTUMN, format="csv")

    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/csv; charset=utf-8"
    assert answer["Content-Disposition"] == 'attachment; filename="dayahead-2026-10-25-H100-DE.csv"'
    rows = list(csv.reader(io.StringIO(answer.content.decode())))
    assert rows[0] == ["delivery_date", "gpu_class", "zone", "hour", "delivery_start", "delivery_start_utc",
                       "price", "volume", "buy_volume", "sell_volume"]
    assert len(rows) == 1 + 25
    assert rows[3] == ["2026-10-25", "H100", "DE", "02A", "2026-10-25T02:00:00+02:00", "2026-10-25T00:00:00Z",
                       "10.50", "22", "27", "30"]
    assert rows[4][3:6] == ["02B", "2026-10-25T02:00:00+01:00", "2026-10-25T01:00:00Z"]
    assert rows[-1][3] == "23" and rows[-1][6] == ""  # no bids: an empty price
    assert answer.content.endswith(b"\r\n")


def test_no_results_before_clearing_and_the_detail_says_why(api, clock, h100):
    auction = DayAheadAuctionFactory(delivery_date=SPRING, gpu_class=h100)
    gate = calendar.dayahead_gate_closure(SPRING)

    clock(gate - timedelta(hours=1))
    early = results(api, SPRING)
    assert early.status_code == 404
    assert early.json()["code"] == "not_found"
    assert "28.03.2026 12:00" in early.json()["detail"]  # German, Berlin time

    clock(gate + timedelta(minutes=1))
    waiting = results(api, SPRING, format="csv")
    assert waiting.status_code == 404
    assert waiting["Content-Type"] == "application/json"  # errors stay JSON
    assert waiting.json()["code"] == "not_found"

    no_bids = api.get(day_url(SPRING, "results/"), {"gpu_class": "H100", "zone": "DE-BY"})
    assert no_bids.status_code == 404 and "Niemand" in no_bids.json()["detail"]

    clear(auction)
    assert results(api, SPRING).status_code == 200  # published at once; no hours stored here, so none listed


def test_a_missing_or_unknown_class_or_zone_is_invalid(api, h100):
    cleared_auction(day=SPRING, gpu_class=h100)

    missing = api.get(day_url(SPRING, "results/"))
    unknown = api.get(day_url(SPRING, "results/"), {"gpu_class": "Z999", "zone": "DE-XX"})

    assert missing.status_code == 400 and set(missing.json()["fields"]) == {"gpu_class", "zone"}
    assert unknown.status_code == 400
    assert unknown.json()["fields"] == {"gpu_class": ["Es gibt keine GPU-Klasse Z999."],
                                        "zone": ["Es gibt keine Lieferzone DE-XX."]}


# --- curves -----------------------------------------------------------------------------------


def test_the_curves_of_one_hour_with_the_clearing_point(api, h100):
    cleared_auction(day=AUTUMN, gpu_class=h100)

    answer = api.get(day_url(AUTUMN, "curves/"), {"gpu_class": "H100", "zone": "DE", "hour": "02B"})

    assert answer.status_code == 200
    assert answer.json() == {
        "delivery_date": "2026-10-25", "gpu_class": "H100", "zone": "DE", "hour": "02B",
        "delivery_start": "2026-10-25T02:00:00+01:00", "price": "10.75", "volume": 23, "buy_volume": 28,
        "sell_volume": 31, "price_low": "10.25", "price_high": "11.25",
        "buy_curve": [["12.75", 11], ["10.75", 23], ["9.75", 28]],
        "sell_curve": [["8.75", 7], ["10.75", 23], ["13.75", 31]],
    }


def test_the_curves_of_an_hour_the_day_does_not_have_are_invalid(api, h100):
    cleared_auction(day=SPRING, gpu_class=h100)

    for hour in ("02", "02A", "24", ""):
        answer = api.get(day_url(SPRING, "curves/"), {"gpu_class": "H100", "zone": "DE", "hour": hour})
        assert answer.status_code == 400, hour
        assert answer.json()["fields"] == {"hour": ["Nennen Sie eine Stunde des Tages: 00 bis 23."]}


def test_no_curves_before_clearing(api, h100):
    DayAheadAuctionFactory(delivery_date=SPRING, gpu_class=h100)

    answer = api.get(day_url(SPRING, "curves/"), {"gpu_class": "H100", "zone": "DE", "hour": "14"})

    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


# --- indicative -------------------------------------------------------------------------------


def test_indicative_results_are_public_while_the_auction_is_open(api, h100):
    day = timezone.now().astimezone(calendar.BERLIN).date() + timedelta(days=5)
    auction = DayAheadAuctionFactory(delivery_date=day, gpu_class=h100)
    url = day_url(day, "indicative/")
    query = {"gpu_class": "H100", "zone": "DE"}

    none_yet = api.get(url, query)
    assert none_yet.status_code == 404 and none_yet.json()["code"] == "not_found"

    indicative = DayAheadIndicativeFactory(auction=auction)
    answer = api.get(url, query)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"delivery_date", "gpu_class", "zone", "gate_closure", "computed_at", "hours"}
    assert body["computed_at"] == indicative.computed_at.astimezone(calendar.BERLIN).isoformat()
    assert len(body["hours"]) == len(calendar.day_hours(day))
    assert body["hours"][1] == {"hour": "01", "price": "9.60", "volume": 10}

    clear(auction)
    assert api.get(url, query).status_code == 404  # the results count now


# --- no member identity, the throttle, the schema --------------------------------------------


def test_no_member_data_in_any_answer(api, h100):
    auction = cleared_auction(day=AUTUMN, gpu_class=h100)
    organisation = OrganisationFactory(legal_name="Geheimrechen Bieter GmbH", kyc__status=KycCase.Status.APPROVED)
    member = MembershipFactory(organisation=organisation, user__email="verdeckter-bieter@example.com")
    # A bid behind the published figures (made directly: what matters is that nothing reads it).
    bid = DayAheadBid.objects.create(auction=auction, organisation=organisation, placed_by=member.user,
                                     kind="curve", side="buy", hour="14", hours=1, sequence=1,
                                     fee_rate=Decimal("0.0100"), status="cleared")
    DayAheadStep.objects.create(bid=bid, position=0, price=Decimal("12.34"), quantity=7)
    query = {"gpu_class": "H100", "zone": "DE"}

    answers = [
        api.get(day_url(AUTUMN)),
        api.get(day_url(AUTUMN, "results/"), query),
        api.get(day_url(AUTUMN, "results/"), {**query, "format": "csv"}),
        api.get(day_url(AUTUMN, "curves/"), {**query, "hour": "14"}),
    ]

    for answer in answers:
        text = answer.content.decode()
        assert answer.status_code == 200
        for secret in ("Geheimrechen", "verdeckter-bieter", organisation.vat_id, "placed_by", "organisation",
                       "sequence", '"bid'):
            assert secret not in text, (answer.request["PATH_INFO"], secret)
    assert set(answers[1].json()["hours"][0]) == {"hour", "price", "volume", "buy_volume", "sell_volume",
                                                  "delivery_start"}


def test_anonymous_callers_are_throttled_like_the_other_public_endpoints(api, h100, monkeypatch):
    from exchange.throttling import AnonRateThrottle

    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "3/min"})
    codes = [api.get(day_url(SPRING)).status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    assert api.get(day_url(SPRING)).json()["code"] == "throttled"


def test_the_openapi_schema_documents_the_public_day_ahead_api():
    out = StringIO()
    call_command("spectacular", "--format", "openapi-json", stdout=out)
    schema = json.loads(out.getvalue())

    paths = schema["paths"]
    for tail in ("", "results/", "curves/", "indicative/"):
        operation = paths[f"/api/v1/dayahead/{{date}}/{tail}"]["get"]
        assert "security" not in operation, tail  # public: no authentication documented
    results_op = paths["/api/v1/dayahead/{date}/results/"]["get"]
    assert set(results_op["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert set(results_op["responses"]["404"]["content"]) == {"application/json"}
    assert {p["name"] for p in results_op["parameters"]} == {"date", "gpu_class", "zone", "format"}
    components = schema["components"]["schemas"]
    assert components["DayAheadStatusEnum"]["enum"] == ["open", "closed", "cleared"]
    assert set(components["DayAheadCurves"]["properties"]) >= {"buy_curve", "sell_curve", "price", "volume"}
    assert set(components["DayAheadHourResult"]["required"]) >= {"hour", "price", "volume", "buy_volume",
                                                                "sell_volume"}


# --- end to end: bids through the services, the run, then the public side ---------------------


def test_what_the_run_publishes_is_what_the_public_reads(api, clock, request):
    """The hand-computed book of tests/market/test_dayahead_service.py: hour
    14 clears 60 GPUs at 11.00 with 60 bid and 90 offered; B2's accepted
    block stands in the buy curve at the price bound."""
    members = request.getfixturevalue("market")  # that module's members; bids go through the services
    hand_computed_book(members)
    query = {"gpu_class": "H100", "zone": "DE"}

    clock(BIDDING + timedelta(days=1))
    assert dayahead.dayahead_indicative_run(now=BIDDING + timedelta(days=1)) == 1
    indicative = api.get(day_url(SERVICE_DAY, "indicative/"), query).json()
    assert next(h for h in indicative["hours"] if h["hour"] == "14") == {"hour": "14", "price": "11.00", "volume": 60}
    assert api.get(day_url(SERVICE_DAY)).json()["status"] == "open"

    clock(SERVICE_GATE)
    assert dayahead.auctions_clear_due(now=SERVICE_GATE) == 1
    day = api.get(day_url(SERVICE_DAY)).json()
    hours = api.get(day_url(SERVICE_DAY, "results/"), query).json()["hours"]
    curves = api.get(day_url(SERVICE_DAY, "curves/"), {**query, "hour": "14"}).json()
    page = Client().get(f"/dashboard/dayahead/{SERVICE_DAY}/", {**query, "hour": "14"}).content.decode()

    assert day["status"] == "cleared"
    assert api.get(day_url(SERVICE_DAY, "indicative/"), query).status_code == 404  # the results replace it
    assert len(hours) == 24
    assert next(h for h in hours if h["hour"] == "14") == {
        "hour": "14", "price": "11.00", "volume": 60, "buy_volume": 60, "sell_volume": 90,
        "delivery_start": "2026-12-10T14:00:00+01:00"}
    assert next(h for h in hours if h["hour"] == "03")["price"] is None  # no bids
    assert curves["buy_curve"] == [["200.00", 10], ["15.00", 40], ["11.50", 60]]
    assert curves["sell_curve"] == [["10.00", 30], ["11.00", 70], ["12.00", 90]]
    assert (curves["price"], curves["volume"]) == ("11.00", 60)
    assert "Räumungspunkt: 60 GPUs zu 11,00 EUR/GPUh." in page
    for organisation, user in members.values():
        for text in (json.dumps([day, hours, curves]), page):
            assert organisation.legal_name not in text and user.email not in text
