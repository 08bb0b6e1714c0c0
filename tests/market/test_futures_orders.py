"""Futures orders through the order service (issue 10, item 1 and the
initial-margin check of item 3): the fee reservation of both sides, the
margin an order moves, the refusal that changes nothing, amends, batches,
and a whole lifecycle from the first order to the final settlement, every
amount computed by hand."""

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import AuditLog
from clearing.models import Account, DeliveryTicket, JournalEntry
from clearing.reconcile import reconcile
from exchange.errors import ExchangeError
from market.models import MarginCall, Order, OrderStatus, Position, Trade, VariationMargin
from market.services import futures
from market.services.orders import order_amend, order_cancel, order_submit, orders_expire, orders_submit_batch
from tests.factories import UserFactory
from tests.market.test_dayahead_service import balance, member
from tests.market.test_futures_day import MON, TUE, WED, at, january, run_day
from tests.market.test_futures_expiry import clear_month, expire

pytestmark = pytest.mark.django_db

D = Decimal
CASH, RESERVED, MARGIN, FEES = (Account.Kind.CASH_AVAILABLE, Account.Kind.CASH_RESERVED, Account.Kind.MARGIN,
                                Account.Kind.FEE_RESERVE)
# One GPU of January (744 hours) at 2.40: initial margin 0.15 x 2.40 x 744 = 267.84.
# The most the fees of one GPU can be at 0.002 per side: 0.002 x 744 = 1.488 -> 1.49 net, VAT 0.19 x 1.49
# = 0.2831 -> 0.29: 1.78 per GPU reserved by an order of either side.
IM_ONE = D("267.84")
FEE_ONE = D("1.78")


def money(organisation) -> tuple[Decimal, Decimal, Decimal, Decimal]:  # type: ignore[no-untyped-def]
    return tuple(balance(organisation, kind) for kind in (CASH, RESERVED, MARGIN, FEES))  # type: ignore[return-value]


@pytest.fixture
def world():
    return {"m": january(), "a": member("Anna Hedge GmbH"), "b": member("Berta Supply GmbH"),
            "c": member("Carl Quotes GmbH", cash="300.00")}


def submit(party, instrument, side, price, quantity, when=None, **kwargs):  # type: ignore[no-untyped-def]
    return order_submit(user=party[1], instrument=instrument, side=side, price=D(price), quantity=quantity,
                        now=when or at(MON, 10), **kwargs).order


def test_a_resting_buy_reserves_its_fees_and_moves_its_initial_margin(world):
    m, a = world["m"], world["a"]
    order = submit(a, m, "buy", "2.40", 10)
    assert order.status == OrderStatus.OPEN and order.reserved_amount == 10 * FEE_ONE
    # No DSP and no trade yet: the margin is taken at the order's own limit.
    assert money(a[0]) == (D("10000.00") - 10 * IM_ONE - 10 * FEE_ONE, D("17.80"), D("2678.40"), D("0.00"))
    entry = JournalEntry.objects.get(kind=JournalEntry.Kind.MARGIN, reference=f"initial-margin:order:{order.pk}")
    assert sorted(line.amount for line in entry.lines.all()) == [D("-2678.40"), D("2678.40")]
    assert futures.margin_summary(organisation_id=a[0].pk)["initial_margin"] == D("2678.40")
    assert reconcile() == []


def test_a_futures_trade_moves_only_the_fees_and_delivers_nothing(world):
    m, a, b = world["m"], world["a"], world["b"]
    submit(a, m, "buy", "2.40", 10)
    sell = submit(b, m, "sell", "2.40", 10)
    assert sell.status == OrderStatus.FILLED
    trade = Trade.objects.get()
    # Each side's fee: 0.002 x 10 x 744 = 14.88, with 19 % VAT (2.8272 -> 2.83) 17.71 into the fee
    # reserve; the 0.09 the 17.80 reservation held beyond it goes back to available cash.
    assert (trade.price, trade.quantity, trade.buyer_fee, trade.seller_fee) == (
        D("2.40"), 10, D("14.880000"), D("14.880000"))
    expected = (D("10000.00") - D("2678.40") - D("17.71"), D("0.00"), D("2678.40"), D("17.71"))
    assert money(a[0]) == expected and money(b[0]) == expected
    posting = JournalEntry.objects.get(kind=JournalEntry.Kind.TRADE, reference=f"trade:{trade.pk}")
    assert {(line.account.organisation_id, line.account.kind, line.amount) for line in posting.lines.all()} == {
        (party[0].pk, kind, amount) for party in (a, b)
        for kind, amount in ((RESERVED, D("-17.80")), (CASH, D("0.09")), (FEES, D("17.71")))}
    assert not DeliveryTicket.objects.exists()
    assert dict(Position.objects.values_list("organisation_id", "quantity")) == {a[0].pk: 10, b[0].pk: -10}
    assert reconcile() == []


