"""The day-ahead auction's services: bid entry, the run and its booking,
against hand-computed prices, volumes and money (issue 9)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from accounts.models import Organisation
from clearing.models import Account, DeliveryTicket
from clearing.reconcile import reconcile
from clearing.services import cash_deposit_book
from exchange.errors import ExchangeError
from market import calendar
from market.models import (
    AuctionStatus,
    BidStatus,
    DayAheadAcceptance,
    DayAheadAuction,
    DayAheadBid,
    DayAheadCommitment,
    DayAheadHour,
    Position,
    Trade,
)
from market.services import dayahead
from tests.factories import (
    GpuClassFactory,
    MembershipFactory,
    OrganisationFactory,
    SiteCapacityFactory,
    SiteFactory,
    UserFactory,
)
from tests.market.trading_setup import APPROVED, ensure_zones

pytestmark = pytest.mark.django_db

DAY = date(2026, 12, 10)
BIDDING = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
GATE = calendar.dayahead_gate_closure(DAY)  # 2026-12-09 12:00 Berlin = 11:00 UTC


def member(name: str, *, cash: str = "10000.00", state: str | None = None, gpus: int = 100):
    organisation = OrganisationFactory(legal_name=name, kyc__status=APPROVED)
    user = UserFactory(email=f"{name.split()[0].lower()}@example.com")
    MembershipFactory(user=user, organisation=organisation, is_owner=True, is_trader=True, is_provider=True)
    if state is not None:
        SiteCapacityFactory(site=SiteFactory(organisation=organisation, state=state),
                            gpu_class=GpuClassFactory(code="H100"), gpus=gpus)
    operator = UserFactory(email=f"op-{organisation.pk}@operator.example", is_staff=True)
    cash_deposit_book(operator=operator, organisation=organisation, amount=Decimal(cash),
                      bank_reference=f"T-{organisation.pk}")
    return organisation, user


def bid(user, **fields):
    fields.setdefault("delivery_date", DAY)
    fields.setdefault("gpu_class", "H100")
    fields.setdefault("zone", "DE")
    return dayahead.dayahead_bid_submit(user=user, now=BIDDING, **fields)


def balance(organisation: Organisation, kind: str) -> Decimal:
    account = Account.objects.filter(organisation=organisation, kind=kind).first()
    return account.balance if account else Decimal("0.00")


@pytest.fixture
def market():
    ensure_zones("DE", "DE-BY", "DE-NW")
    GpuClassFactory(code="H100")
    s1, s1_user = member("Sella Eins GmbH", state=Organisation.State.BY)
    s2, s2_user = member("Selma Zwei GmbH", state=Organisation.State.NW)
    b1, b1_user = member("Bea Start GmbH")
    b2, b2_user = member("Bodo Lab GmbH")
    return {"s1": (s1, s1_user), "s2": (s2, s2_user), "b1": (b1, b1_user), "b2": (b2, b2_user)}


def hand_computed_book(market):
    """Hour 14: sellers S1 30@10.00 + 20@12.00, S2 40@11.00; buyers B1
    30@15.00 + 20@11.50 and B2's one-hour block of 10 at 13.00.
    Demand 60 at 11.00-11.50, supply 70 from 11.00: the volume is 60
    (b(60) = 11.50 >= s(60) = 11.00, no 61st buy unit); the supporting
    prices are [max(s(60), lower bound), min(b(60), s(61))] = [11.00, 11.00]."""
    (_s1, s1), (_s2, s2), (_b1, b1), (_b2, b2) = (market[k] for k in ("s1", "s2", "b1", "b2"))
    return {
        "s1": bid(s1, side="sell", kind="curve", hour="14", steps=[["10.00", 30], ["12.00", 20]]),
        "s2": bid(s2, side="sell", kind="curve", hour="14", steps=[["11.00", 40]]),
        "b1": bid(b1, side="buy", kind="curve", hour="14", steps=[["15.00", 30], ["11.50", 20]]),
        "b2": bid(b2, side="buy", kind="block", first_hour="14", last_hour="14", price="13.00", quantity=10),
    }


def test_buy_bids_reserve_their_worst_case(market):
    bids = hand_computed_book(market)
    # 15.00 x 30 + 11.50 x 20 = 680.00, plus the most the fee can take for 50 GPUh:
    # 50 x (0.01 + 0.01 VAT rounded up) = 1.00.
    assert bids["b1"].reserved_amount == Decimal("681.00")
    # 13.00 x 10 x 1 h + 10 x 0.02
    assert bids["b2"].reserved_amount == Decimal("130.20")
    assert bids["s1"].reserved_amount == Decimal("0.00")
    b1 = market["b1"][0]
    assert balance(b1, Account.Kind.CASH_RESERVED) == Decimal("681.00")
    assert balance(b1, Account.Kind.CASH_AVAILABLE) == Decimal("9319.00")
    assert reconcile() == []


def test_the_run_clears_books_and_allocates_to_the_cent(market):
    bids = hand_computed_book(market)
    auction = DayAheadAuction.objects.get()
    assert dayahead.auctions_clear_due(now=GATE) == 1

    auction.refresh_from_db()
    assert auction.status == AuctionStatus.CLEARED and auction.method == "optimal"
    assert len(auction.input_sha256) == 64
    hour = DayAheadHour.objects.get(auction=auction, hour="14")
    assert (hour.price, hour.volume, hour.buy_volume, hour.sell_volume) == (Decimal("11.00"), 60, 60, 90)
    assert DayAheadHour.objects.filter(auction=auction).count() == 24
    assert DayAheadHour.objects.get(auction=auction, hour="03").price is None  # no bids: no price

    accepted = dict(DayAheadAcceptance.objects.filter(hour="14").values_list("bid_id", "quantity"))
    assert accepted == {bids["s1"].pk: 30, bids["s2"].pk: 30, bids["b1"].pk: 50, bids["b2"].pk: 10}

    # Pro rata: B1 50 and B2 10 against S1 30 and S2 30 -> 25, 25, 5, 5.
    s1, s2, b1, b2 = (market[k][0] for k in ("s1", "s2", "b1", "b2"))
    trades = {(t.buyer_id, t.seller_id): t for t in Trade.objects.all()}
    assert {key: t.quantity for key, t in trades.items()} == {
        (b1.pk, s1.pk): 25, (b1.pk, s2.pk): 25, (b2.pk, s1.pk): 5, (b2.pk, s2.pk): 5}
    assert all(t.price == Decimal("11.00") and t.auction_id == auction.pk and t.buy_order_id is None
               and t.instrument.symbol == "H100.DE.2026-12-10T14" for t in trades.values())

    # B1: 550.00 for 50 GPUh and fees 0.25 + 0.25 held with VAT as 0.30 + 0.30;
    # of its 681.00 reserved, 130.40 goes back.
    assert balance(b1, Account.Kind.CASH_RESERVED) == Decimal("0.00")
    assert balance(b1, Account.Kind.SETTLEMENT_PENDING) == Decimal("550.00")
    assert balance(b1, Account.Kind.FEE_RESERVE) == Decimal("0.60")
    assert balance(b1, Account.Kind.CASH_AVAILABLE) == Decimal("9449.40")
    # B2: 110.00 and fees 0.05 + 0.05 held as 0.06 + 0.06; 20.08 of 130.20 back.
    assert balance(b2, Account.Kind.CASH_AVAILABLE) == Decimal("9889.88")
    assert balance(b2, Account.Kind.FEE_RESERVE) == Decimal("0.12")
    # Each seller: 330.00 for 30 GPUh less the fee held (0.30 + VAT 0.06).
    for seller in (s1, s2):
        assert balance(seller, Account.Kind.SETTLEMENT_PENDING) == Decimal("329.64")
        assert balance(seller, Account.Kind.FEE_RESERVE) == Decimal("0.36")
        assert balance(seller, Account.Kind.CASH_AVAILABLE) == Decimal("10000.00")

    positions = dict(Position.objects.values_list("organisation_id", "quantity"))
    assert positions == {b1.pk: 50, b2.pk: 10, s1.pk: -30, s2.pk: -30}
    assert DeliveryTicket.objects.count() == 4
    assert sum(DeliveryTicket.objects.values_list("value", flat=True)) == Decimal("660.00")
    assert set(DayAheadBid.objects.values_list("status", flat=True)) == {BidStatus.CLEARED}
    assert not DayAheadCommitment.objects.exists()
    assert reconcile() == []


def test_a_second_run_books_nothing(market):
    hand_computed_book(market)
    assert dayahead.auctions_clear_due(now=GATE) == 1
    assert dayahead.auctions_clear_due(now=GATE) == 0
    assert dayahead.auction_clear(auction_id=DayAheadAuction.objects.get().pk, now=GATE) is False
    assert Trade.objects.count() == 4


def test_nothing_runs_before_gate_closure(market):
    hand_computed_book(market)
    early = GATE.replace(minute=0) - calendar.HOUR
    assert dayahead.auctions_clear_due(now=early) == 0
    assert DayAheadAuction.objects.get().status == AuctionStatus.OPEN


def test_a_run_that_fails_half_way_leaves_nothing_and_the_next_run_books_it_all(market, monkeypatch):
    hand_computed_book(market)
    before = dict(Account.objects.values_list("pk", "balance"))

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(dayahead, "_store_result", crash)
    with pytest.raises(RuntimeError):
        dayahead.auctions_clear_due(now=GATE)
    assert not Trade.objects.exists() and not DeliveryTicket.objects.exists()
    assert DayAheadAuction.objects.get().status == AuctionStatus.OPEN
    assert dict(Account.objects.values_list("pk", "balance")) == before

    monkeypatch.undo()
    assert dayahead.auctions_clear_due(now=GATE) == 1
    b1 = market["b1"][0]
    assert balance(b1, Account.Kind.CASH_AVAILABLE) == Decimal("9449.40")
    assert reconcile() == []


def test_a_new_curve_replaces_the_hours_curve_and_releases_its_reservation(market):
    _b1, b1_user = market["b1"]
    first = bid(b1_user, side="buy", kind="curve", hour="14", steps=[["15.00", 30]])
    second = bid(b1_user, side="buy", kind="curve", hour="14", steps=[["12.00", 10]])
    first.refresh_from_db()
    assert first.status == BidStatus.REPLACED and first.reserved_amount == 0
    assert second.reserved_amount == Decimal("120.20")
    assert balance(market["b1"][0], Account.Kind.CASH_RESERVED) == Decimal("120.20")
    assert reconcile() == []


def test_cancel_releases_and_is_refused_after_gate_closure(market):
    _b1, b1_user = market["b1"]
    one = bid(b1_user, side="buy", kind="curve", hour="10", steps=[["15.00", 30]])
    two = bid(b1_user, side="buy", kind="curve", hour="11", steps=[["15.00", 30]])
    dayahead.dayahead_bid_cancel(user=b1_user, bid_id=one.pk, now=BIDDING)
    assert balance(market["b1"][0], Account.Kind.CASH_RESERVED) == two.reserved_amount
    with pytest.raises(ExchangeError) as refused:
        dayahead.dayahead_bid_cancel(user=b1_user, bid_id=one.pk, now=BIDDING)
    assert refused.value.code == "order_not_open"
    with pytest.raises(ExchangeError) as late:
        dayahead.dayahead_bid_cancel(user=b1_user, bid_id=two.pk, now=GATE)
    assert late.value.code == "auction_closed"
    # Another member's bid does not exist for them.
    with pytest.raises(ExchangeError) as foreign:
        dayahead.dayahead_bid_cancel(user=market["b2"][1], bid_id=two.pk, now=BIDDING)
    assert foreign.value.code == "not_found"


@pytest.mark.parametrize("when", [GATE, calendar.dayahead_book_opens(DAY) - calendar.HOUR])
def test_bids_outside_the_book_window_are_refused_and_change_nothing(market, when):
    _b1, b1_user = market["b1"]
    with pytest.raises(ExchangeError) as refused:
        dayahead.dayahead_bid_submit(user=b1_user, delivery_date=DAY, gpu_class="H100", zone="DE", side="buy",
                                     kind="curve", hour="14", steps=[["15.00", 1]], now=when)
    assert refused.value.code == "auction_closed"
    assert not DayAheadBid.objects.exists()


@pytest.mark.parametrize(("fields", "code", "field"), [
    ({"kind": "curve", "hour": "25", "steps": [["1.00", 1]]}, "invalid", "hour"),
    ({"kind": "curve", "hour": "02A", "steps": [["1.00", 1]]}, "invalid", "hour"),  # no 02A on a normal day
    ({"kind": "curve", "hour": "14", "steps": []}, "invalid", "steps"),
    ({"kind": "curve", "hour": "14", "steps": [["1.00", 1]] * 2}, "invalid", "steps"),
    ({"kind": "curve", "hour": "14", "steps": [[f"{i}.00", 1] for i in range(1, 66)]}, "invalid", "steps"),
    ({"kind": "curve", "hour": "14", "steps": [["1.005", 1]]}, "tick_size", "steps"),
    ({"kind": "curve", "hour": "14", "steps": [["200.01", 1]]}, "price_out_of_bounds", "steps"),
    ({"kind": "curve", "hour": "14", "steps": [["1.00", 0]]}, "invalid", "steps"),
    ({"kind": "block", "first_hour": "15", "last_hour": "14", "price": "1.00", "quantity": 1}, "invalid",
     "last_hour"),
    ({"kind": "block", "first_hour": "14", "last_hour": "15", "price": "1.00", "quantity": 1,
      "min_acceptance_ratio": "0"}, "invalid", "min_acceptance_ratio"),
    ({"kind": "block", "first_hour": "14", "last_hour": "15", "price": "1.00", "quantity": 1,
      "exclusive_group": "a b"}, "invalid", "exclusive_group"),
])
def test_bad_bids_are_refused_at_the_field(market, fields, code, field):
    _b1, b1_user = market["b1"]
    with pytest.raises(ExchangeError) as refused:
        bid(b1_user, side="buy", **fields)
    assert refused.value.code == code
    assert field in refused.value.fields
    assert not DayAheadBid.objects.exists()


def test_a_sell_below_the_fee_floor_is_refused(market):
    _s1, s1_user = market["s1"]
    with pytest.raises(ExchangeError) as refused:
        bid(s1_user, side="sell", kind="curve", hour="14", steps=[["0.01", 1]])
    assert refused.value.code == "price_out_of_bounds"


def test_a_buy_beyond_the_cash_is_refused_and_changes_nothing(market):
    _b1, b1_user = market["b1"]
    with pytest.raises(ExchangeError) as refused:
        bid(b1_user, side="buy", kind="block", first_hour="00", last_hour="23", price="200.00", quantity=10)
    assert refused.value.code == "insufficient_funds"
    assert not DayAheadBid.objects.exists()
    assert balance(market["b1"][0], Account.Kind.CASH_RESERVED) == 0


def test_sells_count_against_capacity_with_exclusive_groups_counted_once(market):
    s1, s1_user = market["s1"]  # 100 GPUs in Bavaria
    bid(s1_user, side="sell", kind="block", first_hour="08", last_hour="19", price="5.00", quantity=60,
        exclusive_group="day")
    bid(s1_user, side="sell", kind="block", first_hour="08", last_hour="19", price="4.00", quantity=70,
        exclusive_group="day")  # one of the two: 70 counts, not 130
    bid(s1_user, side="sell", kind="curve", hour="12", steps=[["6.00", 30]])
    commitments = dict(DayAheadCommitment.objects.filter(organisation=s1).values_list("hour_start", "gpus"))
    noon = calendar.delivery_hour(DAY, "12").start
    assert commitments[noon] == 100
    with pytest.raises(ExchangeError) as refused:
        bid(s1_user, side="sell", kind="curve", hour="13", steps=[["6.00", 31]])
    assert refused.value.code == "insufficient_capacity"
    # The same GPUs offered in the Bavarian auction of that hour do not fit either.
    with pytest.raises(ExchangeError) as elsewhere:
        bid(s1_user, zone="DE-BY", side="sell", kind="curve", hour="12", steps=[["6.00", 1]])
    assert elsewhere.value.code == "insufficient_capacity"
    assert DayAheadBid.objects.filter(status=BidStatus.ACTIVE).count() == 3


def test_a_member_on_both_sides_of_an_hour_trades_only_its_net(market):
    (s1, s1_user), (b1, b1_user) = market["s1"], market["b1"]
    bid(s1_user, side="sell", kind="curve", hour="09", steps=[["5.00", 40]])
    # S1 also buys 10 in hour 09 with a one-hour block; B1 buys 20.
    bid(s1_user, side="buy", kind="block", first_hour="09", last_hour="09", price="9.00", quantity=10)
    bid(b1_user, side="buy", kind="curve", hour="09", steps=[["9.00", 20]])
    dayahead.auctions_clear_due(now=GATE)
    hour = DayAheadHour.objects.get(hour="09")
    assert hour.volume == 30
    trades = list(Trade.objects.values_list("buyer_id", "seller_id", "quantity"))
    assert trades == [(b1.pk, s1.pk, 20)]
    assert Position.objects.get(organisation=s1).quantity == -20
    assert reconcile() == []


def test_a_25_hour_day_clears_with_both_02_hours(market):
    day = date(2026, 10, 25)
    (_s1, s1_user), (_b1, b1_user) = market["s1"], market["b1"]
    at = datetime(2026, 10, 20, 9, 0, tzinfo=UTC)
    for label in ("02A", "02B"):
        dayahead.dayahead_bid_submit(user=s1_user, delivery_date=day, gpu_class="H100", zone="DE", side="sell",
                                     kind="curve", hour=label, steps=[["5.00", 10]], now=at)
    dayahead.dayahead_bid_submit(user=b1_user, delivery_date=day, gpu_class="H100", zone="DE", side="buy",
                                 kind="block", first_hour="01", last_hour="03", price="8.00", quantity=4, now=at)
    block = DayAheadBid.objects.get(kind="block")
    assert block.hours == 4  # 01, 02A, 02B, 03
    dayahead.auctions_clear_due(now=calendar.dayahead_gate_closure(day))
    hours = list(DayAheadHour.objects.order_by("position").values_list("hour", flat=True))
    assert len(hours) == 25 and hours[2:4] == ["02A", "02B"]
    # The block needs sellers in all four hours; 01 and 03 have none, so it is rejected.
    assert Trade.objects.count() == 0
    assert reconcile() == []


def test_a_23_hour_day_has_no_hour_02(market):
    day = date(2026, 3, 29)
    _b1, b1_user = market["b1"]
    at = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
    with pytest.raises(ExchangeError) as refused:
        dayahead.dayahead_bid_submit(user=b1_user, delivery_date=day, gpu_class="H100", zone="DE", side="buy",
                                     kind="curve", hour="02", steps=[["5.00", 10]], now=at)
    assert refused.value.code == "invalid"
    dayahead.dayahead_bid_submit(user=b1_user, delivery_date=day, gpu_class="H100", zone="DE", side="buy",
                                 kind="curve", hour="03", steps=[["5.00", 10]], now=at)
    dayahead.auctions_clear_due(now=calendar.dayahead_gate_closure(day))
    assert DayAheadHour.objects.count() == 23


def test_accepted_sells_occupy_capacity_so_intraday_sees_what_is_left(market):
    from market.models import Instrument, InstrumentStatus
    from market.services.orders import order_submit

    hand_computed_book(market)
    dayahead.auctions_clear_due(now=GATE)
    s1, s1_user = market["s1"]  # 100 GPUs in Bavaria, 30 sold in the auction's hour 14
    instrument = Instrument.objects.get(symbol="H100.DE.2026-12-10T14")
    Instrument.objects.filter(pk=instrument.pk).update(status=InstrumentStatus.OPEN)
    at = instrument.opens_at + calendar.HOUR
    with pytest.raises(ExchangeError) as refused:
        order_submit(user=s1_user, instrument=instrument, side="sell", price=Decimal("20.00"), quantity=71, now=at)
    assert refused.value.code == "insufficient_capacity"
    order_submit(user=s1_user, instrument=instrument, side="sell", price=Decimal("20.00"), quantity=70, now=at)
    assert reconcile() == []


def test_a_site_cannot_shrink_below_what_its_organisation_offers_in_an_open_auction(market):
    from market.models import Site
    from market.services.capacity import site_capacity_set

    s1, s1_user = market["s1"]
    bid(s1_user, side="sell", kind="curve", hour="12", steps=[["6.00", 80]])
    site = Site.objects.get(organisation=s1)
    with pytest.raises(ExchangeError) as refused:
        site_capacity_set(user=s1_user, site=site, gpu_class=GpuClassFactory(code="H100"), gpus=50)
    assert refused.value.code == "insufficient_capacity"
    assert "80" in refused.value.detail
    site_capacity_set(user=s1_user, site=site, gpu_class=GpuClassFactory(code="H100"), gpus=80)


def test_auction_trades_are_delivered_and_settled_like_intraday(market):
    from clearing.services import deliveries_settle, delivery_access_post, delivery_confirm

    hand_computed_book(market)
    dayahead.auctions_clear_due(now=GATE)
    start = calendar.delivery_hour(DAY, "14").start
    sellers = {market["s1"][0].pk: market["s1"][1], market["s2"][0].pk: market["s2"][1]}
    buyers = {market["b1"][0].pk: market["b1"][1], market["b2"][0].pk: market["b2"][1]}
    for ticket in DeliveryTicket.objects.order_by("pk"):
        delivery_access_post(user=sellers[ticket.seller_id], ticket=ticket, endpoint="ssh gpu@10.0.0.1",
                             instructions="key on file", now=GATE)
        delivery_confirm(user=buyers[ticket.buyer_id], ticket=ticket, now=start)
    assert deliveries_settle(now=start + calendar.HOUR) == 4
    s1, b1 = market["s1"][0], market["b1"][0]
    # The seller is paid what it sold less the fee held: 330.00 - 0.36.
    assert balance(s1, Account.Kind.CASH_AVAILABLE) == Decimal("10329.64")
    assert balance(s1, Account.Kind.SETTLEMENT_PENDING) == 0
    assert balance(b1, Account.Kind.SETTLEMENT_PENDING) == 0
    assert reconcile() == []


def test_clearing_publishes_the_days_base_index(market, django_capture_on_commit_callbacks):
    from market.models import IndexValue

    hand_computed_book(market)
    with django_capture_on_commit_callbacks(execute=True):
        dayahead.auctions_clear_due(now=GATE)
    base = IndexValue.objects.get(kind="base", date=DAY)
    assert base.value == Decimal("11.00") and not base.is_demo  # one hour with a price
    assert len(base.sha256) == 64
