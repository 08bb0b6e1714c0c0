"""The members' day-ahead API (contract "Day-ahead auction"), the operator
command, and two runs of one auction racing (issue 9)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Organisation
from clearing.models import Account
from clearing.reconcile import reconcile
from market import calendar
from market.models import AuctionStatus, DayAheadAuction, DayAheadBid, Trade
from market.services import dayahead
from tests.concurrency import run_at_once
from tests.factories import GpuClassFactory
from tests.market.test_dayahead_service import balance, member
from tests.market.trading_setup import ensure_zones


def client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def day():
    # The book of a day three days ahead is open now, whatever the time.
    return timezone.localdate(timezone.now(), calendar.BERLIN) + timedelta(days=3)


@pytest.fixture
def parties(db):
    ensure_zones("DE", "DE-BY", "DE-NW")
    GpuClassFactory(code="H100")
    return {
        "s1": member("Sella Eins GmbH", state=Organisation.State.BY),
        "s2": member("Selma Zwei GmbH", state=Organisation.State.NW),
        "b1": member("Bea Start GmbH"),
        "b2": member("Bodo Lab GmbH"),
    }


def post(user, day, **body):  # type: ignore[no-untyped-def]
    return client_for(user).post(f"/api/v1/dayahead/{day}/bids/", {"gpu_class": "H100", "zone": "DE", **body},
                                 format="json")


def enter_book(parties, day):  # type: ignore[no-untyped-def]
    answers = {
        "s1": post(parties["s1"][1], day, side="sell", kind="curve", hour="14",
                   steps=[["10.00", 30], ["12.00", 20]]),
        "s2": post(parties["s2"][1], day, side="sell", kind="curve", hour="14", steps=[["11.00", 40]]),
        "b1": post(parties["b1"][1], day, side="buy", kind="curve", hour="14",
                   steps=[["15.00", 30], ["11.50", 20]]),
        "b2": post(parties["b2"][1], day, side="buy", kind="block", first_hour="14", last_hour="14",
                   price="13.00", quantity=10, min_acceptance_ratio="1"),
    }
    for key, answer in answers.items():
        assert answer.status_code == 201, (key, answer.json())
    return {key: answer.json() for key, answer in answers.items()}


@pytest.mark.django_db
def test_a_book_entered_through_the_api_clears_to_the_hand_computed_result(parties, day):
    bids = enter_book(parties, day)
    assert bids["b1"]["reserved_amount"] == "681.00"
    assert bids["b1"]["steps"] == [["15.00", 30], ["11.50", 20]]
    assert bids["b2"]["min_acceptance_ratio"] == "1" and bids["b2"]["accepted_quantity"] is None

    assert dayahead.auctions_clear_due(now=calendar.dayahead_gate_closure(day)) == 1
    b1_user, b2_user = parties["b1"][1], parties["b2"][1]
    mine = client_for(b1_user).get(f"/api/v1/dayahead/{day}/bids/{bids['b1']['id']}/").json()
    assert mine["status"] == "cleared" and mine["accepted_quantity"] == {"14": 50}
    block = client_for(b2_user).get(f"/api/v1/dayahead/{day}/bids/{bids['b2']['id']}/").json()
    assert block["accepted_quantity"] == {"14": 10}
    assert {t.price for t in Trade.objects.all()} == {Decimal("11.00")}
    assert sum(t.quantity for t in Trade.objects.all()) == 60
    assert balance(parties["b1"][0], Account.Kind.CASH_AVAILABLE) == Decimal("9449.40")
    # The own fills list shows auction trades without an order.
    fills = client_for(b1_user).get("/api/v1/trades/").json()
    assert {(f["order_id"], f["liquidity"], f["price"]) for f in fills} == {(None, "auction", "11.00")}
    assert reconcile() == []


@pytest.mark.django_db
def test_members_see_and_withdraw_only_their_own_bids(parties, day):
    bids = enter_book(parties, day)
    b1_user, b2_user = parties["b1"][1], parties["b2"][1]
    listed = client_for(b1_user).get(f"/api/v1/dayahead/{day}/bids/").json()
    assert [b["id"] for b in listed] == [bids["b1"]["id"]]
    other = client_for(b2_user).get(f"/api/v1/dayahead/{day}/bids/{bids['b1']['id']}/")
    assert other.status_code == 404 and other.json()["code"] == "not_found"
    assert client_for(b2_user).delete(f"/api/v1/dayahead/{day}/bids/{bids['b1']['id']}/").status_code == 404

    withdrawn = client_for(b1_user).delete(f"/api/v1/dayahead/{day}/bids/{bids['b1']['id']}/")
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "cancelled"
    assert withdrawn.json()["reserved_amount"] == "0.00"
    again = client_for(b1_user).delete(f"/api/v1/dayahead/{day}/bids/{bids['b1']['id']}/")
    assert again.status_code == 409 and again.json()["code"] == "order_not_open"
    assert balance(parties["b1"][0], Account.Kind.CASH_RESERVED) == 0
    assert APIClient().get(f"/api/v1/dayahead/{day}/bids/").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"side": "buy", "kind": "curve", "hour": "14", "steps": [["abc", 1]]}, 400, "invalid", "steps"),
    ({"side": "buy", "kind": "curve", "hour": "14"}, 400, "invalid", "steps"),
    ({"side": "buy", "kind": "curve", "hour": "14", "steps": [["1.001", 1]]}, 400, "tick_size", "steps"),
    ({"side": "buy", "kind": "block", "first_hour": "10", "last_hour": "12", "price": "1.00",
      "quantity": "x"}, 400, "invalid", "quantity"),
    ({"side": "hold", "kind": "curve", "hour": "14", "steps": [["1.00", 1]]}, 400, "invalid", "side"),
    ({"side": "buy", "kind": "curve", "hour": "14", "steps": [["1.00", 1]], "gpu_class": "Z9"}, 400, "invalid",
     "gpu_class"),
])
def test_bad_requests_answer_the_error_shape_and_change_nothing(parties, day, body, status, code, field):
    answer = post(parties["b1"][1], day, **body)
    assert answer.status_code == status
    assert answer.json()["code"] == code and field in answer.json()["fields"]
    assert not DayAheadBid.objects.exists()


@pytest.mark.django_db
def test_a_closed_book_answers_409_auction_closed(parties):
    past = timezone.localdate(timezone.now(), calendar.BERLIN) - timedelta(days=1)
    answer = post(parties["b1"][1], past, side="buy", kind="curve", hour="14", steps=[["1.00", 1]])
    assert answer.status_code == 409 and answer.json()["code"] == "auction_closed"
    bad = client_for(parties["b1"][1]).get("/api/v1/dayahead/2026-02-30/bids/")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid" and "date" in bad.json()["fields"]


@pytest.mark.django_db
def test_the_command_refuses_before_gate_closure_and_clears_after(parties, day, monkeypatch):
    enter_book(parties, day)
    with pytest.raises(CommandError):
        call_command("run_dayahead_auction", "--date", day.isoformat())
    later = calendar.dayahead_gate_closure(day) + timedelta(minutes=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    call_command("run_dayahead_auction", "--date", day.isoformat())
    call_command("run_dayahead_auction", "--date", day.isoformat())  # idempotent
    assert DayAheadAuction.objects.get().status == AuctionStatus.CLEARED
    assert Trade.objects.count() == 4


@pytest.mark.django_db
def test_indicative_prices_follow_the_book_without_booking(parties, day):
    enter_book(parties, day)
    auction = DayAheadAuction.objects.get()
    assert dayahead.dayahead_indicative_run(now=auction.book_opens_at + timedelta(minutes=30)) == 0
    at = calendar.dayahead_gate_closure(day) - timedelta(hours=1)
    assert dayahead.dayahead_indicative_run(now=at) == 1
    hours = {h["hour"]: h for h in auction.__class__.objects.get().indicative.hours}
    assert hours["14"] == {"hour": "14", "price": "11.00", "volume": 60}
    assert not Trade.objects.exists() and auction.__class__.objects.get().status == AuctionStatus.OPEN


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_clear_the_auction_once(parties, day):
    enter_book(parties, day)
    auction = DayAheadAuction.objects.get()
    gate = calendar.dayahead_gate_closure(day)
    outcomes = run_at_once(2, lambda i: str(dayahead.auction_clear(auction_id=auction.pk, now=gate)))
    assert outcomes == {"True": 1, "False": 1}
    assert Trade.objects.count() == 4
    assert reconcile() == []


@pytest.mark.django_db
def test_operators_read_auctions_and_bids_in_admin(parties, day, admin_client):
    enter_book(parties, day)
    dayahead.auctions_clear_due(now=calendar.dayahead_gate_closure(day))
    auction = DayAheadAuction.objects.get()
    page = admin_client.get(f"/admin/market/dayaheadauction/{auction.pk}/change/")
    assert page.status_code == 200 and "11,00" in page.content.decode()
    listing = admin_client.get("/admin/market/dayaheadbid/")
    assert listing.status_code == 200 and "Bea Start GmbH" in listing.content.decode()