def test_an_order_beyond_the_cash_for_its_margin_is_refused_and_changes_nothing(world):
    m, c = world["m"], world["c"]
    before = money(c[0])
    # 300.00 holds one GPU (267.84 + 1.78) but not two (535.68 + 3.56).
    with pytest.raises(ExchangeError) as refused:
        submit(c, m, "sell", "2.40", 2)
    assert refused.value.code == "insufficient_funds" and refused.value.status == 409
    detail = refused.value.detail
    assert detail.startswith("Nicht genug Guthaben für die Initial Margin") and "535,68" in detail
    assert money(c[0]) == before and not Order.objects.exists()
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.MARGIN).exists()
    assert submit(c, m, "sell", "2.40", 1).status == OrderStatus.OPEN
    assert money(c[0]) == (D("300.00") - IM_ONE - FEE_ONE, FEE_ONE, IM_ONE, D("0.00"))


def test_both_sides_of_one_future_count_at_their_worse_case_not_added(world):
    m, c = world["m"], world["c"]
    submit(c, m, "buy", "2.40", 1)
    # A sell of one beside the buy of one: worst case max(|0 + 1|, |0 - 1|) = 1 GPU, not 2. With no
    # price yet, the future is priced at the highest limit of the orders: 0.15 x 2.45 x 744 = 273.42.
    submit(c, m, "sell", "2.45", 1)
    assert money(c[0]) == (D("300.00") - D("273.42") - 2 * FEE_ONE, 2 * FEE_ONE, D("273.42"), D("0.00"))
    assert reconcile() == []


def test_margin_freed_by_a_cancel_is_used_again_before_cash(world):
    m, a = world["m"], world["a"]
    first = submit(a, m, "buy", "2.40", 10)
    order_cancel(user=a[1], order_id=first.pk, now=at(MON, 10, 5))
    # The fees go back at once; the margin stays until the day's margin run releases it.
    assert money(a[0]) == (D("10000.00") - D("2678.40"), D("0.00"), D("2678.40"), D("0.00"))
    submit(a, m, "buy", "2.40", 5, when=at(MON, 10, 10))
    assert balance(a[0], MARGIN) == D("2678.40")  # 1,339.20 needed, held already: nothing moves
    assert balance(a[0], CASH) == D("10000.00") - D("2678.40") - 5 * FEE_ONE
    assert reconcile() == []


def test_an_amend_that_raises_the_worst_case_needs_margin_and_one_that_lowers_it_moves_none(world):
    m, c = world["m"], world["c"]
    order = submit(c, m, "buy", "1.00", 1)  # 0.15 x 1.00 x 744 = 111.60
    assert money(c[0]) == (D("300.00") - D("111.60") - FEE_ONE, FEE_ONE, D("111.60"), D("0.00"))
    # Two GPUs at 1.00 need 223.20 and 3.56 of fees: 111.60 + 1.78 more, which the cash holds.
    order_amend(user=c[1], order_id=order.pk, quantity=2, now=at(MON, 10, 1))
    assert money(c[0]) == (D("300.00") - D("223.20") - 2 * FEE_ONE, 2 * FEE_ONE, D("223.20"), D("0.00"))
    # Three at 1.00 would need 334.80: refused, nothing changes.
    before = money(c[0])
    with pytest.raises(ExchangeError) as refused:
        order_amend(user=c[1], order_id=order.pk, price=D("1.50"), now=at(MON, 10, 2))  # 2 x 1.50: 334.80
    assert refused.value.code == "insufficient_funds"
    assert money(c[0]) == before and Order.objects.get(pk=order.pk).price == D("1.00")
    order_amend(user=c[1], order_id=order.pk, quantity=1, now=at(MON, 10, 3))
    assert money(c[0]) == (D("300.00") - D("223.20") - FEE_ONE, FEE_ONE, D("223.20"), D("0.00"))
    assert reconcile() == []


def test_a_batch_adds_up_its_orders_margin_and_refuses_the_one_beyond(world):
    m, c = world["m"], world["c"]
    results = orders_submit_batch(user=c[1], now=at(MON, 10), orders=[
        {"instrument": m, "side": "buy", "price": D("1.00"), "quantity": 1},   # 111.60
        {"instrument": m, "side": "buy", "price": D("1.10"), "quantity": 1},   # both at 1.10: 245.52
        {"instrument": m, "side": "buy", "price": D("1.20"), "quantity": 1},   # three at 1.20: 401.76, refused
    ])
    assert [getattr(result, "code", "ok") for result in results] == ["ok", "ok", "insufficient_funds"]
    assert money(c[0]) == (D("300.00") - D("245.52") - 2 * FEE_ONE, 2 * FEE_ONE, D("245.52"), D("0.00"))
    assert reconcile() == []


def test_a_sell_below_the_spot_fee_floor_is_taken_in_futures(world):
    m, a = world["m"], world["a"]
    # A spot sell must be at least 0.03 (its fee comes out of the proceeds); a futures seller reserves its fee.
    assert submit(a, m, "sell", "0.01", 1).price == D("0.01")


def test_futures_trade_only_in_session(world):
    m, a = world["m"], world["a"]
    with pytest.raises(ExchangeError) as refused:
        submit(a, m, "buy", "2.40", 1, when=at(MON, 18, 0))
    assert refused.value.code == "instrument_closed"
    assert not Order.objects.exists() and balance(a[0], MARGIN) == D("0.00")


def test_a_month_from_the_first_order_to_its_final_settlement(db):
    """Buy a month, three daily settlements with variation margin, expiry,
    final settlement against the base index: every cash flow by hand."""
    m, a, b, c = january(), member("Anna Hedge GmbH"), member("Berta Supply GmbH"), member("Carl Quotes GmbH")
    # Monday 17:10: A buys 10 January GPUs from B at 2.40 (DSP 2.40, the VWAP of 17:00-17:30).
    submit(b, m, "sell", "2.40", 10, when=at(MON, 17, 5))
    submit(a, m, "buy", "2.40", 10, when=at(MON, 17, 10))
    run_day(MON)
    # Margin 2,678.40 each (moved at entry, as the run computes it); fees held 17.71 each.
    for party in (a, b):
        assert money(party[0]) == (D("7303.89"), D("0.00"), D("2678.40"), D("17.71"))
    assert reconcile() == []

    # Tuesday: no trade; C quotes 4 at 2.45 / 1 at 2.47 -> DSP 2.46 (the mid).
    submit(c, m, "buy", "2.45", 4, when=at(TUE, 11))
    submit(c, m, "sell", "2.47", 1, when=at(TUE, 11))
    run_day(TUE)
    # A: +0.06 x 10 x 744 = +446.40; the margin at 2.46: 0.15 x 2.46 x 7,440 = 2,745.36 (66.96 more).
    assert money(a[0]) == (D("7683.33"), D("0.00"), D("2745.36"), D("17.71"))
    assert money(b[0]) == (D("6790.53"), D("0.00"), D("2745.36"), D("17.71"))
    assert reconcile() == []

    # Wednesday 17:20: A sells 4 into C's bid at 2.45 -> DSP 2.45.
    sell = submit(a, m, "sell", "2.45", 4, when=at(WED, 17, 20))
    assert sell.status == OrderStatus.FILLED
    # Entered at Tuesday's DSP: 10 long and a sell of 4 is at worst still 10: no margin moves.
    # Its fees: 4 x 1.78 = 7.12 reserved; 0.002 x 4 x 744 = 5.952 accrues on top of 14.88: the month's
    # charge 20.832 -> 20.83 + VAT 3.96 = 24.79, a step of 7.08, and 0.04 comes back.
    assert money(a[0]) == (D("7676.25"), D("0.00"), D("2745.36"), D("24.79"))
    run_day(WED)
    # A: overnight 10 x (2.45 - 2.46) x 744 = -74.40, the day's sale at the DSP 0.00; the margin of 6 at
    # 2.45: 0.15 x 2.45 x 4,464 = 1,640.52, 1,104.84 released.
    assert VariationMargin.objects.get(organisation=a[0], date=WED).amount == D("-74.40")
    assert money(a[0]) == (D("8706.69"), D("0.00"), D("1640.52"), D("24.79"))
    # Bought at 2.40, 4 sold at 2.45, 6 marked at 2.45: 0.05 x 7,440 = 372.00 gained in all.
    assert sum(money(a[0])) == D("10372.00")
    assert reconcile() == []

    # January's last session is 30 December (31 December and 1 January are holidays).
    last = futures.last_trading_day(m)
    assert last == date(2026, 12, 30)
    run_day(last)  # no trade, only C's ask: the previous DSP, 2.45
    expire(last)
    assert Position.objects.get(organisation=a[0], instrument=m).quantity == 6  # waits for its index
    # Trading ends when delivery starts: the job takes C's ask off the book and returns its fees.
    assert orders_expire(now=m.closes_at) == 1
    # Every hour of January clears at 2.50 and 2.60 in turn: the base index is 2.55.
    clear_month(m, ["2.50", "2.60"])
    assert futures.final_settlement_price(m) == D("2.55")
    end = date(2027, 2, 1)
    run_day(end)
    expire(end)
    # A: (2.55 - 2.45) x 6 x 744 = +446.40; the position is closed.
    assert Position.objects.get(organisation=a[0], instrument=m).quantity == 0
    assert sum(money(a[0])) == D("10372.00") + D("446.40")
    run_day(futures.next_business_day(end))
    assert balance(a[0], MARGIN) == D("0.00")  # released with the position
    assert balance(a[0], CASH) == D("10818.40") - D("24.79")
    assert reconcile() == []


def test_a_margin_call_unpaid_by_ten_is_closed_out_by_an_operator(db):
    """A member that cannot meet its call is closed out the next business day
    at 10:00 at the earliest: a market order on its account, entered by the
    operator; what it cannot pay is owed to the clearing house."""
    m = january()
    a, b, c = member("Anna Hedge GmbH", cash="2700.00"), member("Berta Supply GmbH"), member("Carl Quotes GmbH")
    operator = UserFactory(email="betrieb@rechenboerse.example", is_staff=True)
    submit(b, m, "sell", "2.40", 10, when=at(MON, 17, 5))
    submit(a, m, "buy", "2.40", 10, when=at(MON, 17, 10))
    run_day(MON)
    assert money(a[0]) == (D("3.89"), D("0.00"), D("2678.40"), D("17.71"))
    # Tuesday the price falls: C quotes 10 at 1.95 / 1 at 2.05 -> DSP 2.00.
    submit(c, m, "buy", "1.95", 10, when=at(TUE, 11))
    submit(c, m, "sell", "2.05", 1, when=at(TUE, 11))
    run_day(TUE)
    # A loses (2.00 - 2.40) x 7,440 = 2,976.00: 3.89 of cash, 2,678.40 of margin, 293.71 owed; its
    # margin at 2.00 (0.15 x 2.00 x 7,440 = 2,232.00) is called, due Wednesday 10:00.
    assert money(a[0]) == (D("0.00"), D("0.00"), D("0.00"), D("17.71"))
    assert balance(a[0], Account.Kind.CCP_CLAIM) == D("-293.71")
    call = MarginCall.objects.get(organisation=a[0])
    assert (call.amount, call.due_at) == (D("2232.00"), at(WED, 10))
    assert futures.margin_summary(organisation_id=a[0].pk)["margin_call"]["amount"] == D("2232.00")

    with pytest.raises(ExchangeError) as early:
        futures.margin_call_close_out(operator=operator, call=call, now=at(WED, 9, 59))
    assert early.value.code == "conflict"
    with pytest.raises(ExchangeError) as member_tries:
        futures.margin_call_close_out(operator=a[1], call=call, now=at(WED, 10, 30))
    assert member_tries.value.code == "not_permitted"
    assert Position.objects.get(organisation=a[0], instrument=m).quantity == 10

    result = futures.margin_call_close_out(operator=operator, call=call, now=at(WED, 10, 30))
    assert result.complete and result.legs == [("H100.DE.M2027-01", 10, 10)]
    close = Order.objects.get(organisation=a[0], side="sell")
    assert (close.type, close.time_in_force, close.placed_by, close.status) == ("market", "IOC", operator, "filled")
    trade = Trade.objects.get(sell_order=close)
    assert (trade.price, trade.quantity, trade.buyer_id) == (D("1.95"), 10, c[0].pk)
    assert Position.objects.get(organisation=a[0], instrument=m).quantity == 0
    call.refresh_from_db()
    assert (call.closed_out_at, call.closed_out_by) == (at(WED, 10, 30), operator)
    audit = AuditLog.objects.get(action="margin_call.close_out")
    assert (audit.actor, audit.organisation, audit.after["closed"]) == (operator, a[0], {"H100.DE.M2027-01": 10})
    # The fee of the close-out: 14.88 more accrued, the month's charge 29.76 -> 29.76 + 5.65 = 35.41, a step of
    # 17.70 that A cannot pay: owed too.
    assert money(a[0]) == (D("0.00"), D("0.00"), D("0.00"), D("35.41"))
    assert balance(a[0], Account.Kind.CCP_CLAIM) == D("-311.41")
    with pytest.raises(ExchangeError):
        futures.margin_call_close_out(operator=operator, call=call, now=at(WED, 10, 31))  # once

    run_day(WED)
    # Sold at 1.95 what was marked at 2.00: 10 x (1.95 - 2.00) x 744 = -372.00, owed as well. In all A lost
    # (2.40 - 1.95) x 7,440 = 3,348.00 and the fees: 2,700.00 paid, 683.41 owed.
    assert balance(a[0], Account.Kind.CCP_CLAIM) == D("-683.41")
    assert not MarginCall.objects.filter(organisation=a[0], date=WED).exists()
    assert reconcile() == []


def test_the_admin_closes_out_after_a_confirmation(db, admin_client, monkeypatch):
    m = january()
    a, c = member("Anna Hedge GmbH", cash="2700.00"), member("Carl Quotes GmbH")
    submit(c, m, "sell", "2.40", 10, when=at(MON, 17, 5))
    submit(a, m, "buy", "2.40", 10, when=at(MON, 17, 10))
    run_day(MON)
    submit(c, m, "buy", "1.95", 10, when=at(TUE, 11))
    submit(c, m, "sell", "2.05", 1, when=at(TUE, 11))
    run_day(TUE)
    call = MarginCall.objects.get(organisation=a[0])
    url = reverse("admin:market_margincall_changelist")
    page = admin_client.post(url, {"action": "close_out", "_selected_action": [call.pk]})
    assert page.status_code == 200 and "H100.DE.M2027-01" in page.content.decode()
    assert Position.objects.get(organisation=a[0], instrument=m).quantity == 10  # nothing done yet
    monkeypatch.setattr("django.utils.timezone.now", lambda: at(WED, 10, 30))  # the operator acts at 10:30
    done = admin_client.post(url, {"action": "close_out", "_selected_action": [call.pk], "apply": "yes"},
                             follow=True)
    assert Position.objects.get(organisation=a[0], instrument=m).quantity == 0
    assert "H100.DE.M2027-01: 10 von 10 GPUs geschlossen" in done.content.decode()


def test_the_api_takes_futures_orders_and_shows_the_positions_marks(world, monkeypatch):
    m, a, b = world["m"], world["a"], world["b"]
    monkeypatch.setattr("django.utils.timezone.now", lambda: at(MON, 17, 10))
    client = APIClient()
    client.force_authenticate(a[1])
    submit(b, m, "sell", "2.40", 10, when=at(MON, 17, 5))
    answer = client.post("/api/v1/orders/", {"instrument": "H100.DE.M2027-01", "side": "buy", "type": "limit",
                                             "price": "2.40", "quantity": 10, "time_in_force": "GTC"}, format="json")
    assert answer.status_code == 201, answer.json()
    assert (answer.json()["status"], answer.json()["fills"][0]["price"]) == ("filled", "2.40")
    run_day(MON)
    [position] = client.get("/api/v1/positions/").json()
    assert position == {"instrument": "H100.DE.M2027-01", "quantity": 10, "average_price": "2.4000",
                        "unrealised_pnl": "0.00", "last_price": "2.40", "settlement_price": "2.40",
                        "variation_margin": "0.00"}
    assert client.get("/api/v1/account/").json()["margin"] == "2678.40"
    too_much = client.post("/api/v1/orders/", {"instrument": "H100.DE.M2027-01", "side": "buy", "type": "limit",
                                               "price": "2.40", "quantity": 100, "time_in_force": "GTC"}, format="json")
    assert too_much.status_code == 409 and too_much.json()["code"] == "insufficient_funds"
